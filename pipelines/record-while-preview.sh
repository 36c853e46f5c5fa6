#!/usr/bin/env bash
# Camera → style → window and H.264/MP4 recording at OUTPUT at the same time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${OUTPUT:?set OUTPUT to an .mp4 path}"
# shellcheck disable=SC2086
exec gst-launch-1.0 -e $SOURCE ! videoconvert ! rsstyle model="$MODEL" $RSSTYLE ! tee name=t \
  t. ! queue ! videoconvert ! $SINK \
  t. ! queue ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency ! h264parse \
     ! mp4mux ! filesink location="$OUTPUT"
