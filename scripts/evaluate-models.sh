#!/usr/bin/env bash
# The model-quality table of models/README.md: every style of the bundled multi-style models
# beside Magenta's arbitrary-style network baked for the same painting (the teacher) and, for
# Starry Night, the earlier single-style models, on the held-out evaluation photos
# (.deps/training-data/content/heldout-eval: in no training set), then the frame rate of each
# net at 640×480 through `rsstyle bench`.
#
#   scripts/evaluate-models.sh [OUT_DIR]      (default out/evaluate-models)
#
# Columns (rsstyle evaluate): style and content loss (VGG16, as in training), blob area (mean and
# worst photo, %), median edge correlation with the input. Needs scripts/fetch-training-data.sh,
# scripts/fetch-teacher.sh, scripts/fetch-vgg16.sh and a release build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${RSSTYLE:-target/release/rsstyle}"
out="${1:-out/evaluate-models}"
data=".deps/training-data"
teachers="out/teachers"
mkdir -p "$out" "$teachers"

styles=(starry-night.jpg great-wave.png kandinsky-composition-viii.png night-cafe.png
  cafe-terrace-at-night.png renoir-moulin-de-la-galette.png cassatt-summertime.png
  hiroshige-inokashira-snow.png)

uname -srm
grep -m1 'model name' /proc/cpuinfo || true
echo "cores: $(nproc)"

for i in "${!styles[@]}"; do
  s="${styles[$i]}"
  name="${s%.*}"
  [ -f "$teachers/$name.onnx" ] || "$bin" teacher --style "$data/styles/$s" -o "$teachers/$name.onnx"
  rows=(--model "models/paintings.onnx,style=$i" --model "models/paintings-lite.onnx,style=$i"
    --model "$teachers/$name.onnx")
  if [ "$name" = starry-night ] && [ -f models/starry-night.onnx ]; then
    rows+=(--model models/starry-night.onnx --model models/starry-night-lite.onnx)
  fi
  echo
  echo "## $name"
  "$bin" evaluate "${rows[@]}" --images "$data/content/heldout-eval" --max-side 480 \
    --style "$data/styles/$s" --reference 2 | tee "$out/$name.txt"
done

echo
echo "## frame rate at 640×480"
bench=(--model models/paintings.onnx --model models/paintings-lite.onnx
  --model "$teachers/starry-night.onnx")
[ -f models/starry-night.onnx ] && bench+=(--model models/starry-night.onnx)
"$bin" bench "${bench[@]}" --size 640x480 | tee "$out/bench.txt"
