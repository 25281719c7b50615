#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine; quick (a few checks) when done already.
#   1. apt packages: python3-qgis, python3-venv (only if missing)
#   2. .venv at the repo root from Debian's /usr/bin/python3 with system site packages
#   3. the groundsynth package, editable, with its pinned extras (re-installed only when
#      pyproject.toml or constraints.txt change)
#   4. generated gRPC code from protos/ (re-generated only when a .proto changes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

need_apt=0
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || need_apt=1
/usr/bin/python3 -c "import venv, ensurepip" 2>/dev/null || need_apt=1
if [ "$need_apt" = 1 ]; then
  echo "[bootstrap] installing Debian packages python3-qgis python3-venv (about 2 minutes)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-qgis python3-venv >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv (Debian python3, system site packages)" >&2
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

stamp=.venv/.install.sha256
want=$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] installing groundsynth (editable) with pinned extras (a few minutes the first time)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -c constraints.txt setuptools packaging wheel 2>&1 \
    | grep -v "is ignored: it is neither" >&2 || true
  .venv/bin/python -m pip install -q --no-build-isolation -c constraints.txt -e ".[neural,torchgeo,ray,test,lint]" 2>&1 \
    | grep -v "is ignored: it is neither" >&2 || true
  .venv/bin/python -c "import torch, rasterio, grpc, qgis.core, fiona, open_clip, transformers, torchgeo, lightning, pystac, groundsynth" \
    || { echo "[bootstrap] the package and its requirements did not install cleanly" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

.venv/bin/python scripts/gen_proto.py
