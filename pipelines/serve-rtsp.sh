#!/usr/bin/env bash
# Camera → style → H.264 over RTSP at rtsp://ADDRESS:PORT/style (gst-launch cannot serve RTSP:
# this runs `rsstyle serve`). Watch with e.g. `gst-play-1.0 rtsp://127.0.0.1:8554/style`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RSSTYLE_BIN="${RSSTYLE_BIN:-$root/target/release/rsstyle}"
exec "$RSSTYLE_BIN" serve --model "$MODEL" --source "$SOURCE" \
  --address "${ADDRESS:-127.0.0.1}" --port "${PORT:-8554}" --size "${SIZE:-640x480}"
