# GroundSynth developer commands. The README's two commands are `make demo` and `make test`.
PY := .venv/bin/python
export QT_QPA_PLATFORM ?= offscreen
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup proto test demo bench
setup:                 ## apt packages, .venv, pinned requirements, generated gRPC code (idempotent)
	@scripts/bootstrap.sh

proto: setup           ## regenerate gRPC code from protos/
	@$(PY) scripts/gen_proto.py

test: setup            ## the whole test suite (CI runs exactly this): the main suite, then the Ray step
	$(PY) -m pytest
	$(PY) -m pytest -m ray

demo: setup            ## the main job on the real Sentinel-2 demo scene with the default engines
	$(PY) -m groundsynth demo --workspace workspace

bench: setup           ## speed benchmarks (print numbers)
	$(PY) bench/pipeline_speed.py

.PHONY: synthesis-sheet synthesis-bench
synthesis-sheet: setup ## contact sheet of the synthesisers on the demo scene: docs/synthesis_sheet.png
	$(PY) scripts/synthesis_sheet.py --out docs/synthesis_sheet.png

synthesis-bench: setup ## realism of exemplar, texture and trivial baselines on held-out demo tiles (docs/synthesis.md)
	$(PY) bench/synthesis_realism.py

# ---------------------------------------------------------------- QGIS plugin (docs/plugin.md)
QGIS_PLUGINS ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins
.PHONY: package install-plugin screenshot
package: setup         ## build the installable QGIS plugin zip into dist/
	$(PY) scripts/package_plugin.py --out dist

install-plugin: setup  ## build the plugin and symlink it into a QGIS profile (QGIS_PLUGINS=... to choose)
	$(PY) scripts/package_plugin.py --link "$(QGIS_PLUGINS)"

screenshot: setup      ## demo run through a real backend, canvas + dock rendered into docs/screenshot.png
	$(PY) scripts/screenshot.py --out docs/screenshot.png
