#!/usr/bin/env bash
# Inference on a Triton Inference Server against local inference, side by side in one run:
#  1. throughput of 1, 2 and 4 concurrent pipelines (separate gst-launch-1.0 processes, as
#     separate cameras would be), each styling FRAMES test frames, local (device=cpu) and
#     remote (device=grpc://…) alternating, with how Triton's dynamic batcher merged the remote
#     pipelines' batch-1 requests (its statistics);
#  2. the round trip of one frame: the remote engine's bare inference against the server's own
#     time for the request (Triton's statistics), and local bare inference (`rsstyle bench`).
#
# Usage: scripts/bench-remote.sh [--model M] [--size WxH] [--frames F] [--reps R]
#                                [--pipelines "1 2 4"] [--queue-delay-us D] [--no-build]
# Needs scripts/setup.sh --test (Triton in .deps/triton-venv). The server runs on this machine,
# with Triton's Python backend (onnxruntime on the CPU, the same version as the element's).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="$root/models/paintings-lite.onnx"
size="640x480"
frames=40
reps=3
pipelines="1 2 4"
delay_us=2000
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$(realpath "$2")"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --frames) frames="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --pipelines) pipelines="$2"; shift 2 ;;
    --queue-delay-us) delay_us="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-remote: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
width="${size%x*}"
height="${size#*x}"
name="$(basename "$model" .onnx)"

cd "$root"
[ "$build" -eq 0 ] || cargo build --release --quiet
py="$root/.deps/triton-venv/bin/python"
[ -x "$py" ] || { echo "bench-remote: run scripts/setup.sh --test first (installs Triton)" >&2; exit 1; }
export GST_PLUGIN_PATH="$root/target/release"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill -9 -- "-$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port="$(free_port)"
http_port="$(free_port)"
target/release/rsstyle serve-repo "$model" "$tmp/repo" --backend python \
  --max-queue-delay-us "$delay_us" >/dev/null
setsid scripts/tritonserver.sh --model-repository="$tmp/repo" --grpc-port="$grpc_port" \
  --http-port="$http_port" --allow-metrics=false --log-info=false >"$tmp/triton.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$http_port/v2/health/ready" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/triton.log" >&2; exit 1; }
  sleep 0.1
done
device="grpc://127.0.0.1:$grpc_port"

# Triton's statistics of the model: "executions:<size>x<count>,… success_ns success_count".
stats() {
  "$py" - "$grpc_port" "$name" <<'EOF'
import sys
import tritonclient.grpc as g
s = g.InferenceServerClient(f"127.0.0.1:{sys.argv[1]}").get_inference_statistics(sys.argv[2]).model_stats[0]
batches = ",".join(f"{b.batch_size}x{b.compute_infer.count}" for b in s.batch_stats)
print(batches or "-", s.inference_stats.success.ns, s.inference_stats.success.count)
EOF
}

# run_pipelines N DEVICE_PROPS: N concurrent pipelines; prints their summed frames/s (each from
# gst-launch's PLAYING-to-EOS time, which leaves out model loading and the preroll frame).
run_pipelines() {
  local n="$1" props="$2" pids=() i
  for i in $(seq 1 "$n"); do
    gst-launch-1.0 videotestsrc num-buffers="$frames" pattern=ball \
      ! "video/x-raw,width=$width,height=$height" ! rsstyle $props ! fakesink sync=false \
      >"$tmp/run-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || { cat "$tmp"/run-*.log >&2; exit 1; }; done
  for i in $(seq 1 "$n"); do
    sed -n 's/^Execution ended after \([0-9]*\):\([0-9]*\):\([0-9.]*\)$/\1 \2 \3/p' "$tmp/run-$i.log"
  done | awk -v f="$frames" '{ s = $1 * 3600 + $2 * 60 + $3; total += (f - 1) / s } END { printf "%.2f", total }'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $name, $size, $frames frames per pipeline, $reps repetitions (medians), Triton 2.51 Python backend (onnxruntime 1.30, CPU), queue delay ${delay_us} µs"
echo
printf '%-10s %12s %12s %8s   %s\n' pipelines "local fps" "remote fps" "ratio" "server batches (size x executions)"
for n in $pipelines; do
  locals=""; remotes=""; ratios=""
  before="$(stats | cut -d' ' -f1)"
  for r in $(seq 1 "$reps"); do
    # Alternate which goes first.
    if [ $((r % 2)) -eq 1 ]; then
      l="$(run_pipelines "$n" "model=$model")"
      m="$(run_pipelines "$n" "device=$device server-model=$name")"
    else
      m="$(run_pipelines "$n" "device=$device server-model=$name")"
      l="$(run_pipelines "$n" "model=$model")"
    fi
    locals="$locals $l"; remotes="$remotes $m"
    ratios="$ratios $(awk -v a="$m" -v b="$l" 'BEGIN { printf "%.3f", a / b }')"
  done
  after="$(stats | cut -d' ' -f1)"
  batches="$("$py" -c '
import sys
def parse(s): return {} if s == "-" else {int(k): int(v) for k, v in (p.split("x") for p in s.split(","))}
b, a = parse(sys.argv[1]), parse(sys.argv[2])
print(" ".join(f"{k}x{a[k] - b.get(k, 0)}" for k in sorted(a) if a[k] - b.get(k, 0) > 0))' "$before" "$after")"
  printf '%-10s %12s %12s %8s   %s\n' "$n" "$(echo "$locals" | median)" "$(echo "$remotes" | median)" \
    "$(echo "$ratios" | median)" "$batches"
done

echo
echo "round trip of one $size frame (rsstyle bench, batch 1, bare inference medians):"
before="$(stats)"
remote_json="$(target/release/rsstyle bench --model "$model" --size "$size" --batch 1 \
  --frames 20 --reps "$reps" --device "$device" --json)"
after="$(stats)"
local_json="$(target/release/rsstyle bench --model "$model" --size "$size" --batch 1 \
  --frames 20 --reps "$reps" --engine-options graph-rewrite=false --json)"
"$py" - "$remote_json" "$local_json" "$before" "$after" <<'EOF'
import json, sys
remote, local = json.loads(sys.argv[1])[0], json.loads(sys.argv[2])[0]
b, a = sys.argv[3].split(), sys.argv[4].split()
server_ms = (int(a[1]) - int(b[1])) / max(1, int(a[2]) - int(b[2])) / 1e6
rtt = remote["inference_ms_per_batch"]
print(f"  local bare inference (plain graph, as the server runs it): {local['inference_ms_per_batch']:.1f} ms")
print(f"  remote round trip (request, server, reply, conversions):   {rtt:.1f} ms")
print(f"  of which the server's own time per request (Triton stats):  {server_ms:.1f} ms")
print(f"  round-trip overhead per frame (round trip - server time):   {rtt - server_ms:.1f} ms")
print(f"  element fps: local {local['element_fps']:.2f}, remote {remote['element_fps']:.2f}")
EOF
