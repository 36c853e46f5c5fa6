#!/usr/bin/env bash
# Runs the Triton Inference Server that scripts/setup-triton.sh installed, with the set-up its
# PyPI build needs on a plain Debian machine, e.g.
#
#   scripts/tritonserver.sh --model-repository=DIR --grpc-port=8001 --http-port=8000 --metrics-port=8002
#
# (the arguments are tritonserver's own; --backend-directory is added). The process becomes
# tritonserver itself (exec), so its pid is the server's and SIGTERM stops it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RSSTYLE_TRITON_VENV:-$root/.deps/triton-venv}"
[ -x "$venv/bin/python" ] || { echo "tritonserver.sh: $venv is missing: run scripts/setup.sh --test" >&2; exit 127; }
read -r server libdir < <("$venv/bin/python" -c 'import os, sysconfig, pytriton
print(os.path.join(os.path.dirname(pytriton.__file__), "tritonserver"), sysconfig.get_config_var("LIBDIR"))')
# The Python-backend stub links libpython3.X.so.1.0: it must be the venv interpreter's own build
# (another one fails inside the stub), and the models' Python (numpy, onnxruntime) is the venv's.
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$venv/bin:$PATH"
exec "$server/bin/tritonserver" --backend-directory="$server/backends" "$@"
