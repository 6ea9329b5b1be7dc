"""The .npy format: magic, version, a literal-dict header, then raw data or (for object arrays) a pickle.

The header is parsed with ``ast.literal_eval`` after its size is capped, and must hold exactly ``descr``,
``fortran_order`` and ``shape``. Raw data must be exactly ``prod(shape) * itemsize`` bytes. An object array's
pickle runs through the restricted VM like any other stream.
"""

from __future__ import annotations

import ast
import re
import struct

from .._hints import Any, Literal
from .._views import check_extent, make_view
from ..errors import FormatError

__all__ = ["load_npy", "parse_header"]

MAX_HEADER = 10_000  # numpy's own max_header_size default
_PY2_LONG = re.compile(r"(?<=[0-9])L\b")


def parse_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The header dict and the offset where the data starts."""
    if len(data) < 10 or bytes(data[:6]) != b"\x93NUMPY":
        raise FormatError("Not a .npy file", offset=0, why="the magic string \\x93NUMPY is missing")
    major, minor = data[6], data[7]
    if (major, minor) == (1, 0):
        (hlen,), start = struct.unpack_from("<H", data, 8), 10
    elif (major, minor) in ((2, 0), (3, 0)):
        if len(data) < 12:
            raise FormatError("Truncated .npy header", offset=8)
        (hlen,), start = struct.unpack_from("<I", data, 8), 12
    else:
        raise FormatError(f".npy version {major}.{minor} is not supported", offset=6,
                          why="numpy writes versions 1.0, 2.0 and 3.0")
    if hlen > MAX_HEADER:
        raise FormatError(f".npy header of {hlen} bytes", offset=8, why=f"headers are limited to {MAX_HEADER} bytes, "
                          "as numpy limits them")
    if start + hlen > len(data):
        raise FormatError(".npy header runs past the end of the file", offset=8)
    raw = bytes(data[start : start + hlen])
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        if major < 3:
            text = _PY2_LONG.sub("", text)
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise FormatError(".npy header is not a Python literal", offset=start, why=str(exc)) from None
    if type(header) is not dict or set(header) != {"descr", "fortran_order", "shape"}:
        raise FormatError(".npy header does not hold exactly descr, fortran_order and shape", offset=start)
    return header, start + hlen


def _dtype(descr: Any, offset: int) -> Any:
    import numpy as np

    if type(descr) is str:
        pass
    elif type(descr) is list:
        pass
    else:
        raise FormatError(f".npy descr of type {type(descr).__name__}", offset=offset)
    try:
        return np.lib.format.descr_to_dtype(descr)
    except Exception as exc:  # numpy raises ValueError/TypeError for descrs it cannot build
        raise FormatError(f".npy descr {descr!r:.60} is not a valid dtype", offset=offset, why=str(exc)) from None


def load_npy(data: bytes, run_pickle: Any) -> Any:
    """Rebuild the array. ``run_pickle(data, start)`` runs the restricted VM for object arrays."""
    import numpy as np

    header, offset = parse_header(data)
    shape, fortran = header["shape"], header["fortran_order"]
    if type(fortran) is not bool:
        raise FormatError(".npy fortran_order is not a bool", offset=10)
    dtype = _dtype(header["descr"], 10)
    count = check_extent(shape, dtype.itemsize, ".npy", offset=10)
    order: Literal["C", "F"] = "F" if fortran else "C"
    if dtype.hasobject:
        arr = run_pickle(data, offset)
        if type(arr) is not np.ndarray:
            raise FormatError(f"Object .npy pickle holds a {type(arr).__name__}, not an array", offset=offset)
        if arr.shape != shape and arr.size != count:
            raise FormatError(f"Object .npy pickle holds shape {arr.shape}, the header says {shape}", offset=offset)
        return arr
    nbytes = count * dtype.itemsize
    if len(data) - offset != nbytes:
        raise FormatError(f".npy data is {len(data) - offset} bytes, but shape {shape} of {dtype} needs {nbytes}",
                          offset=offset, why="the file is truncated or has trailing data")
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    return make_view(data, dtype, (count,), offset=offset, what=".npy data", at=offset).copy().reshape(shape, order=order)
