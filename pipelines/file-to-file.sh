#!/usr/bin/env bash
# INPUT → style → H.264 in MP4 at OUTPUT (video only; `rsstyle convert` also keeps audio).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${INPUT:?set INPUT to a video file}" "${OUTPUT:?set OUTPUT to an .mp4 path}"
# shellcheck disable=SC2086
exec gst-launch-1.0 -e filesrc location="$INPUT" ! decodebin ! videoconvert \
  ! rsstyle model="$MODEL" qos=false $RSSTYLE ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc ! h264parse ! mp4mux ! filesink location="$OUTPUT"
