#!/usr/bin/env bash
# rsstyle on an NVIDIA GPU against PyTorch on the same nets and card, in one run.
#
# Measures, at batch 1 with host video frames in and out: the rsstyle element (appsrc ! rsstyle !
# fakesink) and its bare engine (`rsstyle bench`) with ONNX Runtime's CUDA provider in several
# settings (and its TensorRT provider where TensorRT is installed), and PyTorch eager and torch.compile (scripts/gpu_bench_torch.py) when torch is
# installed; the largest difference of GPU and CPU output bytes; where ONNX Runtime's time goes,
# by operator (profile phase: CUDA_LAUNCH_BLOCKING=1 and engine-options profile=, summed by
# scripts/ort_profile_summary.py); and, when a CUDA build of the trainer is there, a fast-style
# training step against PyTorch eager. Prints one table and writes every record to OUT (JSON)
# with a summary (summary.md).
#
# Usage: scripts/gpu-bench.sh [--out DIR] [--phases stage,torch,rsstyle,profile,train,report]
#                             [--torch-budget SECONDS] [--frames N]
# rsstyle comes from target/release or from .gpu/ (scripts/gpu-pack.sh, for machines without
# Rust or GStreamer); ONNX Runtime 1.30's GPU build from ORT_DYLIB_PATH, .gpu/ort or
# .deps/onnxruntime-gpu (gpu-pack.sh downloads it); the CUDA 13 and cuDNN 9 libraries from the
# system or from PyTorch's nvidia packages.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/out/gpu-bench"
phases="stage,torch,rsstyle,profile,train,report"
torch_budget=240
frames=300
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    --phases) phases="$2"; shift 2 ;;
    --torch-budget) torch_budget="$2"; shift 2 ;;
    --frames) frames="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-bench: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
cd "$root"
mkdir -p "$out"
runtime="${RSSTYLE_GPU_RUNTIME:-/tmp/rsstyle-gpu}"
has() { [[ ",$phases," == *",$1,"* ]]; }
log() { echo "[$(date +%T)] $*"; }

# Unpacks .gpu/ (once per machine).
unpack() {
  mkdir -p "$runtime/ort" "$runtime/app"
  for f in .gpu/ort/* .gpu/app/*; do
    [ -e "$f" ] || continue
    local dir="$runtime/$(basename "$(dirname "$f")")" name
    name="$(basename "$f")"
    case "$name" in
      *.tar.xz) [ -e "$dir/.${name}" ] || { xz -dc "$f" | tar -C "$dir" -xf - && touch "$dir/.${name}"; } ;;
      *.xz) [ -e "$dir/${name%.xz}" ] || { xz -dc "$f" > "$dir/${name%.xz}.part" && mv "$dir/${name%.xz}.part" "$dir/${name%.xz}"; } ;;
      *) cp -u "$f" "$dir/" ;;
    esac
  done
  chmod +x "$runtime"/app/rsstyle* 2>/dev/null || true
}

# Library paths: PyTorch's CUDA libraries, ONNX Runtime, GStreamer if the system has none.
environment() {
  local nv
  nv="$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = set()
for base in site.getsitepackages():
    dirs.update(os.path.dirname(p) for p in glob.glob(os.path.join(base, "nvidia", "**", "lib*.so*"), recursive=True))
print(":".join(sorted(dirs)))
PY
)"
  export LD_LIBRARY_PATH="${nv:+$nv:}${LD_LIBRARY_PATH:-}"
  # ONNX Runtime's GPU build: ORT_DYLIB_PATH, else unpacked from .gpu/ort, else the wheel that
  # scripts/gpu-pack.sh extracted (the CPU build in .deps/onnxruntime cannot load CUDA).
  if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    for lib in "$runtime/ort" .deps/onnxruntime-gpu/lib; do
      if [ -e "$lib/libonnxruntime.so.1.30.0" ]; then
        export ORT_DYLIB_PATH="$(realpath "$lib/libonnxruntime.so.1.30.0")"
        break
      fi
    done
  fi
  if ! command -v gst-inspect-1.0 >/dev/null && [ -d "$runtime/app/gst" ]; then
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$runtime/app/gst/lib"
    export GST_PLUGIN_SYSTEM_PATH="$runtime/app/gst/plugins"
    export GST_PLUGIN_SCANNER="$runtime/app/gst/gst-plugin-scanner"
    export GST_REGISTRY="$runtime/registry.bin"
  fi
  if [ -x target/release/rsstyle ]; then
    rsstyle=target/release/rsstyle
  else
    rsstyle="$runtime/app/rsstyle"
  fi
  trainer="${RSSTYLE_CUDA_BIN:-$runtime/app/rsstyle-cuda}"
}

if has stage; then
  log "unpacking .gpu/ into $runtime"
  unpack
fi
environment
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1 || true
log "GPU: $(cat "$out/gpu.txt")"

if has torch; then
  if python3 -c 'import torch' 2>/dev/null; then
    log "PyTorch (budget ${torch_budget} s)"
    PYTHONUNBUFFERED=1 python3 scripts/gpu_bench_torch.py --json "$out/torch.json" \
      --time-budget "$torch_budget" --variants fp32,tf32,fp16-cl,compile-fp16-cl || log "PyTorch benchmark failed"
  else
    log "no torch: PyTorch reference skipped"
  fi
fi

if has rsstyle; then
  models="$runtime/models"
  mkdir -p "$models"
  for spec in johnson:johnson resnet:resnet; do
    name="${spec%%:*}"
    [ -e "$models/$name.onnx" ] || "$rsstyle" export --untrained "${spec#*:}" -o "$models/$name.onnx"
    [ -e "$models/$name-fp16.onnx" ] || "$rsstyle" export --untrained "${spec#*:}" --fp16 -o "$models/$name-fp16.onnx"
  done
  # graph-rewrite=true: the load-time rewrites measured on the CPU (upsample convolutions as
  # transposed ones, the image-out convolution through SpaceToDepth), off by default on CUDA.
  # name|model|sizes|engine options|extra flags
  configs=(
    "johnson-f32-float|johnson|1280x720|frame-io=float|"
    "johnson-f32|johnson|1280x720,1920x1080||--compare-cpu"
    "johnson-f32-nhwc|johnson|1280x720|cuda-nhwc=true|"
    "johnson-fp16|johnson-fp16|1280x720,1920x1080||--compare-cpu"
    "johnson-fp16-rewrite|johnson-fp16|1280x720,1920x1080|graph-rewrite=true|--compare-cpu"
    "johnson-fp16-nhwc|johnson-fp16|1280x720,1920x1080|cuda-nhwc=true|--compare-cpu"
    "johnson-fp16-nhwc-graph|johnson-fp16|1280x720,1920x1080|cuda-nhwc=true,cuda-graph=true|"
    "johnson-fp16-nhwc-b4|johnson-fp16|1280x720|cuda-nhwc=true|--batch 4"
    "resnet-f32|resnet|1280x720||"
    "resnet-fp16-nhwc|resnet-fp16|1280x720|cuda-nhwc=true|"
    "resnet-fp16-rewrite|resnet-fp16|1280x720|graph-rewrite=true|"
  )
  # TensorRT where ONNX Runtime's TensorRT provider and TensorRT's own library can be loaded.
  trt_provider="$(dirname "${ORT_DYLIB_PATH:-/nonexistent/x}")/libonnxruntime_providers_tensorrt.so"
  if [ -e "$trt_provider" ] && ldd "$trt_provider" 2>/dev/null | grep -q 'libnvinfer.*=> /'; then
    configs+=(
      "johnson-trt|johnson|1280x720,1920x1080|trt-cache=$runtime/trt-cache|--device tensorrt --compare-cpu"
      "resnet-trt|resnet|1280x720|trt-cache=$runtime/trt-cache|--device tensorrt"
    )
  else
    log "no TensorRT (needs $trt_provider and libnvinfer): TensorRT rows skipped"
  fi
  for c in "${configs[@]}"; do
    IFS='|' read -r name model sizes options extra <<< "$c"
    log "rsstyle $name"
    device=(--device cuda)
    [[ " $extra " == *" --device "* ]] && device=()  # TensorRT rows name their own
    # shellcheck disable=SC2086
    "$rsstyle" bench "${device[@]}" --model "$models/$model.onnx" --size "$sizes" --reps 1 \
      --frames "$frames" --threads 8 --engine-options "$options" $extra --json \
      > "$out/rsstyle-$name.json" 2> "$out/rsstyle-$name.log" || log "rsstyle $name failed: $(tail -3 "$out/rsstyle-$name.log")"
  done
fi

if has profile; then
  models="$runtime/models"
  # name|model|engine options
  for c in "johnson-fp16|johnson-fp16|" "johnson-fp16-rewrite|johnson-fp16|graph-rewrite=true," \
    "resnet-fp16|resnet-fp16|"; do
    IFS='|' read -r name model options <<< "$c"
    if [ ! -e "$models/$model.onnx" ]; then
      log "profile: no $model.onnx (run the rsstyle phase first)"
      continue
    fi
    log "profile $name"
    rm -f "$out/profile-$name"-*.json
    # Each kernel finishes before its node's timer stops: node times are GPU times.
    CUDA_LAUNCH_BLOCKING=1 "$rsstyle" bench --device cuda --model "$models/$model.onnx" \
      --size 1280x720 --reps 1 --frames 30 --threads 8 --engine-options "${options}profile=$out/profile-$name" \
      > "$out/profile-$name.log" 2>&1 || log "profile $name failed: $(tail -3 "$out/profile-$name.log")"
    python3 scripts/ort_profile_summary.py "$out/profile-$name"-*.json > "$out/profile-$name.txt" \
      && head -30 "$out/profile-$name.txt" || log "profile summary $name failed"
  done
fi

if has train; then
  if [ -x "$trainer" ]; then
    log "candle training step"
    python3 scripts/random_vgg16.py "$runtime/vgg16-random.safetensors"
    rm -rf "$runtime/train-run"
    "$trainer" train style --device cuda --style assets/starry_night.jpg --content assets/photos \
      --vgg "$runtime/vgg16-random.safetensors" --out "$runtime/train-run" --steps 30 --log-every 1 \
      --size 256 --batch 4 --width 16 --blocks 3 --sample-every 1000 --checkpoint-every 1000 --quiet \
      > "$out/train-candle.log" 2>&1 || log "candle training failed: $(tail -3 "$out/train-candle.log")"
    cp "$runtime/train-run/log.jsonl" "$out/train-candle.jsonl" 2>/dev/null || true
  else
    log "no CUDA trainer at $trainer: candle training skipped"
  fi
  if python3 -c 'import torch' 2>/dev/null; then
    log "PyTorch training step"
    PYTHONUNBUFFERED=1 python3 scripts/gpu_bench_torch.py --train-step --json "$out/train-torch.json" || log "PyTorch training step failed"
  fi
fi

if has report; then
  python3 scripts/gpu_bench_report.py "$out" | tee "$out/summary.md"
fi
