"""Benchmark safeload's pickle VM against the loaders a user would pick instead.

Not a test: run it by hand and paste its table into README.md.

    python bench/bench_unpickler.py            # full run
    python bench/bench_unpickler.py --quick    # smaller inputs, fewer repeats (a smoke run)

Every input is generated in a temporary folder, and every column is measured in the same run, best of N with
``time.perf_counter``. A ratio is safeload's time divided by the other tool's time: below 1 means safeload is
faster. torch columns are left out when torch cannot be imported.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import pickle
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import safeload

try:
    import torch
except ImportError:  # torch is optional
    torch = None


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in seconds. GC is left on, as a user's process would have it."""
    fn()  # warm-up: imports, lazy numpy entries, page cache
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        gc.collect()
    return best


def ms(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t >= 1e-3 else f"{t * 1e6:.0f} µs"


def workloads(n_dict: int, n_arrays: int, n_list: int) -> list[tuple[str, Any, int]]:
    """(label, object, pickle protocol)."""
    big_dict = {f"key_{i}": i for i in range(n_dict)}
    rng = np.random.default_rng(0)
    arrays = {f"layer{i}.weight": rng.standard_normal((1000, 100), dtype=np.float32) for i in range(n_arrays)}
    mixed: list[Any] = []
    for i in range(n_list):
        r = i % 3
        mixed.append(i * 0.5 if r == 0 else None if r == 1 else (i, float(i)))
    return [
        (f"{n_dict // 1000}k-entry str→int dict, protocol 4", big_dict, 4),
        (f"{n_arrays} float32 arrays 1000×100, protocol 4", arrays, 4),
        (f"{n_arrays} float32 arrays 1000×100, protocol 5", arrays, 5),
        (f"{n_list // 1000}k floats/None/tuples list, protocol 4", mixed, 4),
    ]


def check_equal(a: Any, b: Any) -> None:
    if isinstance(a, dict) and a and isinstance(next(iter(a.values())), np.ndarray):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), "safeload result differs"
    else:
        assert a == b, "safeload result differs from pickle's"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs and 2 repeats: a smoke run")
    ap.add_argument("--repeat", type=int, default=None, help="best of N (default 7, or 2 with --quick)")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 7)
    sizes = (20_000, 10, 10_000) if args.quick else (200_000, 100, 100_000)

    have_torch = torch is not None
    if have_torch:
        torch.set_num_threads(max(1, os.cpu_count() or 1))

    header = ["workload", "size", "safeload", "C pickle", "pure-Python pickle"]
    if have_torch:
        header.append("torch.load(weights_only=True)")
    header += ["ratio vs C pickle", "ratio vs pure-Python"]
    if have_torch:
        header.append("ratio vs torch.load")
    rows = []

    with tempfile.TemporaryDirectory(prefix="safeload-bench-") as tmp:
        for i, (label, obj, proto) in enumerate(workloads(*sizes)):
            path = os.path.join(tmp, f"w{i}.pkl")
            with open(path, "wb") as fh:
                pickle.dump(obj, fh, protocol=proto)
            with open(path, "rb") as fh:
                data = fh.read()
            check_equal(obj, safeload.loads(data))

            t_safe = best_of(lambda: safeload.loads(data), repeat)
            t_c = best_of(lambda: pickle.loads(data), repeat)
            t_py = best_of(lambda: pickle._loads(data), repeat)  # type: ignore[attr-defined]
            row = [label, f"{len(data) / 1e6:.1f} MB", ms(t_safe), ms(t_c), ms(t_py)]
            t_torch = None
            if have_torch:
                # the same object written by torch.save (a zip with data.pkl), read the way users read it
                tpath = os.path.join(tmp, f"w{i}.pt")
                tobj = {k: torch.from_numpy(v) for k, v in obj.items()} if isinstance(obj, dict) and obj and \
                    isinstance(next(iter(obj.values())), np.ndarray) else obj
                torch.save(tobj, tpath)
                with open(tpath, "rb") as fh:
                    tdata = fh.read()
                t_torch = best_of(lambda: torch.load(io.BytesIO(tdata), weights_only=True), repeat)
                row.append(ms(t_torch))
            row += [f"{t_safe / t_c:.2f}x", f"{t_safe / t_py:.2f}x"]
            if t_torch is not None:
                row.append(f"{t_safe / t_torch:.2f}x")
            rows.append(row)
            print(f"  measured: {label}", file=sys.stderr)

    print(f"safeload {safeload.__version__}, Python {platform.python_version()}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if have_torch else ", torch not installed")
          + f", {os.cpu_count()} CPUs, best of {repeat}" + (" (--quick)" if args.quick else ""))
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("ratio = safeload time / other tool's time (lower is better for safeload). "
          "torch.load reads the same object saved with torch.save (arrays as tensors).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
