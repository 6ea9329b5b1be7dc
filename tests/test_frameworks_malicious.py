"""Malicious and malformed variants of every framework's format are refused, and nothing runs.

Payloads only create a file named MARKER in a scratch directory. Where a payload is live, CPython's own loader
(``pickle.load``, ``joblib.load``, ``np.load(allow_pickle=True)``), run in a subprocess, is shown to create the
marker, so safeload refusing it means something.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import safeload
from corpus import BININT1, EMPTY_DICT, EMPTY_TUPLE, MARK, MARKER, NEWOBJ, PROTO, REDUCE, SETITEMS, SG, STOP, TUPLE, \
    TUPLE1, TUPLE3, FRAME, SHORT_BINUNICODE, BUILD, SETITEM

NEWTRUE, NEWFALSE, NONE = b"\x88", b"\x89", b"N"


class _Payload:
    """Pickles as os.system('touch MARKER')."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _live(loader: str, path: Path, cwd: Path) -> bool:
    """Run the framework's own loader on ``path`` in a subprocess; True if the marker appeared."""
    code = {"pickle": "import pickle,sys; pickle.load(open(sys.argv[1],'rb'), encoding='latin1')",
            "joblib": "import joblib,sys; joblib.load(sys.argv[1])",
            "numpy": "import numpy,sys; r=numpy.load(sys.argv[1], allow_pickle=True); [r[k] for k in r] "
                     "if hasattr(r,'files') else r"}[loader]
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=cwd, capture_output=True, timeout=120)
    fired = (cwd / MARKER).exists()
    if fired:
        (cwd / MARKER).unlink()
    return fired


def _refused(path: Path, cwd: Path, **kw) -> safeload.SafeLoadError:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with pytest.raises(safeload.SafeLoadError) as info:
            safeload.load(path, **kw)
    finally:
        os.chdir(old)
    assert not (cwd / MARKER).exists(), "the payload ran"
    err = info.value
    assert err.what and err.fix, "every refusal says what and how to go on"
    return err


# ---- payloads in real framework files ------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3), ("lz4", 3)],
                         ids=str)
def test_joblib_payload_refused(tmp_path, compress):
    joblib = pytest.importorskip("joblib")
    if compress and compress[0] == "lz4" if isinstance(compress, tuple) else False:
        pytest.importorskip("lz4")
    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(3.0), "x": _Payload(), "z": np.ones(2)}, path, compress=compress)
    assert _live("joblib", path, tmp_path)
    err = _refused(path, tmp_path)
    assert "system" in str(err)
    inert = safeload.load(path, unknown="stub")  # with stubs, the call is recorded, never made
    assert inert["x"].qualname in ("posix.system", "os.system") and not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_paddle_pickle_payload_refused(tmp_path, protocol):
    path = tmp_path / "model.pdparams"
    state = {"linear_0.w_0": np.ones((2, 2), np.float32), "StructuredToParameterName@@": {"w": "linear_0.w_0"},
             "evil": _Payload()}
    path.write_bytes(pickle.dumps(state, protocol=protocol))
    assert _live("pickle", path, tmp_path)
    _refused(path, tmp_path)


def _eval_pickle(source: bytes, env_ops: bytes) -> bytes:
    return PROTO(2) + SG("builtins", "eval") + MARK + source + env_ops + TUPLE + REDUCE + STOP


def _array_ops() -> bytes:
    """A small ndarray, as numpy pickles it at protocol 4 (taken from a real pickle, its PROTO and STOP cut)."""
    data = pickle.dumps(np.arange(3, dtype=np.float32), protocol=4)
    assert data[2:3] == b"\x95"  # FRAME
    return data[11:-1]


@pytest.mark.parametrize("name, source, env", [
    ("code", SHORT_BINUNICODE(f"__import__('os').system('touch {MARKER}')"), EMPTY_DICT),
    ("other name", SHORT_BINUNICODE("x"), EMPTY_DICT + SHORT_BINUNICODE("x") + b"A" + SETITEM),
    ("extra key", SHORT_BINUNICODE("data"),
     EMPTY_DICT + MARK + SHORT_BINUNICODE("data") + b"A" + SHORT_BINUNICODE("k") + BININT1(1) + SETITEMS),
    ("not an array", SHORT_BINUNICODE("data"), EMPTY_DICT + SHORT_BINUNICODE("data") + SHORT_BINUNICODE("os") + SETITEM),
    ("padded source", SHORT_BINUNICODE("data "), EMPTY_DICT + SHORT_BINUNICODE("data") + b"A" + SETITEM),
])
def test_paddle_eval_only_in_its_exact_form(tmp_path, name, source, env):
    env = env.replace(b"A", _array_ops())
    path = tmp_path / "t.pdtensor"
    path.write_bytes(_eval_pickle(source, env))
    err = _refused(path, tmp_path, unknown="stub")
    assert isinstance(err, safeload.UnsafeGlobalError) and err.qualname == "builtins.eval"


def test_paddle_eval_exact_form_loads(tmp_path):
    env = EMPTY_DICT + SHORT_BINUNICODE("data") + _array_ops() + SETITEM
    path = tmp_path / "t.pdtensor"
    path.write_bytes(_eval_pickle(SHORT_BINUNICODE("data"), env))
    np.testing.assert_array_equal(safeload.load(path), np.arange(3, dtype=np.float32))


def test_npy_and_npz_object_payload_refused(tmp_path):
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "fine", _Payload()
    npy = tmp_path / "x.npy"
    np.save(npy, arr, allow_pickle=True)
    assert _live("numpy", npy, tmp_path)
    _refused(npy, tmp_path)
    npz = tmp_path / "x.npz"
    np.savez(npz, ok=np.arange(3), bad=arr)
    assert _live("numpy", npz, tmp_path)
    _refused(npz, tmp_path)


# ---- MegEngine --------------------------------------------------------------------------------------------------------

def _mge_tensor(args_ops: bytes, state_ops: bytes = EMPTY_DICT, cls: tuple[str, str] = ("megengine.tensor", "Tensor")) -> bytes:
    return PROTO(4) + SG(*cls) + args_ops + NEWOBJ + state_ops + BUILD + STOP


def test_megengine_tensor_forms_load():
    arr = _array_ops()
    dtype = pickle.dumps(np.dtype("f4"), protocol=4)[11:-1]
    new = safeload.loads(_mge_tensor(MARK + arr + dtype + SHORT_BINUNICODE("xpux:0") + TUPLE))
    np.testing.assert_array_equal(new, np.arange(3, dtype=np.float32))
    old = safeload.loads(_mge_tensor(EMPTY_TUPLE, EMPTY_DICT + MARK + SHORT_BINUNICODE("data") + arr
                                     + SHORT_BINUNICODE("device") + SHORT_BINUNICODE("cpu0") + SETITEMS))
    np.testing.assert_array_equal(old, np.arange(3, dtype=np.float32))
    zero = safeload.loads(_mge_tensor(EMPTY_TUPLE, EMPTY_DICT + SHORT_BINUNICODE("data") + arr + SETITEM,
                                      ("megengine.core.tensor_nn", "Parameter")))
    np.testing.assert_array_equal(zero, np.arange(3, dtype=np.float32))


@pytest.mark.parametrize("name, data", [
    ("data is a string", _mge_tensor(SHORT_BINUNICODE(f"touch {MARKER}") + TUPLE1)),
    ("data is a call", _mge_tensor(SG("os", "system") + SHORT_BINUNICODE(f"touch {MARKER}") + TUPLE1 + REDUCE + TUPLE1)),
    ("reduce pointing elsewhere", PROTO(4) + SG("megengine.tensor", "os.system") + SHORT_BINUNICODE("x") + TUPLE1
     + REDUCE + STOP),
    ("another megengine function", PROTO(4) + SG("megengine", "load") + SHORT_BINUNICODE("x") + TUPLE1 + REDUCE + STOP),
    ("state injection", _mge_tensor(EMPTY_TUPLE, EMPTY_DICT + SHORT_BINUNICODE("__class__") + BININT1(1) + SETITEM)),
    ("no data", _mge_tensor(EMPTY_TUPLE)),
    ("too many args", _mge_tensor(MARK + b"".join([BININT1(1)] * 8) + TUPLE)),
])
def test_megengine_malicious_tensors_refused(name, data):
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(data)


# ---- joblib structure ---------------------------------------------------------------------------------------------

def _wrapper(shape: tuple[int, ...], raw: bytes, *, proto: int = 2, frame: bool = False, align: int | None = 16,
             dtype: str = "f4") -> bytes:
    dt = pickle.dumps(np.dtype(dtype), protocol=2)[2:-1]
    state = (EMPTY_DICT + MARK
             + SHORT_BINUNICODE("subclass") + SG("numpy", "ndarray")
             + SHORT_BINUNICODE("shape") + MARK + b"".join(BININT1(n) for n in shape) + TUPLE
             + SHORT_BINUNICODE("order") + SHORT_BINUNICODE("C")
             + SHORT_BINUNICODE("dtype") + dt
             + SHORT_BINUNICODE("allow_mmap") + NEWTRUE
             + (SHORT_BINUNICODE("numpy_array_alignment_bytes") + (BININT1(align) if align else NONE))
             + SETITEMS)
    body = SG("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD
    if frame:  # the frame wrongly covers the raw bytes too
        return PROTO(proto) + FRAME(len(body) + len(raw) + 1) + body + raw + STOP
    return PROTO(proto) + body + raw + STOP


def test_joblib_wrapper_by_hand():
    data = np.arange(3, dtype=np.float32).tobytes()
    got = safeload.loads(_wrapper((3,), b"\x03\xff\xff\xff" + data))
    np.testing.assert_array_equal(got, np.arange(3, dtype=np.float32))
    got = safeload.loads(_wrapper((3,), data, align=None))
    np.testing.assert_array_equal(got, np.arange(3, dtype=np.float32))


@pytest.mark.parametrize("name, data", [
    ("shape beyond the file", _wrapper((200,), b"\x01\xff" + bytes(12))),
    ("padding beyond alignment", _wrapper((3,), b"\x40" + bytes(64 + 12), align=16)),
    ("data inside a frame", _wrapper((3,), b"\x01\xff" + bytes(12), proto=4, frame=True)),
    ("object dtype with a payload", _wrapper((1,), PROTO(2) + SG("os", "system") + SHORT_BINUNICODE("x") + TUPLE1
                                               + REDUCE + STOP, dtype="O")),
    ("nested pickle that is not an array", _wrapper((1,), PROTO(2) + BININT1(1) + STOP, dtype="O")),
])
def test_joblib_malformed_wrappers_refused(name, data):
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(data)


def test_joblib_legacy_external_arrays_refused():
    data = PROTO(2) + SG("joblib.numpy_pickle_compat", "NDArrayWrapper") + EMPTY_TUPLE + NEWOBJ + STOP
    with pytest.raises(safeload.FormatError) as info:
        safeload.loads(data)
    assert "separate files" in info.value.why


# ---- compression ------------------------------------------------------------------------------------------------------

def _lz4(data: bytes) -> bytes:
    lz4 = pytest.importorskip("lz4.frame")
    return lz4.compress(data)


COMPRESSORS = {"zlib": zlib.compress, "gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
               "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), "lz4": _lz4,
               "zstd": lambda d: __import__("zstandard").ZstdCompressor().compress(d)}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_pickles_load_and_bombs_are_capped(kind):
    payload = pickle.dumps({"a": list(range(10))}, protocol=4)
    packed = COMPRESSORS[kind](payload)
    assert safeload.loads(packed) == {"a": list(range(10))}
    bomb = COMPRESSORS[kind](pickle.dumps(b"\0" * (4 << 20), protocol=4))
    policy = safeload.DEFAULT_POLICY.with_limits(max_decompressed=1 << 20)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(bomb, policy=policy)
    assert info.value.limit == "max_decompressed"
    with pytest.raises(safeload.FormatError):
        safeload.loads(packed + b"\x80\x04K\x01.")  # a second payload after the stream
    with pytest.raises(safeload.FormatError):
        safeload.loads(packed[: len(packed) // 2 + 6])  # truncated


def test_compressed_payload_refused_and_nesting_refused():
    evil = gzip.compress(pickle.dumps(_Payload(), protocol=2))
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(evil)
    with pytest.raises(safeload.FormatError) as info:
        safeload.loads(gzip.compress(gzip.compress(pickle.dumps(1))))
    assert "inside" in info.value.what


def test_joblib_zfile():
    content = pickle.dumps({"k": 1}, protocol=2)
    good = b"ZF" + hex(len(content)).encode().ljust(19) + zlib.compress(content)
    assert safeload.loads(good) == {"k": 1}
    lying = b"ZF" + hex(len(content) + 1).encode().ljust(19) + zlib.compress(content)
    with pytest.raises(safeload.FormatError):
        safeload.loads(lying)


# ---- safetensors ------------------------------------------------------------------------------------------------------

def _st(header: dict, data: bytes, *, raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _t(offsets, shape=(2,), dtype="F32"):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("name, blob", [
    ("overlap", _st({"a": _t((0, 8)), "b": _t((4, 12))}, bytes(12))),
    ("gap", _st({"a": _t((0, 8)), "b": _t((12, 20))}, bytes(20))),
    ("trailing bytes", _st({"a": _t((0, 8))}, bytes(12))),
    ("beyond the buffer", _st({"a": _t((0, 8), shape=(2,))}, bytes(4))),
    ("size mismatch", _st({"a": _t((0, 8), shape=(3,))}, bytes(8))),
    ("unknown dtype", _st({"a": _t((0, 8), dtype="OBJ")}, bytes(8))),
    ("negative offset", _st({"a": _t((-8, 0), shape=(2,))}, bytes(8))),
    ("extra field", _st({"a": {**_t((0, 8)), "x": 1}}, bytes(8))),
    ("duplicate key", _st({}, bytes(8), raw_header=b'{"a":' + json.dumps(_t((0, 8))).encode() + b',"a":'
                          + json.dumps(_t((0, 8))).encode() + b"}")),
    ("metadata not strings", _st({"__metadata__": {"k": 1}, "a": _t((0, 8))}, bytes(8))),
    ("header not json", _st({}, bytes(8), raw_header=b"{not json}")),
])
def test_safetensors_malformed_refused(name, blob):
    assert safeload.loads(_st({"a": _t((0, 8))}, bytes(8)))["a"].shape == (2,)
    with pytest.raises(safeload.FormatError):
        safeload.loads(blob)


# ---- MXNet, MindSpore, Paddle binary --------------------------------------------------------------------------------

def _mx_record(shape=(2,), flag=0, data=None) -> bytes:
    body = struct.pack("<Ii", 0xF993FAC9, 0) + struct.pack(f"<i{len(shape)}q", len(shape), *shape)
    body += struct.pack("<iii", 1, 0, flag)
    count = int(np.prod(shape))
    return body + (data if data is not None else bytes(4 * count))


def _mx_list(records: list[bytes], names: list[str]) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records) + struct.pack("<Q", len(names))
    for n in names:
        out += struct.pack("<Q", len(n)) + n.encode()
    return out


@pytest.mark.parametrize("name, blob", [
    ("truncated data", _mx_list([_mx_record(data=bytes(4))], ["a"])),
    ("count lies", struct.pack("<QQQ", 0x112, 0, 1 << 40)),
    ("names mismatch", _mx_list([_mx_record(), _mx_record()], ["a"])),
    ("duplicate names", _mx_list([_mx_record(), _mx_record()], ["a", "a"])),
    ("trailing bytes", _mx_list([_mx_record()], ["a"]) + b"x"),
    ("unknown type flag", _mx_list([_mx_record(flag=99)], ["a"])),
    ("huge ndim", _mx_list([struct.pack("<Iii", 0xF993FAC9, 0, 1000)], [])),
])
def test_mxnet_malformed_refused(name, blob):
    assert safeload.loads(_mx_list([_mx_record()], ["a"]))["a"].shape == (2,)
    with pytest.raises(safeload.FormatError):
        safeload.loads(blob)


def test_mxnet_sparse_index_out_of_range():
    # row_sparse (4, 3) with one stored row whose index is 9
    rec = struct.pack("<Ii", 0xF993FAC9, 1) + struct.pack("<i2q", 2, 1, 3) + struct.pack("<i2q", 2, 4, 3)
    rec += struct.pack("<iii", 1, 0, 0) + struct.pack("<i", 6) + struct.pack("<iq", 1, 1)
    rec += bytes(12) + struct.pack("<q", 9)
    with pytest.raises(safeload.FormatError):
        safeload.loads(_mx_list([rec], ["rsp"]))


def _ms_value(tag: str, content: bytes, ttype: str = "Float32", dims=(2,)) -> bytes:
    def ld(field: int, payload: bytes) -> bytes:
        return bytes([field << 3 | 2, len(payload)]) + payload

    tensor = b"".join(bytes([0x08, d]) for d in dims) + ld(2, ttype.encode()) + ld(3, content)
    return ld(1, ld(1, tag.encode()) + ld(2, tensor))


def test_mindspore_malformed_refused():
    good = _ms_value("w", bytes(8))
    assert safeload.loads(good)["w"].shape == (2,)
    crc = good + b"crc_num" + (zlib.crc32(good) ^ 1).to_bytes(10, "big")
    with pytest.raises(safeload.FormatError, match="CRC"):
        safeload.loads(crc)
    assert safeload.loads(good + b"crc_num" + zlib.crc32(good).to_bytes(10, "big"))["w"].shape == (2,)
    with pytest.raises(safeload.FormatError):
        safeload.loads(_ms_value("w", bytes(7)))  # size mismatch
    with pytest.raises(safeload.FormatError):
        safeload.loads(good[:-3])  # truncated
    with pytest.raises(safeload.FormatError):
        safeload.loads(_ms_value("w", bytes(8), ttype="Int4"))
    with pytest.raises(safeload.FormatError):
        safeload.loads(_ms_value("w", bytes(8)) + _ms_value("v", bytes(8)) + _ms_value("w", bytes(8)))
    with pytest.raises(safeload.FormatError):
        safeload.loads(struct.pack("<I", 0x7F3A5ED9) + bytes(40))


def _pd_record(dims=(2, 2), dtype=5, data=None) -> bytes:
    desc = bytes([0x08, dtype]) + b"".join(bytes([0x10, d]) for d in dims)
    body = struct.pack("<IQI", 0, 0, 0) + struct.pack("<i", len(desc)) + desc
    return body + (data if data is not None else bytes(4 * int(np.prod(dims))))


def test_paddle_dense_tensor_malformed_refused():
    assert safeload.loads(_pd_record()).shape == (2, 2)
    two = safeload.loads(_pd_record() + _pd_record(dims=(3,)))
    assert [a.shape for a in two] == [(2, 2), (3,)]
    with pytest.raises(safeload.FormatError):
        safeload.loads(_pd_record(data=bytes(15)))
    with pytest.raises(safeload.FormatError):
        safeload.loads(_pd_record(dtype=99))
    with pytest.raises(safeload.FormatError):
        safeload.loads(_pd_record() + b"\x00\x00")
