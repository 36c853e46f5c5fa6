#!/usr/bin/env bash
# Temporal smoothing (docs/temporal.md): the cost of the smoothing per 640×480 frame, then
# flicker, ghosting and losses on assets/vtest.avi for the bundled default model and the CPU
# real-time preset, per frame and at a few `temporal-smoothing` strengths, through the element;
# then the contact sheet of consecutive frames (docs/temporal.jpg).
#
#   scripts/bench-temporal.sh [--frames N] [--loss-every N]   (default: all 795 frames, losses on 20)
#
# docs/temporal.md was measured with `--frames 200 --loss-every 20` (10 frames for the losses).
# STABLE_FULL and STABLE_LITE (optional): stability-trained fine-tunes of the two models
# (`train style --init RUN --stability-weight W`, exported), measured per frame and smoothed
# beside them: the "stability-trained" and "both" rows.
#
# Smoothing rows are replayed from their per-frame row (`evaluate --replay`: the element's own
# stabiliser on the element's per-frame output, the same numbers as running the element again,
# tested), so each model runs once a frame. About 20 minutes on an idle 2-core machine, mostly
# the full model at 768×576. Run it on an idle machine for the timing part.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --quiet --bin rsstyle --example temporal_bench
bin=target/release/rsstyle

echo "## Cost of the smoothing per frame (against a copy of the frame, alternating)"
target/release/examples/temporal_bench 640x480 300
echo

echo "## Flicker, ghosting and losses on vtest.avi"
full=models/paintings.onnx
lite=models/paintings-lite.onnx,inference-scale=0.5
rows=()
for model in "$full" "$lite"; do
  for s in 0 0.5 0.8 0.9; do
    rows+=(--model "$model,temporal-smoothing=$s")
  done
done
[ -z "${STABLE_FULL:-}" ] || rows+=(--model "$STABLE_FULL,temporal-smoothing=0" --model "$STABLE_FULL,temporal-smoothing=0.8")
[ -z "${STABLE_LITE:-}" ] || rows+=(--model "$STABLE_LITE,inference-scale=0.5,temporal-smoothing=0" --model "$STABLE_LITE,inference-scale=0.5,temporal-smoothing=0.8")
"$bin" evaluate --video assets/vtest.avi --style assets/starry_night.jpg --replay "${rows[@]}" "$@"

echo
"$bin" sheet --video assets/vtest.avi --at 400,401,402,403 --size 256x192 --warmup 20 --changes \
  --model "$full,temporal-smoothing=0" --model "$full,temporal-smoothing=0.8" \
  -o docs/temporal.jpg
