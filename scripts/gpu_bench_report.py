#!/usr/bin/env python3
"""Summarises a scripts/gpu-bench.sh run: one Markdown table of frames/s and ratios.

Reads OUT/rsstyle-*.json (`rsstyle bench --json`), OUT/torch.json and the training records
(OUT/train-candle.jsonl, OUT/train-torch.json) and prints, per net and frame size, every
configuration's frames/s with host frames in and out, its ratio to torch.compile fp16 (the
PyTorch reference) and, where measured, the largest byte difference from the CPU's output.

Usage: gpu_bench_report.py OUT
"""
import glob
import json
import os
import statistics
import sys

# rsstyle's --untrained nets as gpu_bench_torch.py labels them.
ARCH = {"johnson": "johnson:32:5", "resnet": "resnet:64:9"}
REFERENCE = "compile-fp16-cl"


def load(path):
    with open(path) as f:
        return json.load(f)


def rsstyle_rows(out):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "rsstyle-*.json"))):
        name = os.path.basename(path)[len("rsstyle-"):-len(".json")]
        try:
            records = load(path)
        except (OSError, json.JSONDecodeError):
            continue
        for r in records:
            model = os.path.basename(r["model"]).removesuffix(".onnx")
            arch = ARCH.get(model.removesuffix("-fp16"), model)
            size = f'{r["width"]}x{r["height"]}'
            diff = r.get("max_diff_vs_cpu")
            note = "" if diff is None else f'max {diff}, {100 * r["differing_vs_cpu"]:.1f}% differ'
            common = {"arch": arch, "size": size, "batch": r["batch"], "diff": note}
            rows.append({**common, "impl": f"rsstyle element, {name}", "fps": r["element_fps"],
                         "ms": 1e3 / r["element_fps"] if r["element_fps"] else None,
                         "detail": r["engine"]})
            rows.append({**common, "impl": f"rsstyle engine, {name}", "fps": r["inference_fps"],
                         "ms": r["inference_ms_per_batch"] / r["batch"], "detail": "bare inference"})
    return rows


def torch_rows(out):
    path = os.path.join(out, "torch.json")
    if not os.path.exists(path):
        return []
    return [{"arch": r["arch"], "size": r["size"], "batch": r["batch"],
             "impl": f'PyTorch {r["variant"]}{" (frames on GPU)" if r["io"] == "device" else ""}',
             "fps": r["fps"], "ms": r["median_ms"], "detail": f'torch {r["torch"]}', "diff": "",
             "io": r["io"], "variant": r["variant"]}
            for r in load(path) if "fps" in r]


def training(out):
    lines = []
    candle = os.path.join(out, "train-candle.jsonl")
    if os.path.exists(candle):
        with open(candle) as f:
            logs = [json.loads(l) for l in f if l.strip()]
        # Training records only: the last step's record also holds the final evaluation.
        times = [r["elapsed_s"] for r in logs if "elapsed_s" in r and "loss" in r
                 and not any(k.startswith("eval") for k in r)]
        steps = [b - a for a, b in zip(times, times[1:])][5:]
        if steps:
            lines.append(f"candle (rsstyle train, CUDA): {1e3 * statistics.median(steps):.1f} ms "
                         f"per step, median of {len(steps)}")
    path = os.path.join(out, "train-torch.json")
    if os.path.exists(path):
        for r in load(path):
            lines.append(f'PyTorch eager: {r["median_ms"]} ms per step ({r["arch"]}, '
                         f'batch {r["batch"]} × {r["size"]}, {r["variant"]})')
    return lines


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    rows = rsstyle_rows(out) + torch_rows(out)
    gpu = open(os.path.join(out, "gpu.txt")).read().strip() if os.path.exists(
        os.path.join(out, "gpu.txt")) else "unknown GPU"
    print(f"GPU: {gpu}\n")
    print("| net | size | batch | implementation | frames/s | ms/frame | vs torch.compile fp16 | GPU vs CPU bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted({(r["arch"], r["size"]) for r in rows}):
        group = [r for r in rows if (r["arch"], r["size"]) == key]
        ref = next((r["fps"] for r in group
                    if r.get("variant") == REFERENCE and r.get("io") == "host"), None)
        for r in sorted(group, key=lambda r: -(r["fps"] or 0)):
            ratio = f'{r["fps"] / ref:.2f}' if ref and r["fps"] else "-"
            ms = f'{r["ms"]:.2f}' if r["ms"] else "-"
            print(f'| {key[0]} | {key[1]} | {r["batch"]} | {r["impl"]} | {r["fps"]:.1f} | {ms} '
                  f'| {ratio} | {r["diff"]} |')
    engines = sorted({r["detail"] for r in rows if r["impl"].startswith("rsstyle element")})
    if engines:
        print("\nrsstyle engines: " + "; ".join(engines))
    lines = training(out)
    if lines:
        print("\nTraining step (Johnson w16 b3, batch 4 × 256², VGG16 perceptual loss, fp32):")
        for l in lines:
            print(f"- {l}")


if __name__ == "__main__":
    main()
