#!/usr/bin/env bash
# Which causes make the white blobs of nets trained on the VGG16 perceptual loss: one controlled
# run per cause, each changing one thing from the recipe that made the earlier bundled models
# (Starry Night, Johnson net width 16 with 3 residual blocks, 4 × 128² crops of content scaled to
# 1.15 × the crop, style image at 256, tanh output, 400 steps), then the blob area and edge
# correlation of each on the held-out evaluation photos (rsstyle evaluate).
#
#   scripts/ablate-blobs.sh [VARIANT…]        default: all, in the order below
#   scripts/ablate-blobs.sh --table           only the table of the runs made so far
#
# Variants (docs/recipe-ablation.md has the table):
#   base          the earlier recipe
#   longer        base continued to 2 × the steps (a copy of base's run, resumed)
#   crop-std      --min-crop-std 8: crops of flat sky, lawn and wall drawn again
#   size-192      --size 192: larger crops (2.25 × the pixels a step)
#   style-512     --style-size 512: the style image at twice the scale
#   content-512   --content-size 512 --zoom 1.5: crops are windows of photos scaled to 512
#   linear        --output linear: no tanh, the output clamped only when exported
#   vgg-unit      --vgg-input unit: VGG16 fed [0, 1] without the ImageNet mean/std (a common bug)
#   content-512-linear  the two changes that each removed the blobs, together
#
# Runs live in out/ablate/NAME and resume; STEPS (400), THREADS (1) and RSSTYLE (the binary,
# target/release/rsstyle) may be set. Needs scripts/fetch-training-data.sh and
# scripts/fetch-vgg16.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${RSSTYLE:-target/release/rsstyle}"
steps="${STEPS:-400}"
threads="${THREADS:-1}"
data=".deps/training-data"
style="$data/styles/starry-night.jpg"
out="out/ablate"
mkdir -p "$out"

# flags VARIANT: the trainer options that make the variant differ from base.
flags() {
  case "$1" in
    base) ;;
    crop-std) echo --min-crop-std 8 ;;
    size-192) ;; # the crop size is set in train()
    style-512) echo --style-size 512 ;;
    content-512) echo --content-size 512 --zoom 1.5 ;;
    linear) echo --output linear ;;
    vgg-unit) echo --vgg-input unit ;;
    content-512-linear) echo --content-size 512 --zoom 1.5 --output linear ;;
    *)
      echo "unknown variant '$1'" >&2
      exit 2
      ;;
  esac
}

# train VARIANT: starts or resumes out/ablate/VARIANT, then exports and evaluates it.
train() {
  local name="$1" run="$out/$1" total="$steps" size=128
  [ "$name" = size-192 ] && size=192
  if [ "$name" = longer ]; then
    total=$((2 * steps))
    if [ ! -f "$run/run.json" ]; then
      train base
      cp -r "$out/base" "$run"
      rm -f "$run"/eval.txt "$run"/model.onnx
    fi
  fi
  if [ -f "$run/run.json" ]; then
    "$bin" train style --out "$run" --resume --steps "$total" --threads "$threads" --quiet
  else
    # shellcheck disable=SC2046 # flags are words
    "$bin" train style --out "$run" --content "$data/content/train" \
      --eval "$data/content/heldout-eval" --style "$style" --width 16 --blocks 3 --size "$size" \
      --batch 4 --steps "$total" --sample-every "$total" --checkpoint-every 100 --seed 1 \
      --threads "$threads" --quiet $(flags "$name")
  fi
  if [ ! -f "$run/eval.txt" ]; then
    "$bin" export "$run" -o "$run/model.onnx" --force
    "$bin" evaluate --model "$run/model.onnx" --images "$data/content/heldout-eval" \
      --max-side 480 --style "$style" >"$run/eval.txt"
  fi
}

all=(base crop-std size-192 style-512 content-512 linear vgg-unit longer content-512-linear)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
[ "${selected[0]}" = --table ] && selected=()
for v in "${selected[@]}"; do
  train "$v"
done

# The table: one row per variant run so far, against base.
echo "| variant | steps | blob % mean | blob % worst photo | edge corr. (median) | style loss | content loss |"
echo "|---|---|---|---|---|---|---|"
for v in "${all[@]}"; do
  [ -f "$out/$v/eval.txt" ] || continue
  done_steps=$(tail -n 1 "$out/$v/log.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
  # evaluate's row: model, content, style, blob %, worst %, edges, …
  awk -v v="$v" -v s="$done_steps" '$1 ~ /model.onnx$/ {
    printf "| %s | %s | %.3f | %.3f | %.3f | %.3g | %.3g |\n", v, s, $4, $5, $6, $3, $2 }' \
    "$out/$v/eval.txt"
done
