"""safetensors files, read by safeload's own parser (the ``safetensors`` package is not needed).

Layout: ``u64 N`` | N bytes of UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{str: str}}`` | the data buffer. Checked as the reference implementation checks it, and a little more: the header
is capped in size, is one JSON object without duplicate keys, every tensor's byte range has exactly
``prod(shape) * itemsize`` bytes, and the ranges, sorted, tile the data buffer with no gap, overlap or trailing
byte. Tensors are zero-copy read-only numpy views of the input (``tensors="torch"`` gives torch tensors).
"""

from __future__ import annotations

import json
import struct

from .._hints import Any
from .._views import check_extent, make_view
from ..errors import FormatError

__all__ = ["DTYPES", "is_safetensors", "load_safetensors", "parse_header"]

MAX_HEADER = 100_000_000  # the reference implementation's limit
#: safetensors dtype -> numpy dtype string or ml_dtypes name
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "|i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "|u1", "BOOL": "|b1", "C64": "<c8",
          "C128": "<c16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu"}
_TORCH_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                 "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32",
                 "U64": "uint64", "BOOL": "bool", "C64": "complex64", "C128": "complex128",
                 "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu"}


def is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    n = struct.unpack_from("<Q", data)[0]
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"safetensors header names {key!r} twice", offset=8,
                              why="two readers could pick different entries")
        out[key] = value
    return out


def _np_dtype(name: str) -> Any:
    import numpy as np

    spec = DTYPES[name]
    if spec[0] in "<|":
        return np.dtype(spec)
    try:
        import ml_dtypes
    except ImportError:
        raise FormatError(f"safetensors {name} tensors need ml_dtypes to become numpy arrays", offset=8,
                          why="numpy has no such dtype", fix="pip install ml_dtypes, or load with tensors='torch'") from None
    return np.dtype(getattr(ml_dtypes, spec))


def _itemsize(name: str) -> int:
    spec = DTYPES[name]
    if spec[0] in "<|":
        return int(spec[2:])
    return 2 if name == "BF16" else 1


def parse_header(data: bytes) -> tuple[dict[str, tuple[str, tuple[int, ...], int, int]], dict[str, str] | None, int]:
    """``({name: (dtype, shape, begin, end)}, metadata, data_start)`` with every range checked."""
    if len(data) < 8:
        raise FormatError("Truncated safetensors file", offset=0)
    n = struct.unpack_from("<Q", data)[0]
    if n > MAX_HEADER:
        raise FormatError(f"safetensors header of {n} bytes", offset=0, why=f"headers are limited to {MAX_HEADER} bytes")
    if n > len(data) - 8:
        raise FormatError(f"safetensors header of {n} bytes, but the file has {len(data) - 8} after the length",
                          offset=0, why="the file is truncated or the length lies")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError("safetensors header is not UTF-8 JSON", offset=8, why=str(exc)[:200]) from None
    if type(header) is not dict:
        raise FormatError("safetensors header is not a JSON object", offset=8)
    start = 8 + n
    size = len(data) - start
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (type(metadata) is not dict
                                 or not all(type(k) is str and type(v) is str for k, v in metadata.items())):
        raise FormatError("safetensors __metadata__ must map strings to strings", offset=8)
    tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        if type(info) is not dict or set(info) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"safetensors entry {name!r} must hold exactly dtype, shape and data_offsets", offset=8)
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise FormatError(f"safetensors dtype {dtype!r} of {name!r} is not supported", offset=8)
        if (type(shape) is not list or len(shape) > 64
                or not all(type(d) is int and 0 <= d < 1 << 62 for d in shape)):
            raise FormatError(f"safetensors shape of {name!r} is not a list of non-negative ints", offset=8)
        if type(offsets) is not list or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise FormatError(f"safetensors data_offsets of {name!r} are not two ints", offset=8)
        begin, end = offsets
        count = check_extent(tuple(shape), _itemsize(dtype), f"safetensors tensor {name!r}", offset=8)
        if not 0 <= begin <= end <= size:
            raise FormatError(f"safetensors tensor {name!r} spans bytes {begin}..{end} of a {size}-byte buffer",
                              offset=8, why="an offset outside the data would read memory that is not the tensor's")
        if end - begin != count * _itemsize(dtype):
            raise FormatError(f"safetensors tensor {name!r} has {end - begin} bytes, but shape {shape} of {dtype} "
                              f"needs {count * _itemsize(dtype)}", offset=8)
        tensors[name] = (dtype, tuple(shape), begin, end)
    cursor = 0
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else f"leaves a gap of {begin - cursor} bytes"
            raise FormatError(f"safetensors tensor {name!r} {what}", offset=start + min(begin, cursor),
                              why="the byte ranges must tile the data buffer exactly, so the file reads one way only")
        cursor = end
    if cursor != size:
        raise FormatError(f"{size - cursor} bytes after the last safetensors tensor", offset=start + cursor,
                          why="data no tensor claims could hide a payload for another reader")
    return tensors, metadata, start


def load_safetensors(data: Any, tensors: str = "numpy", *, copy: bool = True) -> dict[str, Any]:
    """``{name: array}`` in header order, like ``safetensors.numpy.load`` (or ``safetensors.torch.load``).

    ``copy``: each tensor gets its own writeable memory; otherwise arrays are views of ``data`` (``mmap=True``).
    """
    import numpy as np

    from .._source import copy_range

    entries, metadata, start = parse_header(data)
    want_torch = tensors == "torch" or (tensors == "auto" and (metadata or {}).get("format") == "pt" and _has_torch())
    out: dict[str, Any] = {}
    if want_torch:
        import torch

        for name, (dtype, shape, begin, end) in entries.items():
            tdtype = getattr(torch, _TORCH_DTYPES[dtype])
            if end == begin:
                out[name] = torch.empty(shape, dtype=tdtype)
            else:
                buf = copy_range(data, start + begin, end - begin)
                out[name] = make_view(buf, tdtype, shape, what=f"safetensors tensor {name!r}", at=start + begin)
        return out
    for name, (dtype, shape, begin, end) in entries.items():
        dt = _np_dtype(dtype)
        what = f"safetensors tensor {name!r}"
        if copy:
            out[name] = make_view(copy_range(data, start + begin, end - begin), dt, shape, what=what, at=start + begin)
        else:
            out[name] = make_view(data, dt, shape, offset=start + begin, what=what, at=start + begin)
    return out


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
