#!/usr/bin/env bash
# The CPU real-time benchmark (docs/cpu-realtime.md): frame rates at 640×480 and 1280×720 of the
# paper-size Johnson net (random weights: speed only), the bundled starry-night model, its slim
# distilled variant, and both with inference at half resolution — element against bare ONNX
# Runtime in one run — then the quality cost of each step on held-out frames, and a sheet.
# Run it on an idle machine: a concurrent build makes CPU timings several times slower.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --quiet --bin rsstyle --example johnson_model
bin=target/release/rsstyle
out=out/bench-cpu-realtime
mkdir -p "$out"
[ -f "$out/johnson-32x5.onnx" ] || target/release/examples/johnson_model "$out/johnson-32x5.onnx" >/dev/null
[ -d "$out/eval-640" ] || "$bin" frames assets/vtest.avi "$out/eval-640" --start 620 --every 40 --size 640x480 >/dev/null

echo "## Speed (element vs bare ONNX Runtime, $(nproc) cores)"
"$bin" bench --model "$out/johnson-32x5.onnx" --size 640x480,1280x720 --frames 6 --reps 1
"$bin" bench --model models/starry-night.onnx --model models/starry-night-lite.onnx \
  --size 640x480,1280x720 --inference-scale 1,0.5 --frames 24 --reps 3

echo
echo "## Quality on held-out frames (reference: row 0, the full bundled model)"
"$bin" evaluate --images "$out/eval-640" --style assets/starry_night.jpg \
  --model models/starry-night.onnx \
  --model models/starry-night.onnx,inference-scale=0.5 \
  --model models/starry-night-lite.onnx \
  --model models/starry-night-lite.onnx,inference-scale=0.5

"$bin" sheet --video assets/vtest.avi --at 100,300,500,700 --size 640x480 \
  --model models/starry-night.onnx --model models/starry-night-lite.onnx,inference-scale=0.5 \
  -o docs/cpu-realtime.jpg
