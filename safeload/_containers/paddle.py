"""PaddlePaddle: the C++ DenseTensor binary format, and what ``paddle.load`` makes of a pickle's content.

DenseTensor record (``.pdiparams``, ``save_persistables``, ``paddle.save(..., use_binary_format=True)``)::

    u32 version = 0 | u64 lod_level | lod_level x (u64 nbytes, nbytes of u64 offsets) | u32 tensor version = 0
    | i32 desc_size | protobuf TensorDesc {1: data_type varint, 2: repeated int64 dims} | raw little-endian data

A ``.pdiparams`` file is several records back to back (sorted by variable name; the names live in the program
file). One record loads as an array, several as a list. LoD offsets are checked and dropped.

:func:`paddle_result` turns what a Paddle pickle holds into what ``paddle.load(path, return_numpy=True)``
returns: the name table dropped, split large parameters (``UnpackBigParamInfor@@``) joined, and the
``(name, ndarray)`` tuples of pickled Tensors replaced by the arrays. ``safeload.load`` itself returns the
pickle's content unchanged; the ``paddle.load`` wrapper applies this.
"""

from __future__ import annotations

import importlib.util
import struct

from .._hints import Any
from .._protobuf import int64 as _int64
from .._protobuf import varint as _varint
from .._views import check_extent, make_view
from ..errors import FormatError, LimitExceededError

__all__ = ["is_dense_tensor", "load_dense_tensors", "paddle_result"]

# VarType.Type -> numpy dtype (or ml_dtypes name)
_TYPES = {0: "|b1", 1: "<i2", 2: "<i4", 3: "<i8", 4: "<f2", 5: "<f4", 6: "<f8", 19: "<u8", 20: "|u1", 21: "|i1",
          22: "bfloat16", 23: "<c8", 24: "<c16", 32: "float8_e4m3fn", 33: "float8_e5m2", 36: "<u2", 37: "<u4",
          38: "<u8"}
_ITEMSIZE = {code: {"bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}.get(spec) or int(spec[2:])
             for code, spec in _TYPES.items()}
_MAX_LOD = 64
_MAX_DESC = 1 << 16


def is_dense_tensor(data: bytes) -> bool:
    if len(data) < 26 or data[:4] != b"\0\0\0\0":
        return False
    lod_level = struct.unpack_from("<Q", data, 4)[0]
    return bool(lod_level <= _MAX_LOD)


def _desc(data: bytes, pos: int, end: int) -> tuple[int, list[int]]:
    dtype = None
    dims: list[int] = []
    while pos < end:
        key, pos = _varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(data, pos, end)
        elif field == 2 and wire == 0:
            v, pos = _varint(data, pos, end)
            dims.append(_int64(v))
        elif field == 2 and wire == 2:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise FormatError("Paddle TensorDesc dims run past the descriptor", offset=pos)
            stop = pos + length
            while pos < stop:
                v, pos = _varint(data, pos, stop)
                dims.append(_int64(v))
        else:
            raise FormatError(f"Unknown field {field} (wire type {wire}) in a Paddle TensorDesc", offset=pos)
    if dtype is None:
        raise FormatError("Paddle TensorDesc without a data type", offset=pos)
    return dtype, dims


def _record(data: bytes, pos: int, budget: list[int], build: bool = True) -> tuple[Any, int]:
    n = len(data)

    def need(k: int, what: str) -> int:
        nonlocal pos
        if k < 0 or pos + k > n:
            raise FormatError(f"Paddle DenseTensor {what} runs past the end of the file", offset=pos,
                              why="the file is truncated or a length field lies")
        start = pos
        pos += k
        return start

    start = pos
    (version,) = struct.unpack_from("<I", data, need(4, "version"))
    if version != 0:
        raise FormatError(f"Paddle DenseTensor version {version}", offset=start, why="only version 0 exists")
    (lod_level,) = struct.unpack_from("<Q", data, need(8, "LoD level"))
    if lod_level > _MAX_LOD:
        raise FormatError(f"Paddle DenseTensor with {lod_level} LoD levels", offset=start + 4)
    for _ in range(lod_level):
        (nbytes,) = struct.unpack_from("<Q", data, need(8, "LoD size"))
        if nbytes % 8:
            raise FormatError("Paddle LoD level is not a whole number of u64 offsets", offset=pos - 8)
        need(nbytes, "LoD offsets")
    (tversion,) = struct.unpack_from("<I", data, need(4, "tensor version"))
    if tversion != 0:
        raise FormatError(f"Paddle tensor version {tversion}", offset=pos - 4, why="only version 0 exists")
    (desc_size,) = struct.unpack_from("<i", data, need(4, "descriptor size"))
    if not 0 < desc_size <= _MAX_DESC:
        raise FormatError(f"Paddle TensorDesc of {desc_size} bytes", offset=pos - 4)
    dstart = need(desc_size, "TensorDesc")
    type_code, dims = _desc(data, dstart, dstart + desc_size)
    spec = _TYPES.get(type_code)
    if spec is None:
        raise FormatError(f"Paddle data type {type_code} is not supported", offset=dstart)
    if spec[0] not in "<|" and importlib.util.find_spec("ml_dtypes") is None:
        raise FormatError(f"Paddle {spec} tensors need ml_dtypes", offset=dstart, fix="pip install ml_dtypes")
    itemsize = _ITEMSIZE[type_code]
    shape = tuple(dims)
    nbytes = check_extent(shape, itemsize, "Paddle tensor", offset=dstart) * itemsize
    budget[0] -= nbytes
    if budget[0] < 0:
        raise LimitExceededError("max_alloc", nbytes, nbytes + budget[0], offset=pos,
                                 what="Paddle tensor would allocate more than the limit allows")
    dpos = need(nbytes, "data")
    if not build:  # the scanner: every check made, nothing built (no numpy, no ml_dtypes)
        return None, pos
    import numpy as np

    if spec[0] in "<|":
        dtype = np.dtype(spec)
    else:
        try:
            import ml_dtypes  # only here: a bfloat16 or float8 array is being built
        except ImportError:
            raise FormatError(f"Paddle {spec} tensors need ml_dtypes", offset=dstart, fix="pip install ml_dtypes") from None
        dtype = np.dtype(getattr(ml_dtypes, spec))
    array = make_view(data, dtype, shape, offset=dpos, what="Paddle tensor", at=dpos).copy()
    return array, pos


def load_dense_tensors(data: bytes, max_alloc: int, build: bool = True) -> Any:
    """One array for a single record (``paddle.save(..., use_binary_format=True)``), a list for several.
    ``build=False`` (the scanner) makes every check and builds nothing (None for each record)."""
    budget = [max_alloc]
    arrays: list[Any] = []
    pos = 0
    while pos < len(data):
        if len(arrays) >= 1_000_000:
            raise FormatError("More than a million Paddle tensors in one file", offset=pos)
        array, pos = _record(data, pos, budget, build)
        arrays.append(array)
    return arrays[0] if len(arrays) == 1 else arrays


# ---- paddle.load post-processing ---------------------------------------------------------------------------------

_NAME_TABLE = "StructuredToParameterName@@"
_BIG_PARAMS = "UnpackBigParamInfor@@"


def _is_tensor_tuple(obj: Any) -> bool:
    import numpy as np

    return type(obj) is tuple and len(obj) == 2 and type(obj[0]) is str and type(obj[1]) is np.ndarray


def _parse(obj: Any, convert: Any) -> Any:
    import numpy as np

    if _is_tensor_tuple(obj):
        return convert(obj[1], obj[0])
    if type(obj) is np.ndarray:
        return convert(obj, None)
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) is not dict else {}
        for k, v in obj.items():
            out[k] = _parse(v, convert)
        return out
    if type(obj) is list:
        return [_parse(v, convert) for v in obj]
    if type(obj) is tuple:
        return tuple(_parse(v, convert) for v in obj)
    return obj


def paddle_result(obj: Any, *, return_numpy: bool = True, keep_name_table: bool = False, to_tensor: Any = None) -> Any:
    """What ``paddle.load`` returns for a pickle whose content is ``obj`` (the arrays numpy, or ``to_tensor(arr, name)``)."""
    import numpy as np

    convert = (lambda arr, name: arr) if return_numpy or to_tensor is None else to_tensor
    if isinstance(obj, dict) and _BIG_PARAMS in obj:
        obj = dict(obj)
        info = obj.pop(_BIG_PARAMS)
        if type(info) is not dict:
            raise FormatError(f"{_BIG_PARAMS} is not a dict", offset=None)
        for key, spec in info.items():
            if type(spec) is not dict or type(spec.get("slices")) is not list or "OriginShape" not in spec:
                raise FormatError(f"{_BIG_PARAMS} entry {key!r} is malformed")
            parts = []
            for name in spec["slices"]:
                part = obj.pop(name, None)
                if type(part) is not np.ndarray:
                    raise FormatError(f"Slice {name!r} of the split parameter {key!r} is missing")
                parts.append(part.reshape(-1))
            shape = tuple(spec["OriginShape"])
            joined = np.concatenate(parts) if parts else np.empty(0)
            try:
                obj[key] = joined.reshape(shape)
            except (ValueError, TypeError):
                raise FormatError(f"Slices of {key!r} hold {joined.size} values, not shape {shape}") from None
    if isinstance(obj, dict) and _NAME_TABLE in obj:
        names = obj[_NAME_TABLE]
        out = type(obj)() if type(obj) is not dict else {}
        for k, v in obj.items():
            if k == _NAME_TABLE:
                if keep_name_table:
                    out[k] = v
                continue
            out[k] = convert(v, names.get(k) if isinstance(names, dict) else None) if type(v) is np.ndarray else v
        return out
    return _parse(obj, convert)
