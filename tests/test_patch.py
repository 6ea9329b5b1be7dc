"""``safeload.patch()`` routes the frameworks' loaders through safeload: malicious files are refused (no marker is
created), benign ones load as before, signatures are kept, and ``unpatch()`` restores everything.

torch, numpy, joblib and pickle are the real modules. Paddle and MegEngine cannot be installed here, so their
wrappers are checked against stand-in modules that record what the wrapper hands them.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import safeload
from samples_path import SAMPLES as SHARED_SAMPLES
from safeload._patch import Unpickler, patch, patched, unpatch

SAMPLES = SHARED_SAMPLES
MARKER = "MARKER"


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(autouse=True)
def _restore():
    yield
    unpatch()


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _no_marker(path: Path) -> None:
    assert not (path / MARKER).exists(), "the payload ran"


def test_patch_keeps_signatures_and_unpatch_restores():
    torch = pytest.importorskip("torch")
    joblib = pytest.importorskip("joblib")
    originals = {"torch.load": torch.load, "np.load": np.load, "joblib.load": joblib.load,
                 "pickle.load": pickle.load, "pickle.loads": pickle.loads, "pickle.Unpickler": pickle.Unpickler}
    sigs = {k: inspect.signature(v) for k, v in originals.items() if k != "pickle.Unpickler"}
    done = patch()
    assert {"torch", "numpy", "joblib", "pickle"} <= set(done)
    assert torch.load is not originals["torch.load"] and pickle.Unpickler is Unpickler
    now = {"torch.load": torch.load, "np.load": np.load, "joblib.load": joblib.load, "pickle.load": pickle.load,
           "pickle.loads": pickle.loads}
    for k, v in now.items():
        assert inspect.signature(v) == sigs[k], k
    patch("numpy")  # patching twice keeps the first original
    unpatch()
    assert torch.load is originals["torch.load"] and np.load is originals["np.load"]
    assert pickle.Unpickler is originals["pickle.Unpickler"] and pickle.loads is originals["pickle.loads"]


def test_patched_context_restores():
    original = np.load
    with patched("numpy") as done:
        assert done == ["numpy"] and np.load is not original
    assert np.load is original
    with pytest.raises(ValueError):
        patch("tensorflow")


# ---- torch ----------------------------------------------------------------------------------------------------------

def test_torch_load_refuses_payload_even_with_weights_only_false(scratch):
    torch = pytest.importorskip("torch")
    path = scratch / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Payload()}, path)
    with patched("torch"):
        with pytest.raises(safeload.SafeLoadError):
            torch.load(path, weights_only=False)
    _no_marker(scratch)


def test_torch_load_benign_unchanged(scratch):
    torch = pytest.importorskip("torch")
    ref = torch.load(SAMPLES / "pytorch" / "state_dict.pt", weights_only=True)
    with patched("torch"):
        got = torch.load(SAMPLES / "pytorch" / "state_dict.pt", weights_only=False, map_location="cpu")
    assert type(got) is type(ref) and list(got) == list(ref)
    assert all(type(got[k]) is type(ref[k]) and torch.equal(got[k], ref[k]) for k in ref)


def test_torch_save_is_checked(scratch):
    torch = pytest.importorskip("torch")
    with patched("torch"):
        torch.save({"w": torch.ones(2)}, scratch / "ok.pt")
        with pytest.raises(safeload.SafeLoadError) as info:
            torch.save({"x": _Payload()}, scratch / "bad.pt")
    assert "would refuse" in info.value.what
    _no_marker(scratch)


# ---- numpy ----------------------------------------------------------------------------------------------------------

def _object_array(*items):
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def test_numpy_load_refuses_payloads(scratch):
    np.save(scratch / "evil.npy", _object_array("a", _Payload()), allow_pickle=True)
    np.savez(scratch / "evil.npz", ok=np.arange(3), bad=_object_array(_Payload()))
    (scratch / "evil.pkl").write_bytes(pickle.dumps(_Payload()))
    with patched("numpy"):
        with pytest.raises(safeload.SafeLoadError):
            np.load(scratch / "evil.npy", allow_pickle=True)
        npz = np.load(scratch / "evil.npz", allow_pickle=True)
        assert isinstance(npz, np.lib.npyio.NpzFile)
        np.testing.assert_array_equal(npz["ok"], np.arange(3))
        with pytest.raises(safeload.SafeLoadError):
            npz["bad"]
        with pytest.raises(safeload.SafeLoadError):
            np.load(scratch / "evil.pkl", allow_pickle=True)
        with open(scratch / "evil.npy", "rb") as f, pytest.raises(safeload.SafeLoadError):
            np.load(f, allow_pickle=True)
    _no_marker(scratch)


def test_numpy_load_benign_unchanged(scratch):
    obj = _object_array({"a": 1}, "x", [1, 2])
    np.save(scratch / "obj.npy", obj, allow_pickle=True)
    np.savez(scratch / "mixed.npz", a=np.arange(4.0), o=obj)
    np.save(scratch / "plain.npy", np.arange(6).reshape(2, 3))
    (scratch / "d.pkl").write_bytes(pickle.dumps({"k": np.arange(2)}))
    with patched("numpy"):
        assert np.load(scratch / "obj.npy", allow_pickle=True).tolist() == obj.tolist()
        mixed = np.load(scratch / "mixed.npz", allow_pickle=True)
        assert mixed["o"].tolist() == obj.tolist() and sorted(mixed.files) == ["a", "o"]
        mm = np.load(scratch / "plain.npy", mmap_mode="r", allow_pickle=True)
        assert isinstance(mm, np.memmap) and mm.tolist() == [[0, 1, 2], [3, 4, 5]]
        d = np.load(scratch / "d.pkl", allow_pickle=True)
        assert d["k"].tolist() == [0, 1]
        with pytest.raises(ValueError):
            np.load(scratch / "obj.npy")  # allow_pickle=False stays numpy's own refusal
        py2 = np.load(SAMPLES / "numpy" / "py2_np1.16_object_dict_0d.npy", allow_pickle=True, encoding="latin1")
        assert isinstance(py2.item(), dict)


# ---- joblib ---------------------------------------------------------------------------------------------------------

def test_joblib_load_refuses_payloads_and_loads_benign(scratch):
    joblib = pytest.importorskip("joblib")
    joblib.dump({"w": np.arange(3), "x": _Payload()}, scratch / "evil.joblib", compress=3)
    joblib.dump({"w": np.arange(3.0), "b": [np.ones(2)]}, scratch / "ok.joblib")
    ref = joblib.load(scratch / "ok.joblib")
    with patched("joblib"):
        with pytest.raises(safeload.SafeLoadError):
            joblib.load(scratch / "evil.joblib")
        got = joblib.load(scratch / "ok.joblib")
    _no_marker(scratch)
    np.testing.assert_array_equal(got["w"], ref["w"])
    np.testing.assert_array_equal(got["b"][0], ref["b"][0])


def test_joblib_dump_pins_protocol_and_checks(scratch):
    joblib = pytest.importorskip("joblib")
    with patched("joblib"):
        joblib.dump({"w": np.arange(3)}, scratch / "p.joblib")
        assert (scratch / "p.joblib").read_bytes()[:2] == b"\x80\x04"
        joblib.dump({"w": 1}, scratch / "p5.joblib", protocol=5)
        assert (scratch / "p5.joblib").read_bytes()[:2] == b"\x80\x05"
        with pytest.raises(safeload.UnsafeGlobalError):
            joblib.dump({"x": _Payload()}, scratch / "bad.joblib")
    _no_marker(scratch)


def test_joblib_load_with_sklearn_policy(scratch):
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    from safeload.policies import sklearn as sk_policy

    path = SAMPLES / "joblib_sklearn" / "pipeline_logreg.joblib"
    with patched("joblib", policy=sk_policy.POLICY):
        model = joblib.load(path)
    assert type(model).__name__ == "Pipeline"


# ---- pickle ---------------------------------------------------------------------------------------------------------

def test_pickle_functions_refuse_payloads(scratch):
    evil = pickle.dumps(_Payload())
    with patched("pickle"):
        with pytest.raises(safeload.SafeLoadError):
            pickle.loads(evil)
        with pytest.raises(safeload.SafeLoadError):
            pickle.load(io.BytesIO(evil))
        with pytest.raises(safeload.SafeLoadError):
            pickle.Unpickler(io.BytesIO(evil)).load()
    _no_marker(scratch)


def test_pickle_functions_keep_stream_semantics():
    stream = io.BytesIO(pickle.dumps({"a": 1}) + pickle.dumps([1, 2]) + b"tail")
    with patched("pickle"):
        assert pickle.load(stream) == {"a": 1}
        assert pickle.Unpickler(stream).load() == [1, 2]
        assert stream.read() == b"tail"
        assert pickle.loads(pickle.dumps((1, "x", b"y", 2.5), protocol=2)) == (1, "x", b"y", 2.5)
        assert pickle.loads(pickle.dumps(b"abc", protocol=0), encoding="bytes") == b"abc"
        with pytest.raises(EOFError):
            pickle.load(io.BytesIO(b""))


def test_torch_with_safeload_unpickler_refuses_instead_of_running(scratch):
    torch = pytest.importorskip("torch")
    module = types.ModuleType("safeload_pickle_module")
    module.Unpickler = Unpickler
    module.load = safeload.load
    module.__name__ = "safeload"
    torch.save({"x": _Payload()}, scratch / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(scratch / "evil.pt", pickle_module=module, weights_only=False)
    _no_marker(scratch)


# ---- Paddle and MegEngine (stand-in modules) ------------------------------------------------------------------------

@pytest.fixture
def fake_paddle(monkeypatch):
    paddle = types.ModuleType("paddle")
    saved = {}

    def load(path, **configs):
        raise AssertionError("the original paddle.load must not run")

    def save(obj, path, protocol=4, **configs):
        saved["protocol"] = protocol
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)

    paddle.load, paddle.save = load, save
    paddle.to_tensor = lambda arr: types.SimpleNamespace(array=arr, name=None)
    monkeypatch.setitem(sys.modules, "paddle", paddle)
    return paddle, saved


def test_paddle_wrapper(fake_paddle, scratch):
    paddle, saved = fake_paddle
    assert patch("paddle") == ["paddle"]
    sd = paddle.load(str(SAMPLES / "paddle" / "linear.pdparams"))
    assert set(sd) == {"weight", "bias"} and sd["weight"].name == "linear_0.w_0"
    arrays = paddle.load(str(SAMPLES / "paddle" / "linear.pdparams"), return_numpy=True)
    assert isinstance(arrays["weight"], np.ndarray)
    t = paddle.load(str(SAMPLES / "paddle" / "weight.pdtensor"))
    assert t.array.shape == (3, 4)
    (scratch / "evil.pdparams").write_bytes(pickle.dumps({"w": np.ones(2), "x": _Payload()}, protocol=2))
    with pytest.raises(safeload.SafeLoadError):
        paddle.load(str(scratch / "evil.pdparams"))
    with pytest.raises(safeload.FormatError):
        paddle.load(str(scratch / "no_such_prefix"))
    paddle.save({"w": np.ones(2)}, str(scratch / "out.pdparams"))
    assert saved["protocol"] == 4
    _no_marker(scratch)


def test_megengine_wrapper(monkeypatch, scratch):
    mge = types.ModuleType("megengine")
    mge.load = lambda f, map_location=None, pickle_module=pickle: pickle_module.load(f)
    mge.save = lambda obj, f, pickle_module=pickle, pickle_protocol=None: open(f, "wb").write(
        pickle_module.dumps(obj, protocol=pickle_protocol))
    mge.Tensor = lambda arr: ("Tensor", arr.shape)
    mge.Parameter = lambda arr: ("Parameter", arr.shape)
    monkeypatch.setitem(sys.modules, "megengine", mge)
    original_load = mge.load
    # safeload as megengine.load's pickle_module, without patching
    with open(SAMPLES / "megengine" / "state_dict.pkl", "rb") as f:
        assert "fc.weight" in original_load(f, pickle_module=safeload)
    patch("megengine")
    t = mge.load(str(SAMPLES / "megengine" / "tensors.pkl"))
    assert t["t"] == ("Tensor", (2,)) and t["p"] == ("Parameter", (2, 2))
    mge.save({"w": np.ones(2)}, str(scratch / "m.pkl"))
    assert (scratch / "m.pkl").read_bytes()[:2] == b"\x80\x04"
    with pytest.raises(safeload.SafeLoadError):
        mge.load(str(SAMPLES / "megengine" / "whole_module.pkl"))


# ---- every alias of the pickle loaders (a child process, as a real program would be) --------------------------------

_ALIASES_CHILD = r"""
import io, json, os, pickle, sys, _pickle
from multiprocessing.reduction import ForkingPickler
from pickle import loads as early_loads  # bound before patch(): an alias patch() must find

class EarlySub(pickle._Unpickler):  # a subclass of the pure-Python unpickler made before patch()
    pass

import safeload
data = open(sys.argv[1], "rb").read()
safeload.patch("pickle")
calls = {
    "pickle.load": lambda: pickle.load(io.BytesIO(data)),
    "pickle.loads": lambda: pickle.loads(data),
    "pickle.Unpickler": lambda: pickle.Unpickler(io.BytesIO(data)).load(),
    "pickle._load": lambda: pickle._load(io.BytesIO(data)),
    "pickle._loads": lambda: pickle._loads(data),
    "pickle._Unpickler": lambda: pickle._Unpickler(io.BytesIO(data)).load(),
    "_pickle.load": lambda: _pickle.load(io.BytesIO(data)),
    "_pickle.loads": lambda: _pickle.loads(data),
    "_pickle.Unpickler": lambda: _pickle.Unpickler(io.BytesIO(data)).load(),
    "from pickle import loads": lambda: early_loads(data),
    "pickle._Unpickler subclass": lambda: EarlySub(io.BytesIO(data)).load(),
    "ForkingPickler.loads": lambda: ForkingPickler.loads(data),
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = "accepted"
    except safeload.SafeLoadError:
        out[name] = "refused"
    except BaseException as exc:
        out[name] = type(exc).__name__
    out[name] += " marker" if os.path.exists(sys.argv[2]) else ""
safeload.unpatch()
out["restored"] = pickle.loads is _pickle.loads and early_loads is _pickle.loads and ForkingPickler.loads is _pickle.loads
print(json.dumps(out))
"""


@pytest.mark.parametrize("proto", [0, 2, 5])
def test_patch_covers_every_pickle_alias(proto: int, tmp_path: Path) -> None:
    import json
    import subprocess

    import oracle

    path = tmp_path / "payload.pkl"
    path.write_bytes(oracle.payload(proto))
    assert set(oracle.live(path, ("pickle", "pickle_py"))) == {"pickle", "pickle_py"}  # live natively
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", _ALIASES_CHILD, str(path), oracle.MARKER], cwd=work,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("restored") is True
    assert out == dict.fromkeys(out, "refused"), out
    assert len(out) == 12
    assert not (work / oracle.MARKER).exists()
