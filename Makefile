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

test: setup            ## the whole test suite (CI runs exactly this)
	$(PY) -m pytest

demo: setup            ## the main job on the real Sentinel-2 demo scene with the default engines
	$(PY) -m backend demo --workspace workspace

bench: setup           ## speed benchmarks (print numbers)
	$(PY) bench/pipeline_speed.py
