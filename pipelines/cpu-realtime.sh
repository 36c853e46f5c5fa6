#!/usr/bin/env bash
# Real time on a CPU: a webcam at 640×480 styled by the slim bundled model, inferred at half
# resolution (inference-scale=0.5) and scaled back, late frames dropped (qos). ≥ 30 fps on
# 2 cores (see docs/cpu-realtime.md). WIDTH, HEIGHT and SCALE change the frame size and the
# inference scale (e.g. WIDTH=1280 HEIGHT=720 SCALE=0.25).
set -euo pipefail
MODEL="${MODEL:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/models/starry-night-lite.onnx}"
WIDTH="${WIDTH:-640}"
HEIGHT="${HEIGHT:-480}"
SCALE="${SCALE:-0.5}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck disable=SC2086
exec gst-launch-1.0 $SOURCE ! videoconvert ! videoscale ! video/x-raw,width=$WIDTH,height=$HEIGHT \
  ! rsstyle model="$MODEL" inference-scale=$SCALE $RSSTYLE ! videoconvert ! $SINK
