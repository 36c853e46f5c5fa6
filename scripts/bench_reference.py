#!/usr/bin/env python3
"""Reference throughput: one ONNX model run through onnxruntime's Python API.

Times session.run on a random [1, 3, H, W] float32 input in [0, 255] with the same session
settings the rsstyle element uses on the CPU (intra-op threads as given, one inter-op thread,
default graph optimisation, CPUExecutionProvider) and prints JSON: per-frame times, median, fps.

Usage: bench_reference.py MODEL --width W --height H [--threads T] [--frames N] [--warmup K]
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=20, help="timed frames")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames run first")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(a.seed).uniform(0, 255, (1, 3, a.height, a.width)).astype(np.float32)

    for _ in range(a.warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(a.frames):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - t0)

    median = statistics.median(times)
    print(json.dumps({
        "runner": "onnxruntime-python",
        "onnxruntime": ort.__version__,
        "model": a.model,
        "width": a.width,
        "height": a.height,
        "threads": a.threads,
        "warmup": a.warmup,
        "frame_ms": [round(t * 1e3, 3) for t in times],
        "median_ms": round(median * 1e3, 3),
        "mean_ms": round(statistics.fmean(times) * 1e3, 3),
        "fps": round(1.0 / median, 3),
    }))


if __name__ == "__main__":
    main()
