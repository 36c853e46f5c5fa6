#!/usr/bin/env bash
# Builds `rsstyle` with the CUDA trainer (`--features cuda`, `rsstyle train ... --device cuda`) on a
# machine without a GPU or CUDA install, and prints the binary's path.
#
# The CUDA 13.0 toolkit pieces come from NVIDIA's PyPI wheels (nvcc for candle's kernels, headers,
# and the cuBLAS / cuRAND / NVRTC libraries to link against), unpacked under .deps/cuda. The driver
# library (libcuda.so.1) comes with the GPU driver, not a wheel: the link uses a stub with the
# same soname whose functions all report CUDA_ERROR_NO_DEVICE. The binary has no rpath; where it
# runs, LD_LIBRARY_PATH must reach the driver's libcuda.so.1 and libcublas.so.13 (with
# libcublasLt.so.13), libcurand.so.10 (e.g. torch's site-packages/nvidia/cu13/lib): the binary's
# NEEDED list; nvrtc and cudart are linked but dropped as unused (--as-needed).
#
# Kernels are compiled for CUDA_COMPUTE_CAP (default 90, H100). First build ~15 min on 2 cores;
# later ones reuse the compiled dependencies. Idempotent. Needs python3 with pip, unzip, gcc/g++.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps/cuda"
site="$deps/site"        # the wheels' contents: nvidia/cu13/{bin,include,lib,nvvm}
home="$deps/home"        # CUDA_HOME for the build scripts of cudarc and candle-kernels
stubs="$home/lib/stubs"  # searched by cudarc's build script at link time only
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96
  nvidia-cublas==13.10.0.20 nvidia-curand==10.4.5.25 nvidia-cuda-nvrtc==13.0.88
)

if [ ! -f "$site/.complete" ]; then
  mkdir -p "$deps/wheels" "$site"
  pip download -q --no-deps --only-binary=:all: -d "$deps/wheels" "${wheels[@]}"
  for w in "$deps"/wheels/*.whl; do unzip -qo "$w" 'nvidia/*' -d "$site"; done
  touch "$site/.complete"
fi
cu="$site/nvidia/cu13"

mkdir -p "$home/lib" "$stubs"
for d in bin include nvvm; do ln -sfn "$cu/$d" "$home/$d"; done
ln -sfn "$cu/lib" "$home/lib64"
# -lcublas etc. need unversioned names (cudart: candle-kernels' statically built MoE kernels).
for so in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
  ln -sfn "$cu/lib/$so" "$stubs/${so%%.so.*}.so"
done

if [ ! -f "$stubs/libcuda.so" ]; then
  cargo fetch --manifest-path "$root/Cargo.toml" -q
  cudarc="$(cargo metadata --manifest-path "$root/Cargo.toml" --format-version 1 --features cuda \
    | python3 -c 'import json,sys,os; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')"
  {
    echo '/* Link-time stand-in for the NVIDIA driver library (libcuda.so.1). */'
    echo 'int cuGetErrorString(int e, const char **s) { *s = "no CUDA-capable device (stub libcuda)"; return 0; }'
    echo 'int cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_NO_DEVICE"; return 0; }'
    grep -ohE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$cudarc/src/driver/sys/mod.rs" \
      | sed -E 's/pub unsafe fn (.*)\(/\1/' | sort -u | grep -vx 'cuGetErrorString\|cuGetErrorName' \
      | sed 's/.*/int &(void) { return 100; }/'
  } > "$stubs/cuda_stub.c"
  gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so.tmp" "$stubs/cuda_stub.c"
  mv "$stubs/libcuda.so.tmp" "$stubs/libcuda.so"
fi

export CUDA_HOME="$home" PATH="$home/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
cargo build --manifest-path "$root/Cargo.toml" --release --features cuda --bin rsstyle >&2
echo "${CARGO_TARGET_DIR:-$root/target}/release/rsstyle"
