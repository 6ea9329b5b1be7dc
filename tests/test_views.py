"""safeload._views.make_view, the one way safeload makes an array or tensor over bytes: it never returns a view
that reaches outside its buffer, and a valid geometry gives exactly the elements numpy reads at those bytes.

End to end: a torch zip whose stored record is shorter than its sizes say (local and central sizes agreeing with
each other but not with the bytes that are there, the CRC-32 forged over the shorter copy) is refused by load with
tensors="numpy", by load with mmap=True and by ``safeload convert``; and the view check alone refuses it when the
container layers are made to hand over the short buffer."""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload._views import check_extent, make_view

try:
    import torch
except ImportError:  # pragma: no cover - the numpy cases still run
    torch = None

_DTYPES = [np.dtype(c) for c in ("u1", "<i2", "<f4", ">i4", "<f8", "<c16")]


def _positions(shape, strides, offset):
    for index in itertools.product(*(range(n) for n in shape)):
        yield index, offset + sum(i * s for i, s in zip(index, strides))


@st.composite
def geometries(draw, torch_like=False):
    dtype = draw(st.sampled_from(_DTYPES[:5] if torch_like else _DTYPES))
    buf = bytearray(draw(st.binary(min_size=0, max_size=200)))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    if torch_like:
        strides = tuple(dtype.itemsize * s for s in draw(st.lists(st.integers(0, 12), min_size=ndim, max_size=ndim)))
        offset = dtype.itemsize * draw(st.integers(0, 60))
    else:
        strides = tuple(draw(st.lists(st.integers(-70, 70), min_size=ndim, max_size=ndim)))
        offset = draw(st.integers(0, 260))
    return buf, dtype, shape, strides, offset


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries())
def test_numpy_view_never_reaches_outside(geometry):
    buf, dtype, shape, strides, offset = geometry
    places = list(_positions(shape, strides, offset))
    inside = all(0 <= pos and pos + dtype.itemsize <= len(buf) for _, pos in places) and (places or offset <= len(buf))
    if not inside:
        with pytest.raises(safeload.FormatError, match="reaches bytes|starts at byte"):
            make_view(buf, dtype, shape, strides, offset)
        return
    view = make_view(buf, dtype, shape, strides, offset)
    assert view.shape == shape and view.dtype == dtype
    for index, pos in places:  # exactly the bytes at the computed place (bytes, so NaNs compare)
        assert view[index + (...,)].tobytes() == bytes(buf[pos : pos + dtype.itemsize])
    if places:  # a view of the buffer itself, not a copy: writes reach the buffer
        index, pos = places[0]
        view[index] = np.frombuffer(bytes(b ^ 0xFF for b in buf[pos : pos + dtype.itemsize]), dtype)[0]
        assert view[index + (...,)].tobytes() == bytes(buf[pos : pos + dtype.itemsize])
        lo, hi = np.lib.array_utils.byte_bounds(view)
        base = np.frombuffer(buf, np.uint8).ctypes.data
        assert base <= lo and hi <= base + len(buf)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries(), st.integers(0, 40))
def test_view_over_a_shorter_array_base_is_bounded_by_the_base(geometry, cut):
    """A base array sliced out of a larger buffer: the view may not reach the bytes after the slice."""
    buf, dtype, shape, strides, offset = geometry
    base = np.frombuffer(bytes(buf) + b"\xAA" * 64, np.uint8)[: max(len(buf) - cut, 0)]
    places = list(_positions(shape, strides, offset))
    inside = all(0 <= pos and pos + dtype.itemsize <= len(base) for _, pos in places) and (places or offset <= len(base))
    if not inside:
        with pytest.raises(safeload.FormatError):
            make_view(base, dtype, shape, strides, offset)
    else:
        view = make_view(base, dtype, shape, strides, offset)
        assert all(view[i + (...,)].tobytes() == base[p : p + dtype.itemsize].tobytes() for i, p in places)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries(torch_like=True), st.booleans())
def test_torch_view_never_reaches_outside(geometry, over_tensor):
    buf, dtype, shape, strides, offset = geometry
    tdtype = {"u1": torch.uint8, "i2": torch.int16, "f4": torch.float32, "i4": torch.int32,
              "f8": torch.float64}[dtype.str[1:]]
    if dtype.byteorder == ">":
        return  # torch tensors are native-endian; big-endian records are byteswapped before they are viewed
    usable = len(buf) - len(buf) % dtype.itemsize
    source = buf
    if over_tensor:
        if usable == 0:
            return
        source = torch.frombuffer(buf, dtype=tdtype, count=usable // dtype.itemsize)
    else:
        source = buf[:usable]
    places = list(_positions(shape, strides, offset))
    inside = all(pos + dtype.itemsize <= usable for _, pos in places) and (places or offset <= usable)
    if not inside:
        with pytest.raises(safeload.FormatError):
            make_view(source, tdtype, shape, strides, offset)
        return
    view = make_view(source, tdtype, shape, strides, offset)
    assert tuple(view.shape) == shape and view.dtype == tdtype
    raw = bytes(buf)
    for index, pos in places:
        assert view[index].numpy().tobytes() == raw[pos : pos + dtype.itemsize]


def test_too_short_buffer_refused_directly():
    f4 = np.dtype("<f4")
    assert make_view(bytearray(12), f4, (3,)).shape == (3,)
    for buf in (bytearray(11), b"\0" * 8, memoryview(bytearray(40))[:11], np.zeros(11, np.uint8)):
        with pytest.raises(safeload.FormatError, match="reaches bytes 0..12 of a (11|8)-byte buffer"):
            make_view(buf, f4, (3,))
    with pytest.raises(safeload.FormatError, match="reaches bytes -4..4"):
        make_view(bytearray(64), f4, (2,), (-4,), 0)  # a negative stride reaches below the start
    with pytest.raises(safeload.FormatError, match="starts at byte 13"):
        make_view(bytearray(12), f4, (0, 5), None, 13)  # an empty view still may not start past the end
    with pytest.raises(safeload.FormatError, match="strides"):
        make_view(bytearray(64), f4, (2,), (2**63,), 0)
    if torch is not None:
        with pytest.raises(safeload.FormatError, match="reaches bytes"):
            make_view(bytearray(11), torch.float32, (3,))
        with pytest.raises(safeload.FormatError, match="reaches bytes"):
            make_view(torch.zeros(2), torch.float32, (3,))
        with pytest.raises(safeload.FormatError, match="negative"):
            make_view(bytearray(64), torch.float32, (2,), (-4,), 8)


def test_check_extent_is_numpys_limit():
    assert check_extent((2**20, 0), 8) == 0
    with pytest.raises(safeload.FormatError, match="larger than any array"):
        check_extent((2**60, 0), 8)
    with pytest.raises(ValueError):
        np.empty((2**60, 0), dtype="f8")  # numpy itself refuses it, with a zero dimension
    with pytest.raises(safeload.FormatError, match="not a tuple"):
        check_extent((2, -1), 1)
    with pytest.raises(safeload.FormatError, match="not a tuple"):
        check_extent((1,) * 65, 1)


# ---- the short stored record, end to end ---------------------------------------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


def _forge(prefix: bytes, target: int) -> bytes:
    """Four bytes that, appended to ``prefix``, make its CRC-32 ``target``."""
    table = _crc_table()
    top = {t >> 24: j for j, t in enumerate(table)}
    reg, chosen = target ^ 0xFFFFFFFF, []
    for _ in range(4):
        j = top[reg >> 24]
        chosen.append(j)
        reg = ((reg ^ table[j]) << 8) & 0xFFFFFFFF
    reg, out = zlib.crc32(prefix) ^ 0xFFFFFFFF, bytearray()
    for j in reversed(chosen):
        out.append((reg ^ j) & 0xFF)
        reg = (reg >> 8) ^ table[j]
    assert zlib.crc32(prefix + bytes(out)) == target
    return bytes(out)


N = 1000  # float32 elements the reference promises: 4000 bytes; the record holds 8


def _torch_zip_members() -> dict[str, bytes]:
    """A real checkpoint's members: torch.save when torch is here, else the same layout written by hand."""
    if torch is not None:
        buf = io.BytesIO()
        torch.save({"w": torch.arange(N, dtype=torch.float32)}, buf)
        with zipfile.ZipFile(buf) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist()}
    from torch_pickles import checkpoint, tensor_ops

    raw = checkpoint({"w": tensor_ops("0", "FloatStorage", N, 0, (N,), (1,))}, {"0": np.arange(N, dtype="<f4").tobytes()})
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def short_record_checkpoint() -> bytes:
    """The record ``data/0`` written last with 8 bytes, its local and central sizes both saying 4000, and a
    4-byte zip comment that forges the CRC-32 of what a reader copying 4000 bytes from the record gets (clipped at
    the end of the file): the record, the central directory and the end record."""
    members = _torch_zip_members()
    record = next(n for n in members if n.endswith("/data/0"))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, content in members.items():
            if name != record:
                zf.writestr(name, content)
        zf.writestr(record, members[record][:8])
        zf.comment = b"\0" * 4
    data = bytearray(out.getvalue())
    local = data.index(record.encode()) - 30  # the name's first copy is in its local header, the last in the directory
    central = data.rindex(record.encode()) - 46
    assert data[local : local + 4] == b"PK\x03\x04" and data[central : central + 4] == b"PK\x01\x02"
    struct.pack_into("<I", data, local + 22, 4 * N)  # uncompressed size, local header
    struct.pack_into("<I", data, central + 24, 4 * N)  # uncompressed size, central directory
    target = 0x5AFE1DAD
    struct.pack_into("<I", data, local + 14, target)
    struct.pack_into("<I", data, central + 16, target)
    start = local + 30 + len(record)
    data[-4:] = _forge(bytes(data[start:-4]), target)
    assert zlib.crc32(bytes(data[start : start + 4 * N])) == target  # the clipped copy passes the CRC check
    assert len(data) - start < 4 * N
    return bytes(data)


@pytest.fixture()
def short_record(tmp_path: Path) -> Path:
    path = tmp_path / "short_record.pt"
    path.write_bytes(short_record_checkpoint())
    return path


def test_short_record_refused_eager_numpy(short_record):
    with pytest.raises(safeload.SafeLoadError):
        safeload.load(short_record, tensors="numpy")
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(short_record.read_bytes(), tensors="numpy")


def test_short_record_refused_mapped(short_record):
    for tensors in ("numpy",) + (("torch",) if torch is not None else ()):
        with pytest.raises(safeload.SafeLoadError):
            safeload.load(short_record, tensors=tensors, mmap=True)


def test_short_record_refused_by_convert(short_record, tmp_path):
    from safeload._cli import main

    dst = tmp_path / "out.safetensors"
    assert main(["convert", str(short_record), str(dst)]) == 1
    assert not dst.exists()


@pytest.mark.parametrize("mmap", [False, True])
def test_view_check_alone_stops_a_short_record(short_record, monkeypatch, mmap):
    """With the storage-length check switched off (as if a container reader let the short buffer through), the
    view check still refuses: no array over bytes that are not the record's."""
    import safeload._tensors as rebuild

    monkeypatch.setattr(rebuild, "_nbytes", lambda buffer: 4 * N)  # the storage now believes the buffer is whole
    from safeload._containers import zip as zipmod

    real_raw = zipmod.ZipArchive.raw

    def raw_clipped(self, name):  # the pre-fix reading: the declared size, clipped at the end of the mapping
        member = self.members[name]
        if name.endswith("/data/0"):
            return memoryview(self.data)[member.data_offset : member.data_offset + 4 * N]
        return real_raw(self, name)

    def copy_clipped(self, name, verify=True):
        member = self.members[name]
        return bytearray(memoryview(self.data)[member.data_offset : member.data_offset + 4 * N])

    # a well-formed file, whose record the patched reader hands over short: only the view check is left
    members = _torch_zip_members()
    record = next(n for n in members if n.endswith("/data/0"))
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as zf:
        for name, content in members.items():
            zf.writestr(name, content if name != record else content[:8])
    path = short_record.with_name("good_layout.pt")
    path.write_bytes(good.getvalue())
    monkeypatch.setattr(zipmod.ZipArchive, "raw", raw_clipped)
    monkeypatch.setattr(zipmod.ZipArchive, "read_writeable", copy_clipped)
    monkeypatch.setattr(zipmod.ZipArchive, "verify", lambda self, name, content: None)  # as if the CRC were forged
    # the central directory says 8 bytes: make the reference's size check see 4000, as the forged file's does
    real_parse = zipmod.ZipArchive.__init__

    def parse(self, *args, **kwargs):
        real_parse(self, *args, **kwargs)
        for name, member in list(self.members.items()):
            if name.endswith("/data/0"):
                self.members[name] = member._replace(size=4 * N)

    monkeypatch.setattr(zipmod.ZipArchive, "__init__", parse)
    with pytest.raises(safeload.FormatError, match="reaches bytes 0..4000 of a [0-9]+-byte buffer"):
        safeload.load(path, tensors="numpy", mmap=mmap)


_DIMS = st.integers(0, 6) | st.sampled_from([2**k + d for k in (20, 31, 32, 59, 60, 61, 62, 63) for d in (-1, 0, 1)])


@settings(max_examples=300, deadline=None)
@given(st.lists(_DIMS, max_size=4).map(tuple), st.sampled_from([1, 2, 4, 8, 16]))
def test_check_extent_agrees_with_numpy(shape, itemsize):
    """check_extent refuses exactly the shapes numpy itself refuses as too big (a zero-stride array over 16 bytes
    allocates nothing, so numpy's own size check is the only thing that can fail)."""
    dtype = np.dtype(f"V{itemsize}")
    try:
        np.ndarray(shape, dtype, buffer=bytes(16), strides=(0,) * len(shape))
        numpy_ok = True
    except ValueError:
        numpy_ok = False
    try:
        check_extent(shape, itemsize)
        ours_ok = True
    except safeload.FormatError:
        ours_ok = False
    assert ours_ok == numpy_ok, (shape, itemsize)
