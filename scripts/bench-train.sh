#!/usr/bin/env bash
# The trainer's CPU step time side by side with PyTorch (docs/trainer-speed.md): the same fast-style
# training step — Johnson net (width 16, 3 residual blocks by default), 4 × 128² crops, VGG16 to
# relu4_3 with the same weights, content + Gram style + TV losses, Adam — run by `rsstyle train
# style` and by scripts/bench_train_torch.py, alternately, with the same thread count. Prints the
# machine (CPU, cores, numpy's sgemm rate), the median seconds per step of each, their ratio, and
# the step's convolution FLOP rate as a share of the sgemm rate. The FLOPs are those of direct
# convolution (2·MACs): a trainer that computes 3×3 layers by Winograd F(2×2, 3×3), as rsstyle
# does, multiplies less, so its rate is an effective one and may exceed what its products reach.
#
# usage: scripts/bench-train.sh [--rounds R] [--steps N] [--threads T] [--width W] [--blocks B]
#                               [--size S] [--batch N] [--rsstyle BIN]...
#   --rsstyle BIN  time this rsstyle binary (repeatable, e.g. a build of an older commit beside
#                  the current one; default: target/release/rsstyle, built first)
#
# PyTorch comes from plain PyPI into .deps/torch-venv (made once). PyPI has no CPU-only torch wheel
# for Linux x86_64: `torch` there is the CUDA build (a 540 MB wheel) whose libraries link the CUDA
# runtime wheels it depends on (~3 GB with them), even when only the CPU is used, so the venv takes
# ~5 GB of disk. Nothing of CUDA runs: the step is on the CPU.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rounds=3 steps=4 threads=2 width=16 blocks=3 size=128 batch=4
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --blocks) blocks="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --rsstyle) bins+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench-train: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release --quiet --bin rsstyle
  bins=(target/release/rsstyle)
fi
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "bench-train: $b is not an executable" >&2; exit 2; }
done

scripts/fetch-vgg16.sh >/dev/null
[ -f assets/starry_night.jpg ] && [ -d assets/photos ] || scripts/setup.sh
venv=.deps/torch-venv
if ! "$venv/bin/python" -c 'import torch, numpy, PIL' 2>/dev/null; then
  echo "bench-train: installing PyTorch (CUDA wheels from PyPI, ~3.5 GB download) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 numpy pillow
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
content=assets/photos style=assets/starry_night.jpg vgg=.deps/vgg16/vgg16.safetensors
export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
  MKL_NUM_THREADS="$threads"

# rsstyle: --steps N+2 with a log line every step; a step's time is the difference of the logged
# training times. The first step (warm-up) and the last (evaluation, samples, checkpoint) are left out.
run_rsstyle() { # BIN INDEX ROUND
  local out="$work/run-$2-$3"
  "$1" train style --out "$out" --content "$content" --style "$style" --vgg "$vgg" \
    --width "$width" --blocks "$blocks" --size "$size" --batch "$batch" \
    --steps $((steps + 2)) --log-every 1 --sample-every 1000000 --checkpoint-every 1000000 \
    --quiet >/dev/null
  "$venv/bin/python" - "$out/log.jsonl" >>"$work/rsstyle-$2.txt" <<'PY'
import json, sys
t = [json.loads(l)["elapsed_s"] for l in open(sys.argv[1])]
for a, b in zip(t[:-2], t[1:-1]):
    print(b - a)
PY
}

for r in $(seq 1 "$rounds"); do
  for i in "${!bins[@]}"; do
    run_rsstyle "${bins[$i]}" "$i" "$r"
  done
  sgemm=()
  [ "$r" -eq 1 ] && sgemm=(--sgemm)
  "$venv/bin/python" scripts/bench_train_torch.py --content "$content" --style "$style" \
    --vgg "$vgg" --width "$width" --blocks "$blocks" --size "$size" --batch "$batch" \
    --steps "$steps" --threads "$threads" "${sgemm[@]}" >"$work/torch-$r.json"
  echo "bench-train: round $r of $rounds done" >&2
done

"$venv/bin/python" - "$work" "$rounds" "$threads" "$width" "$blocks" "$size" "$batch" \
  "${bins[@]}" <<'PY'
import json, os, statistics, sys
work, rounds, threads, width, blocks, size, batch = sys.argv[1:8]
bins = sys.argv[8:]
torch_runs = [json.load(open(f"{work}/torch-{r}.json")) for r in range(1, int(rounds) + 1)]
torch_steps = [t for run in torch_runs for t in run["step_s"]]
sgemm = torch_runs[0]["numpy_sgemm_gflops"]
flops = torch_runs[0]["conv_flops"]
cpu = next(
    (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
    "unknown CPU",
)
print(f"machine: {cpu}, {os.cpu_count()} cores; numpy sgemm (2048², {threads} threads): "
      f"{sgemm:.1f} GFLOP/s")
print(f"step: Johnson width {width}, {blocks} blocks, {batch}×{size}² crops, VGG16 to relu4_3, "
      f"Adam; {threads} threads; {rounds} alternating rounds; convolutions "
      f"{flops / 1e9:.1f} GFLOP a step")
print()
t_med = statistics.median(torch_steps)
rows = [(f"PyTorch {torch_runs[0]['torch']}", torch_steps)]
for i, b in enumerate(bins):
    rows.append((f"rsstyle ({b})", [float(l) for l in open(f"{work}/rsstyle-{i}.txt")]))
print("| trainer | steps timed | median s/step (min–max) | vs PyTorch | conv GFLOP/s | share of sgemm |")
print("|---|---|---|---|---|---|")
for name, ts in rows:
    m = statistics.median(ts)
    rate = flops / m / 1e9
    print(f"| {name} | {len(ts)} | {m:.2f} ({min(ts):.2f}–{max(ts):.2f}) | {m / t_med:.2f}× "
          f"| {rate:.1f} | {100 * rate / sgemm:.0f}% |")
PY
