"""Real files from every framework load, and equal what the framework's own loader returns.

References:
* joblib / scikit-learn: ``joblib.load`` (or ``pickle.load``) run in a subprocess on the benign samples. Each object
  is reduced to its pickled form (``__reduce_ex__(4)``: class, arguments, state), the form a ``Stub`` records, and
  arrays travel as ``.npy`` bytes, so nothing is unpickled in this process.
* MegEngine and MXNet publish wheels for CPython 3.8 only (``pip download`` finds no cp311 wheel), so they cannot
  run beside this suite: values are checked against what the samples' ``make_*.py`` scripts wrote, and formats
  against each other (a MegEngine whole module against its state_dict, MXNet ``save_parameters`` against
  ``export``); MegEngine's wrapper is tested against a stand-in of ``megengine.load`` in tests/test_patch.py.
* Paddle and MindSpore samples are checked the same way here (a binary ``.pdiparams`` against the safetensors file
  Paddle saved at the same step, a MindSpore ``.ckpt`` against its safetensors twin), in every lane; the real
  paddlepaddle and mindspore wheels are compared in tests/test_real_frameworks.py, their own lane of .ci/run.
* safetensors: the ``safetensors`` package.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import safeload
from samples_path import SAMPLES as SHARED_SAMPLES
from safeload._containers.paddle import paddle_result
from safeload._state_dict import state_dict

SAMPLES = SHARED_SAMPLES
if not SAMPLES.is_dir():
    pytest.skip(f"samples not found at {SAMPLES}", allow_module_level=True)

JOBLIB = SAMPLES / "joblib_sklearn"
SAMPLES_SKLEARN = "1.9.1"  # joblib_sklearn/README.md: the version that wrote the samples
PADDLE = SAMPLES / "paddle"
MGE = SAMPLES / "megengine"
MS = SAMPLES / "mindspore"
MX = SAMPLES / "mxnet"

# One encoder for both sides. ``is_stub``/``stub_form`` let the safeload side describe Stubs exactly as the
# reference side describes live objects through __reduce_ex__.
ENCODER = r"""
import base64, io, types
import numpy as np

def _npy(x):
    buf = io.BytesIO(); np.save(buf, x, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode()

def _qualname(t):
    return getattr(t, "__module__", "?") + "." + getattr(t, "__qualname__", getattr(t, "__name__", "?"))

def enc(x, is_stub=lambda x: False, stub_form=None, depth=0):
    e = lambda v: enc(v, is_stub, stub_form, depth + 1)
    if depth > 200:
        return {"t": "deep"}
    if x is None or type(x) is bool:
        return {"t": "const", "v": x}
    if type(x) is int:
        return {"t": "int", "v": str(x)}
    if type(x) is float:
        return {"t": "float", "v": repr(x)}
    if type(x) is str:
        return {"t": "str", "v": x}
    if type(x) in (bytes, bytearray):
        return {"t": "bytes", "v": base64.b64encode(bytes(x)).decode()}
    if type(x) in (dict,) or type(x).__name__ == "OrderedDict":
        return {"t": "dict", "v": [[e(k), e(v)] for k, v in x.items()]}
    if type(x) in (list, tuple):
        return {"t": type(x).__name__, "v": [e(v) for v in x]}
    if type(x) in (set, frozenset):
        return {"t": "set", "v": sorted(repr(e(v)) for v in x)}
    if type(x) is np.ndarray:
        if x.dtype.hasobject:
            return {"t": "objarray", "shape": list(x.shape), "v": [e(v) for v in x.reshape(-1).tolist()]}
        return {"t": "ndarray", "v": _npy(x)}
    if isinstance(x, np.generic) and type(x).__module__ == "numpy":
        return {"t": "npscalar", "v": _npy(np.asarray(x))}
    if isinstance(x, np.dtype):
        return {"t": "dtype", "v": str(x)}
    if is_stub(x):
        qualname, args, state = stub_form(x)
        if args is None:
            return {"t": "cls", "v": qualname}
        return {"t": "obj", "cls": qualname, "args": [e(a) for a in args], "state": e(state)}
    if isinstance(x, (type, types.FunctionType, types.BuiltinFunctionType)) or callable(x) and hasattr(x, "__qualname__"):
        return {"t": "cls", "v": _qualname(x)}
    red = x.__reduce_ex__(4)
    func, args = red[0], red[1]
    state = red[2] if len(red) > 2 else None
    if getattr(func, "__name__", "") == "__newobj__":
        qualname, args = _qualname(args[0]), args[1:]
    else:
        qualname = _qualname(func)
    return {"t": "obj", "cls": qualname, "args": [e(a) for a in args], "state": e(state)}
"""

_REFERENCE = ENCODER + textwrap.dedent(
    r"""
    import json, pickle, sys
    out = {}
    for path in sys.argv[1:]:
        if ".joblib" in path:
            import joblib
            obj = joblib.load(path)
        else:
            with open(path, "rb") as f:
                obj = pickle.load(f, encoding="latin1")
        out[path] = enc(obj)
    print(json.dumps(out))
    """
)

_ns: dict = {}
exec(ENCODER, _ns)  # noqa: S102 - our own encoder text, shared with the subprocess


def _stub_form(stub):
    qualname = stub.qualname
    if stub.args is None:
        return qualname, None, None
    state = stub.state
    return qualname, stub.args, state


def _enc_safeload(obj):
    return _ns["enc"](obj, lambda x: isinstance(x, safeload.Stub), _stub_form)


def _canon(tree):
    """Arrays compared by value: decode .npy payloads (dtype and shape kept)."""
    if isinstance(tree, dict):
        if tree.get("t") in ("ndarray", "npscalar"):
            arr = np.load(io.BytesIO(base64.b64decode(tree["v"])), allow_pickle=False)
            return ("array", str(arr.dtype), arr.shape, arr.tobytes())
        return {k: _canon(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_canon(v) for v in tree]
    return tree


def _reference(paths):
    pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    proc = subprocess.run([sys.executable, "-c", _REFERENCE, *map(str, paths)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


JOBLIB_FILES = sorted(p for p in JOBLIB.rglob("*") if p.is_file() and (".joblib" in p.name or p.suffix == ".pkl"))


@pytest.fixture(scope="module")
def joblib_reference():
    return _reference(JOBLIB_FILES)


@pytest.mark.parametrize("path", JOBLIB_FILES, ids=lambda p: str(p.relative_to(JOBLIB)))
def test_joblib_and_sklearn_equal_joblib_load(path, joblib_reference):
    if "lz4" in path.name:
        pytest.importorskip("lz4")
    sklearn = pytest.importorskip("sklearn")
    if sklearn.__version__ != SAMPLES_SKLEARN:
        # joblib.load runs the installed scikit-learn's __setstate__, which rewrites what other versions pickled
        pytest.skip(f"the samples were written by scikit-learn {SAMPLES_SKLEARN}; {sklearn.__version__} is installed")
    obj = safeload.load(path, unknown="stub")
    assert _canon(_enc_safeload(obj)) == _canon(joblib_reference[str(path)])


def test_joblib_arrays_dict_values():
    obj = safeload.load(JOBLIB / "arrays_dict.joblib")
    assert isinstance(obj, dict)
    for value in obj.values():
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            assert value.flags.writeable
    proto2 = safeload.load(JOBLIB / "arrays_dict_proto2.joblib")
    assert isinstance(proto2, dict)


def test_joblib_compressors_give_the_same_object():
    base = _enc_safeload(safeload.load(JOBLIB / "pipeline_logreg.joblib", unknown="stub"))
    for suffix in (".gz", ".bz2", ".xz", ".lzma"):
        other = safeload.load(JOBLIB / f"pipeline_logreg.joblib{suffix}", unknown="stub")
        assert _canon(_enc_safeload(other)) == _canon(base), suffix
    zlib3 = safeload.load(JOBLIB / "pipeline_logreg_zlib3.joblib", unknown="stub")
    assert _canon(_enc_safeload(zlib3)) == _canon(base)


def test_joblib_generated_files_roundtrip(tmp_path):
    joblib = pytest.importorskip("joblib")
    value = {
        "c": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "big_endian": np.arange(5, dtype=">i4"),
        "empty": np.zeros((0, 3)),
        "scalar0d": np.array(7.5),
        "obj": np.array([{"a": 1}, "x", None], dtype=object),
        "nested": [np.ones(3, dtype=np.uint8), (np.zeros(2, dtype=np.complex64),)],
        "structured": np.zeros(2, dtype=[("x", "<i4"), ("y", "<f8")]),
        "matrix": np.asmatrix(np.eye(2)),
    }
    for protocol in (2, 3, 4, 5):
        for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)):
            path = tmp_path / f"v{protocol}.joblib"
            joblib.dump(value, path, protocol=protocol, compress=compress)
            got = safeload.load(path, allow=[])
            ref = joblib.load(path)  # benign data we just wrote
            assert set(got) == set(ref)
            for key in ref:
                _assert_same(got[key], ref[key])


def _assert_same(a, b):
    if isinstance(b, np.ndarray):
        assert type(a) is type(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        if b.dtype.hasobject:
            assert a.tolist() == b.tolist()
        else:
            assert a.tobytes() == b.tobytes()
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


# ---- Paddle --------------------------------------------------------------------------------------------------------

def test_paddle_binary_tensor_formats_agree():
    """weight_binary.pdtensor, jit/linear.pdiparams and linear.safetensors were all saved after the same step."""
    weight = safeload.load(PADDLE / "weight_binary.pdtensor")
    assert weight.dtype == np.float32 and weight.shape == (3, 4)
    st = safeload.load(PADDLE / "linear.safetensors")
    assert set(st) == {"weight", "bias"}
    np.testing.assert_array_equal(weight, st["weight"])
    jit = safeload.load(PADDLE / "jit" / "linear.pdiparams")
    assert isinstance(jit, list) and len(jit) == 2  # sorted var names: linear_0.b_0, linear_0.w_0
    np.testing.assert_array_equal(jit[0], st["bias"])
    np.testing.assert_array_equal(jit[1], st["weight"])
    infer = safeload.load(PADDLE / "static" / "infer.pdiparams")
    assert all(isinstance(a, np.ndarray) for a in (infer if isinstance(infer, list) else [infer]))


def test_paddle_load_semantics():
    sd = safeload.load(PADDLE / "linear.pdparams")
    assert "StructuredToParameterName@@" in sd  # safeload.load returns the pickle's content
    result = paddle_result(sd)
    assert set(result) == {"weight", "bias"}
    assert set(paddle_result(sd, keep_name_table=True)) == {"weight", "bias", "StructuredToParameterName@@"}
    name, array = safeload.load(PADDLE / "weight.pdtensor")
    assert isinstance(name, str) and array.shape == (3, 4)
    np.testing.assert_array_equal(paddle_result((name, array)), array)
    dense = safeload.load(PADDLE / "densetensor.pdtensor")
    np.testing.assert_array_equal(dense, array)
    nested = paddle_result(safeload.load(PADDLE / "nested_checkpoint.pdparams"))
    assert nested["epoch"] == 3
    assert all(isinstance(v, np.ndarray) for v in nested["model"].values())
    big = {"w@@.0": np.arange(4.0), "w@@.1": np.arange(4.0, 6.0),
           "UnpackBigParamInfor@@": {"w": {"OriginShape": (2, 3), "slices": ["w@@.0", "w@@.1"]}}}
    np.testing.assert_array_equal(paddle_result(big)["w"], np.arange(6.0).reshape(2, 3))
    converted = paddle_result(sd, return_numpy=False, to_tensor=lambda arr, name: ("T", name))
    assert converted["weight"] == ("T", sd["StructuredToParameterName@@"]["weight"])


# ---- MegEngine -----------------------------------------------------------------------------------------------------

def test_megengine_tensors():
    t = safeload.load(MGE / "tensors.pkl")
    np.testing.assert_array_equal(t["t"], np.array([1.0, 2.0], np.float32))
    np.testing.assert_array_equal(t["p"], np.ones((2, 2), np.float32))
    assert t["i"].dtype == np.int32 and t["i"].tolist() == [1, 2]
    t5 = safeload.load(MGE / "tensor_proto5.pkl")
    np.testing.assert_array_equal(t5["t"], np.array([1.0, 2.0], np.float32))


def test_megengine_state_dicts_agree():
    sd = safeload.load(MGE / "state_dict.pkl")
    assert isinstance(sd, OrderedDict)
    for name in ("state_dict_keep_var.pkl", "state_dict_proto2.pkl", "state_dict_proto5_like_mge_le_1.9.pkl"):
        other = safeload.load(MGE / name)
        assert list(other) == list(sd), name
        for k in sd:
            assert other[k].dtype == sd[k].dtype
            np.testing.assert_array_equal(other[k].reshape(-1), sd[k].reshape(-1))
    ck = safeload.load(MGE / "checkpoint.pkl")
    assert ck["epoch"] == 3 and list(ck["state_dict"]) == list(sd)
    opt = safeload.load(MGE / "adam_state_dict.pkl")
    assert set(opt) == {"param_groups", "state"}


def test_megengine_whole_module_state_dict():
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.load(MGE / "whole_module.pkl")
    module = safeload.load(MGE / "whole_module.pkl", unknown="stub")
    recovered = state_dict(module)
    sd = safeload.load(MGE / "state_dict.pkl")
    assert list(recovered) == list(sd)
    for k in sd:
        assert recovered[k].shape == sd[k].shape
        np.testing.assert_array_equal(recovered[k], sd[k])


def test_megengine_tensors_when_asked(monkeypatch):
    """With MegEngine tensors asked for (the megengine.load wrapper), the checked array goes to megengine.Tensor.
    MegEngine has CPython 3.8 wheels only: a stand-in module records what safeload hands it."""
    import types

    from safeload._rebuild.megengine import WANT_TENSORS

    fake = types.ModuleType("megengine")
    fake.Tensor = lambda arr: ("Tensor", arr.tolist())
    fake.Parameter = lambda arr: ("Parameter", arr.tolist())
    monkeypatch.setitem(sys.modules, "megengine", fake)
    token = WANT_TENSORS.set(True)
    try:
        t = safeload.load(MGE / "tensors.pkl")
    finally:
        WANT_TENSORS.reset(token)
    assert t["t"] == ("Tensor", [1.0, 2.0]) and t["p"][0] == "Parameter"


# ---- MXNet ---------------------------------------------------------------------------------------------------------

A = np.arange(6, dtype=np.float32).reshape(2, 3)
B = np.array([1, 2, 3], dtype=np.int64)
RSP = np.zeros((4, 3), np.float32)
RSP[[0, 2]] = 1
CSR = np.array([[1, 0, 2], [0, 3, 0]], np.float32)


def _eq(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_mxnet_params():
    lst = safeload.load(MX / "ndlist.params")
    assert isinstance(lst, list) and _eq(lst[0], A) and _eq(lst[1], B)
    d = safeload.load(MX / "nddict.params")
    assert _eq(d["w"], A) and _eq(d["b"], B)
    assert _eq(d["h"], np.array([1.5], np.float16)) and _eq(d["u8"], np.array([7], np.uint8))
    sp = safeload.load(MX / "sparse.params")
    assert _eq(sp["rsp"], RSP) and _eq(sp["csr"], CSR)
    v3 = safeload.load(MX / "npx_v3.params")
    assert _eq(v3["w"], np.arange(6, dtype=np.float32).reshape(2, 3)) and v3["s"].shape == () and v3["s"] == 3.0


def test_mxnet_gluon_params_and_export_hold_the_same_arrays():
    net = safeload.load(MX / "gluon_net.params")
    export = safeload.load(MX / "gluon_export-0000.params")
    assert all(k.startswith(("arg:", "aux:")) for k in export)
    assert sorted(a.tobytes() for a in net.values()) == sorted(a.tobytes() for a in export.values())


def test_mxnet_pickled_ndarrays():
    assert _eq(safeload.load(MX / "ndarray_pickled.pkl")["w"], A)
    assert _eq(safeload.load(MX / "np_ndarray_pickled.pkl")["w"], np.arange(4, dtype=np.float32).reshape(2, 2))
    sp = safeload.load(MX / "sparse_pickled.pkl")
    assert _eq(sp["rsp"], RSP) and _eq(sp["csr"], CSR)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.load(MX / "gluon_trainer.states")  # the optimizer object is a class outside the policy
    states, optimizer = safeload.load(MX / "gluon_trainer.states", unknown="stub")
    assert optimizer.qualname == "mxnet.optimizer.optimizer.Adam"
    net = safeload.load(MX / "gluon_net.params")
    assert 0 < len(states) <= len(net)  # trainable parameters only (not BatchNorm's running statistics)
    for value in states.values():
        mean, var = value
        assert isinstance(mean, np.ndarray) and isinstance(var, np.ndarray) and mean.shape == var.shape


# ---- MindSpore -----------------------------------------------------------------------------------------------------

def test_mindspore_checkpoints():
    dense = safeload.load(MS / "dense.ckpt")
    assert list(dense) == ["weight", "bias"] and dense["weight"].shape == (4, 3)
    crc = safeload.load(MS / "dense_crc.ckpt")
    assert all(_eq(crc[k], dense[k]) for k in dense)
    sliced = safeload.load(MS / "sliced_SLICE_SIZE_1KB.ckpt")
    assert _eq(sliced["big"], np.arange(3000, dtype=np.float32).reshape(30, 100))
    d = safeload.load(MS / "dtypes.ckpt")
    assert _eq(d["f16"], np.arange(6, dtype=np.float16).reshape(2, 3))
    assert _eq(d["f64"], np.arange(3, dtype=np.float64))
    assert _eq(d["i32"], np.arange(4, dtype=np.int32)) and _eq(d["i64"], np.arange(4, dtype=np.int64))
    assert _eq(d["u8"], np.arange(4, dtype=np.uint8)) and _eq(d["b"], np.array([True, False]))
    assert d["bf16"].astype(np.float32).tolist() == [1.0, 2.5, -3.0]
    assert d["scalar_f32"].shape == () and d["scalar_f32"] == np.float32(1.5)


def test_mindspore_append_dict_and_safetensors_twin():
    ck = safeload.load(MS / "dense_with_adam.ckpt")
    assert ck["epoch_num"] == 3 and ck["step_num"] == 10 and ck["lr"] == np.float32(0.5)
    assert ck["tag"] == "hello" and ck["flag"] == np.bool_(True)
    st = safeload.load(MS / "dense_with_adam.safetensors")
    assert len(st) == 10
    for k, v in st.items():
        assert _eq(ck[k], v), k


def test_mindspore_encrypted_is_refused_with_directions():
    with pytest.raises(safeload.FormatError) as info:
        safeload.load(MS / "dense_aes_gcm_key0123456789abcdef.ckpt")
    assert "Encrypted" in str(info.value) and "dec_key" in info.value.fix


# ---- safetensors ---------------------------------------------------------------------------------------------------

def test_safetensors_match_the_reference_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int64),
              "e": np.zeros((0, 4), np.float16), "s": np.array(3.5), "u": np.arange(3, dtype=np.uint8)}
    path = tmp_path / "x.safetensors"
    st.save_file(arrays, str(path), metadata={"k": "v"})
    got = safeload.load(path)
    ref = st.load_file(str(path))
    assert list(got) == list(ref)
    for k in ref:
        assert _eq(got[k], ref[k])
        assert got[k].flags.writeable
    mapped = safeload.load(path, mmap=True)
    assert all(_eq(mapped[k], ref[k]) for k in ref)
    for sample in (PADDLE / "linear.safetensors", MS / "dense_with_adam.safetensors"):
        ref = st.load_file(str(sample))
        got = safeload.load(sample)
        assert list(got) == list(ref) and all(_eq(got[k], ref[k]) for k in ref)


def test_safetensors_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    tensors = {"w": torch.randn(3, 4), "h": torch.randn(2, dtype=torch.bfloat16), "i": torch.arange(3)}
    path = tmp_path / "t.safetensors"
    st.save_file(tensors, str(path), metadata={"format": "pt"})  # as transformers writes it
    got = safeload.load(path)  # format "pt" and torch importable: torch tensors, as safetensors.torch gives
    assert all(torch.equal(got[k], tensors[k]) for k in tensors)
    arrays = safeload.load(path, tensors="numpy")
    assert isinstance(arrays["w"], np.ndarray) and str(arrays["h"].dtype) == "bfloat16"


def test_framework_formats_as_torch_tensors():
    torch = pytest.importorskip("torch")
    d = safeload.load(MS / "dtypes.ckpt", tensors="torch")
    assert d["bf16"].dtype == torch.bfloat16 and d["bf16"].float().tolist() == [1.0, 2.5, -3.0]
    lst = safeload.load(MX / "ndlist.params", tensors="torch")
    assert torch.equal(lst[0], torch.from_numpy(A))


# ---- state_dict ----------------------------------------------------------------------------------------------------

def test_state_dict_from_torch_whole_module():
    pytest.importorskip("torch")
    module = safeload.load(SAMPLES / "pytorch" / "whole_module.pt", unknown="stub", tensors="numpy")
    recovered = state_dict(module)
    ref = safeload.load(SAMPLES / "pytorch" / "state_dict.pt", tensors="numpy")
    assert list(recovered) == list(ref)
    assert all(_eq(recovered[k], ref[k]) for k in ref)


def test_state_dict_rejects_other_objects():
    with pytest.raises(TypeError):
        state_dict(42)
    assert state_dict({"a": 1}) == OrderedDict(a=1)
    stub = safeload.Stub("x", "Y", ())
    stub.state = {"foo": 1}
    with pytest.raises(TypeError):
        state_dict(stub)


# ---- the opt-in scikit-learn policy --------------------------------------------------------------------------------

def test_sklearn_policy_rebuilds_working_estimators(tmp_path):
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from safeload.policies import sklearn as sk

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = (x[:, 0] > 0).astype(int)
    model = make_pipeline(StandardScaler(), PCA(n_components=3), LogisticRegression()).fit(x, y)
    for ext, dump in ((".joblib", lambda m, p: joblib.dump(m, p)), (".pkl", lambda m, p: p.write_bytes(
            __import__("pickle").dumps(m, protocol=4)))):
        path = tmp_path / f"m{ext}"
        dump(model, path)
        got = safeload.load(path, policy=sk.POLICY)
        assert type(got) is type(model)
        np.testing.assert_array_equal(got.predict_proba(x), model.predict_proba(x))
    for name in ("linreg.joblib", "pipeline_logreg.joblib.xz", "linreg.pkl"):
        assert not isinstance(safeload.load(JOBLIB / name, policy=sk.POLICY), safeload.Stub)


def test_sklearn_policy_refuses_what_it_does_not_list():
    pytest.importorskip("sklearn")
    from safeload.policies import sklearn as sk

    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.load(JOBLIB / "tree.joblib", policy=sk.POLICY)  # sklearn.tree._tree.Tree: native state
    from corpus import BUILD, EMPTY_DICT, EMPTY_TUPLE, NEWOBJ, PROTO, SETITEM, SG, SHORT_BINUNICODE, STOP

    est = SG("sklearn.linear_model._base", "LinearRegression") + EMPTY_TUPLE + NEWOBJ
    for state in (EMPTY_DICT + SHORT_BINUNICODE("__class__") + SG("builtins", "dict") + SETITEM,
                  EMPTY_DICT + SHORT_BINUNICODE("coef_") + SG("collections", "OrderedDict") + SETITEM,
                  EMPTY_DICT + SHORT_BINUNICODE("f") + SG("os", "system") + SETITEM):
        with pytest.raises(safeload.SafeLoadError):
            safeload.loads(PROTO(4) + est + state + BUILD + STOP, policy=sk.POLICY, unknown="stub")
    ok = safeload.loads(PROTO(4) + est + EMPTY_DICT + SHORT_BINUNICODE("fit_intercept") + b"\x88" + SETITEM + BUILD
                        + STOP, policy=sk.POLICY)
    assert ok.fit_intercept is True
