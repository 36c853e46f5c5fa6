#!/usr/bin/env bash
# Real time on a CPU: a webcam at 640×480 styled by the slim bundled model, inferred at half
# resolution (inference-scale=0.5) and scaled back, late frames dropped (qos). ≥ 30 fps on
# 2 cores (see docs/cpu-realtime.md).
set -euo pipefail
MODEL="${MODEL:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/models/starry-night-lite.onnx}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck disable=SC2086
exec gst-launch-1.0 $SOURCE ! videoconvert ! videoscale ! video/x-raw,width=640,height=480 \
  ! rsstyle model="$MODEL" inference-scale=0.5 $RSSTYLE ! videoconvert ! $SINK
