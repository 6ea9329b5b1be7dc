"""MindSpore ``.ckpt`` files: concatenated protobuf ``Checkpoint`` messages, read by a small wire-format walker.

Schema (proto2)::

    message Checkpoint { message Value { required string tag = 1; optional TensorProto tensor = 2;
                                         optional MapTensorProto maptensor = 3; }
                         repeated Value value = 1; }
    message TensorProto { repeated int64 dims = 1; required string tensor_type = 2; required bytes tensor_content = 3; }

Tensors larger than MindSpore's slice size are written as several consecutive ``Value``\\ s with the same tag and
the full dims; their contents are joined. A ``crc_num`` trailer (``b'crc_num'`` + crc32 as 10 big-endian bytes) is
verified and removed. Encrypted files (magic 0x7F3A5ED8/9/A) are refused: there is nothing to read without the key.
No protobuf package is needed, every length is checked against the bytes that remain, and unknown fields are
refused rather than skipped.
"""

from __future__ import annotations

import struct
import zlib

from .._hints import Any
from .._protobuf import fields as _fields
from .._protobuf import int64 as _int64
from .._protobuf import varint as _varint
from .._views import check_extent, make_view
from ..errors import FormatError, LimitExceededError

__all__ = ["ENCRYPTED_MAGICS", "is_mindspore", "load_mindspore"]

ENCRYPTED_MAGICS = {0x7F3A5ED8: "AES-GCM", 0x7F3A5ED9: "AES-CBC", 0x7F3A5EDA: "SM4-CBC"}
_CRC_TAG = b"crc_num"
_TYPES = {"Float16": "<f2", "Float32": "<f4", "Float64": "<f8", "Int8": "|i1", "Int16": "<i2", "Int32": "<i4",
          "Int64": "<i8", "UInt8": "|u1", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8", "Bool": "|b1",
          "BFloat16": "bfloat16",
          # map-parameter slices use numpy names
          "float16": "<f2", "float32": "<f4", "float64": "<f8", "int8": "|i1", "int16": "<i2", "int32": "<i4",
          "int64": "<i8", "uint8": "|u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "bool": "|b1"}
_ITEMSIZE = {ttype: 2 if name == "bfloat16" else int(name[2:]) for ttype, name in _TYPES.items()}


def is_mindspore(data: bytes) -> bool:
    """The whole file is a ``Checkpoint``: top-level fields that are all ``Value`` messages (field 1, length
    delimited) whose first field is their tag string, ending exactly at the end of the file.

    Only the top level is walked (one step per parameter); checking every field, not just the first, keeps a
    source file that starts with a newline and a quote from reading as a checkpoint."""
    n = len(data)
    if n < 4 or data[0] != 0x0A:
        return False
    if n >= 17 and bytes(data[-17:-10]) == _CRC_TAG:
        n -= 17  # the crc_num trailer MindSpore appends with crc_check=True
    pos = 0
    while pos < n:
        if data[pos] != 0x0A:
            return False
        try:
            length, start = _varint(data, pos + 1, min(n, pos + 11))
        except FormatError:
            return False
        if start >= n or data[start] != 0x0A or start + length > n:
            return False
        pos = start + length
    return True


def encrypted_kind(data: bytes) -> str | None:
    if len(data) < 4:
        return None
    return ENCRYPTED_MAGICS.get(struct.unpack_from("<I", data)[0])


def _tensor(data: bytes, start: int, stop: int) -> tuple[list[int], str, tuple[int, int]]:
    dims: list[int] = []
    ttype = None
    content = None
    for field, wire, value, pos in _fields(data, start, stop, "MindSpore TensorProto"):
        if field == 1 and wire == 0:
            dims.append(_int64(value))
        elif field == 1 and wire == 2:  # packed dims
            p, q = value
            while p < q:
                v, p = _varint(data, p, q)
                dims.append(_int64(v))
        elif field == 2 and wire == 2:
            try:
                ttype = data[value[0]:value[1]].decode("ascii")
            except UnicodeDecodeError:
                raise FormatError("MindSpore tensor type is not ASCII", offset=value[0]) from None
        elif field == 3 and wire == 2:
            content = value
        else:
            raise FormatError(f"Unknown field {field} in a MindSpore TensorProto", offset=pos)
    if ttype is None or content is None:
        raise FormatError("MindSpore tensor without its type or content", offset=start,
                          why="tensor_type and tensor_content are required")
    return dims, ttype, content


def load_mindspore(data: bytes, max_alloc: int, arrays: bool = True) -> dict[str, Any]:
    """``{tag: numpy array (or str)}`` as ``mindspore.load_checkpoint`` gives it, in file order.

    ``arrays=False`` (the scanner) makes every check a load makes but builds no array: tensors map to None, and
    neither numpy nor ml_dtypes is imported."""
    kind = encrypted_kind(data)
    if kind is not None:
        raise FormatError(f"Encrypted MindSpore checkpoint ({kind})", offset=0,
                          why="the file was saved with enc_key; its content cannot be read without the key",
                          fix="Decrypt it with mindspore.load_checkpoint(path, dec_key=..., dec_mode=...) where the key "
                              "is known, and save it again without enc_key")
    end = len(data)
    if end >= 17 and data[-17:-10] == _CRC_TAG:
        end -= 17
        declared = int.from_bytes(data[-10:], "big")
        actual = zlib.crc32(memoryview(data)[:end])
        if declared != actual:
            raise FormatError(f"MindSpore checkpoint CRC mismatch (file says {declared}, content is {actual})",
                              offset=end, why="the content was changed or damaged after it was saved",
                              fix="Get a fresh copy of the checkpoint")
    entries: list[tuple[str, list[int], str, list[tuple[int, int]]]] = []
    for field, wire, value, pos in _fields(data, 0, end, "MindSpore Checkpoint"):
        if field != 1 or wire != 2:
            raise FormatError(f"Unknown field {field} in a MindSpore Checkpoint", offset=pos)
        tag = None
        tensor = None
        for vfield, vwire, vvalue, vpos in _fields(data, value[0], value[1], "MindSpore Value"):
            if vfield == 1 and vwire == 2:
                try:
                    tag = data[vvalue[0]:vvalue[1]].decode("utf-8")
                except UnicodeDecodeError:
                    raise FormatError("MindSpore parameter name is not UTF-8", offset=vvalue[0]) from None
            elif vfield == 2 and vwire == 2:
                tensor = _tensor(data, *vvalue)
            elif vfield == 3:
                raise FormatError("MindSpore map parameters (MapTensorProto) are not supported", offset=vpos,
                                  fix="Convert the map parameter to ordinary tensors in MindSpore and save again")
            else:
                raise FormatError(f"Unknown field {vfield} in a MindSpore Value", offset=vpos)
        if tag is None or tensor is None:
            raise FormatError("MindSpore value without a tag or a tensor", offset=value[0])
        dims, ttype, content = tensor
        if entries and entries[-1][0] == tag:  # a slice of the previous tensor
            if entries[-1][1] != dims or entries[-1][2] != ttype:
                raise FormatError(f"Slices of {tag!r} disagree on shape or type", offset=value[0])
            entries[-1][3].append(content)
        else:
            entries.append((tag, dims, ttype, [content]))
    out: dict[str, Any] = {}
    budget = max_alloc
    for tag, dims, ttype, parts in entries:
        if tag in out:
            raise FormatError(f"MindSpore checkpoint holds {tag!r} twice, not as consecutive slices", offset=0,
                              why="two readers could keep different copies")
        nbytes = sum(q - p for p, q in parts)
        budget -= nbytes
        if budget < 0:
            raise LimitExceededError("max_alloc", nbytes, max_alloc, offset=0,
                                     what=f"MindSpore tensor {tag!r} would allocate more than the limit allows")
        shape = _layout(tag, dims, ttype, nbytes)
        if not arrays and shape is not None:
            out[tag] = None  # checked as a load checks it; the scan never builds it (no numpy, no ml_dtypes)
            continue
        raw = b"".join(data[p:q] for p, q in parts)
        out[tag] = _string(tag, raw) if shape is None else _array(tag, shape, ttype, raw)
    return out


def _layout(tag: str, dims: list[int], ttype: str, nbytes: int) -> tuple[int, ...] | None:
    """The array shape of a tensor (None for a string), after every check a load makes on its layout."""
    if ttype == "str":
        if nbytes % 4:
            raise FormatError(f"MindSpore string {tag!r} is not UTF-32", offset=0)
        return None
    if any(d < 0 for d in dims) or len(dims) > 64:
        raise FormatError(f"MindSpore tensor {tag!r} has dims {dims}", offset=0)
    shape = () if dims == [0] else tuple(dims)
    itemsize = _ITEMSIZE.get(ttype)
    if itemsize is None:
        raise FormatError(f"MindSpore tensor type {ttype!r} of {tag!r} is not supported", offset=0,
                          why="packed 4-bit and other special types are not rebuilt",
                          fix="Convert the parameter to a standard dtype in MindSpore and save again")
    count = check_extent(shape, itemsize, f"MindSpore tensor {tag!r}", offset=0)
    if count * itemsize != nbytes:
        raise FormatError(f"MindSpore tensor {tag!r} holds {nbytes} bytes, but dims {dims} of {ttype} need "
                          f"{count * itemsize}", offset=0, why="the file is truncated or the dims lie")
    return shape


def _string(tag: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-32-le")
    except UnicodeDecodeError:
        raise FormatError(f"MindSpore string {tag!r} is not valid UTF-32", offset=0) from None


def _array(tag: str, shape: tuple[int, ...], ttype: str, raw: bytes) -> Any:
    import numpy as np

    name = _TYPES[ttype]
    widen = False
    if name == "bfloat16":
        try:
            import ml_dtypes  # only here: a bfloat16 array is being built

            dtype = np.dtype(ml_dtypes.bfloat16)
        except ImportError:  # bfloat16 widens to float32 exactly
            dtype, widen = np.dtype("<u2"), True
    else:
        dtype = np.dtype(name)
    array = make_view(raw, dtype, shape, what=f"MindSpore tensor {tag!r}").copy()
    if widen:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array
