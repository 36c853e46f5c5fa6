#!/usr/bin/env bash
# Camera → style → window.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck disable=SC2086
exec gst-launch-1.0 -e $SOURCE ! videoconvert ! rsstyle model="$MODEL" leaky=true $RSSTYLE \
  ! videoconvert ! $SINK
