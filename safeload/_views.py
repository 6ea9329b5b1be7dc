"""One checked way to make an array or tensor view over bytes.

Every numpy array or torch tensor that safeload makes over a buffer it did not allocate for that array (a record
copied out of an archive, a mapped file, a storage shared by tied weights) is made by :func:`make_view`. It measures
the buffer it is given (``len`` of bytes, a bytearray or an mmap, ``nbytes`` of a memoryview, an ndarray or a 1-D
tensor), computes with Python integers the lowest and the one-past-highest byte the requested geometry reaches
(offset, shape, strides and itemsize; negative strides reach below the offset, a zero dimension reaches nothing),
and refuses anything outside ``[0, len)`` *before* numpy's or torch's constructors see the numbers. So a container
that hands over a buffer shorter than its header promised (a zip record whose sizes disagree, a truncated mapping)
gives a :class:`~safeload.errors.FormatError`, never an array over memory that is not the file's.

:func:`check_extent` is the one "larger than any array can be" rule: numpy refuses a shape whose non-zero
dimensions times the itemsize reach ``2**63`` bytes even when another dimension is zero, and torch overflows on it.
"""

from __future__ import annotations

import sys

from ._hints import Any
from .errors import FormatError

__all__ = ["MAX_DIMS", "byte_span", "check_extent", "framework", "make_view", "whole_storage"]

MAX_DIMS = 64  # numpy's NPY_MAXDIMS and torch's limit
_LIMIT = 1 << 63  # numpy's and torch's sizes and strides are signed 64-bit integers
_TORCH_ITEMSIZES: dict[Any, int] = {}  # torch dtype -> itemsize


def check_extent(shape: Any, itemsize: int, what: str = "Array", *, offset: int | None = None,
                 member: str | None = None) -> int:
    """The element count of ``shape``; a FormatError when it is not at most 64 non-negative ints, or when its
    non-zero dimensions times ``itemsize`` reach ``2**63`` bytes (numpy refuses such a shape even with a zero
    dimension; torch overflows)."""
    count = extent = 1
    if type(shape) is tuple and len(shape) <= MAX_DIMS:
        for n in shape:
            if type(n) is not int or n < 0:
                break
            count *= n
            extent *= n or 1
        else:
            if extent * (itemsize or 1) < _LIMIT:
                return count
            raise FormatError(f"{what} shape {shape!r:.80} is larger than any array can be", offset=offset,
                              member=member, why="its non-zero dimensions times the itemsize reach 2**63 bytes, "
                              "which numpy refuses and torch overflows")
    raise FormatError(f"{what} shape {shape!r:.80} is not a tuple of at most {MAX_DIMS} non-negative ints",
                      offset=offset, member=member)


def byte_span(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, offset: int) -> tuple[int, int] | None:
    """``(lowest, end)``: the first byte the view reads and one past the last, or None when it has no element."""
    lo = hi = offset
    for n, s in zip(shape, strides):
        if n == 0:
            return None
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + itemsize


def _contiguous(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides = []
    step = itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _length(buf: Any, torch: Any) -> int:
    """The real number of bytes behind ``buf``, measured on the object itself."""
    kind = type(buf)
    if kind is bytes or kind is bytearray:
        return len(buf)
    if kind is memoryview:
        return int(buf.nbytes)
    if torch is not None and isinstance(buf, torch.Tensor):
        # torch.as_strided addresses the whole storage from its start, whatever the base's own shape
        return int(buf.untyped_storage().nbytes())
    if hasattr(buf, "__array_interface__") and hasattr(buf, "flags"):  # a numpy array
        if not buf.flags.c_contiguous:
            raise FormatError("Internal: an array view base must be contiguous")
        return int(buf.nbytes)
    return len(buf)  # an mmap


def make_view(buf: Any, dtype: Any, shape: tuple[int, ...], strides: tuple[int, ...] | None = None,
              offset: int = 0, *, what: str = "Array", member: str | None = None, at: int | None = None) -> Any:
    """A view of ``shape`` elements of ``dtype`` over ``buf``, starting ``offset`` bytes in, ``strides`` in bytes
    (C order when None). ``dtype`` is a numpy dtype (the result is an ndarray, writeable when ``buf`` is) or a
    torch dtype (the result is a tensor sharing ``buf``'s memory). ``buf`` is bytes-like, a contiguous ndarray, or a
    1-D tensor over a whole storage. Every byte the view can reach is checked against ``buf``'s real length first;
    ``what``, ``member`` and ``at`` (a file offset) only word the refusal."""
    torch = _torch_of(dtype)
    if torch is None:
        itemsize = int(dtype.itemsize)
    else:  # a torch dtype's itemsize is a C call that sets up a warning handler: read once per dtype
        itemsize = _TORCH_ITEMSIZES.get(dtype, 0)
        if not itemsize:
            itemsize = _TORCH_ITEMSIZES[dtype] = int(dtype.itemsize)
    count = check_extent(shape, itemsize, what, offset=at, member=member)
    if type(offset) is not int or not 0 <= offset < _LIMIT:
        raise FormatError(f"{what} offset {offset!r:.40} is not a non-negative 64-bit int", offset=at, member=member)
    if strides is None:
        span = (offset, offset + count * itemsize) if count else None
    else:
        if (type(strides) is not tuple or len(strides) != len(shape)
                or not all(type(s) is int and -_LIMIT < s < _LIMIT for s in strides)):
            raise FormatError(f"{what} strides {strides!r:.80} do not match shape {shape!r:.80}", offset=at,
                              member=member, why="each dimension needs one stride, a signed 64-bit integer")
        span = byte_span(shape, strides, itemsize, offset)
    length = _length(buf, torch)
    if span is None:
        if offset > length:
            raise FormatError(f"{what} starts at byte {offset} of a {length}-byte buffer", offset=at, member=member,
                              why="an offset beyond the data points at memory that is not the file's")
    elif span[0] < 0 or span[1] > length:
        raise FormatError(f"{what} reaches bytes {span[0]}..{span[1]} of a {length}-byte buffer", offset=at,
                          member=member, why="an offset, shape or stride beyond the data, or data shorter than its "
                          "header says, would read memory that is not the file's",
                          fix="The file is damaged or was crafted; get a fresh copy from its source")
    if torch is not None:
        if strides is None:
            if not isinstance(buf, torch.Tensor):  # the common case: a record or a tensor's bytes, in order
                if span is None:
                    return torch.empty(shape, dtype=dtype)
                if offset == 0 and span[1] == length:  # the whole buffer (torch then measures it itself)
                    flat = torch.frombuffer(buf, dtype=dtype)
                else:
                    flat = torch.frombuffer(buf, dtype=dtype, count=count, offset=offset)
                return flat if len(shape) == 1 else flat.view(shape)
            strides = _contiguous(shape, itemsize)
        return _torch_view(torch, buf, dtype, itemsize, shape, strides, offset, span, what, at, member)
    np = framework("numpy")
    if span is None:
        return np.empty(shape, dtype=dtype)
    if isinstance(buf, np.ndarray) and buf.dtype != np.uint8:
        buf = buf.view(np.uint8)  # numpy's buffer protocol cannot export every dtype (ml_dtypes'): share raw bytes
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset, strides=strides)


def _torch_view(torch: Any, buf: Any, dtype: Any, itemsize: int, shape: tuple[int, ...], strides: tuple[int, ...],
                offset: int, span: tuple[int, int] | None, what: str, at: int | None, member: str | None) -> Any:
    elem_strides = []
    for s in strides:
        step, rest = divmod(s, itemsize)
        if step < 0 or rest:
            break
        elem_strides.append(step)
    else:
        if not offset % itemsize:
            if isinstance(buf, torch.Tensor):
                if buf.dtype != dtype:
                    raise FormatError(f"Internal: a {buf.dtype} base viewed as {dtype}")
                return torch.as_strided(buf, shape, elem_strides, offset // itemsize)
            if span is None:
                return torch.empty(shape, dtype=dtype)
            base = torch.frombuffer(buf, dtype=dtype, count=(span[1] - offset) // itemsize, offset=offset)
            return torch.as_strided(base, shape, elem_strides, 0)
    raise FormatError(f"{what} strides {strides} or offset {offset} are not whole non-negative {dtype} steps",
                      offset=at, member=member, why="torch tensors have no negative or fractional strides")


def whole_storage(torch: Any, untyped: Any, dtype: Any) -> Any:
    """A 1-D tensor of ``dtype`` over all of an untyped storage (its size measured on the storage itself)."""
    itemsize = dtype.itemsize
    nbytes = int(untyped.nbytes())
    if nbytes % itemsize:
        raise FormatError(f"A storage of {nbytes} bytes does not hold whole {dtype} elements")
    return torch.empty(0, dtype=dtype, device=untyped.device).set_(untyped, 0, (nbytes // itemsize,), (1,))


def framework(name: str) -> Any:
    """``import name``, as Python runs it: a ``None`` in ``sys.modules`` (how a caller blocks a package) is an
    ImportError. The compiled modules import numpy, ml_dtypes and torch through this: Cython's own import
    statement would hand back that None."""
    module = sys.modules.get(name)
    if module is None:
        import importlib

        module = importlib.import_module(name)
    return module


def _torch_of(dtype: Any) -> Any:
    """The torch module when ``dtype`` is a torch dtype, else None (numpy); torch is never imported for numpy."""
    torch = sys.modules.get("torch")  # a torch dtype exists only once torch is imported
    return torch if torch is not None and type(dtype) is torch.dtype else None
