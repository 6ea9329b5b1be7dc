"""joblib files and compressed streams are read exactly as joblib and the native decompressors read them.

Each attack is built around a real ``joblib.dump`` file (arrays, a scikit-learn estimator, every compressor) or a
real compressor's output, with a payload from ``tests/oracle.py``. The oracle proves it live under the native
reader (the marker file appears), and safeload must refuse it (``load``) and flag it (``scan`` exit code not 0).

* dtype state: numpy's ``dtype.__setstate__`` takes the item size of S/U/V types, the subarray and fields, and the
  object flags from the pickled state. joblib then reads ``count * itemsize`` array bytes (or a nested pickle for
  an object dtype) and resumes the pickle there: a state that disagrees with the type code makes joblib run
  opcodes safeload never saw.
* nested frames: joblib's unpickler reads a whole FRAME from the file, so after a nested object-array pickle whose
  frame runs past its STOP, joblib resumes at the frame end.
* compressed streams: native readers go on into second gzip members, bz2/xz/lzma streams, lz4 and zstd frames,
  and skip zstd skippable frames; a gzip FEXTRA field can hold another format.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import oracle
import safeload

joblib = pytest.importorskip("joblib")

PAYLOAD = oracle.payload(2)


# ---- helpers --------------------------------------------------------------------------------------------------------

def _once(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) == 1, f"{old!r} occurs {raw.count(old)} times"
    assert len(old) == len(new), "a same-length edit keeps every FRAME length right"
    return raw.replace(old, new)


def _skip_to_payload(delta: int) -> bytes:
    """Opcodes that safeload runs as data, while a reader that lands ``delta`` bytes later runs PAYLOAD."""
    head = b"C" + bytes([len(PAYLOAD)]) if len(PAYLOAD) < 256 else b"B" + struct.pack("<I", len(PAYLOAD))
    nones = delta - len(head)
    assert nones >= 0
    return b"N" * nones + head + PAYLOAD + b"0" * (nones + 1)  # NONEs and the bytes pushed, then popped


def _compress(kind: str, raw: bytes) -> bytes:
    """``raw`` compressed as joblib's writer for ``kind`` compresses it."""
    if kind == "raw":
        return raw
    if kind == "zlib":
        return zlib.compress(raw, 3)
    if kind == "gzip":
        co = zlib.compressobj(3, zlib.DEFLATED, 31)  # joblib's BinaryGzipFile: zlib with wbits 31
        return co.compress(raw) + co.flush()
    if kind == "bz2":
        return bz2.compress(raw, 3)
    if kind == "xz":
        return lzma.compress(raw, lzma.FORMAT_XZ, preset=3)
    if kind == "lzma":
        return lzma.compress(raw, lzma.FORMAT_ALONE, preset=3)
    if kind == "lz4":
        lz4_frame = pytest.importorskip("lz4.frame")
        return lz4_frame.compress(raw, compression_level=3)
    raise AssertionError(kind)


COMPRESSORS = ("raw", "zlib", "gzip", "bz2", "xz", "lzma", "lz4")


def _dumped(tmp_path: Path, value: object, name: str = "base.joblib") -> bytes:
    path = tmp_path / name
    joblib.dump(value, path)
    return path.read_bytes()


def _assert_refused_and_flagged(path: Path, **kw) -> safeload.SafeLoadError:
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.load(path, **kw)
    assert info.value.what and info.value.fix
    assert safeload.scan(str(path)).exit_code != 0
    return info.value


def _assert_live(path: Path, loaders: tuple[str, ...]) -> None:
    hits = oracle.live(path, loaders)
    assert hits, f"the native loaders {loaders} do not run the payload: the test would prove nothing"


# ---- dtype state: item size ---------------------------------------------------------------------------------------

def _elsize_attack(tmp_path: Path) -> bytes:
    """A joblib file with an ``S3`` array whose dtype state says 8-byte items: joblib reads 5 more bytes."""
    raw = _dumped(tmp_path, {"names": np.array([b"QZX"], dtype="S3"), "w": np.arange(4.0)})
    raw = _once(raw, b"NNNK\x03K\x01K\x00t", b"NNNK\x08K\x01K\x00t")  # (3, '|', None, None, None, 3 -> 8, 1, 0)
    at = raw.index(b"QZX") + 3
    return raw[:at] + _skip_to_payload(5) + raw[at:]


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_dtype_elsize_desync(tmp_path, kind):
    path = tmp_path / f"elsize.{kind}.joblib"
    path.write_bytes(_compress(kind, _elsize_attack(tmp_path)))
    _assert_live(path, ("joblib",))
    err = _assert_refused_and_flagged(path)
    assert "item size" in err.what and "S3" in err.what


def test_dtype_elsize_desync_in_sklearn_estimator(tmp_path):
    """A fitted estimator's string labels (``classes_``, a ``<U3`` array): 16-byte items instead of 12."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    from safeload.policies import sklearn as sk

    model = linear_model.LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], ["cat", "cat", "dog", "dog"])
    raw = _dumped(tmp_path, model)
    assert list(safeload.load(raw, policy=sk.POLICY).classes_) == ["cat", "dog"]  # the real file loads
    raw = _once(raw, b"NNNK\x0cK\x04K\x08t", b"NNNK\x10K\x04K\x08t")  # (3, '<', ..., 12 -> 16, 4, 8)
    at = raw.index("dog".encode("utf-32-le")) + 12
    raw = raw[:at] + _skip_to_payload(2 * (16 - 12)) + raw[at:]
    for kind in ("raw", "gzip"):
        path = tmp_path / f"estimator.{kind}.joblib"
        path.write_bytes(_compress(kind, raw))
        _assert_live(path, ("joblib",))
        err = _assert_refused_and_flagged(path, policy=sk.POLICY)
        assert "item size" in err.what


def test_dtype_object_flag_desync(tmp_path):
    """An ``int32`` dtype whose state sets numpy's 'holds objects' flag: joblib reads a nested pickle where
    safeload would read the array's bytes. joblib writes no padding byte when the file cannot tell() (a pipe)."""

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.out = io.BytesIO()

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[override]
            return self.out.write(b)

        def tell(self) -> int:
            raise io.UnsupportedOperation("a pipe")

    pipe = Pipe()
    data = PAYLOAD + b"\x00" * (-len(PAYLOAD) % 4)
    joblib.dump({"w": np.frombuffer(data, dtype="<i4").copy(), "b": [1.0, 2.0]}, pipe)
    state = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK%ct"  # (3, '<', None, None, None, -1, -1, flags)
    raw = _once(pipe.out.getvalue(), state % 0, state % 1)
    path = tmp_path / "flags.joblib"
    path.write_bytes(raw)
    _assert_live(path, ("joblib",))
    err = _assert_refused_and_flagged(path)
    assert "object flags" in err.what


# ---- dtype state: differential against numpy's own unpickling ----------------------------------------------------

class _Dtype:
    """Pickles as ``numpy.dtype(*args)`` + BUILD ``state``: exactly numpy's own reduce, with a chosen state."""

    def __init__(self, args: tuple, state: tuple) -> None:
        self.args, self.state = args, state

    def __reduce__(self):
        return (np.dtype, self.args, self.state)


_DTYPES = [np.dtype(d) for d in ("S5", "<U3", ">U2", "V16", "i4", ">f8", "O", "b1", "M8[ms]", "m8[3s]")] + [
    np.dtype([("a", "<i4"), ("b", "S3")]),
    np.dtype([("a", "<i4"), ("b", "<f8")], align=True),
    np.dtype([("a", "O"), ("b", "<i4")]),
    np.dtype(("S2", (3,))),
    np.dtype(("<U2", (2,))),
    np.dtype({"names": ["a"], "formats": ["<i4"], "titles": ["T"]}),
]


def _mutations(dt: np.dtype):
    func, args, state = dt.__reduce__()
    assert func is np.dtype
    yield args, state
    state = list(state)
    for delta in (-1, 1, 4, 1000):
        if state[5] >= 0:
            yield args, tuple(state[:5] + [state[5] + delta] + state[6:])
    for alignment in (1, 2, 8, -1):
        yield args, tuple(state[:6] + [alignment] + state[7:])
    for bit in (0x01, 0x02, 0x04, 0x08, 0x80):
        yield args, tuple(state[:7] + [state[7] ^ bit] + state[8:])
    for code in ("V16", "S16", "i4", "O8", "V7", "U4"):
        yield (code,) + tuple(args[1:]), tuple(state)
    if state[2] is None:
        yield args, tuple(state[:2] + [(np.dtype("S2"), (8,))] + state[3:])
    if state[3] is None:
        yield args, tuple(state[:3] + [("a",), {"a": (np.dtype("<i8"), 0)}] + state[5:])


@pytest.mark.parametrize("dt", _DTYPES, ids=str)
def test_dtype_state_agrees_with_numpy(dt):
    """Whatever the state says, safeload's dtype is numpy's (item size, objects, fields) or a refusal."""
    accepted = 0
    for args, state in _mutations(dt):
        blob = pickle.dumps(_Dtype(args, state), protocol=2)
        try:
            ours = safeload.load(blob)
        except safeload.SafeLoadError:
            continue
        accepted += 1
        theirs = pickle.loads(blob)  # numpy's own __setstate__, on a state this test chose
        assert ours.itemsize == theirs.itemsize, (args, state)
        assert ours.hasobject == theirs.hasobject, (args, state)
        assert ours.flags & 0x07 == theirs.flags & 0x07, (args, state)
        assert ours.names == theirs.names and ours.shape == theirs.shape, (args, state)
        assert ours.kind == theirs.kind and ours.isnative == theirs.isnative, (args, state)  # '|' reads as native
    assert accepted >= 1, "numpy's own unmodified state must load"


def test_real_dtypes_round_trip_through_joblib(tmp_path):
    """Every dtype joblib writes for these arrays loads, equal to joblib.load."""
    value = {"s": np.array([b"ab", b"c"], dtype="S2"), "u": np.array(["x", "yz"]), "v": np.zeros(2, dtype="V3"),
             "rec": np.zeros(3, dtype=[("a", "<i4"), ("b", "S3")]), "sub": np.zeros(2, dtype=("<f4", (3,))),
             "t": np.array(["2020-01-01"], dtype="M8[D]"), "big": np.arange(3, dtype=">i8"),
             "obj": np.array([1, "x", None], dtype=object)}
    path = tmp_path / "dtypes.joblib"
    joblib.dump(value, path)
    ours, theirs = safeload.load(path), joblib.load(path)
    for key, expected in theirs.items():
        assert ours[key].dtype == expected.dtype and ours[key].tobytes() == expected.tobytes(), key


# ---- nested object-array pickles ----------------------------------------------------------------------------------

def _frame_attack(tmp_path: Path) -> bytes:
    """The nested pickle of an object array, its FRAME stretched 5 bytes past its STOP."""
    raw = _dumped(tmp_path, {"o": np.array([1, "x", None], dtype=object), "w": np.arange(3.0)})
    start = raw.index(b"\x80\x05\x95")  # joblib writes object arrays as a nested protocol-5 pickle
    (length,) = struct.unpack_from("<Q", raw, start + 3)
    stop = start + 11 + length
    assert raw[stop - 1:stop] == b".", "the frame ends at the nested STOP"
    hidden = _skip_to_payload(5)
    return raw[:start + 3] + struct.pack("<Q", length + 5) + raw[start + 11:stop] + hidden + raw[stop:]


@pytest.mark.parametrize("kind", ("raw", "gzip"))
def test_nested_frame_past_stop(tmp_path, kind):
    path = tmp_path / f"frame.{kind}.joblib"
    path.write_bytes(_compress(kind, _frame_attack(tmp_path)))
    _assert_live(path, ("joblib",))
    err = _assert_refused_and_flagged(path)
    assert "FRAME" in err.what


def test_nested_pickle_ending_its_frame_loads(tmp_path):
    raw = _dumped(tmp_path, {"o": np.array([1, "x", None], dtype=object)})
    assert list(safeload.load(raw)["o"]) == [1, "x", None]


# ---- compressed streams ---------------------------------------------------------------------------------------------

def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


def _lz4(data: bytes) -> bytes:
    return pytest.importorskip("lz4.frame").compress(data)


HALF = len(PAYLOAD) // 2
SKIPPABLE = b"\x50\x2a\x4d\x18" + struct.pack("<I", 4) + b"skip"

#: name -> (builder, the native loaders the oracle runs on it)
STREAMS = {
    "gzip-two-members": (lambda: gzip.compress(PAYLOAD[:HALF]) + gzip.compress(PAYLOAD[HALF:]), ("decompress",)),
    "gzip-zero-padding": (lambda: gzip.compress(PAYLOAD[:HALF]) + b"\0" * 8 + gzip.compress(PAYLOAD[HALF:]),
                          ("decompress",)),
    "bz2-two-streams": (lambda: bz2.compress(PAYLOAD[:HALF]) + bz2.compress(PAYLOAD[HALF:]), ("decompress",)),
    "xz-two-streams": (lambda: lzma.compress(PAYLOAD[:HALF]) + lzma.compress(PAYLOAD[HALF:]), ("decompress",)),
    "lzma-alone-two-streams": (lambda: lzma.compress(PAYLOAD[:HALF], lzma.FORMAT_ALONE)
                               + lzma.compress(PAYLOAD[HALF:], lzma.FORMAT_ALONE), ("decompress",)),
    "lz4-two-frames": (lambda: _lz4(PAYLOAD[:HALF]) + _lz4(PAYLOAD[HALF:]), ("joblib",)),
    "zstd-two-frames": (lambda: _zstd(PAYLOAD[:HALF]) + _zstd(PAYLOAD[HALF:]), ()),
    "zstd-skippable-frame": (lambda: SKIPPABLE + _zstd(PAYLOAD), ()),
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_second_stream_refused(tmp_path, name):
    build, loaders = STREAMS[name]
    path = tmp_path / name
    path.write_bytes(build())
    if loaders:
        _assert_live(path, loaders)
    else:  # zstd -d and stream_reader(read_across_frames=True) read every frame and skip skippable ones
        zstandard = pytest.importorskip("zstandard")
        content = tmp_path / "content"
        content.write_bytes(zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(path.read_bytes()), read_across_frames=True).read())
        _assert_live(content, ("pickle",))
    err = _assert_refused_and_flagged(path)
    assert "after the end" in err.what or "skippable" in err.what


def _tar_in_gzip_extra(content: bytes) -> bytes:
    """A gzip file of ``content`` whose FEXTRA field makes the file's first 1 KiB a tar member holding PAYLOAD."""
    info = tarfile.TarInfo("model.pkl")
    info.size = len(PAYLOAD)
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    data = PAYLOAD + b"\0" * (-len(PAYLOAD) % 512) + b"\0" * 1024
    extra_len = 512 - 12 + len(data)
    block[0:12] = b"\x1f\x8b\x08\x04" + b"\0\0\0\0\x00\xff" + struct.pack("<H", extra_len)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = co.compress(content) + co.flush()
    return bytes(block) + data + body + struct.pack("<II", zlib.crc32(content), len(content))


def test_gzip_fextra_hiding_a_tar(tmp_path):
    benign = pickle.dumps({"w": [1.0, 2.0]}, protocol=4)
    path = tmp_path / "model.pkl.gz"
    path.write_bytes(_tar_in_gzip_extra(benign))
    assert gzip.decompress(path.read_bytes()) == benign  # gzip reads the benign pickle ...
    _assert_live(path, ("tarfile",))  # ... tarfile reads a member that runs the payload
    _assert_refused_and_flagged(path)


@pytest.mark.parametrize("flag", [0x04, 0x10, 0x02, 0x20])
def test_gzip_header_fields_nobody_writes_are_refused(flag):
    benign = pickle.dumps([1, 2], protocol=2)
    extra = {0x04: b"\x02\x00ab", 0x10: b"comment\0", 0x02: b"", 0x20: b""}[flag]
    header = b"\x1f\x8b\x08" + bytes([flag]) + b"\0\0\0\0\x00\xff" + extra
    if flag == 0x02:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    blob = header + co.compress(benign) + co.flush() + struct.pack("<II", zlib.crc32(benign), len(benign))
    if flag != 0x20:
        assert gzip.decompress(blob) == benign  # Python's gzip reads it
    with pytest.raises(safeload.FormatError, match="gzip header"):
        safeload.load(blob)


def test_gzip_file_name_as_python_writes_it_loads():
    benign = pickle.dumps({"a": 1}, protocol=4)
    buf = io.BytesIO()
    with gzip.GzipFile("model.pkl.gz", "wb", fileobj=buf) as f:
        f.write(benign)
    assert buf.getvalue()[3] & 0x08, "gzip.open writes FNAME"
    assert safeload.load(buf.getvalue()) == {"a": 1}


@pytest.mark.parametrize("kind", COMPRESSORS[1:])
def test_every_joblib_compressor_loads_equal_to_joblib(tmp_path, kind):
    if kind == "lz4":
        pytest.importorskip("lz4")
    path = tmp_path / f"m.{kind}.joblib"
    value = {"w": np.arange(6.0).reshape(2, 3), "s": np.array(["a", "bc"]), "o": np.array([None, 1], dtype=object)}
    joblib.dump(value, path, compress=(kind, 3))
    ours, theirs = safeload.load(path), joblib.load(path)
    for key in value:
        assert ours[key].dtype == theirs[key].dtype and ours[key].tolist() == theirs[key].tolist()


def test_zfile_header_must_be_as_joblib_writes_it():
    content = pickle.dumps([1, 2, 3], protocol=2)
    good = b"ZF" + b"0x%x" % len(content) + b" " * (19 - len(b"0x%x" % len(content))) + zlib.compress(content)
    assert safeload.load(good) == [1, 2, 3]
    bad = b"ZF" + b"0x%x" % len(content) + b"\t" + b" " * (18 - len(b"0x%x" % len(content))) + zlib.compress(content)
    with pytest.raises(safeload.SafeLoadError):
        safeload.load(bad)


def test_decompression_library_errors_are_format_errors():
    from safeload._containers.compressed import decompress

    good = {"gzip": gzip.compress(b"x" * 100), "bz2": bz2.compress(b"x" * 100), "xz": lzma.compress(b"x" * 100),
            "lzma": lzma.compress(b"x" * 100, lzma.FORMAT_ALONE), "zlib": zlib.compress(b"x" * 100)}
    for kind, blob in good.items():
        assert decompress(kind, blob, 1000) == b"x" * 100
        corrupt = blob[:len(blob) // 2] + bytes(b ^ 0x55 for b in blob[len(blob) // 2:])
        with pytest.raises(safeload.FormatError):
            decompress(kind, corrupt, 1000)


def test_torch_legacy_pickle_frame_past_stop(tmp_path):
    """The same rule for the torch legacy format's several pickles: C ``pickle.load`` reads a large FRAME whole
    from the file, so torch.load reads the next pickle where that frame ends, not after STOP."""
    torch = pytest.importorskip("torch")
    from safeload._opcodes import iter_ops

    buf = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    end = next(off + 1 for spec, _arg, off in iter_ops(raw, 0) if spec.name == "STOP")  # the magic number
    skip = 200_000  # above C pickle's read-ahead, so the frame is read from the file in one piece
    framed = b"\x80\x04\x95" + struct.pack("<Q", end - 2 + skip) + raw[2:end] + _skip_to_payload(skip)
    path = tmp_path / "legacy.pt"
    path.write_bytes(framed + raw[end:])
    _assert_live(path, ("torch",))
    _assert_refused_and_flagged(path)


def test_gzip_file_name_longer_than_a_file_system_allows_is_refused():
    benign = pickle.dumps({"a": 1}, protocol=4)
    for name, ok in (("m" * 255, True), ("m" * 256, False)):
        buf = io.BytesIO()
        with gzip.GzipFile(name + ".gz", "wb", fileobj=buf) as f:
            f.write(benign)
        assert gzip.decompress(buf.getvalue()) == benign
        if ok:
            assert safeload.load(buf.getvalue()) == {"a": 1}
        else:
            with pytest.raises(safeload.FormatError, match="FNAME"):
                safeload.load(buf.getvalue())


@pytest.mark.parametrize("state", [
    (4, "<", None, None, None, -1, -1, 0, (None, (b"\xff\xfe", 1, 1, 1))),  # a unit that is not ASCII
    (3, np.array([1, 2]), None, None, None, -1, -1, 0),  # a byte order that is an array (its == is elementwise)
    (3, "<", None, None, None, -1, -1, 1 << 40),  # flags past a C int
    (3, "|", (np.dtype("S2"), (8,)), ("a",), {"a": (np.dtype("S2"), 0)}, 16, 1, 16),  # subarray and fields
], ids=["unit", "byteorder", "flags", "both"])
def test_dtype_state_odd_values_are_refusals(state):
    code = "M8" if len(state) == 9 else ("V16" if state[2] is not None else "i4")
    blob = pickle.dumps(_Dtype((code, False, True), state), protocol=2)
    with pytest.raises(safeload.FormatError):
        safeload.load(blob)


def test_joblib_array_of_zero_size_items_is_refused(tmp_path):
    """joblib.dump cannot write one (it divides by the item size), so a V1 array's dtype is edited to V0."""
    raw = _dumped(tmp_path, {"v": np.zeros(3, dtype="V1")})
    raw = _once(raw, b"\x8c\x02V1", b"\x8c\x02V0")
    raw = _once(raw, b"NNNK\x01K\x01K\x00t", b"NNNK\x00K\x01K\x00t")
    path = tmp_path / "v0.joblib"
    path.write_bytes(raw)
    with pytest.raises(ZeroDivisionError):
        joblib.load(path)  # joblib itself cannot read it
    with pytest.raises(safeload.FormatError, match="no bytes"):
        safeload.load(path)


def test_dtype_state_property_against_numpy():
    """Random states on every type code: what safeload accepts, numpy's own unpickling makes with the same item
    size, object-ness and byte order (numpy only ever sees states safeload accepted)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    codes = st.sampled_from(["S0", "S5", "U0", "U3", "V0", "V8", "i4", "u2", "f8", "c16", "b1", "O8", "M8", "m8"])
    ints = st.one_of(st.integers(-130, 70), st.sampled_from([-1 << 31, (1 << 31) - 1, 255, 256]))

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(codes, st.sampled_from(["<", ">", "|", "="]), ints, ints, ints)
    def check(code, byteorder, elsize, alignment, flags):
        meta = [(None, (b"s", 1, 1, 1))] if code[0] in "Mm" else []
        state = (4 if meta else 3, byteorder, None, None, None, elsize, alignment, flags, *meta)
        blob = pickle.dumps(_Dtype((code, False, True), state), protocol=2)
        try:
            ours = safeload.load(blob)
        except safeload.FormatError:
            return
        theirs = pickle.loads(blob)
        assert (ours.itemsize, ours.hasobject, ours.kind) == (theirs.itemsize, theirs.hasobject, theirs.kind)
        assert ours.isnative == theirs.isnative or ours.itemsize <= 1

    check()


def test_zstd_skippable_frame_that_is_also_a_pickle(tmp_path):
    """Skippable-frame magic 0x184D2A55 starts with 'U' (SHORT_BINSTRING of 0x2A bytes): pickle.load reads the
    frame header as a string and runs the pickle hidden in the frame's content; zstd -d skips the frame."""
    zstandard = pytest.importorskip("zstandard")
    content = b"x" * 36 + b"0" + PAYLOAD[2:]  # the rest of the 42-byte string, POP, the payload without PROTO
    blob = b"U\x2a\x4d\x18" + struct.pack("<I", len(content)) + content
    blob += zstandard.ZstdCompressor().compress(pickle.dumps({"a": 1}))
    path = tmp_path / "model.zst"
    path.write_bytes(blob)
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True).read() \
        == pickle.dumps({"a": 1})
    _assert_live(path, ("pickle",))
    _assert_refused_and_flagged(path)
