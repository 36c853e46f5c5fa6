#!/usr/bin/env bash
# The inference server the remote-engine tests run against: NVIDIA Triton Inference Server
# 2.51 (its `tritonserver` binary, gRPC/HTTP frontends, dynamic batcher and Python backend), as
# shipped in PyPI's nvidia-pytriton 0.7.0, with onnxruntime for the Python-backend models that
# `rsstyle serve-repo --backend python` writes. Installs into .deps/triton-venv (~480 MB;
# ~125 MB download). Idempotent. Run by `scripts/setup.sh --test`; start the server with
# scripts/tritonserver.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.deps/triton-venv"
pytriton_version="0.7.0"
ort_version="1.30.0"
numpy_version="1.26.4"
marker="$venv/.rsstyle-installed-$pytriton_version-$ort_version"

if [ -f "$marker" ]; then
  exit 0
fi
echo "setup: installing Triton Inference Server (nvidia-pytriton $pytriton_version) and onnxruntime $ort_version into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "nvidia-pytriton==$pytriton_version" "onnxruntime==$ort_version" "numpy==$numpy_version"

# Triton's Python backend runs models in a stub process; the wheel ships one stub per Python
# version beside the backend. The stub's RPATH ($ORIGIN/../../../../nvidia_pytriton.libs)
# resolves only from <backends>/python/, so the matching one is copied there.
server="$("$venv/bin/python" -c 'import os, pytriton; print(os.path.join(os.path.dirname(pytriton.__file__), "tritonserver"))')"
pyver="$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
stub="$server/python_backend_stubs/$pyver/triton_python_backend_stub"
[ -f "$stub" ] || { echo "setup: no Triton Python backend stub for Python $pyver in $server" >&2; exit 1; }
cp "$stub" "$server/backends/python/triton_python_backend_stub"
touch "$marker"
