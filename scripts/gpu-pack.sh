#!/usr/bin/env bash
# Packs what scripts/gpu-bench.sh needs on a GPU machine without Rust or GStreamer (such as the
# H100 reference machine: NVIDIA driver, PyTorch with its CUDA 13 libraries) into .gpu/:
#   .gpu/ort/  ONNX Runtime 1.30's GPU build from PyPI: the core library, the CUDA provider with
#              the GPU code of every architecture but one zeroed (scripts/slim_cuda_provider.py;
#              272 MB → 50 MB compressed) and the provider bridge
#   .gpu/app/  the rsstyle binary, the GStreamer libraries it links and the plugins the benchmark
#              uses, and the trainer built with candle's CUDA backend when RSSTYLE_CUDA_BIN names
#              it (scripts/build-gpu-trainer.sh)
# Everything is xz-compressed; gpu-bench.sh unpacks it. The two folders can travel separately.
#
# Usage: scripts/gpu-pack.sh [--arch SM] [--no-build]   (SM: 90 for H100/H200, the default)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch=90
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-pack: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
cd "$root"

# xz FILE OUT: compress unless OUT is newer than FILE.
pack() {
  if [ ! "$2" -nt "$1" ]; then
    xz -9e -T0 -c "$1" > "$2.part" && mv "$2.part" "$2"
  fi
}

# ONNX Runtime, GPU build.
wheel_dir=.deps/onnxruntime-gpu
if ! ls "$wheel_dir"/onnxruntime_gpu-1.30.0-*.whl >/dev/null 2>&1; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: onnxruntime-gpu==1.30.0 -d "$wheel_dir"
fi
wheel="$(ls "$wheel_dir"/onnxruntime_gpu-1.30.0-*.whl | head -1)"
libs="$wheel_dir/lib"
if [ ! -f "$libs/libonnxruntime_providers_tensorrt.so" ]; then
  mkdir -p "$libs"
  unzip -q -o -j "$wheel" 'onnxruntime/capi/libonnxruntime.so.1.30.0' \
    'onnxruntime/capi/libonnxruntime_providers_cuda.so' \
    'onnxruntime/capi/libonnxruntime_providers_shared.so' \
    'onnxruntime/capi/libonnxruntime_providers_tensorrt.so' -d "$libs"
fi
slim="$wheel_dir/libonnxruntime_providers_cuda.sm$arch.so"
if [ ! "$slim" -nt "$libs/libonnxruntime_providers_cuda.so" ]; then
  python3 scripts/slim_cuda_provider.py "$libs/libonnxruntime_providers_cuda.so" "$slim" --arch "$arch"
fi
mkdir -p .gpu/ort .gpu/app
pack "$libs/libonnxruntime.so.1.30.0" .gpu/ort/libonnxruntime.so.1.30.0.xz
pack "$slim" .gpu/ort/libonnxruntime_providers_cuda.so.xz
cp "$libs/libonnxruntime_providers_shared.so" .gpu/ort/
# device=tensorrt needs it (1 MB), and TensorRT's own libraries where the bench runs.
pack "$libs/libonnxruntime_providers_tensorrt.so" .gpu/ort/libonnxruntime_providers_tensorrt.so.xz

# rsstyle and the GStreamer it links.
if [ "$build" -eq 1 ]; then
  cargo build --release --quiet
fi
strip -o .gpu/app/rsstyle target/release/rsstyle
pack .gpu/app/rsstyle .gpu/app/rsstyle.xz
rm .gpu/app/rsstyle
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/gst/lib" "$stage/gst/plugins"
ldd target/release/rsstyle | awk '$3 ~ /^\// {print $3}' \
  | grep -v -E '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt)\.so' \
  | xargs -I{} cp -L {} "$stage/gst/lib/"
plugins=/usr/lib/x86_64-linux-gnu/gstreamer-1.0
for p in coreelements videotestsrc app; do cp "$plugins/libgst$p.so" "$stage/gst/plugins/"; done
ldd "$stage"/gst/plugins/*.so | awk '$3 ~ /^\// {print $3}' | sort -u \
  | grep -v -E '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt)\.so' \
  | xargs -I{} cp -n -L {} "$stage/gst/lib/"
cp /usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner "$stage/gst/"
tar -C "$stage" -cf - gst | xz -9 -T0 > .gpu/app/gst.tar.xz

if [ -n "${RSSTYLE_CUDA_BIN:-}" ]; then
  strip -o .gpu/app/rsstyle-cuda "$RSSTYLE_CUDA_BIN"
  pack .gpu/app/rsstyle-cuda .gpu/app/rsstyle-cuda.xz
  rm .gpu/app/rsstyle-cuda
fi
du -b .gpu/ort/* .gpu/app/* | awk '{printf "%8.1f MB  %s\n", $1 / 1e6, $2}'
echo "tracked files: $(git ls-files -z | du -cb --files0-from=- | tail -1 | awk '{printf "%.1f MB", $1 / 1e6}')"
