#!/usr/bin/env bash
# README's main job: set up a fresh Debian 12 machine, build rsstyle, and style the sample video
# (assets/vtest.avi, 795 frames of 768×576) with the default bundled model. Prints where the
# styled video and its before/after contact sheet are, and the frame rate.
#
#   scripts/style-sample.sh [MODEL]     (default: models/paintings.onnx, style 0: Starry Night)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
model="${1:-models/paintings.onnx}"
name="$(basename "$model" .onnx)"
echo "style-sample: setting up (scripts/setup.sh: system packages, ONNX Runtime, sample media)"
scripts/setup.sh
echo "style-sample: building rsstyle (cargo build --release; the first build takes several minutes)"
# cargo names each crate as it compiles it: the build shows its progress.
cargo build --release
mkdir -p out
video="out/vtest-$name.mp4"
sheet="out/vtest-$name.png"
echo "style-sample: styling assets/vtest.avi (795 frames of 768x576) with $model into $video"
# A progress bar on a terminal, a progress line every 5 s otherwise.
target/release/rsstyle convert assets/vtest.avi "$video" --model "$model" --force
echo "style-sample: drawing the before/after contact sheet"
target/release/rsstyle sheet --video assets/vtest.avi --at 100,300,500,700 --model "$model" -o "$sheet" >/dev/null
echo "style-sample: styled video: $root/$video"
echo "style-sample: contact sheet (top: original frames, bottom: styled): $root/$sheet"
