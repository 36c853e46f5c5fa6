#!/usr/bin/env python3
"""Summarises ONNX Runtime profiles written with the engine option `profile=PATH`.

Prints, per file, the median run time and where it went: time per run by operator type and
the slowest nodes with their output shapes. Warm-up runs are left out.

On a GPU, run the profiled program with CUDA_LAUNCH_BLOCKING=1: each kernel then finishes
before its node's timer stops, so node times are GPU times (plus one launch each) rather than
the time to queue the kernel.

    rsstyle bench --model M --size 1280x720 --device cuda --engine-options profile=/tmp/p
    scripts/ort_profile_summary.py /tmp/p-*.json
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict


def runs_and_nodes(events):
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    nodes = [
        e
        for e in events
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    ]
    return runs, nodes


def summarise(path, warmup, top):
    with open(path) as f:
        events = json.load(f)
    runs, nodes = runs_and_nodes(events)
    kept = runs[warmup:] if len(runs) > warmup else runs
    if not kept:
        return {"file": path, "runs": 0}
    starts = [r[0] for r in kept]

    def in_kept_run(ts):
        # Runs do not overlap: find the last kept run starting at or before ts.
        lo, hi = 0, len(kept)
        while lo < hi:
            mid = (lo + hi) // 2
            if starts[mid] <= ts:
                lo = mid + 1
            else:
                hi = mid
        return lo > 0 and ts <= kept[lo - 1][1]

    by_op = defaultdict(lambda: [0.0, 0])
    by_node = defaultdict(lambda: [0.0, "", "", None])
    providers = set()
    for e in nodes:
        if not in_kept_run(e["ts"]):
            continue
        args = e.get("args", {})
        op = args.get("op_name", "?")
        providers.add(args.get("provider", "?"))
        by_op[op][0] += e["dur"]
        by_op[op][1] += 1
        node = by_node[e["name"][: -len("_kernel_time")]]
        node[0] += e["dur"]
        node[1] = op
        node[2] = args.get("provider", "?")
        node[3] = args.get("output_type_shape")
    n = len(kept)
    run_ms = statistics.median((end - start) / 1e3 for start, end in kept)
    node_ms = sum(v[0] for v in by_op.values()) / 1e3 / n
    return {
        "file": path,
        "runs": n,
        "run_ms_median": run_ms,
        "node_ms_per_run": node_ms,
        "providers": sorted(providers),
        "ops": sorted(
            (
                {"op": op, "ms_per_run": total / 1e3 / n, "nodes_per_run": count / n}
                for op, (total, count) in by_op.items()
            ),
            key=lambda o: -o["ms_per_run"],
        ),
        "slowest_nodes": sorted(
            (
                {
                    "node": name,
                    "op": op,
                    "provider": provider,
                    "ms_per_run": total / 1e3 / n,
                    "output_shape": shape,
                }
                for name, (total, op, provider, shape) in by_node.items()
            ),
            key=lambda o: -o["ms_per_run"],
        )[:top],
    }


def print_summary(s):
    print(f"{s['file']}")
    if not s["runs"]:
        print("  no model runs after the warm-up (is the profile empty?)")
        return
    print(
        f"  {s['runs']} runs, median {s['run_ms_median']:.3f} ms; nodes add up to "
        f"{s['node_ms_per_run']:.3f} ms a run ({', '.join(s['providers'])})"
    )
    print(f"  {'operator':<28} {'ms/run':>9} {'share':>7} {'nodes':>6}")
    for o in s["ops"]:
        share = o["ms_per_run"] / s["node_ms_per_run"] if s["node_ms_per_run"] else 0.0
        print(
            f"  {o['op']:<28} {o['ms_per_run']:>9.3f} {100 * share:>6.1f}% "
            f"{o['nodes_per_run']:>6.0f}"
        )
    print(f"  slowest nodes:")
    for o in s["slowest_nodes"]:
        shape = o["output_shape"]
        print(f"    {o['ms_per_run']:>8.3f} ms  {o['op']:<22} {o['node']}  {shape}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", help="profile JSON files")
    parser.add_argument("--warmup", type=int, default=2, help="runs to leave out (default 2)")
    parser.add_argument("--top", type=int, default=10, help="slowest nodes to list")
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    args = parser.parse_args()
    summaries = []
    for path in args.profiles:
        try:
            summaries.append(summarise(path, args.warmup, args.top))
        except (OSError, ValueError) as e:
            sys.exit(f"ort_profile_summary: {path}: {e}")
    if args.json:
        json.dump(summaries, sys.stdout, indent=1)
        print()
    else:
        for s in summaries:
            print_summary(s)


if __name__ == "__main__":
    main()
