"""Benchmark safeload's pickle VM against the loaders a user would pick instead.

Not a test: run it by hand and paste its table into README.md.

    python bench/bench_unpickler.py            # full run
    python bench/bench_unpickler.py --quick    # smaller inputs, fewer repeats (a smoke run)

Every input is generated in a temporary folder, and every column is measured in the same run, best of N with
``time.perf_counter``. A ratio is safeload's time divided by the other tool's time: below 1 means safeload is
faster. torch columns are left out when torch cannot be imported.

Where the compiled build runs (setup.py; ``safeload --version`` says), safeload is also timed in a child process
started with ``SAFELOAD_PURE_PYTHON=1`` (the pure-Python build) on the same files in the same run, so the table
shows both builds against the same C pickle time.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import pickle
import platform
import subprocess
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
        r = i % 5
        mixed.append(i * 0.5 if r == 0 else None if r == 1 else (i, float(i)) if r == 2 else i if r == 3 else str(i))
    return [
        (f"{n_dict // 1000}k-entry str→int dict, protocol 4", big_dict, 4),
        (f"{n_dict // 1000}k-entry str→int dict, protocol 0", big_dict, 0),
        (f"{n_arrays} float32 arrays 1000×100, protocol 4", arrays, 4),
        (f"{n_arrays} float32 arrays 1000×100, protocol 5", arrays, 5),
        (f"{n_list // 1000}k ints/floats/strings/None/tuples list, protocol 4", mixed, 4),
    ]


def flood(n: int) -> bytes:
    """A NONE/POP flood: 2n + 3 opcodes of no work (the opcodes-per-second bound)."""
    return b"\x80\x02" + b"N0" * n + b"N."


def safeload_time(path: str, repeat: int) -> float:
    """safeload's best time on one input file: ``loads`` of its bytes, or ``load`` of a ``.npy`` path."""
    if path.endswith(".npy"):
        return best_of(lambda: safeload.load(path), repeat)
    with open(path, "rb") as fh:
        data = fh.read()
    return best_of(lambda: safeload.loads(data), repeat)


def pure_python_times(paths: list[str], repeat: int) -> dict[str, float]:
    """safeload's times on ``paths`` in a child process running the pure-Python build."""
    env = dict(os.environ, SAFELOAD_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, __file__, "--time-files", *paths, "--repeat", str(repeat)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def check_equal(a: Any, b: Any) -> None:
    if isinstance(a, dict) and a and isinstance(next(iter(a.values())), np.ndarray):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), "safeload result differs"
    else:
        assert a == b, "safeload result differs from pickle's"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs and 2 repeats: a smoke run")
    ap.add_argument("--repeat", type=int, default=None, help="best of N (default 7, or 2 with --quick)")
    ap.add_argument("--time-files", nargs="+", default=None, help=argparse.SUPPRESS)  # the pure-Python child
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 7)
    if args.time_files:
        print(json.dumps({path: safeload_time(path, repeat) for path in args.time_files}))
        return 0
    sizes = (20_000, 10, 10_000) if args.quick else (200_000, 100, 100_000)
    n_flood = 100_000 if args.quick else 1_000_000
    n_npy = 2_000 if args.quick else 20_000

    from safeload._build import build_description, compiled_modules

    compiled = bool(compiled_modules())
    have_torch = torch is not None
    if have_torch:
        torch.set_num_threads(max(1, os.cpu_count() or 1))

    header = ["workload", "size"] + (["safeload compiled", "safeload pure-Python"] if compiled else ["safeload"])
    header += ["C pickle (np.load for .npy)", "pure-Python pickle"]
    if have_torch:
        header.append("torch.load(weights_only=True)")
    header += ["compiled vs C", "pure-Python vs C"] if compiled else ["vs C"]
    header.append("vs pure-Python pickle")
    if have_torch:
        header.append("vs torch.load")
    # (label, path, safeload time, C time, pure-Python pickle time, torch time)
    measured: list[tuple[str, str, float, float, float | None, float | None]] = []

    with tempfile.TemporaryDirectory(prefix="safeload-bench-") as tmp:
        for i, (label, obj, proto) in enumerate(workloads(*sizes)):
            path = os.path.join(tmp, f"w{i}.pkl")
            with open(path, "wb") as fh:
                pickle.dump(obj, fh, protocol=proto)
            with open(path, "rb") as fh:
                data = fh.read()
            check_equal(obj, safeload.loads(data))

            t_safe = safeload_time(path, repeat)
            t_c = best_of(lambda: pickle.loads(data), repeat)
            t_py = best_of(lambda: pickle._loads(data), repeat)  # type: ignore[attr-defined]
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
            measured.append((label, path, t_safe, t_c, t_py, t_torch))
            print(f"  measured: {label}", file=sys.stderr)

        # an object .npy of small dicts, against np.load(allow_pickle=True)
        path = os.path.join(tmp, "objects.npy")
        objects = np.empty(n_npy, dtype=object)
        for k in range(n_npy):
            objects[k] = {"id": k, "name": f"item{k}", "score": k * 0.5}
        np.save(path, objects, allow_pickle=True)
        assert list(safeload.load(path)) == list(objects), "safeload result differs from np.load's"
        t_np = best_of(lambda: np.load(path, allow_pickle=True), repeat)
        measured.append((f"object .npy, {n_npy // 1000}k dicts", path, safeload_time(path, repeat), t_np, None, None))
        print("  measured: object .npy", file=sys.stderr)

        # the NONE/POP flood: opcodes per second
        path = os.path.join(tmp, "flood.pkl")
        with open(path, "wb") as fh:
            fh.write(flood(n_flood))
        with open(path, "rb") as fh:
            data = fh.read()
        assert safeload.loads(data) is None
        t_c = best_of(lambda: pickle.loads(data), repeat)
        flood_label = f"NONE/POP flood, {2 * n_flood + 3:,} opcodes"
        measured.append((flood_label, path, safeload_time(path, repeat), t_c, None, None))
        print("  measured: flood", file=sys.stderr)

        pure = pure_python_times([m[1] for m in measured], repeat) if compiled else {}
        sizes_mb = {m[1]: os.path.getsize(m[1]) / 1e6 for m in measured}

    rows = []
    for label, path, t_safe, t_c, t_py, t_torch in measured:
        row = [label, f"{sizes_mb[path]:.1f} MB", ms(t_safe)]
        if compiled:
            row.append(ms(pure[path]))
        row += [ms(t_c), ms(t_py) if t_py is not None else "—"]
        if have_torch:
            row.append(ms(t_torch) if t_torch is not None else "—")
        row.append(f"{t_safe / t_c:.2f}x")
        if compiled:
            row.append(f"{pure[path] / t_c:.2f}x")
        row.append(f"{t_safe / t_py:.2f}x" if t_py is not None else "—")
        if have_torch:
            row.append(f"{t_safe / t_torch:.2f}x" if t_torch is not None else "—")
        rows.append(row)

    print(f"safeload {safeload.__version__} ({build_description()}), Python {platform.python_version()}, "
          f"numpy {np.__version__}" + (f", torch {torch.__version__}" if have_torch else ", torch not installed")
          + f", {os.cpu_count()} CPUs, best of {repeat}" + (" (--quick)" if args.quick else ""))
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    label, path, t_flood = measured[-1][0], measured[-1][1], measured[-1][2]
    ops = 2 * n_flood + 3
    print(f"{label}: {ops / t_flood / 1e6:.1f} million opcodes per second"
          + (f" compiled, {ops / pure[path] / 1e6:.1f} million pure-Python" if compiled else ""))
    print("ratio = safeload time / other tool's time (lower is better for safeload). "
          "torch.load reads the same object saved with torch.save (arrays as tensors).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
