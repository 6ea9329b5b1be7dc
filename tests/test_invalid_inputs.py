"""Invalid but codeless inputs: nothing to run, only numbers that lie. Each is a SafeLoadError, never an internal
error, a hang or a giant allocation (each load runs under a 2 GiB address-space cap in one child process)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from torch_pickles import checkpoint, tensor_ops

safeload = pytest.importorskip("safeload")

F32 = struct.pack("<4f", 1, 2, 3, 4)


def _torch(**kw: object) -> bytes:
    args: dict = dict(key="0", storage_cls="FloatStorage", numel=4, offset=0, size=(2, 2), stride=(2, 1))
    args.update(kw)
    return checkpoint({"w": tensor_ops(**args)}, {"0": F32})


def _st(header: object, data: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _npy(header: str, body: bytes = b"", version: bytes = b"\x01\x00") -> bytes:
    raw = header.encode("latin1")
    raw += b" " * (63 - (10 + len(raw)) % 64) + b"\n"
    return b"\x93NUMPY" + version + struct.pack("<H", len(raw)) + raw + body


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _patch_eocd(data: bytes, field: int, value: int) -> bytes:
    """Rewrite one field of the end-of-central-directory record (fields as in struct '<4sHHHHIIH')."""
    pos = data.rfind(b"PK\x05\x06")
    fields = list(struct.unpack_from("<4sHHHHIIH", data, pos))
    fields[field] = value
    return data[:pos] + struct.pack("<4sHHHHIIH", *fields) + data[pos + 22:]


def _patch_central(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    pos = data.find(b"PK\x01\x02")
    out = bytearray(data)
    struct.pack_into(fmt, out, pos + offset, value)
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _paddle(dims: tuple[int, ...]) -> bytes:
    """A Paddle DenseTensor record (float32) with the given dims and no data."""
    desc = b"\x08\x05" + b"".join(b"\x10" + _varint(d) for d in dims)  # data_type, dims (protobuf)
    return struct.pack("<IQI", 0, 0, 0) + struct.pack("<i", len(desc)) + desc


def _mindspore(dims: tuple[int, ...]) -> bytes:
    """A MindSpore checkpoint with one Float32 value of the given dims and no data."""
    def ld(field: int, payload: bytes) -> bytes:
        return bytes([field << 3 | 2]) + _varint(len(payload)) + payload

    tensor = b"".join(b"\x08" + _varint(d) for d in dims) + ld(2, b"Float32") + ld(3, b"")
    return ld(1, ld(1, b"w") + ld(2, tensor))


GOOD_ZIP = _zip({"archive/data.pkl": b"\x80\x02N.", "archive/version": b"3\n"})

CASES = {
    # torch storages: offsets, sizes and strides out of range
    "torch offset 2**63": _torch(offset=2**63, size=(1,), stride=(1,)),
    # regression (scan called these clean while load refused them): views beyond 2**63 bytes
    "torch size 2**40 x 2**40 stride 0 (numel over int64)": _torch(size=(2**40, 2**40), stride=(0, 0)),
    "torch size 2**31 x 2**31 stride 0 (2**64 bytes)": _torch(size=(2**31, 2**31), stride=(0, 0)),
    "torch numel 2**62 (record is 16 bytes)": _torch(numel=2**62),
    "torch stride 2**64": _torch(size=(2,), stride=(2**64,)),
    "torch absolute key": _torch(key="/etc/passwd"),
    "torch key with backslash traversal": _torch(key="..\\..\\x"),
    "torch key with NUL": _torch(key="0\x00x"),
    # safetensors: offsets and lengths that lie
    "safetensors header length beyond file": _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                                 bytes(4), length=1 << 40),
    "safetensors header length 2**64-1": struct.pack("<Q", 2**64 - 1) + b"{}",
    "safetensors end before start": _st({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, bytes(8)),
    "safetensors offsets 2**64": _st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [2**64 - 8, 2**64]}},
                                     bytes(8)),
    "safetensors shape product overflows": _st({"a": {"dtype": "F32", "shape": [2**32, 2**32, 2**32],
                                                      "data_offsets": [0, 0]}}, b""),
    "safetensors negative dim": _st({"a": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}}, bytes(16)),
    "safetensors float offsets": _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}}, bytes(4)),
    # regression (corpus finding): a zero dimension next to huge ones, an 'Unexpected ValueError' from numpy
    "safetensors (2**60, 0) of F64": _st({"a": {"dtype": "F64", "shape": [2**60, 0], "data_offsets": [0, 0]}}, b""),
    "safetensors (2**40, 2**40, 0)": _st({"a": {"dtype": "F32", "shape": [2**40, 2**40, 0],
                                                 "data_offsets": [0, 0]}}, b""),
    "safetensors nested header 10k deep": struct.pack("<Q", 20_000) + b"[" * 10_000 + b"]" * 10_000,
    # npy: absurd shapes and headers
    "npy shape 2**62": _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }"),
    "npy shape product overflows": _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2**40, 2**40), }"),
    "npy negative dim": _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", bytes(8)),
    "npy shape of strings": _npy("{'descr': '<f8', 'fortran_order': False, 'shape': ('a',), }"),
    "npy (2**60, 0) of f8 (regression: ValueError)": _npy("{'descr': '<f8', 'fortran_order': False, "
                                                          "'shape': (1152921504606846976, 0), }"),
    "npy header is a call": _npy("__import__('os').system('touch MARKER')"),
    "npy header with a lambda": _npy("{'descr': (lambda: 0)(), 'fortran_order': False, 'shape': (1,), }"),
    "npy header length beyond file": b"\x93NUMPY\x01\x00\xff\xff{'descr'",
    "npy v2 header length 4G": b"\x93NUMPY\x02\x00\xff\xff\xff\xff{",
    "npy huge void dtype": _npy("{'descr': '|V1099511627776', 'fortran_order': False, 'shape': (1,), }"),
    "npy fortran_order not a bool": _npy("{'descr': '<f8', 'fortran_order': 'yes', 'shape': (1,), }", bytes(8)),
    "npy data shorter than shape": _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", bytes(8)),
    "npz member with traversal name": _zip({"../x.npy": _npy("{'descr': '<f8', 'fortran_order': False, "
                                                              "'shape': (1,), }", bytes(8))}),
    # regression (corpus finding): the same zero-dimension shapes in the framework formats
    "paddle dims (2**62, 0)": _paddle((2**62, 0)),
    "mindspore dims (2**62, 0)": _mindspore((2**62, 0)),
    # zip headers that disagree
    "zip directory offset beyond file": _patch_eocd(GOOD_ZIP, 6, 0xFFFFFFF0),
    "zip directory size lies": _patch_eocd(GOOD_ZIP, 5, 3),
    "zip member count lies": _patch_eocd(GOOD_ZIP, 4, 7),
    "zip member count 0": _patch_eocd(_patch_eocd(GOOD_ZIP, 4, 0), 3, 0),
    "zip central header offset beyond file": _patch_central(GOOD_ZIP, 42, "<I", 0x7FFFFFFF),
    "zip central name length beyond directory": _patch_central(GOOD_ZIP, 28, "<H", 0xFFFF),
    "zip central extra length lies": _patch_central(GOOD_ZIP, 30, "<H", 0x4000),
    "zip multi-disk": _patch_eocd(GOOD_ZIP, 1, 1),
    "zip truncated end record": GOOD_ZIP[:-5],
    "zip64 extra claiming 2**63": _patch_central(
        _patch_central(GOOD_ZIP, 20, "<I", 0xFFFFFFFF), 24, "<I", 0xFFFFFFFF),
}

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import safeload
    from safeload._scan import scan
    out = {}
    for path in sys.argv[1:]:
        data = open(path, 'rb').read()
        res = {}
        try:
            safeload.loads(data, tensors='numpy')
            res['load'] = 'accepted'
        except safeload.SafeLoadError as e:
            res['load'] = type(e).__name__ + ': ' + str(e)[:200]
            res['internal'] = 'while reading the file' in e.what or isinstance(e.__cause__, MemoryError)
        except BaseException as e:
            res['load'] = 'CRASH ' + type(e).__name__ + ': ' + str(e)[:200]
        try:
            res['scan'] = scan(data).exit_code
        except BaseException as e:
            res['scan'] = 'CRASH ' + type(e).__name__ + ': ' + str(e)[:200]
        out[path] = res
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("invalid")
    paths = {}
    for i, (name, data) in enumerate(CASES.items()):
        p = folder / f"case{i}"
        p.write_bytes(data)
        paths[str(p)] = name
    proc = subprocess.run([sys.executable, "-c", _CHILD, *paths], capture_output=True, text=True, timeout=120,
                          cwd=folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (folder / "MARKER").exists()
    return {paths[p]: r for p, r in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


@pytest.mark.parametrize("name", list(CASES))
def test_invalid_input_is_a_clean_refusal(name: str, outcomes: dict[str, dict]) -> None:
    res = outcomes[name]
    assert not str(res["load"]).startswith(("CRASH", "accepted")), res
    assert not res.get("internal"), res
    assert res["scan"] in (1, 2), res
