"""``safeload.patch()`` routes the frameworks' loaders through safeload: malicious files are refused (no marker is
created), benign ones load as before, signatures are kept, and ``unpatch()`` restores everything.

torch, numpy, joblib and pickle are the real modules. The real Paddle and MindSpore are tested in
tests/test_real_frameworks.py (a lane of .ci/run with their wheels); here, in every lane, a Paddle stand-in that
records what the wrapper hands it keeps the wrapper's contract covered. MegEngine has no wheel for this Python: its
stand-in makes megengine.load's own calls (the reason is written next to it).
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


# ---- safeload as torch.load's pickle_module (zip and legacy format) --------------------------------------------------

def _torch_checkpoint(torch):
    """A state dict with the cases a legacy loader gets wrong first: a view sharing its base's storage, several
    dtypes, a Parameter with requires_grad, nested containers, an empty tensor."""
    from collections import OrderedDict

    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {"state": OrderedDict(w=w, row=w[1], half=torch.tensor([1.5, -2.0], dtype=torch.float16),
                                 ids=torch.tensor([[1, 2], [3, -4]], dtype=torch.int64),
                                 mask=torch.tensor([True, False])),
            "param": torch.nn.Parameter(torch.ones(2, 2)), "frozen": torch.nn.Parameter(torch.ones(1),
                                                                                        requires_grad=False),
            "empty": torch.zeros(0), "meta": [1, "two", (3.0, None)]}


def _assert_same(torch, got, want):
    assert type(got) is type(want)
    if isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype and got.shape == want.shape and got.stride() == want.stride()
        assert got.requires_grad == want.requires_grad and torch.equal(got.detach(), want.detach())
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            _assert_same(torch, got[key], want[key])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            _assert_same(torch, a, b)
    else:
        assert got == want


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("opened", [False, True], ids=["path", "bytesio"])
def test_torch_load_with_safeload_as_pickle_module(legacy, opened, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "ckpt.pt"
    torch.save(_torch_checkpoint(torch), path, _use_new_zipfile_serialization=not legacy)
    assert (path.read_bytes()[:2] == b"PK") is not legacy
    want = torch.load(path, weights_only=True)

    def source():
        return io.BytesIO(path.read_bytes()) if opened else path

    got = torch.load(source(), pickle_module=safeload, map_location="cpu")
    _assert_same(torch, got, want)
    state = got["state"]
    assert state["row"].untyped_storage().data_ptr() == state["w"].untyped_storage().data_ptr()  # storage shared
    assert state["row"].storage_offset() == 4
    # safeload.load called by the user on an open file still opens the whole checkpoint (not one pickle)
    with open(path, "rb") as f:
        _assert_same(torch, safeload.load(f, map_location="cpu"), want)


@pytest.mark.parametrize("name", ["state_dict_legacy_format.pt", "state_dict.pt", "optimizer_state_dict.pt",
                                  "dtypes_views.pt"])
def test_torch_pickle_module_on_the_pytorch_samples(name):
    torch = pytest.importorskip("torch")
    path = SAMPLES / "pytorch" / name
    _assert_same(torch, torch.load(path, pickle_module=safeload), torch.load(path, weights_only=True))


def test_torch_legacy_pickle_module_reads_each_pickle_not_the_whole_stream(tmp_path):
    """Each pickle_module.load of torch's legacy loader reads its own pickle (in growing chunks: the object pickle
    here is past the first chunk), not the raw storages after it: in all, the stream is read about once."""
    torch = pytest.importorskip("torch")
    state = {f"layer{i}.weight": torch.full((2,), float(i)) for i in range(3000)}
    state["big"] = torch.arange(1 << 20, dtype=torch.float64)  # 8 MiB of raw storage after the pickles
    path = tmp_path / "legacy.pt"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()

    class Counting(io.BytesIO):
        total = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.total += len(out)
            return out

    got = torch.load(Counting(raw), pickle_module=safeload)
    _assert_same(torch, got, torch.load(path, weights_only=True))
    assert Counting.total < 1.5 * len(raw), (Counting.total, len(raw))


def _stream_pickles(raw: bytes, count: int) -> list[bytes]:
    """The first ``count`` pickles of a stream of pickles, then the rest."""
    import pickletools

    parts, pos = [], 0
    for _ in range(count):
        end = pos
        for _op, _arg, at in pickletools.genops(io.BytesIO(raw[pos:])):
            end = pos + at + 1
        parts.append(raw[pos:end])
        pos = end
    return parts + [raw[pos:]]


@pytest.mark.parametrize("where", [0, 3, 4], ids=["magic-number", "object", "storage-keys"])
def test_torch_legacy_payload_refused_through_pickle_module(where, scratch):
    """A legacy file with a payload in place of one of its pickles: torch.load runs it (the oracle shows it), and
    torch.load(f, pickle_module=safeload) refuses it without running it."""
    torch = pytest.importorskip("torch")
    import oracle

    torch.save({"w": torch.ones(3)}, scratch / "benign.pt", _use_new_zipfile_serialization=False)
    parts = _stream_pickles((scratch / "benign.pt").read_bytes(), 5)
    parts[where] = oracle.payload(2)
    evil = scratch / "evil.pt"
    evil.write_bytes(b"".join(parts))
    assert oracle.live(evil, ("torch",)) == ["torch"]
    with pytest.raises(safeload.SafeLoadError):
        torch.load(evil, pickle_module=safeload)
    assert not (scratch / oracle.MARKER).exists()


def test_torch_legacy_storage_view_refused_through_pickle_module(scratch):
    """A legacy storage reference naming a view (torch < 0.4) is refused, as safeload.load refuses it."""
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(3)}, scratch / "benign.pt", _use_new_zipfile_serialization=False)
    parts = _stream_pickles((scratch / "benign.pt").read_bytes(), 5)
    # the reference tuple ends (..., numel, None): TUPLE of six items after a MARK; replace its final NONE
    obj = parts[3]
    at = obj.rindex(b"Nt")  # NONE, TUPLE: the view slot of the storage reference
    viewed = obj[:at] + b"(X\x01\x00\x00\x00vK\x00K\x01t" + obj[at + 1:]
    (scratch / "view.pt").write_bytes(b"".join(parts[:3] + [viewed] + parts[4:]))
    with pytest.raises(safeload.FormatError, match="view"):
        torch.load(scratch / "view.pt", pickle_module=safeload)
    with pytest.raises(safeload.FormatError, match="view"):
        safeload.load(scratch / "view.pt")


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


# MegEngine publishes wheels for CPython 3.8 only: ``pip download "megengine==1.13.*" --python-version 3.11
# --only-binary=:all:`` finds no matching distribution (``--python-version 3.8`` finds
# MegEngine-1.13.0-cp38-cp38-manylinux2014_x86_64.whl), and this suite runs on 3.10 to 3.13. So megengine.load is
# a stand-in: the module below makes the calls megengine/serialization.py (MegEngine 1.13) makes, from a module
# named megengine.serialization, as the real one is: a str path is opened and loaded again, map_location becomes
# a callable installed as Tensor.dmap_callback around the load, and the load itself is one
# ``pickle_module.load(f)``. save is ``pickle_module.dump(obj, f, pickle_protocol)`` on an opened file.
_MEGENGINE_SERIALIZATION = """
import pickle
from megengine import Tensor

def save(obj, f, pickle_module=pickle, pickle_protocol=pickle.DEFAULT_PROTOCOL):
    if isinstance(f, str):
        with open(f, "wb") as fout:
            save(obj, fout, pickle_module=pickle_module, pickle_protocol=pickle_protocol)
        return
    assert hasattr(f, "write")
    pickle_module.dump(obj, f, pickle_protocol)

class dmap:
    def __init__(self, map_location):
        self.map_location = map_location
    def __enter__(self):
        Tensor.dmap_callback = staticmethod(self.map_location)
        return self
    def __exit__(self, *exc):
        Tensor.dmap_callback = None

def load(f, map_location=None, pickle_module=pickle):
    if isinstance(f, str):
        with open(f, "rb") as fin:
            return load(fin, map_location=map_location, pickle_module=pickle_module)
    if map_location is None:
        map_location = lambda state: state
    with dmap(map_location):
        return pickle_module.load(f)
"""


@pytest.fixture
def fake_megengine(monkeypatch):
    class Tensor:
        dmap_callback = None

        def __init__(self, array):
            self.array = array

    class Parameter(Tensor):
        pass

    mge = types.ModuleType("megengine")
    mge.Tensor, mge.Parameter = Tensor, Parameter
    monkeypatch.setitem(sys.modules, "megengine", mge)
    serialization = types.ModuleType("megengine.serialization")
    monkeypatch.setitem(sys.modules, "megengine.serialization", serialization)
    exec(compile(_MEGENGINE_SERIALIZATION, "megengine/serialization.py", "exec"), serialization.__dict__)
    mge.serialization, mge.load, mge.save = serialization, serialization.load, serialization.save
    return mge


def test_megengine_load_with_safeload_as_pickle_module(fake_megengine, scratch):
    """megengine.load(f, pickle_module=safeload) on the real MegEngine sample files: arrays equal to pickle's (the
    samples hold no code), MegEngine tensors where MegEngine pickled tensors, the file left after the pickle."""
    mge = fake_megengine
    for name in ("state_dict.pkl", "adam_state_dict.pkl", "checkpoint.pkl", "state_dict_proto2.pkl",
                 "state_dict_proto5_like_mge_le_1.9.pkl"):
        got = mge.load(str(SAMPLES / "megengine" / name), pickle_module=safeload)
        with open(SAMPLES / "megengine" / name, "rb") as f:
            want = pickle.load(f)  # the trusted sample files, holding numpy arrays only
        flat_got, flat_want = [], []
        for obj, out in ((got, flat_got), (want, flat_want)):
            stack = [obj]
            while stack:
                item = stack.pop()
                if isinstance(item, dict):
                    stack.extend(item[k] for k in sorted(item, key=str))
                    out.extend(sorted(map(str, item)))
                elif isinstance(item, (list, tuple)):
                    stack.extend(item)
                else:
                    out.append(item)
        assert len(flat_got) == len(flat_want), name
        for a, b in zip(flat_got, flat_want):
            if isinstance(b, np.ndarray):
                assert isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), name
            else:
                assert a == b, name
    tensors = mge.load(str(SAMPLES / "megengine" / "tensors.pkl"), pickle_module=safeload)
    assert type(tensors["t"]) is mge.Tensor and type(tensors["p"]) is mge.Parameter
    assert tensors["t"].array.shape == (2,) and tensors["p"].array.shape == (2, 2)
    with open(SAMPLES / "megengine" / "tensor_proto5.pkl", "rb") as f:
        stream = io.BytesIO(f.read() + b"tail")
    assert type(mge.load(stream, pickle_module=safeload)["t"]) is mge.Tensor
    assert stream.read() == b"tail"  # pickle.load's contract: the stream is left just after the pickle
    with pytest.raises(safeload.UnsafeGlobalError):  # a whole Module names __main__.Net: refused, never imported
        mge.load(str(SAMPLES / "megengine" / "whole_module.pkl"), pickle_module=safeload)
    (scratch / "evil.pkl").write_bytes(pickle.dumps({"w": np.ones(2), "x": _Payload()}, protocol=4))
    with pytest.raises(safeload.SafeLoadError):
        mge.load(str(scratch / "evil.pkl"), pickle_module=safeload)
    _no_marker(scratch)


def test_megengine_wrapper(fake_megengine, scratch):
    mge = fake_megengine
    patch("megengine")
    t = mge.load(str(SAMPLES / "megengine" / "tensors.pkl"))
    assert type(t["t"]) is mge.Tensor and t["t"].array.shape == (2,)
    assert type(t["p"]) is mge.Parameter and t["p"].array.shape == (2, 2)
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
