#!/usr/bin/env bash
# Real time on a CPU: a webcam at 640×480 styled by the slim bundled model (paintings-lite),
# inferred at 0.4 of the frame's size (256×192) and scaled back, late frames dropped (qos).
# ONNX Runtime's threads sleep between runs (cpu-spin=false) so that conversion, scaling and
# the rest of the pipeline get the cores. ≥ 30 fps on a slow 2-core VM (docs/cpu-realtime.md). WIDTH, HEIGHT and SCALE change the
# frame size and the inference scale (1280×720: WIDTH=1280 HEIGHT=720 SCALE=0.25).
set -euo pipefail
MODEL="${MODEL:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/models/paintings-lite.onnx}"
WIDTH="${WIDTH:-640}"
HEIGHT="${HEIGHT:-480}"
SCALE="${SCALE:-0.4}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck disable=SC2086
exec gst-launch-1.0 $SOURCE ! videoconvert ! videoscale ! video/x-raw,width=$WIDTH,height=$HEIGHT \
  ! rsstyle model="$MODEL" inference-scale=$SCALE engine-options=cpu-spin=false $RSSTYLE \
  ! videoconvert ! $SINK
