"""Benchmark: safeload against each framework's own loader, on inputs this script generates.

    python bench/bench_frameworks.py [--quick]

For every capability, the median of several runs of safeload and of the loader a user would pick instead
(``joblib.load``, ``np.load(allow_pickle=True)``, ``safetensors.numpy.load_file``, C ``pickle.load``), and the ratio.
Where the framework cannot be installed (MXNet, MindSpore, Paddle's binary format), the baseline is reading the
file into memory, the floor any loader has to pay. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import pickle
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import safeload  # noqa: E402
from safeload._patch import patched  # noqa: E402


def _median(fn, repeat: int) -> float:
    fn()  # warm the page cache and imports
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _arrays(n: int, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"layer{i}.weight": rng.standard_normal(size, dtype=np.float32) for i in range(n)}


def _mxnet_params(arrays: dict[str, np.ndarray]) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(arrays))
    for a in arrays.values():
        out += struct.pack("<Ii", 0xF993FAC9, 0) + struct.pack("<iq", 1, a.size) + struct.pack("<iii", 1, 0, 0)
        out += a.tobytes()
    out += struct.pack("<Q", len(arrays))
    for name in arrays:
        out += struct.pack("<Q", len(name)) + name.encode()
    return out


def varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _mindspore(arrays: dict[str, np.ndarray]) -> bytes:
    def ld(field: int, payload: bytes) -> bytes:
        return varint(field << 3 | 2) + varint(len(payload)) + payload

    out = b""
    for name, a in arrays.items():
        tensor = b"".join(b"\x08" + varint(d) for d in a.shape) + ld(2, b"Float32") + ld(3, a.tobytes())
        out += ld(1, ld(1, name.encode()) + ld(2, tensor))
    return out


def _paddle_binary(arrays: dict[str, np.ndarray]) -> bytes:
    out = b""
    for a in arrays.values():
        desc = b"\x08\x05\x10" + varint(a.size)
        out += struct.pack("<IQI", 0, 0, 0) + struct.pack("<i", len(desc)) + desc + a.tobytes()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer runs")
    args = parser.parse_args()
    n, size, repeat = (20, 50_000, 3) if args.quick else (100, 250_000, 5)
    arrays = _arrays(n, size)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="safeload-bench-"))

    def row(name: str, baseline: str, path: Path, ours, theirs) -> None:
        t_ours = _median(ours, repeat)
        t_theirs = _median(theirs, repeat)
        mb = path.stat().st_size / 1e6
        rows.append((name, baseline, f"{mb:.1f}", f"{t_theirs * 1e3:.1f}", f"{t_ours * 1e3:.1f}", f"{t_ours / t_theirs:.2f}x"))

    try:
        import joblib
    except ImportError:
        joblib = None
    if joblib is not None:
        p = tmp / "arrays.joblib"
        joblib.dump(arrays, p)
        row("joblib arrays", "joblib.load", p, lambda: safeload.load(p), lambda: joblib.load(p))
        pz = tmp / "arrays_zlib.joblib"
        joblib.dump(arrays, pz, compress=3)
        row("joblib arrays, zlib", "joblib.load", pz, lambda: safeload.load(pz), lambda: joblib.load(pz))
        try:
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            from safeload.policies import sklearn as sk

            x = np.random.default_rng(0).normal(size=(200, 20))
            model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, x[:, 0] > 0)
            ps = tmp / "pipeline.joblib"
            joblib.dump(model, ps)
            policy = sk.POLICY
            row("sklearn pipeline (x100)", "joblib.load", ps,
                lambda: [safeload.load(ps, policy=policy) for _ in range(100)],
                lambda: [joblib.load(ps) for _ in range(100)])
        except ImportError:
            pass
        with patched("joblib"):
            patched_load = joblib.load
            row("patched joblib.load", "joblib.load", p, lambda: patched_load(p), lambda: joblib_load_orig(p))
    pn = tmp / "objects.npy"
    obj = np.empty(20_000, dtype=object)
    for i in range(len(obj)):
        obj[i] = {"id": i, "name": f"item{i}", "score": float(i)}
    np.save(pn, obj, allow_pickle=True)
    row("numpy object array", "np.load(allow_pickle=True)", pn, lambda: safeload.load(pn),
        lambda: np.load(pn, allow_pickle=True))
    pz = tmp / "arrays.npz"
    np.savez(pz, **arrays)
    row("npz (stored)", "np.load + read all", pz, lambda: safeload.load(pz),
        lambda: (lambda z: [z[k] for k in z.files])(np.load(pz)))
    try:
        from safetensors.numpy import load_file, save_file

        pt = tmp / "arrays.safetensors"
        save_file(arrays, str(pt))
        row("safetensors", "safetensors.numpy.load_file", pt, lambda: safeload.load(pt), lambda: load_file(str(pt)))
    except ImportError:
        pass
    pp = tmp / "dict.pkl"
    pp.write_bytes(pickle.dumps({f"k{i}": i for i in range(200_000)}, protocol=4))
    with patched("pickle"):
        patched_pickle_load = pickle.load
        row("200k-entry dict via patched pickle.load", "C pickle.load", pp,
            lambda: patched_pickle_load(open(pp, "rb")), lambda: pickle_load_orig(open(pp, "rb")))
    pg = tmp / "dict.pkl.gz"
    pg.write_bytes(gzip.compress(pp.read_bytes()))
    row("gzip pickle", "gzip + C pickle.loads", pg, lambda: safeload.load(pg),
        lambda: pickle.loads(gzip.decompress(_read(pg))))
    for name, blob in (("MXNet .params", _mxnet_params(arrays)), ("MindSpore .ckpt", _mindspore(arrays)),
                       ("Paddle DenseTensor", _paddle_binary(arrays))):
        path = tmp / name.replace(" ", "_")
        path.write_bytes(blob)
        row(name, "read the file", path, lambda path=path: safeload.load(path), lambda path=path: _read(path))
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}; median of {repeat} runs\n")
    print("| capability | baseline | MB | baseline ms | safeload ms | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


joblib_load_orig = None
pickle_load_orig = pickle.load
try:
    import joblib as _joblib

    joblib_load_orig = _joblib.load
except ImportError:
    pass

_ = (io, os)

if __name__ == "__main__":
    main()
