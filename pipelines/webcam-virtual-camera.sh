#!/usr/bin/env bash
# Camera → style → v4l2loopback virtual camera (YUY2, which video-call apps accept).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
VCAM="${VCAM:-/dev/video10}"
VCAM_SINK="${VCAM_SINK:-v4l2sink device=$VCAM sync=false}"
# shellcheck disable=SC2086
exec gst-launch-1.0 -e $SOURCE ! videoconvert ! rsstyle model="$MODEL" leaky=true $RSSTYLE \
  ! videoconvert ! video/x-raw,format=YUY2 ! $VCAM_SINK
