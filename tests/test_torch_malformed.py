"""Malformed storage references in torch checkpoints: every one is a SafeLoadError, never a crash or an
out-of-bounds read, with and without torch, eager and mapped."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

import safeload
from torch_pickles import checkpoint, tensor_ops

F32 = struct.pack("<4f", 1, 2, 3, 4)
TENSORS = ["numpy"] + (["torch"] if __import__("importlib.util").util.find_spec("torch") else [])


def good(**kw):
    args = dict(key="0", storage_cls="FloatStorage", numel=4, offset=0, size=(2, 2), stride=(2, 1))
    args.update(kw)
    return checkpoint({"w": tensor_ops(**args)}, {"0": F32})


@pytest.mark.parametrize("tensors", TENSORS)
def test_well_formed_reference_loads(tensors):
    out = safeload.loads(good(), tensors=tensors)
    assert np.asarray(out["w"]).tolist() == [[1.0, 2.0], [3.0, 4.0]]


CASES = {
    "offset beyond record": dict(offset=4, size=(1,), stride=(1,)),
    "size beyond record": dict(size=(3, 2)),
    "stride beyond record": dict(size=(2, 2), stride=(3, 1)),
    "negative stride": dict(size=(2, 2), stride=(-1, 1)),
    "negative size": dict(size=(-2, 2)),
    "negative offset": dict(offset=-1),
    "overflowing stride product": dict(size=(2, 2), stride=(2**62, 2**62)),
    "numel disagrees with record": dict(numel=5),
    "key names no record": dict(key="7"),
    "path traversal key": dict(key="../../etc/passwd"),
    "size and stride of different rank": dict(size=(4,), stride=(1, 1)),
    "storage class that is not a storage": dict(storage_cls="Tensor"),
}


@pytest.mark.parametrize("tensors", TENSORS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mmap", [False, True])
def test_malformed_reference_refused(case, tensors, mmap, tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(good(**CASES[case]))
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.load(path, tensors=tensors, mmap=mmap)
    assert "data.pkl" in str(info.value) or "archive" in str(info.value)


@pytest.mark.parametrize("tensors", TENSORS)
def test_key_reused_with_wider_dtype_refused(tensors):
    data = checkpoint({"a": tensor_ops("0", "FloatStorage", 4, 0, (4,), (1,)),
                       "b": tensor_ops("0", "DoubleStorage", 4, 0, (4,), (1,))}, {"0": F32})
    with pytest.raises(safeload.FormatError, match="two different types"):
        safeload.loads(data, tensors=tensors)


@pytest.mark.parametrize("tensors", TENSORS)
def test_zero_stride_view_over_huge_size_does_not_allocate(tensors):
    """A 10**12-element broadcast view of one float is a view, as in torch: no terabyte allocation."""
    data = checkpoint({"w": tensor_ops("0", "FloatStorage", 1, 0, (10**6, 10**6), (0, 0))}, {"0": F32[:4]})
    start = time.perf_counter()
    out = safeload.loads(data, tensors=tensors)
    assert time.perf_counter() - start < 2
    assert tuple(out["w"].shape) == (10**6, 10**6)
    assert float(out["w"][123456, 654321]) == 1.0


def test_location_string_is_data(tmp_path):
    """A location that names no device is refused in every tensor mode and by scan: torch.load refuses it
    without map_location and ignores it with one, so two native readings disagree."""
    data = checkpoint({"w": tensor_ops("0", "FloatStorage", 4, 0, (4,), (1,), location="os.system('x')")},
                      {"0": F32})
    for tensors in TENSORS:
        with pytest.raises(safeload.SafeLoadError, match="not a device"):
            safeload.loads(data, tensors=tensors)
        with pytest.raises(safeload.SafeLoadError, match="not a device"):
            safeload.loads(data, tensors=tensors, map_location="cpu")
    good = checkpoint({"w": tensor_ops("0", "FloatStorage", 4, 0, (4,), (1,), location="cpu")}, {"0": F32})
    assert safeload.loads(good, tensors="numpy")["w"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("tensors", TENSORS)
@pytest.mark.parametrize("size", [16, 3 << 20])  # checked inline, and on the CRC thread
def test_record_changed_after_writing_fails_its_crc(tensors, size, tmp_path):
    raw = (bytes(range(256)) * (size // 256 + 1))[:size]
    data = bytearray(checkpoint({"w": tensor_ops("0", "ByteStorage", len(raw), 0, (len(raw),), (1,))}, {"0": raw}))
    at = bytes(data).index(raw[:64])
    data[at + 7] ^= 0xFF  # one byte of the record, after the archive was written
    path = tmp_path / "tampered.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(safeload.FormatError, match="CRC-32"):
        safeload.load(path, tensors=tensors)
    safeload.load(path, tensors=tensors, mmap=True)  # mapped: the record is never read, so the CRC is deferred
