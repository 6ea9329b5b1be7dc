"""Benchmark: opening torch checkpoints with safeload vs torch.load, safetensors and a plain file read.

Generates its inputs in a temporary folder, times every tool in the same run (best of N, warm page cache), and
prints Markdown tables of times and ratios (ratio = safeload's time / the other tool's time). Peak memory is
measured in a child process per tool: the growth of the maximum resident set over the RSS before the load.

    python bench/bench_torch.py            # all three workloads (needs ~1.5 GB of free disk and RAM)
    python bench/bench_torch.py --quick    # smaller inputs, for a smoke run
    python bench/bench_torch.py --only adam_20k_tensors --rounds 6   # one workload, the tools taking turns 6 times

With ``--rounds N`` every tool is measured N times, the tools taking turns within each round (so that a burst of
other work on a shared machine falls on all of them); each tool's best round counts, with that round's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

import safeload


def resnet50_like() -> dict[str, torch.Tensor]:
    """A state_dict with ResNet-50's layer shapes (about 25.5M parameters, ~100 MB in float32)."""
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k)

    def bn(name: str, c: int) -> None:
        sd[f"{name}.weight"] = torch.ones(c)
        sd[f"{name}.bias"] = torch.zeros(c)
        sd[f"{name}.running_mean"] = torch.zeros(c)
        sd[f"{name}.running_var"] = torch.ones(c)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for li, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            conv(f"{p}.conv1", width, cin, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", width * 4, width, 1)
            bn(f"{p}.bn3", width * 4)
            if b == 0:
                conv(f"{p}.downsample.0", width * 4, cin, 1)
                bn(f"{p}.downsample.1", width * 4)
            cin = width * 4
    sd["fc.weight"] = torch.randn(1000, 2048)
    sd["fc.bias"] = torch.zeros(1000)
    return sd


def adam_state(n_params: int) -> dict:
    state = {i: {"step": torch.tensor(10.0), "exp_avg": torch.randn(16), "exp_avg_sq": torch.rand(16)}
             for i in range(n_params)}
    return {"state": state, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                                              "amsgrad": False, "params": list(range(n_params))}]}


def big_state_dict(total_mb: int) -> dict[str, torch.Tensor]:
    per = 4 * 1024 * 1024  # 16 MB float32 tensors
    return {f"layer{i}.weight": torch.randn(per) for i in range(max(1, total_mb // 16))}


def flatten(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj.contiguous()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    return out


TOOLS = {
    "read file": "data = open(PATH, 'rb').read()",
    "torch.load(weights_only=True)": "import torch; obj = torch.load(PATH, map_location='cpu', weights_only=True)",
    "torch.load(weights_only=False)": "import torch; obj = torch.load(PATH, map_location='cpu', weights_only=False)",
    "torch.load(mmap=True)": "import torch; obj = torch.load(PATH, map_location='cpu', weights_only=True, mmap=True)",
    "safetensors load_file": "from safetensors.torch import load_file; obj = load_file(ST_PATH)",
    "safeload.load": "import safeload; obj = safeload.load(PATH, map_location='cpu')",
    "safeload.load(mmap=True)": "import safeload; obj = safeload.load(PATH, map_location='cpu', mmap=True)",
}

CHILD = r"""
import os, sys, time, json, resource
PATH, ST_PATH, REPEAT = sys.argv[1], sys.argv[2], int(sys.argv[3])
import torch, safeload, safetensors.torch
def status(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
code = sys.stdin.read()
times = []
base = status('VmRSS')
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # reset the peak (VmHWM) to the current RSS, so import-time peaks do not count
for _ in range(REPEAT):
    ns = {'PATH': PATH, 'ST_PATH': ST_PATH}
    t = time.perf_counter()
    exec(code, ns)
    times.append(time.perf_counter() - t)
    del ns
peak = status('VmHWM') - base
print(json.dumps({'time': min(times), 'peak': peak}))
"""


def measure(code: str, path: str, st_path: str, repeat: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, path, st_path, str(repeat)], input=code, text=True,
                         capture_output=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_workload(name: str, obj: object, folder: str, repeat: int, rounds: int = 1) -> list[str]:
    path = os.path.join(folder, f"{name}.pt")
    st_path = os.path.join(folder, f"{name}.safetensors")
    torch.save(obj, path)
    from safetensors.torch import save_file

    save_file(flatten(obj), st_path)
    size = os.path.getsize(path)
    results: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for tool, code in TOOLS.items():
            got = measure(code, path, st_path, repeat)
            if tool not in results or got["time"] < results[tool]["time"]:
                results[tool] = got
    ours, ours_mmap = results["safeload.load"], results["safeload.load(mmap=True)"]
    lines = [f"\n### {name} ({size / 1e6:.1f} MB, {len(flatten(obj))} tensors)\n",
             "| tool | time | peak memory growth | safeload eager / tool | safeload mmap / tool |", "|---|---|---|---|---|"]
    for tool, r in results.items():
        lines.append(f"| {tool} | {r['time'] * 1e3:.1f} ms | {r['peak'] / 1e6:.0f} MB ({r['peak'] / size:.2f}x file) | "
                     f"{ours['time'] / r['time']:.2f}x | {ours_mmap['time'] / r['time']:.2f}x |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=1, help="measure every tool this many times, taking turns")
    ap.add_argument("--only", nargs="+", metavar="WORKLOAD", help="run these workloads only (by name)")
    args = ap.parse_args()
    torch.manual_seed(0)
    workloads = [("resnet50_state_dict", resnet50_like, 3), ("adam_20k_tensors", lambda: adam_state(6667), 3),
                 ("state_dict_500mb", lambda: big_state_dict(500), 2)]
    if args.quick:
        workloads = [("adam_2k_tensors", lambda: adam_state(667), 2),
                     ("state_dict_32mb", lambda: big_state_dict(32), 2)]
    if args.only:
        unknown = set(args.only) - {name for name, _, _ in workloads}
        if unknown:
            ap.error(f"no workload named {', '.join(sorted(unknown))}")
        workloads = [w for w in workloads if w[0] in args.only]
    print(f"torch {torch.__version__}, safeload {safeload.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; best of {args.rounds} round(s), the tools taking turns")
    with tempfile.TemporaryDirectory() as folder:
        for name, make, repeat in workloads:
            for line in run_workload(name, make(), folder, repeat, args.rounds):
                print(line, flush=True)


if __name__ == "__main__":
    main()
