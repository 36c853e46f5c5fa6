#!/usr/bin/env bash
# The CPU real-time benchmark (docs/cpu-realtime.md), one run on this machine:
#   1. the machine: CPU, cores, ISA extensions, the ONNX Runtime kernels they select, a
#      measured sgemm rate and the load (`rsstyle bench` prints it first);
#   2. int8 copies of the real-time and the full model (`rsstyle quantize`, calibrated on
#      frames 0…600 of vtest.avi at the size the model sees);
#   3. speed, element against bare ONNX Runtime in the same run, repetitions alternating over
#      all configurations: each model float32 and int8, and untrained nets of cheaper shapes
#      (their FLOPs printed), at 640×480 and 1280×720;
#   4. end to end: the preset pipeline (pipelines/cpu-realtime.sh, videotestsrc → fakesink)
#      through gst-launch-1.0, steady state (model loading and the first frames excluded),
#      float32 and int8 alternating;
#   5. quality on held-out frames (vtest.avi 620…780): `rsstyle evaluate` against the full
#      float32 model and each int8 model against its float32 original, and a sheet.
# Usage: scripts/bench-cpu-realtime.sh [--realtime MODEL] [--full MODEL] [--style IMAGE]
#          [--previous MODEL] [--reps N] [--skip speed,e2e,quality,variants]
#   --realtime  the shipped real-time model (default models/paintings-lite.onnx)
#   --full      the model it was distilled from (default models/paintings.onnx)
#   --previous  the preset's earlier model, measured in the same run for a ratio (optional)
#   --style     the style image of the models' style 0, for the style loss
#               (default assets/starry_night.jpg)
# Run it on a machine that is otherwise idle if you can: figures are medians of alternating
# repetitions, and the machine line says how loaded it was.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
realtime=models/paintings-lite.onnx
full=models/paintings.onnx
style=assets/starry_night.jpg
previous=""
reps=3
skip=""
while [ $# -gt 0 ]; do
  case "$1" in
    --realtime) realtime="$2"; shift 2 ;;
    --full) full="$2"; shift 2 ;;
    --style) style="$2"; shift 2 ;;
    --previous) previous="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --skip) skip="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-cpu-realtime: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for f in "$realtime" "$full" "$style" ${previous:+"$previous"}; do
  [ -f "$f" ] || { echo "bench-cpu-realtime: $f does not exist" >&2; exit 1; }
done
skipped() { [[ ",$skip," == *",$1,"* ]]; }

# The example first: it builds the library with the dev-dependencies' features, so the plain
# build afterwards leaves target/release/libgstrsstyle.so as `cargo build --release` makes it.
cargo build --release --quiet --example johnson_model
cargo build --release --quiet
bin=target/release/rsstyle
net=target/release/examples/johnson_model
out=out/bench-cpu-realtime
mkdir -p "$out"
name() { basename "$1" .onnx; }
rt_int8="$out/$(name "$realtime")-int8.onnx"
full_int8="$out/$(name "$full")-int8.onnx"

echo "## int8 models"
[ -d "$out/calib-320" ] || "$bin" frames assets/vtest.avi "$out/calib-320" --every 50 --end 600 --size 320x240 >/dev/null
[ -d "$out/calib-640" ] || "$bin" frames assets/vtest.avi "$out/calib-640" --every 50 --end 600 --size 640x480 >/dev/null
# The real-time model runs at half resolution (320×240 for 640×480 frames), the full one at both.
"$bin" quantize "$realtime" -o "$rt_int8" --calibrate "$out/calib-320" --size 320x240 --force
"$bin" quantize "$full" -o "$full_int8" --calibrate "$out/calib-320" "$out/calib-640" --size 640x480 --force

if ! skipped variants; then
  echo
  echo "## Untrained nets of cheaper shapes (speed only; FLOPs per output pixel)"
  variants=()
  for spec in 8:2:9x9:9x9:full 8:2:s2d:9x9:full 8:2:9x9:s2d:full 8:2:9x9:9x9:separable \
              8:2:s2d:s2d:full 8:2:s2d:s2d:separable 8:2:9x9:9x9:full:8; do
    IFS=: read -r w b stem head residual styles <<<"$spec"
    f="$out/net-w$w-b$b-stem-$stem-head-$head-$residual${styles:+-styles$styles}.onnx"
    "$net" "$f" --width "$w" --blocks "$b" --stem "$stem" --head "$head" --residual "$residual" \
      --styles "${styles:-0}"
    variants+=("$f")
  done
fi

if ! skipped speed; then
  echo
  echo "## Speed: element against bare ONNX Runtime ($(nproc) cores), medians of $reps alternating repetitions"
  models=(--model "$realtime" --model "$rt_int8")
  [ -z "$previous" ] || models+=(--model "$previous")
  if ! skipped variants; then
    for f in "${variants[@]}"; do models+=(--model "$f"); done
  fi
  "$bin" bench "${models[@]}" --size 640x480,1280x720 --inference-scale 0.5,0.4 \
    --frames 40 --reps "$reps" --no-latency
  "$bin" bench --model "$full" --model "$full_int8" --size 640x480,1280x720 \
    --inference-scale 1,0.5 --frames 16 --reps "$reps" --no-latency
fi

# Steady-state frames/s of the preset pipeline: the sink's render times (GST_DEBUG
# basesink:5, one line per buffer on a monotonic clock) after 30 warm-up frames.
e2e() { # MODEL WIDTH HEIGHT SCALE
  local log frames=180 warmup=30
  log="$(mktemp)"
  GST_DEBUG="basesink:5" GST_DEBUG_NO_COLOR=1 GST_DEBUG_FILE="$log" \
    MODEL="$1" WIDTH="$2" HEIGHT="$3" SCALE="$4" SOURCE="videotestsrc num-buffers=$frames" \
    SINK="fakesink sync=false" pipelines/cpu-realtime.sh >/dev/null
  awk -v warmup="$warmup" '/rendering object/ {
      split($1, t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]; n++
      if (n == warmup) first = s
      if (n > warmup) { last = s; k++ }
    }
    END { if (k < 2) { print "nan"; exit } printf "%.2f\n", k / (last - first) }' "$log"
  rm -f "$log"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

if ! skipped e2e; then
  echo
  echo "## End to end: pipelines/cpu-realtime.sh, videotestsrc → fakesink, steady state"
  echo "   (frames/s after 30 warm-up frames, medians of $reps alternating runs)"
  for size in 640x480:0.5 640x480:0.4 1280x720:0.5 1280x720:0.25; do
    IFS=: read -r wh scale <<<"$size"
    w="${wh%x*}" h="${wh#*x}"
    fp32="" int8=""
    for _ in $(seq 1 "$reps"); do
      fp32+=" $(e2e "$realtime" "$w" "$h" "$scale")"
      int8+=" $(e2e "$rt_int8" "$w" "$h" "$scale")"
    done
    echo "$wh inference-scale $scale: float32 $(echo "$fp32" | median) fps (runs:$fp32), int8 $(echo "$int8" | median) fps (runs:$int8)"
  done
  if [ -n "$previous" ]; then
    now="" before=""
    for _ in $(seq 1 "$reps"); do
      now+=" $(e2e "$realtime" 640 480 0.5)"
      before+=" $(e2e "$previous" 640 480 0.5)"
    done
    echo "640x480 inference-scale 0.5: $(name "$realtime") $(echo "$now" | median) fps (runs:$now), $(name "$previous") $(echo "$before" | median) fps (runs:$before)"
  fi
fi

if ! skipped quality; then
  echo
  [ -d "$out/eval-640" ] || "$bin" frames assets/vtest.avi "$out/eval-640" --start 620 --every 40 --size 640x480 >/dev/null
  echo "## Quality on held-out frames (reference: row 0, the full float32 model)"
  "$bin" evaluate --images "$out/eval-640" --style "$style" \
    --model "$full" \
    --model "$full_int8" \
    --model "$full,inference-scale=0.5" \
    --model "$realtime" \
    --model "$realtime,inference-scale=0.5" \
    --model "$rt_int8,inference-scale=0.5" \
    --model "$realtime,inference-scale=0.4" \
    --model "$rt_int8,inference-scale=0.4"
  echo
  echo "## int8 against float32 (reference: row 0, the real-time model's preset)"
  "$bin" evaluate --images "$out/eval-640" --style "$style" \
    --model "$realtime,inference-scale=0.5" \
    --model "$rt_int8,inference-scale=0.5"
  "$bin" sheet --video assets/vtest.avi --at 100,300,500,700 --size 640x480 \
    --model "$full" --model "$realtime,inference-scale=0.5" \
    --model "$realtime,inference-scale=0.4" -o docs/cpu-realtime.jpg
fi
