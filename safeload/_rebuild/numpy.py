"""NumPy arrays, scalars and dtypes, rebuilt by safeload from the declared shape, dtype and bytes.

numpy's own unpickling entry points (``_reconstruct``, ``ndarray.__setstate__``, ``dtype.__setstate__``,
``scalar``, ``_frombuffer``) never run with the file's arguments. Each rebuilder checks the arguments' types,
that the byte count equals ``prod(shape) * itemsize``, and that object arrays list exactly one object per
element, then builds the array with ``np.frombuffer`` / ``np.empty``. Both spellings, ``numpy.core.*`` (NumPy 1)
and ``numpy._core.*`` (NumPy 2), reach these entries through :func:`safeload.policy.canonical_name`.
numpy is imported the first time a file holds numpy data, never by ``import safeload``.
"""

from __future__ import annotations

import re
from typing import Any

from ..policy import Entry
from .._stub import Stub

__all__ = ["ENTRIES", "build_dtype"]

_CODE = re.compile(r"[biufcOSUVaMm?]\d{0,10}")
_DATETIME_UNITS = {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "μs", "ns", "ps", "fs", "as", "generic"}
_ALIGNED_STRUCT = 0x80


def _np() -> Any:
    import numpy

    return numpy


def _as_bytes(vm: Any, data: Any, what: str) -> Any:
    if type(data) in (bytes, bytearray):
        return data
    if type(data) is str:  # Python 2 str payloads, decoded with latin1
        return data.encode("latin-1")
    raise vm.fail(f"{what} data is a {type(data).__name__}", "array data must be bytes")


def _shape(vm: Any, shape: Any) -> tuple[int, ...]:
    if type(shape) is list:
        shape = tuple(shape)
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise vm.fail(f"Array shape {shape!r:.80} is not a tuple of non-negative ints")
    if len(shape) > 64:
        raise vm.fail(f"Array of {len(shape)} dimensions", "numpy allows at most 64")
    return shape  # type: ignore[no-any-return]


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count


def _dtype_of(vm: Any, dtype: Any) -> Any:
    np = _np()
    if type(dtype) is not np.dtype and not isinstance(dtype, np.dtype):
        raise vm.fail(f"Array dtype is a {type(dtype).__name__}", "expected a numpy dtype rebuilt earlier in the stream")
    return dtype


# ---- dtype --------------------------------------------------------------------------------------------------------

def _dtype_call(vm: Any, args: tuple[Any, ...]) -> Any:
    from .._vm import Pending

    if not 1 <= len(args) <= 3:
        raise vm.fail(f"numpy.dtype called with {len(args)} arguments")
    code = args[0]
    if type(code) is bytes:
        code = code.decode("latin-1")
    if type(code) is not str or not _CODE.fullmatch(code):
        raise vm.fail(f"numpy.dtype code {code!r:.40} refused", "pickled dtypes name a type code such as 'f4' or 'V16'")
    vm.pending += 1
    return Pending("numpy.dtype", _dtype_build, (code,))


def _dtype_build(vm: Any, pending: Any, state: Any) -> Any:
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise vm.fail("numpy.dtype state has an unknown layout", "safeload reads dtype state versions 3 and 4")
    return build_dtype(vm, pending.args[0], state)


def build_dtype(vm: Any, code: str, state: tuple[Any, ...]) -> Any:
    np = _np()
    _version, byteorder, subarray, names, fields, elsize, _alignment, flags = state[:8]
    if byteorder not in ("<", ">", "|", "="):
        raise vm.fail(f"numpy.dtype byte order {byteorder!r} refused")
    if code[0] == "O":
        code = "O"
    if names is not None:
        if type(names) is not tuple or type(fields) is not dict or not all(type(n) is str for n in names):
            raise vm.fail("Structured dtype with malformed names or fields")
        formats, offsets, titles = [], [], []
        for name in names:
            spec = fields.get(name)
            if type(spec) is not tuple or len(spec) not in (2, 3) or type(spec[1]) is not int:
                raise vm.fail(f"Structured dtype field {name!r} is malformed")
            formats.append(_dtype_of(vm, spec[0]))
            offsets.append(spec[1])
            titles.append(spec[2] if len(spec) == 3 else None)
        if type(elsize) is not int or elsize < 0:
            raise vm.fail("Structured dtype with a bad itemsize")
        spec_dict: dict[str, Any] = {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": elsize}
        if any(t is not None for t in titles):
            spec_dict["titles"] = titles
        return np.dtype(spec_dict, align=bool(type(flags) is int and flags & _ALIGNED_STRUCT))
    if subarray is not None:
        if type(subarray) is not tuple or len(subarray) != 2:
            raise vm.fail("Subarray dtype is malformed")
        base, shape = subarray
        shape = _shape(vm, shape if type(shape) is tuple else (shape,))
        return np.dtype((_dtype_of(vm, base), shape))
    if code in ("M8", "m8"):
        if len(state) != 9 or type(state[8]) is not tuple or len(state[8]) != 2:
            raise vm.fail("datetime dtype without its unit")
        unit, num = state[8][1][:2] if type(state[8][1]) is tuple else (None, None)
        if type(unit) is bytes:
            unit = unit.decode("ascii")
        if unit not in _DATETIME_UNITS or type(num) is not int or num < 1:
            raise vm.fail(f"datetime dtype unit {unit!r} refused")
        dt = np.dtype(f"{code}[{num}{unit}]" if unit != "generic" else code)
    else:
        dt = np.dtype(code)
    if byteorder in ("<", ">") and dt.itemsize > 1 and dt.byteorder != "|":
        dt = dt.newbyteorder(byteorder)
    return dt


# ---- arrays ---------------------------------------------------------------------------------------------------------

def _reconstruct_call(vm: Any, args: tuple[Any, ...]) -> Any:
    from .._vm import Pending

    np = _np()
    if len(args) != 3:
        raise vm.fail(f"_reconstruct called with {len(args)} arguments")
    subtype = args[0]
    if subtype is not np.ndarray and type(subtype) is not Stub:
        raise vm.fail(f"_reconstruct of a {getattr(subtype, '__name__', type(subtype).__name__)}",
                      "safeload rebuilds plain ndarrays only")
    vm.pending += 1
    return Pending("numpy.ndarray", _array_build, ())


def _array_build(vm: Any, pending: Any, state: Any) -> Any:
    if type(state) is not tuple or len(state) not in (4, 5):
        raise vm.fail("ndarray state has an unknown layout")
    if len(state) == 5:
        if state[0] != 1:
            raise vm.fail(f"ndarray state version {state[0]!r}")
        state = state[1:]
    shape, dtype, fortran, data = state
    return make_array(vm, _shape(vm, shape), _dtype_of(vm, dtype), bool(fortran), data)


def make_array(vm: Any, shape: tuple[int, ...], dtype: Any, fortran: bool, data: Any) -> Any:
    """An ndarray from exactly ``prod(shape)`` elements of ``data``; every size is checked first."""
    np = _np()
    count = _count(shape)
    order = "F" if fortran else "C"
    if dtype.hasobject:
        if dtype.kind != "O":
            raise vm.fail("Structured dtype holding objects", "safeload does not rebuild such arrays",
                          fix="Save the fields as separate arrays")
        if type(data) is not list:
            raise vm.fail(f"Object array data is a {type(data).__name__}, not a list")
        if len(data) != count:
            raise vm.fail(f"Object array of {count} elements holds {len(data)} objects")
        vm.check_size(count, "object array")
        vm.charge(8 * count, "Object array")
        flat = np.empty(count, dtype=object)
        for i, item in enumerate(data):
            flat[i] = item
        return flat.reshape(shape, order=order)
    raw = _as_bytes(vm, data, "ndarray")
    nbytes = count * dtype.itemsize
    if nbytes != len(raw):
        raise vm.fail(f"Array data is {len(raw)} bytes, but shape {shape} of {dtype} needs {nbytes}",
                      "a size that does not match the declared shape is truncation or an attempt to read out of bounds")
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    if type(raw) is bytes:
        vm.charge(nbytes, "Array")
        flat = np.frombuffer(raw, dtype=dtype).copy()  # numpy's own unpickling returns writeable arrays
    else:
        flat = np.frombuffer(raw, dtype=dtype)
    return flat.reshape(shape, order=order)


def _frombuffer_call(vm: Any, args: tuple[Any, ...]) -> Any:
    np = _np()
    if len(args) not in (4, 5):
        raise vm.fail(f"_frombuffer called with {len(args)} arguments")
    buf, dtype, shape, order = args[:4]
    axis_order = args[4] if len(args) == 5 else None
    if order not in ("C", "F", "K"):
        raise vm.fail(f"_frombuffer order {order!r}")
    shape = _shape(vm, shape)
    if axis_order is not None:  # numpy 2 writes non-contiguous arrays as order 'K' + the axis permutation
        if order != "K" or type(axis_order) not in (tuple, list) or sorted(axis_order) != list(range(len(shape))):
            raise vm.fail("_frombuffer axis order is not a permutation of the axes")
    elif order == "K":
        raise vm.fail("_frombuffer order 'K' without an axis order")
    dtype = _dtype_of(vm, dtype)
    raw = _as_bytes(vm, buf, "_frombuffer")
    if dtype.hasobject:
        raise vm.fail("_frombuffer of an object dtype", "object arrays cannot come from raw bytes")
    nbytes = _count(shape) * dtype.itemsize
    if nbytes != len(raw):
        raise vm.fail(f"_frombuffer data is {len(raw)} bytes, but shape {shape} of {dtype} needs {nbytes}")
    if axis_order is not None:
        if dtype.itemsize == 0:
            return np.empty(shape, dtype=dtype).transpose(axis_order)
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="C").transpose(axis_order)
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


def _scalar_call(vm: Any, args: tuple[Any, ...]) -> Any:
    np = _np()
    if not 1 <= len(args) <= 2:
        raise vm.fail(f"numpy scalar called with {len(args)} arguments")
    dtype = _dtype_of(vm, args[0])
    if dtype.hasobject:
        if dtype.kind != "O" or len(args) != 2:
            raise vm.fail("numpy object scalar is malformed")
        return args[1]
    raw = _as_bytes(vm, args[1] if len(args) == 2 else b"", "numpy scalar")
    if len(raw) != dtype.itemsize:
        raise vm.fail(f"numpy scalar of {dtype} needs {dtype.itemsize} bytes, got {len(raw)}")
    if dtype.itemsize == 0:
        return np.zeros((), dtype=dtype)[()]
    return np.frombuffer(raw, dtype=dtype)[0]


# ---- the table ------------------------------------------------------------------------------------------------------

def _lazy_attr(name: str) -> Any:
    def resolve() -> Any:
        return getattr(_np(), name)

    return resolve


_SCALAR_TYPES = (
    "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intc", "uintc", "intp",
    "float16", "float32", "float64", "longdouble", "complex64", "complex128", "clongdouble", "str_", "bytes_",
    "void", "object_", "datetime64", "timedelta64", "generic", "number", "integer", "floating",
)


def _entries() -> tuple[Entry, ...]:
    out = [
        Entry("numpy._core.multiarray._reconstruct", call=_reconstruct_call,
              reason="an ndarray, rebuilt by safeload from shape, dtype and bytes"),
        Entry("numpy._core.multiarray.scalar", call=_scalar_call, reason="a numpy scalar from its dtype and bytes"),
        Entry("numpy._core.numeric._frombuffer", call=_frombuffer_call,
              reason="a protocol-5 ndarray from in-band bytes, sizes checked"),
        Entry("numpy.dtype", call=_dtype_call, lazy=_lazy_attr("dtype"),
              reason="a dtype, rebuilt by safeload from its code and state"),
        Entry("numpy.ndarray", lazy=_lazy_attr("ndarray"), reason="the array type, as a value only"),
    ]
    for name in _SCALAR_TYPES:
        out.append(Entry(f"numpy.{name}", lazy=_lazy_attr(name), reason="a numpy type, as a value only"))
    out.append(Entry("numpy.bool", lazy=_lazy_attr("bool_"), reason="a numpy type, as a value only"))
    # numpy.dtypes.* classes (NumPy 2 names for dtype classes) are values only as well
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        out.append(Entry(f"numpy.dtypes.{name}", lazy=_lazy_dtypes(name), reason="a numpy dtype class, as a value only"))
    return tuple(out)


def _lazy_dtypes(name: str) -> Any:
    def resolve() -> Any:
        import numpy.dtypes

        return getattr(numpy.dtypes, name)

    return resolve


ENTRIES = _entries()
