#!/usr/bin/env bash
# Camera → original (left) and styled (right) in one window.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WIDTH="${WIDTH:-640}" HEIGHT="${HEIGHT:-480}"
# shellcheck disable=SC2086
exec gst-launch-1.0 -e compositor name=mix sink_1::xpos="$WIDTH" ! videoconvert ! $SINK \
  $SOURCE ! videoconvert ! videoscale ! "video/x-raw,width=$WIDTH,height=$HEIGHT" ! tee name=t \
  t. ! queue ! mix.sink_0 \
  t. ! queue ! rsstyle model="$MODEL" $RSSTYLE ! mix.sink_1
