"""Saving benchmark: safeload.save against torch.save and safetensors.torch.save_file, and the load side of each
file, on one generated state_dict, in the same run. Prints a markdown table of times, peak memory above the
state_dict, file sizes and ratios to torch.

    python bench/bench_save.py              # ~100 MB state_dict
    python bench/bench_save.py --mb 500     # the issue's 500 MB

Saving to a path, safeload writes a temporary file, fsyncs it and renames it (atomic); torch.save overwrites in
place without fsync, so file-system write-back dominates the path rows on a small VM. The BytesIO rows compare the
writers' own cost. Peak memory is each step's peak RSS above the process's RSS before it, measured in a fresh subprocess per step so
one step's allocations do not hide another's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

STEPS = ("torch.save", "safeload.save", "safeload.save zstd", "safetensors save_file",
         "torch.save to BytesIO", "safeload.save to BytesIO",
         "torch.load", "safeload.load", "safeload.load zstd", "safetensors load_file")

CHILD = r'''
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[4])
import torch
step, folder, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def state_dict():
    torch.manual_seed(0)
    n = mb * (1 << 20) // 4
    sd, i = {}, 0
    while n > 0:  # layers of a transformer-ish size mix: big matrices, biases, norms
        rows = min(1024, max(1, n // 1024))
        sd[f"layers.{i}.weight"] = torch.randn(rows, 1024)
        sd[f"layers.{i}.bias"] = torch.randn(rows)
        sd[f"layers.{i}.norm"] = torch.ones(rows)
        n -= rows * 1026
        i += 1
    return sd

paths = {"torch": f"{folder}/torch.pt", "safeload": f"{folder}/safeload.pt", "zstd": f"{folder}/safeload.pt.zst",
         "st": f"{folder}/model.safetensors"}
import safeload
from safeload._save import save
from safetensors.torch import save_file, load_file
import io
if "save" in step:
    obj = state_dict()
    fn = {"torch.save": lambda: torch.save(obj, paths["torch"]),
          "torch.save to BytesIO": lambda: torch.save(obj, io.BytesIO()),
          "safeload.save to BytesIO": lambda: save(obj, io.BytesIO()),
          "safeload.save": lambda: save(obj, paths["safeload"]),
          "safeload.save zstd": lambda: save(obj, paths["zstd"], compress="zstd"),
          "safetensors save_file": lambda: save_file(obj, paths["st"])}[step]
else:
    fn = {"torch.load": lambda: torch.load(paths["torch"], weights_only=True),
          "safeload.load": lambda: safeload.load(paths["safeload"]),
          "safeload.load zstd": lambda: safeload.load(paths["zstd"]),
          "safetensors load_file": lambda: load_file(paths["st"])}[step]
before = rss()
start = time.perf_counter()
result = fn()
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"time": elapsed, "peak": max(0, peak - before)}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="state_dict size in MB (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the best time is kept")
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as folder:
        results = {}
        for step in STEPS:
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, "-c", CHILD, step, folder, str(args.mb), repo],
                                     capture_output=True, text=True, check=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            results[step] = {"time": min(r["time"] for r in runs), "peak": min(r["peak"] for r in runs)}
        sizes = {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)}
    print(f"state_dict: {args.mb} MB float32 (best of {args.repeat}, each step in a fresh process)\n")
    print("| step | time (s) | vs torch | peak memory above input (MB) |")
    print("|---|---:|---:|---:|")
    for step in STEPS:
        base = results["torch.save to BytesIO" if "BytesIO" in step else
                       "torch.save" if "save" in step else "torch.load"]["time"]
        r = results[step]
        print(f"| {step} | {r['time']:.3f} | {r['time'] / base:.2f}x | {r['peak'] / 2**20:.0f} |")
    print("\n| file | size (MB) | vs torch.save |")
    print("|---|---:|---:|")
    for name in ("torch.pt", "safeload.pt", "safeload.pt.zst", "model.safetensors"):
        print(f"| {name} | {sizes[name] / 2**20:.1f} | {sizes[name] / sizes['torch.pt']:.3f} |")


if __name__ == "__main__":
    main()
