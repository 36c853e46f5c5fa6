#!/usr/bin/env bash
# README's main job: set up a fresh Debian 12 machine, build rsstyle, and style the sample video
# (assets/vtest.avi, 795 frames of 768×576) with the default bundled model. Prints where the
# styled video and its before/after contact sheet are, and the frame rate.
#
#   scripts/style-sample.sh [MODEL]     (default: models/starry-night.onnx)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
model="${1:-models/starry-night.onnx}"
name="$(basename "$model" .onnx)"
scripts/setup.sh
echo "style-sample: building (cargo build --release)"
cargo build --release --quiet
mkdir -p out
video="out/vtest-$name.mp4"
sheet="out/vtest-$name.png"
target/release/rsstyle convert assets/vtest.avi "$video" --model "$model" --force
target/release/rsstyle sheet --video assets/vtest.avi --at 100,300,500,700 --model "$model" -o "$sheet" >/dev/null
echo "style-sample: styled video: $root/$video"
echo "style-sample: contact sheet (top: original frames, bottom: styled): $root/$sheet"
