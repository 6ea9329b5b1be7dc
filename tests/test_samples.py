"""Real files written by numpy and Paddle load to the same values as the frameworks' own loaders.

The reference loaders (np.load / pickle.load with encoding='latin1') run in a subprocess, and their results come
back as JSON with arrays as .npy bytes (allow_pickle=False), so no real unpickling happens in this process.
"""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from samples_path import SAMPLES as SHARED_SAMPLES

safeload = pytest.importorskip("safeload")

SAMPLES = SHARED_SAMPLES
NUMPY = SAMPLES / "numpy"
PADDLE = SAMPLES / "paddle"

if not SAMPLES.is_dir():
    pytest.skip(f"samples not found at {SAMPLES}", allow_module_level=True)

# Files whose pickles name RNG or masked-array globals (see samples/numpy/globals.txt): refused by default.
NEEDS_STUB = {
    "np1_pickle_variants_proto2.pkl", "np1_pickle_variants_proto4.pkl", "np1_pickle_variants_proto5.pkl",
    "np2_pickle_variants_proto2.pkl", "np2_pickle_variants_proto4.pkl", "np2_pickle_variants_proto5.pkl",
}
STUB_KEYS = {"rs", "gen", "masked"}

NUMPY_FILES = sorted(p for p in NUMPY.glob("*") if p.suffix in (".npy", ".pkl")) if NUMPY.is_dir() else []
PADDLE_FILES = sorted(
    p for p in PADDLE.rglob("*")
    if p.suffix in (".pdparams", ".pdopt", ".pdtensor") and "_binary" not in p.name
) if PADDLE.is_dir() else []

_REFERENCE = textwrap.dedent(
    r"""
    import base64, io, json, pickle, sys
    from collections import OrderedDict
    import numpy as np

    def enc(x):
        if x is None or isinstance(x, bool):
            return {"t": "const", "v": x}
        if type(x) is int:
            return {"t": "int", "v": str(x)}
        if type(x) is float:
            return {"t": "float", "v": repr(x)}
        if type(x) is str:
            return {"t": "str", "v": x}
        if type(x) is bytes:
            return {"t": "bytes", "v": base64.b64encode(x).decode()}
        if type(x) in (dict, OrderedDict):
            return {"t": type(x).__name__, "v": [[enc(k), enc(v)] for k, v in x.items()]}
        if type(x) in (list, tuple):
            return {"t": type(x).__name__, "v": [enc(v) for v in x]}
        if type(x) is np.ndarray:
            if x.dtype.hasobject:
                return {"t": "objarray", "shape": list(x.shape), "v": [enc(v) for v in x.reshape(-1).tolist()]}
            buf = io.BytesIO(); np.save(buf, x, allow_pickle=False)
            return {"t": "ndarray", "v": base64.b64encode(buf.getvalue()).decode()}
        if isinstance(x, np.generic) and type(x).__module__ == "numpy":
            buf = io.BytesIO(); np.save(buf, np.asarray(x), allow_pickle=False)
            return {"t": "npscalar", "v": base64.b64encode(buf.getvalue()).decode()}
        return {"t": "other", "v": type(x).__module__ + "." + type(x).__qualname__}

    out = {}
    for path in sys.argv[1:]:
        if path.endswith(".npy"):
            obj = np.load(path, allow_pickle=True, encoding="latin1")
        else:
            with open(path, "rb") as f:
                obj = pickle.load(f, encoding="latin1")
        out[path] = enc(obj)
    json.dump(out, sys.stdout)
    """
)


def _dec(node: dict) -> object:
    t, v = node["t"], node["v"]
    if t == "const":
        return v
    if t == "int":
        return int(v)
    if t == "float":
        return float(v)
    if t == "str":
        return v
    if t == "bytes":
        return base64.b64decode(v)
    if t in ("dict", "OrderedDict"):
        items = [(_dec(k), _dec(x)) for k, x in v]
        return dict(items) if t == "dict" else OrderedDict(items)
    if t == "list":
        return [_dec(x) for x in v]
    if t == "tuple":
        return tuple(_dec(x) for x in v)
    if t == "ndarray":
        return np.load(io.BytesIO(base64.b64decode(v)), allow_pickle=False)
    if t == "npscalar":
        return np.load(io.BytesIO(base64.b64decode(v)), allow_pickle=False)[()]
    if t == "objarray":
        arr = np.empty(len(v), dtype=object)
        for i, x in enumerate(v):
            arr[i] = _dec(x)
        return arr.reshape(node["shape"])
    if t == "other":
        return Other(v)
    raise AssertionError(t)


class Other:
    """A value the reference loader produced that is not plain data (RNG, masked array): safeload gives a Stub."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"Other({self.qualname})"


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    files = [str(p) for p in NUMPY_FILES + PADDLE_FILES]
    proc = subprocess.run([sys.executable, "-c", _REFERENCE, *files], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {k: _dec(v) for k, v in json.loads(proc.stdout).items()}


def assert_deep_equal(got: object, want: object, where: str = "$") -> None:
    """Types, dtypes, shapes and values (nan-aware) all equal; Other(...) must be a safeload.Stub."""
    if isinstance(want, Other):
        assert isinstance(got, safeload.Stub), f"{where}: expected a Stub for {want.qualname}, got {got!r}"
        return
    if isinstance(want, np.ndarray):
        assert type(got) is np.ndarray, f"{where}: {type(got)} is not ndarray"
        assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
        assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
        if want.dtype.hasobject:
            for i, (g, w) in enumerate(zip(got.reshape(-1), want.reshape(-1))):
                assert_deep_equal(g, w, f"{where}[{i}]")
        elif want.dtype.names is not None:
            assert got.tobytes() == want.tobytes(), f"{where}: values differ"
        else:
            assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), f"{where}: values differ"
        return
    if isinstance(want, np.generic):
        assert type(got) is type(want), f"{where}: {type(got)} != {type(want)}"
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), f"{where}: {got!r} != {want!r}"
        return
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            assert_deep_equal(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_deep_equal(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == want or (math.isnan(got) and math.isnan(want)), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _id(p: Path) -> str:
    return str(p.relative_to(SAMPLES))


# ------------------------------------------------------------------------------------------------------------


def test_samples_present():
    assert len(NUMPY_FILES) >= 20 and len(PADDLE_FILES) >= 8, (len(NUMPY_FILES), len(PADDLE_FILES))


@pytest.mark.parametrize("path", [p for p in NUMPY_FILES if p.name not in NEEDS_STUB], ids=_id)
def test_numpy_sample_matches_numpy(path: Path, reference: dict[str, object]):
    assert_deep_equal(safeload.load(path), reference[str(path)])


@pytest.mark.parametrize("path", [p for p in NUMPY_FILES if p.name in NEEDS_STUB], ids=_id)
def test_numpy_rng_and_masked_need_stub(path: Path, reference: dict[str, object]):
    with pytest.raises(safeload.UnsafeGlobalError) as info:
        safeload.load(path)
    assert info.value.module.startswith("numpy.random") or info.value.module.startswith("numpy.ma")
    got = safeload.load(path, unknown="stub")
    want = reference[str(path)]
    assert isinstance(want, dict) and set(STUB_KEYS) <= set(want)
    for key in STUB_KEYS:
        assert isinstance(want[key], Other)
    assert_deep_equal(got, want)
    # the plain entries are real values, not stubs
    assert type(got["arr"]) is np.ndarray and type(got["f64"]) is np.float64 and type(got["bool"]) is np.bool_


@pytest.mark.parametrize("path", PADDLE_FILES, ids=_id)
def test_paddle_sample_matches_pickle(path: Path, reference: dict[str, object]):
    got = safeload.load(path)
    assert_deep_equal(got, reference[str(path)])


def test_paddle_densetensor_eval_form():
    # the one file that names builtins.eval: safeload returns the ndarray without calling eval
    path = PADDLE / "densetensor.pdtensor"
    if not path.exists():
        pytest.skip("missing sample")
    got = safeload.load(path)
    assert type(got) is np.ndarray and got.dtype == np.float32 and got.shape == (3, 4)


def test_paddle_state_dict_layout():
    path = PADDLE / "linear.pdparams"
    if not path.exists():
        pytest.skip("missing sample")
    sd = safeload.load(path)
    assert set(sd) == {"weight", "bias", "StructuredToParameterName@@"}
    assert sd["weight"].shape == (3, 4) and sd["bias"].shape == (4,)
    assert sd["weight"].flags.writeable


@pytest.mark.parametrize("path", [p for p in NUMPY_FILES + PADDLE_FILES if p.name not in NEEDS_STUB][:6], ids=_id)
def test_load_from_fileobj_and_bytes(path: Path, reference: dict[str, object]):
    data = path.read_bytes()
    assert_deep_equal(safeload.load(io.BytesIO(data)), reference[str(path)])
    assert_deep_equal(safeload.load(data), reference[str(path)])
    with open(path, "rb") as f:
        assert_deep_equal(safeload.load(f), reference[str(path)])


def test_py2_sample_needs_latin1_and_gets_it():
    path = NUMPY / "py2_np1.16_dict_proto2.pkl"
    if not path.exists():
        pytest.skip("missing sample")
    got = safeload.load(path)
    assert got["name"] == "layer" and type(got["lr"]) is np.float64 and got["lr"] == 0.1
    assert np.array_equal(got["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


def test_samples_import_nothing_new():
    before = set(sys.modules)
    for p in NUMPY_FILES + PADDLE_FILES:
        try:
            safeload.load(p, unknown="stub")
        except safeload.SafeLoadError:
            pass
    new = {m for m in set(sys.modules) - before if not m.startswith(("safeload", "numpy"))}
    assert not new, new
    assert "numpy.random._pickle" not in (set(sys.modules) - before)
    assert "numpy.ma" not in (set(sys.modules) - before)
