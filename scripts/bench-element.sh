#!/usr/bin/env bash
# Throughput of the rsstyle element against onnxruntime's own Python API, same model (Johnson
# TransformerNet, random weights), same ONNX Runtime version (1.30.0), same thread count.
#
# Usage: scripts/bench-element.sh [--threads T] [--reps R] [--warmup K]
#                                 [--sizes "256x256:40 640x480:16"] [--json FILE] [--no-build]
# Each size is WxH:FRAMES (timed frames per run). Each measurement runs R times, element and
# reference alternating; the table shows the medians. Needs scripts/setup.sh to have run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=2
reps=3
warmup=3
sizes="256x256:40 640x480:16"
json_out=""
build=1

while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --json) json_out="$(realpath -m "$2")"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-element: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$warmup" -ge 1 ] || { echo "bench-element: --warmup must be at least 1" >&2; exit 2; }

cd "$root"
# The example first: it builds the library with the dev-dependencies' features, so the plain
# build afterwards leaves target/release/libgstrsstyle.so as `cargo build --release` makes it.
# --no-build benchmarks what is already in target/release.
if [ "$build" -eq 1 ]; then
  cargo build --release --quiet --example johnson_model
  cargo build --release --quiet
fi
for f in target/release/examples/johnson_model target/release/libgstrsstyle.so; do
  [ -f "$f" ] || { echo "bench-element: $f is missing: run without --no-build" >&2; exit 1; }
done

venv="$root/.deps/bench-venv"
if ! "$venv/bin/python" -c 'import numpy, onnxruntime as o; assert o.__version__ == "1.30.0"' 2>/dev/null; then
  echo "bench-element: installing onnxruntime 1.30.0 and numpy into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "onnxruntime==1.30.0" numpy
fi
py="$venv/bin/python"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
model="$tmp/johnson.onnx"
target/release/examples/johnson_model "$model"

# Element throughput from the sink's render times. With GST_DEBUG=basesink:5, basesink logs
# "rendering object" once per buffer, stamped with a monotonic clock. The first K frames are
# warm-up; the intervals between consecutive renders after them are steady-state per-frame
# times. This leaves out process start, plugin scanning and model loading, which a wall-clock
# difference between a long and a short run would only cancel up to their run-to-run noise.
run_element() { # W H FRAMES LOG
  GST_PLUGIN_PATH="$root/target/release" GST_DEBUG="basesink:5,rsstyle:4" GST_DEBUG_NO_COLOR=1 \
    GST_DEBUG_FILE="$4" gst-launch-1.0 -q \
    videotestsrc num-buffers=$((warmup + $3)) pattern=smpte \
    ! "video/x-raw,format=RGB,width=$1,height=$2,framerate=30/1" \
    ! rsstyle model="$model" threads="$threads" ! fakesink sync=false >/dev/null
}

run_reference() { # W H FRAMES JSON
  "$py" scripts/bench_reference.py "$model" --width "$1" --height "$2" \
    --threads "$threads" --frames "$3" --warmup "$warmup" >"$4"
}

for spec in $sizes; do
  size="${spec%%:*}" frames="${spec##*:}"
  w="${size%x*}" h="${size#*x}"
  for rep in $(seq 1 "$reps"); do
    echo "bench-element: ${w}x${h} run $rep/$reps (element, then onnxruntime)" >&2
    run_element "$w" "$h" "$frames" "$tmp/element-${w}x${h}-$rep.log"
    run_reference "$w" "$h" "$frames" "$tmp/ort-${w}x${h}-$rep.json"
  done
done

"$py" - "$tmp" "$sizes" "$reps" "$warmup" "$threads" "$json_out" <<'EOF'
import json, re, statistics, sys

tmp, sizes, reps, warmup, threads, json_out = sys.argv[1:]
reps, warmup, threads = int(reps), int(warmup), int(threads)
stamp = re.compile(r"^(\d+):(\d+):(\d+\.\d+) ")

def element_run(log, frames):
    """Per-frame times (s) from the render timestamps, and the engine the element reported."""
    renders, engine = [], None
    for line in open(log, errors="replace"):
        m = stamp.match(line)
        if m and "rendering object" in line:
            h, mi, s = m.groups()
            renders.append(int(h) * 3600 + int(mi) * 60 + float(s))
        elif "running on " in line:
            engine = line.split("running on ", 1)[1].strip()
    if len(renders) != warmup + frames:
        sys.exit(f"bench-element: {log}: {len(renders)} frames rendered, expected {warmup + frames}")
    times = [b - a for a, b in zip(renders[warmup - 1:], renders[warmup:])]
    return times, engine

results = []
for spec in sizes.split():
    size, frames = spec.split(":")
    w, h = map(int, size.split("x"))
    el_fps, ort_fps, el_ms, ort_ms, engine = [], [], [], [], None
    for rep in range(1, reps + 1):
        times, engine = element_run(f"{tmp}/element-{size}-{rep}.log", int(frames))
        med = statistics.median(times)
        el_ms.append(med * 1e3)
        el_fps.append(1 / med)
        ref = json.load(open(f"{tmp}/ort-{size}-{rep}.json"))
        ort_ms.append(ref["median_ms"])
        ort_fps.append(ref["fps"])
        ort_version = ref["onnxruntime"]
    e, o = statistics.median(el_fps), statistics.median(ort_fps)
    results.append({
        "width": w, "height": h, "frames": int(frames),
        "element_fps": round(e, 3), "onnxruntime_fps": round(o, 3), "ratio": round(e / o, 3),
        "element_median_ms_per_run": [round(x, 2) for x in el_ms],
        "onnxruntime_median_ms_per_run": [round(x, 2) for x in ort_ms],
        "element_engine": engine,
    })

print(f"Johnson TransformerNet, {threads} threads, onnxruntime {ort_version} (Python) vs rsstyle; "
      f"medians of {reps} runs, fps = 1 / median frame time")
print(f"{'size':>9}  {'element fps':>11}  {'onnxruntime fps':>15}  {'element/ort':>11}")
for r in results:
    print(f"{r['width']:>4}x{r['height']:<4}  {r['element_fps']:>11.2f}  "
          f"{r['onnxruntime_fps']:>15.2f}  {r['ratio']:>11.3f}")
if json_out:
    doc = {"model": "johnson_transformer_net (width 32, 5 blocks, random weights)",
           "threads": threads, "reps": reps, "warmup": warmup,
           "onnxruntime_python": ort_version, "results": results}
    with open(json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {json_out}")
EOF
