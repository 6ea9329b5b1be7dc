"""Scan and load agree in every tensor mode: on torch zip and legacy checkpoints written by the real torch.save and
then mutated at the pickle level, ``load(tensors="torch")``, ``load(tensors="numpy")`` and ``scan`` all accept or
all refuse. Scan builds no tensor (placeholders), so every rule that decides acceptance must live in the shared
rebuild code, not in one back end.

Mutations are written by torch's own writer: ``torch.save(pickle_module=...)`` with a Pickler whose
``reducer_override`` writes chosen ``(callable, args)`` reductions as they are, storages included (torch's
``persistent_id`` still turns them into storage references); locations are rewritten in the pickle's bytes."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import safeload

torch = pytest.importorskip("torch")

OD = collections.OrderedDict


class Reduction:
    """Pickled as ``func(*args)``, exactly as given."""

    def __init__(self, func, *args):
        self.func, self.args = func, args


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if type(obj) is Reduction:
            return obj.func, obj.args
        return NotImplemented


_MODULE = types.SimpleNamespace(**{k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
_MODULE.Pickler = _Pickler
_MODULE.__name__ = "pickle"

F32 = torch.arange(6, dtype=torch.float32)
I64 = torch.arange(4, dtype=torch.int64)
F16 = torch.arange(5, dtype=torch.float16)
_u = torch._utils


def v2(t, offset, size, stride, requires_grad=False, hooks=None):
    return Reduction(_u._rebuild_tensor_v2, t._typed_storage(), offset, size, stride, requires_grad,
                     OD() if hooks is None else hooks)


def v3(t, offset, size, stride, dtype):
    return Reduction(_u._rebuild_tensor_v3, t._typed_storage(), offset, size, stride, False, OD(), dtype)


def param(data, requires_grad=False):
    return Reduction(_u._rebuild_parameter, data, requires_grad, OD())


# name -> (object to save, location written into the pickle, expected: True = every mode accepts)
CASES = {
    "plain tensor": (v2(F32, 0, (2, 3), (3, 1)), "cpu", True),
    "tensor view inside the record": (v2(F32, 1, (2, 2), (1, 2)), "cpu", True),
    "empty view at the end": (v2(F32, 6, (0,), (1,)), "cpu", True),
    "parameter of a rebuilt tensor": (param(v2(F32, 0, (6,), (1,)), True), "cpu", True),
    "parameter on a list": (param([1.0, 2.0]), "cpu", False),
    "parameter on an int": (param(5), "cpu", False),
    "parameter on a numpy array": (param(np.arange(3.0)), "cpu", False),
    "parameter on a string": (param("w"), "cpu", False),
    "requires_grad on an int tensor": (v2(I64, 0, (4,), (1,), True), "cpu", False),
    "parameter requiring grad on an int tensor": (param(v2(I64, 0, (4,), (1,)), True), "cpu", False),
    "int parameter without grad": (param(v2(I64, 0, (4,), (1,)), False), "cpu", True),
    "Parameter type over an int tensor (as_subclass)": (
        Reduction(torch._tensor._rebuild_from_type_v2, _u._rebuild_tensor_v2, torch.nn.Parameter,
                  (I64._typed_storage(), 0, (4,), (1,), False, OD()), {}), "cpu", True),
    "Tensor subclass type that is not Tensor or Parameter": (
        Reduction(torch._tensor._rebuild_from_type_v2, _u._rebuild_tensor_v2, torch.FloatTensor,
                  (F32._typed_storage(), 0, (6,), (1,), False, OD()), {}), "cpu", False),
    "offset past the record": (v2(F32, 6, (1,), (1,)), "cpu", False),
    "size past the record": (v2(F32, 0, (7,), (1,)), "cpu", False),
    "stride past the record": (v2(F32, 0, (2, 2), (5, 1)), "cpu", False),
    "empty view starting past the record": (v2(F32, 100, (0,), (1,)), "cpu", False),
    "size and stride of different rank": (v2(F32, 0, (2, 3), (1,)), "cpu", False),
    "negative stride": (v2(F32, 5, (6,), (-1,)), "cpu", False),
    "negative size": (v2(F32, 0, (-1,), (1,)), "cpu", False),
    "stride beyond 64 bits on a size-1 dimension": (v2(F32, 0, (1, 2), (2**63, 1)), "cpu", False),
    "offset beyond 64 bits on an empty view": (v2(F32, 2**64, (0,), (1,)), "cpu", False),
    "backward hooks": (v2(F32, 0, (6,), (1,), hooks=OD([(1, "x")])), "cpu", False),
    "second dtype over one storage, whole elements": (v3(F32, 0, (3,), (1,), torch.float64), "cpu", True),
    "second dtype over one storage, partial elements": (v3(F16, 0, (2,), (1,), torch.float32), "cpu", False),
    "second dtype view past the record": (v3(F32, 1, (3,), (1,), torch.float64), "cpu", False),
    "dtype that is not a dtype": (v3(F32, 0, (6,), (1,), 3), "cpu", False),
    "quantized dtype": (v3(F32, 0, (6,), (1,), torch.quint8), "cpu", False),
    "location that is code": (v2(F32, 0, (6,), (1,)), "os.system('x')", False),
    "location with a leading zero index": (v2(F32, 0, (6,), (1,)), "cuda:01", False),
    "location in capitals": (v2(F32, 0, (6,), (1,)), "CPU", False),
    "cpu with an index": (v2(F32, 0, (6,), (1,)), "cpu:0", False),
    "location with a sign": (v2(F32, 0, (6,), (1,)), "cuda:-1", False),
    "empty location": (v2(F32, 0, (6,), (1,)), "", False),
    "meta location": (v2(F32, 0, (6,), (1,)), "meta", True),
}


def _relocate(raw: bytes, location: str) -> bytes:
    old = b"X" + struct.pack("<I", 3) + b"cpu"  # BINUNICODE 'cpu', as torch's protocol-2 pickles write it
    new = b"X" + struct.pack("<I", len(location.encode())) + location.encode()
    assert raw.count(old) >= 1
    return raw.replace(old, new)


def write(obj, location: str, zip_format: bool) -> bytes:
    buf = io.BytesIO()
    torch.save({"t": obj}, buf, pickle_module=_MODULE, _use_new_zipfile_serialization=zip_format)
    raw = buf.getvalue()
    if location == "cpu":
        return raw
    if not zip_format:
        return _relocate(raw, location)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            content = src.read(info)
            dst.writestr(info.filename, _relocate(content, location) if info.filename.endswith("data.pkl") else content)
    return out.getvalue()


def verdicts(source: Path | bytes) -> dict[str, str]:
    """Each mode's verdict on a file (a path or its bytes)."""
    out = {}
    for tensors in ("torch", "numpy"):
        try:
            safeload.load(source, tensors=tensors)
            out[tensors] = "accept"
        except safeload.SafeLoadError as exc:
            out[tensors] = f"refuse: {str(exc)[:160]}"
    report = safeload.scan(source)
    out["scan"] = "accept" if report.exit_code == 0 else f"refuse: exit {report.exit_code}"
    return out


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_and_every_mode_agree(case, zip_format, tmp_path):
    obj, location, accepted = CASES[case]
    path = tmp_path / "mutated.pt"
    path.write_bytes(write(obj, location, zip_format))
    got = verdicts(path)
    kinds = {v.split(":")[0] for v in got.values()}
    assert kinds == {"accept" if accepted else "refuse"}, got


@pytest.mark.parametrize("location", ["cuda:0", "mps", "xpu:0", "hpu", "mtia:1"])
def test_device_this_machine_lacks(location, tmp_path):
    """A valid device this machine lacks is about the machine, not the file: numpy and scan accept; torch refuses
    with a FormatError that says to pass map_location, as torch.load fails; with map_location='cpu' it loads."""
    kind = location.split(":")[0]
    backend = getattr(torch, kind, None)
    if backend is not None and getattr(backend, "is_available", lambda: False)():
        pytest.skip(f"this machine has {kind}")
    path = tmp_path / "device.pt"
    path.write_bytes(write(v2(F32, 0, (6,), (1,)), location, True))
    with pytest.raises(safeload.FormatError, match="not available") as info:
        safeload.load(path, tensors="torch")
    assert "map_location" in str(info.value)
    assert safeload.load(path, tensors="torch", map_location="cpu")["t"].tolist() == list(range(6))
    assert safeload.load(path, tensors="numpy")["t"].tolist() == list(range(6))
    assert safeload.scan(path).exit_code == 0
    with pytest.raises(Exception):
        torch.load(path, weights_only=False)


def test_native_reading_of_the_cases():
    """What torch.load itself does with a few of the cases: the refusals mirror it, the acceptances too."""
    def native(obj, location="cpu", **kw):
        try:
            torch.load(io.BytesIO(write(obj, location, True)), weights_only=False, **kw)
            return True
        except Exception:  # torch raises RuntimeError, TypeError, AssertionError ...
            return False

    assert native(CASES["plain tensor"][0])
    assert native(CASES["Parameter type over an int tensor (as_subclass)"][0])
    assert native(CASES["second dtype over one storage, whole elements"][0])
    assert not native(CASES["requires_grad on an int tensor"][0])
    assert not native(CASES["parameter on a list"][0])
    assert not native(CASES["size past the record"][0])
    assert not native(CASES["negative stride"][0])
    assert not native(CASES["location that is code"][0], "os.system('x')")
    assert not native(CASES["cpu with an index"][0], "cpu:0")


def test_big_endian_records_swap_by_the_storage_dtype(tmp_path):
    """A record written big-endian is byteswapped by its storage's dtype (as torch.load does), then viewed: a
    float64 view over a float32 storage has the same bytes in both modes as under torch.load."""
    buf = io.BytesIO()
    torch.save({"f64": v3(F32, 0, (3,), (1,), torch.float64), "f32": v2(F32, 0, (6,), (1,))}, buf,
               pickle_module=_MODULE)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename.endswith("/byteorder"):
                content = b"big"
            elif "/data/" in info.filename:
                content = np.frombuffer(content, "<f4").astype(">f4").tobytes()
            dst.writestr(info.filename, content)
    path = tmp_path / "big.pt"
    path.write_bytes(out.getvalue())
    native = torch.load(path, weights_only=False)
    as_torch = safeload.load(path, tensors="torch")
    as_numpy = safeload.load(path, tensors="numpy")
    for name in ("f64", "f32"):
        expected = native[name].numpy().tobytes()
        assert as_torch[name].numpy().tobytes() == expected, name
        assert np.ascontiguousarray(as_numpy[name]).tobytes() == expected, name
    assert safeload.scan(path).exit_code == 0


_STORAGES = {"FloatStorage": 4, "LongStorage": 8, "HalfStorage": 2, "ByteStorage": 1, "BoolStorage": 1}


def test_random_geometry_agrees():
    """Random storage classes, record lengths, offsets, sizes and strides (negative, huge, mismatched ranks):
    the three verdicts are always the same."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from torch_pickles import checkpoint, tensor_ops

    small = st.integers(-2, 9) | st.sampled_from([2**31, 2**62, 2**63, 2**64])

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.sampled_from(sorted(_STORAGES)), st.integers(0, 12), st.integers(0, 12), small,
           st.lists(small, max_size=3), st.lists(small, max_size=3), st.booleans(),
           st.sampled_from(["cpu", "cpu", "meta", "cpu:0", "Cpu", "cuda:00"]))
    def run(cls, numel, record_elems, offset, size, stride, requires_grad, location):
        record = bytes(range(256))[: record_elems * _STORAGES[cls]] if cls != "BoolStorage" else b"\x01" * record_elems
        ops = tensor_ops("0", cls, numel, offset, tuple(size), tuple(stride), location=location)
        if requires_grad:
            assert ops.count(b"\x89") == 1
            ops = ops.replace(b"\x89", b"\x88")  # NEWFALSE -> NEWTRUE: the one bool in the reduction
        data = checkpoint({"w": ops}, {"0": record})
        got = verdicts(data)
        assert len({v.split(":")[0] for v in got.values()}) == 1, got

    run()
