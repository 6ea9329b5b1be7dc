"""MXNet 1.x NDArray files (``mx.nd.save``, ``save_parameters``, ``export``, ``npx.save``) and single records.

List file, little-endian throughout::

    u64 0x112 | u64 0 | u64 n | n records | u64 m | m x (u64 len, utf-8 name)     (m = 0: a list, m = n: a dict)

Record: ``u32 magic`` (V2 0xF993FAC9, V3 0xF993FACA; V1 0xF993FAC8 and magic-less legacy records too), storage
type, [storage shape], shape, context, type flag, [aux types and shapes], data, [aux data]. Every length is
checked against the bytes that remain before anything is allocated. Sparse arrays (row_sparse, csr) are
returned dense, as ``asnumpy()`` gives them, with their indices checked and the dense size charged to
``max_alloc``. The same record parser reads the ``handle`` bytes of pickled NDArrays (``.states`` files).
"""

from __future__ import annotations

import importlib.util
import struct

from .._hints import Any
from .._views import check_extent, make_view
from ..errors import FormatError, LimitExceededError

__all__ = ["LIST_MAGIC", "is_mxnet_list", "load_mxnet_list", "read_record"]

LIST_MAGIC = 0x112
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
# mshadow type flags
_TYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "|u1", 4: "<i4", 5: "|i1", 6: "<i8", 7: "|b1", 8: "<i2", 9: "<u2",
          10: "<u4", 11: "<u8", 12: "bfloat16"}
_ITEMSIZE = {flag: 2 if name == "bfloat16" else int(name[2:]) for flag, name in _TYPES.items()}
_MAX_NDIM = 32


def is_mxnet_list(data: bytes) -> bool:
    return len(data) >= 24 and data[:16] == struct.pack("<QQ", LIST_MAGIC, 0)


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def need(self, n: int, what: str) -> int:
        if n < 0 or self.pos + n > self.end:
            raise FormatError(f"MXNet {what} runs past the end of the data ({n} bytes at {self.pos}, "
                              f"{self.end - self.pos} remain)", offset=self.pos,
                              why="the file is truncated or a length field lies")
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, self.data, self.need(size, what))

    def shape(self, what: str, legacy_ndim: int | None = None) -> tuple[int, ...] | None:
        if legacy_ndim is not None:
            ndim = legacy_ndim
            width = "I"
        else:
            (ndim,) = self.unpack("<i", what)
            width = "q"
        if ndim < 0:
            return None
        if ndim > _MAX_NDIM:
            raise FormatError(f"MXNet {what} with {ndim} dimensions", offset=self.pos, why="MXNet allows at most 32")
        dims = self.unpack(f"<{ndim}{width}", what)
        if any(d < 0 for d in dims):
            raise FormatError(f"MXNet {what} {dims} has a negative or unknown dimension", offset=self.pos)
        check_extent(tuple(dims), 16, f"MXNet {what}", offset=self.pos)  # before the dtype: the widest itemsize
        return tuple(dims)


def _itemsize(flag: int, offset: int) -> int:
    """The item size of a type flag, after the checks :func:`_dtype` makes, without importing numpy or ml_dtypes."""
    name = _TYPES.get(flag)
    if name is None:
        raise FormatError(f"MXNet type flag {flag} is not supported", offset=offset,
                          why="known flags are 0-12 (float32 ... bfloat16)")
    if name == "bfloat16" and importlib.util.find_spec("ml_dtypes") is None:
        raise FormatError("MXNet bfloat16 array needs ml_dtypes", offset=offset, fix="pip install ml_dtypes")
    return _ITEMSIZE[flag]


def _dtype(flag: int, offset: int) -> Any:
    import numpy as np

    _itemsize(flag, offset)
    name = _TYPES[flag]
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise FormatError("MXNet bfloat16 array needs ml_dtypes", offset=offset, fix="pip install ml_dtypes") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _array(r: _Reader, shape: tuple[int, ...], dtype: Any, what: str, budget: list[int]) -> Any:
    nbytes = _count(shape) * dtype.itemsize
    start = r.need(nbytes, what)
    _charge(budget, nbytes, what, start)
    return make_view(r.data, dtype, shape, offset=start, what=f"MXNet {what}", at=start).copy()


def _charge(budget: list[int], nbytes: int, what: str, offset: int) -> None:
    budget[0] -= nbytes
    if budget[0] < 0:
        raise LimitExceededError("max_alloc", nbytes, nbytes + budget[0], offset=offset,
                                 what=f"MXNet {what} would allocate more than the limit allows")


def read_record(data: bytes, pos: int, end: int, budget: list[int], build: bool = True) -> tuple[Any, int]:
    """One NDArray record at ``pos``: (numpy array or None for an empty NDArray, position after it).
    ``build=False`` (the scanner) checks a dense record as a load does and builds nothing (None), without
    importing numpy or ml_dtypes; sparse records are always built, their indices are checked on the arrays."""
    r = _Reader(data, pos, end)
    start = pos
    (magic,) = r.unpack("<I", "record magic")
    sparse_stype = 0
    storage_shape = None
    if magic in (V2, V3):
        (sparse_stype,) = r.unpack("<i", "storage type")
        if sparse_stype not in (0, 1, 2):
            raise FormatError(f"MXNet storage type {sparse_stype}", offset=start + 4, why="known types are 0 (dense), "
                              "1 (row_sparse) and 2 (csr)")
        if sparse_stype:
            storage_shape = r.shape("storage shape")
            if storage_shape is None:
                raise FormatError("MXNet sparse array without a storage shape", offset=r.pos)
        shape = r.shape("shape")
        if shape is None or (magic == V2 and not shape):
            return None, r.pos  # an empty NDArray (V2 ndim 0, V3 ndim -1)
    elif magic == V1:
        shape = r.shape("shape")
        if not shape:
            return None, r.pos
    else:  # the oldest records start with ndim itself, then u32 dims
        if magic > _MAX_NDIM:
            raise FormatError(f"Not an MXNet NDArray record (magic 0x{magic:08x})", offset=start,
                              why="records start with 0xF993FAC8-0xF993FACA, or a small dimension count in the oldest files")
        shape = r.shape("shape", legacy_ndim=magic)
        if not shape:
            return None, r.pos
    dev_type, _dev_id = r.unpack("<ii", "context")
    if dev_type not in (1, 2, 3, 5, 6):
        raise FormatError(f"MXNet context device type {dev_type}", offset=r.pos - 8)
    (flag,) = r.unpack("<i", "type flag")
    if not sparse_stype and not build:
        nbytes = _count(shape) * _itemsize(flag, r.pos - 4)
        _charge(budget, nbytes, "array data", r.need(nbytes, "array data"))
        return None, r.pos
    dtype = _dtype(flag, r.pos - 4)
    if not sparse_stype:
        return _array(r, shape, dtype, "array data", budget), r.pos
    naux = 1 if sparse_stype == 1 else 2
    aux = []
    for _ in range(naux):
        (aux_flag,) = r.unpack("<i", "aux type")
        aux_shape = r.shape("aux shape")
        if aux_shape is None:
            raise FormatError("MXNet sparse aux array without a shape", offset=r.pos)
        aux.append((_dtype(aux_flag, r.pos), aux_shape))
    assert storage_shape is not None
    values = _array(r, storage_shape, dtype, "sparse data", budget)
    aux_arrays = [_array(r, s, t, "sparse index", budget) for t, s in aux]
    return _densify(sparse_stype, shape, values, aux_arrays, start, budget), r.pos


def _densify(stype: int, shape: tuple[int, ...], values: Any, aux: list[Any], offset: int, budget: list[int]) -> Any:
    import numpy as np

    def bad(why: str) -> FormatError:
        return FormatError("Malformed MXNet sparse array", offset=offset, why=why)

    for a in aux:
        if a.dtype.kind not in "iu" or a.ndim != 1:
            raise bad("index arrays must be 1-D integers")
    _charge(budget, _count(shape) * values.dtype.itemsize, "dense array", offset)
    dense = np.zeros(shape, dtype=values.dtype)
    if stype == 1:  # row_sparse: values[i] is row indices[i]
        (indices,) = aux
        if not shape or values.shape != (len(indices), *shape[1:]):
            raise bad("the values do not match the row indices and the shape")
        if len(indices) and (indices.min() < 0 or indices.max() >= shape[0]):
            raise bad("a row index is out of range")
        dense[indices.astype(np.int64)] = values
        return dense
    indptr, indices = aux  # csr
    indptr = indptr.astype(np.int64)  # unsigned differences would wrap instead of going negative
    if len(shape) != 2 or len(indptr) != shape[0] + 1 or values.ndim != 1 or len(indices) != len(values):
        raise bad("csr arrays are 2-D with indptr of rows + 1 entries and one index per value")
    if len(indptr) and (indptr[0] != 0 or indptr[-1] != len(values) or (np.diff(indptr) < 0).any()):
        raise bad("indptr must rise from 0 to the number of values")
    if len(indices) and (indices.min() < 0 or indices.max() >= shape[1]):
        raise bad("a column index is out of range")
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr).astype(np.int64))
    dense[rows, indices.astype(np.int64)] = values
    return dense


def load_mxnet_list(data: bytes, max_alloc: int, build: bool = True) -> Any:
    """The list or dict ``mx.nd.load`` returns, with numpy arrays (None for dense ones with ``build=False``)."""
    r = _Reader(data, 16, len(data))
    (n,) = r.unpack("<Q", "array count")
    if n > len(data) // 4:
        raise FormatError(f"MXNet file declares {n} arrays in {len(data)} bytes", offset=16,
                          why="each array needs at least a few bytes; the count lies")
    budget = [max_alloc]
    arrays = []
    for _ in range(n):
        array, r.pos = read_record(data, r.pos, len(data), budget, build)
        arrays.append(array)
    (m,) = r.unpack("<Q", "name count")
    if m not in (0, n):
        raise FormatError(f"MXNet file has {n} arrays but {m} names", offset=r.pos - 8,
                          why="names, when present, come one per array")
    names = []
    for _ in range(m):
        (length,) = r.unpack("<Q", "name length")
        start = r.need(length, "name")
        try:
            names.append(data[start:start + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise FormatError("MXNet array name is not UTF-8", offset=start) from None
    if r.pos != len(data):
        raise FormatError(f"{len(data) - r.pos} bytes after the end of the MXNet array list", offset=r.pos,
                          why="data after the last record could be read differently by another reader")
    if not m:
        return arrays
    if len(set(names)) != len(names):
        raise FormatError("MXNet file names the same array twice", offset=16,
                          why="two readers could keep different copies", fix="Rename the arrays and save again")
    return dict(zip(names, arrays))
