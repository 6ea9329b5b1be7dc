"""The shared protobuf wire-format helpers (safeload/_protobuf.py) and the readers built on them: MindSpore
checkpoints, Paddle DenseTensor descriptors, the ONNX sniffer.

Real files: /work/shared/samples/mindspore (written by MindSpore's own ``save_checkpoint``; see its
make_samples.py). A scan of a MindSpore checkpoint makes every check a load makes but builds no array, so it
imports neither numpy nor ml_dtypes.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import safeload
from safeload import _protobuf
from safeload._containers.mindspore import is_mindspore

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "mindspore"
needs_samples = pytest.mark.skipif(not (SAMPLES / "dtypes.ckpt").exists(), reason="MindSpore samples not present")


def _encode(n: int) -> bytes:
    """LEB128 as protobuf writes a uint64 (negative int64 values as their 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _encode(field << 3 | 2) + _encode(len(payload)) + payload


def _checkpoint(tensors: list[tuple[str, list[int], str, bytes]]) -> bytes:
    """A Checkpoint message as MindSpore's serializer lays it out (Value{tag, TensorProto{dims, type, content}})."""
    out = b""
    for tag, dims, ttype, content in tensors:
        tensor = b"".join(b"\x08" + _encode(d) for d in dims) + _ld(2, ttype.encode()) + _ld(3, content)
        out += _ld(1, _ld(1, tag.encode()) + _ld(2, tensor))
    return out


def test_varint_known_values() -> None:
    assert _protobuf.varint(b"\x96\x01", 0, 2) == (150, 2)  # the protobuf encoding guide's example
    assert _protobuf.varint(b"\x00", 0, 1) == (0, 1)
    minus_one = b"\xff" * 9 + b"\x01"  # int64 -1 as every protobuf writer emits it: ten bytes
    value, end = _protobuf.varint(minus_one, 0, len(minus_one))
    assert end == 10 and _protobuf.int64(value) == -1


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1), st.binary(max_size=4))
def test_varint_round_trip(n: int, tail: bytes) -> None:
    raw = _encode(n) + tail
    value, end = _protobuf.varint(raw, 0, len(raw))
    assert end == len(raw) - len(tail)
    assert value == n & ((1 << 64) - 1)
    if n < 0:
        assert _protobuf.int64(value) == n


@pytest.mark.parametrize("raw, what", [
    (b"\xff" * 9 + b"\x02", "does not fit 64 bits"),  # protobuf's Python decoder would cut it to 64 bits
    (b"\x80" * 10 + b"\x00", "longer than 10 bytes"),
    (b"\x80\x80", "Truncated"),
])
def test_varints_readers_disagree_on_are_refused(raw: bytes, what: str) -> None:
    with pytest.raises(safeload.FormatError, match=what):
        _protobuf.varint(raw, 0, len(raw))


def test_fields_refuse_lengths_past_the_message_and_other_wire_types() -> None:
    assert list(_protobuf.fields(b"\x08\x05\x12\x02ab", 0, 6, "test")) == [(1, 0, 5, 2), (2, 2, (4, 6), 4)]
    with pytest.raises(safeload.FormatError, match="claims 9 bytes"):
        list(_protobuf.fields(b"\x12\x09ab", 0, 4, "test"))
    with pytest.raises(safeload.FormatError, match="wire type 5"):
        list(_protobuf.fields(b"\x0d\x00\x00\x00\x00", 0, 5, "test"))


def test_readers_share_one_varint() -> None:
    """paddle.py and _kinds.py read varints with safeload/_protobuf.py, not with mindspore.py's privates."""
    for name in ("_containers/paddle.py", "_containers/mindspore.py", "_kinds.py"):
        tree = ast.parse((REPO / "safeload" / name).read_text())
        imported = {(node.module or "") for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(m.endswith("mindspore") for m in imported), name
        assert any(m.endswith("_protobuf") for m in imported), name


@needs_samples
def test_real_checkpoints_read_with_the_shared_helpers() -> None:
    data = (SAMPLES / "dtypes.ckpt").read_bytes()
    assert is_mindspore(data)
    loaded = safeload.load(SAMPLES / "dtypes.ckpt")
    assert loaded["bf16"].dtype.name in ("bfloat16", "float32")  # float32 where ml_dtypes is missing
    assert [float(x) for x in loaded["bf16"]] == [1.0, 2.5, -3.0]
    assert loaded["i64"].tolist() == [0, 1, 2, 3]
    sliced = safeload.load(SAMPLES / "sliced_SLICE_SIZE_1KB.ckpt")
    assert sliced["big"].shape == (30, 100) and sliced["big"].ravel().tolist() == list(range(3000))


_SCAN = """
import sys
from safeload._scan import scan_file
report = scan_file(sys.argv[1])
heavy = sorted(m for m in ("numpy", "ml_dtypes") if m in sys.modules)
print(report.status, ",".join(heavy) or "-")
"""


def _scan_fresh(path: Path) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_SCAN), str(path)], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=True).stdout.split()
    return out[0], out[1]


def _load_and_scan(path: Path) -> Any:
    """Load ``path`` (None when load refuses it) and scan it in a fresh interpreter: the scan imports neither numpy
    nor ml_dtypes and is clean exactly when the load accepts the file."""
    try:
        loaded = safeload.load(path)
    except safeload.FormatError:
        loaded = None
    status, heavy = _scan_fresh(path)
    assert heavy == "-", path.name
    assert (status == "clean") == (loaded is not None), (path.name, status)
    return loaded


def _only_good_loads(tmp_path: Path, files: dict[str, bytes], suffix: str) -> Any:
    """:func:`_load_and_scan` on each file: the one named "good" loads, every other one is refused by both.
    Returns what "good" loads to."""
    results = {}
    for name, data in files.items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        results[name] = _load_and_scan(path)
        assert (results[name] is not None) == (name == "good"), name
    return results["good"]


@needs_samples
def test_scan_of_a_bfloat16_checkpoint_imports_neither_numpy_nor_ml_dtypes() -> None:
    assert _scan_fresh(SAMPLES / "dtypes.ckpt") == ("clean", "-")


def test_scan_refuses_what_load_refuses_without_building_arrays(tmp_path: Path) -> None:
    good = _checkpoint([("w", [3], "BFloat16", bytes(6)), ("name", [], "str", "ab".encode("utf-32-le"))])
    bad_dims = _checkpoint([("w", [4], "BFloat16", bytes(6))])  # 4 bf16 values need 8 bytes, not 6
    bad_text = _checkpoint([("name", [], "str", b"\xff\xff\xff\xff")])  # not UTF-32
    loaded = _only_good_loads(tmp_path, {"good": good, "bad_dims": bad_dims, "bad_text": bad_text}, ".ckpt")
    assert loaded["name"] == "ab" and loaded["w"].shape == (3,)


def _dense_record(type_code: int, dims: list[int], content: bytes) -> bytes:
    """A Paddle DenseTensor record laid out as Paddle's C++ writer lays it out (see safeload/_containers/paddle.py)."""
    desc = b"\x08" + _encode(type_code) + b"".join(b"\x10" + _encode(d) for d in dims)
    return (b"\0\0\0\0" + (0).to_bytes(8, "little") + b"\0\0\0\0" + len(desc).to_bytes(4, "little") + desc
            + content)


def test_paddle_dense_tensors_scan_without_building(tmp_path: Path) -> None:
    """A scan of Paddle DenseTensor records (here bfloat16) makes load's checks and imports neither numpy nor
    ml_dtypes; a record whose dims lie is refused by both."""
    bf16 = bytes.fromhex("803f2040 40c0")  # 1.0, 2.5, -3.0 as bfloat16, little-endian
    files = {"good": _dense_record(22, [3], bf16) + _dense_record(5, [2], bytes(8)),
             "bad_dims": _dense_record(22, [4], bf16)}
    loaded = _only_good_loads(tmp_path, files, ".pdiparams")
    assert [float(x) for x in loaded[0]] == [1.0, 2.5, -3.0] and loaded[1].tolist() == [0.0, 0.0]
    if (SAMPLES.parent / "paddle" / "weight_binary.pdtensor").exists():
        assert _scan_fresh(SAMPLES.parent / "paddle" / "weight_binary.pdtensor") == ("clean", "-")
