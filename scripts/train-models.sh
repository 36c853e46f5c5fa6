#!/usr/bin/env bash
# Reproduces the models bundled in models/ with rsstyle's own trainer: extracts training and
# held-out frames from the sample videos, trains each style, exports it as ONNX with its
# manifest, and draws the before/after contact sheets in docs/.
#
#   scripts/train-models.sh                 all models, in order
#   scripts/train-models.sh graffiti        only the named ones
#
# Runs live in out/runs/NAME and are resumable: re-running continues an interrupted run.
# STEPS=N overrides every run's step count (e.g. STEPS=5 for a smoke test).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
scripts/fetch-vgg16.sh
cargo build --release --quiet
bin="$root/target/release/rsstyle"
data="$root/out/train-data"
runs="$root/out/runs"

# Content: the photos, every 20th of the first 600 frames of vtest.avi, every 4th frame of
# tree.avi. Held out for evaluation and contact sheets: frames 600… of vtest.avi.
if [ ! -f "$data/.done" ]; then
  rm -rf "$data"
  mkdir -p "$data/content" "$data/eval"
  cp -r assets/photos "$data/content/photos"
  "$bin" frames assets/vtest.avi "$data/content/vtest" --every 20 --end 600 --size 384x288
  "$bin" frames assets/tree.avi "$data/content/tree" --every 4
  "$bin" frames assets/vtest.avi "$data/eval" --start 620 --every 40 --size 384x288
  touch "$data/.done"
fi

# train NAME STYLE_IMAGE WIDTH BLOCKS STEPS SIZE [extra trainer options]
train() {
  local name="$1" style="$2" width="$3" blocks="$4" steps="${STEPS:-$5}" size="$6"
  shift 6
  local run="$runs/$name"
  if [ -f "$run/run.json" ]; then
    "$bin" train style --out "$run" --resume --steps "$steps"
  else
    "$bin" train style --out "$run" --content "$data/content" --eval "$data/eval" \
      --style "$style" --width "$width" --blocks "$blocks" --size "$size" --batch 4 \
      --steps "$steps" --sample-every 50 --checkpoint-every 50 --seed 1 "$@"
  fi
  local how="trained by rsstyle on $(basename "$style")" prev=""
  for a in "$@"; do
    [ "$prev" = --teacher ] && how="distilled by rsstyle from the $(basename "$a") run ($(basename "$style"))"
    prev="$a"
  done
  "$bin" export "$run" -o "models/$name.onnx" --force \
    --description "Johnson net (width $width, $blocks residual blocks) $how; see models/README.md"
  "$bin" sheet --video assets/vtest.avi --at 100,300,500,700 --model "models/$name.onnx" \
    -o "docs/models/$name.jpg"
}

all=(starry-night starry-night-lite graffiti fruits)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
for name in "${selected[@]}"; do
  case "$name" in
    starry-night) train starry-night assets/starry_night.jpg 16 3 400 128 ;;
    graffiti) train graffiti assets/graf1.png 16 3 250 128 ;;
    fruits) train fruits assets/fruits.jpg 16 3 200 128 ;;
    # The CPU real-time model: a quarter of the compute, distilled from starry-night at 256².
    starry-night-lite)
      train starry-night-lite assets/starry_night.jpg 8 2 250 256 --teacher "$runs/starry-night" ;;
    *) echo "train-models: unknown model '$name' (known: ${all[*]})" >&2; exit 2 ;;
  esac
done
