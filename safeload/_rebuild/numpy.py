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

from .._hints import Any
from .._views import make_view
from .._types import Entry, Pending, is_one_of
from .context import RebuildContext
from .._stub import Stub

__all__ = ["ENTRIES", "build_dtype"]

_CODE = re.compile(r"[biufcOSUVaMm?]\d{0,10}")
_DATETIME_UNITS = {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "μs", "ns", "ps", "fs", "as", "generic"}
_ALIGNED_STRUCT = 0x80
#: NPY_ITEM_REFCOUNT | NPY_LIST_PICKLE | NPY_ITEM_IS_POINTER: the flags that make numpy read items as objects
_OBJECT_FLAGS = 0x07


def _np() -> Any:
    import numpy

    return numpy


def _as_bytes(ctx: RebuildContext, data: Any, what: str) -> Any:
    if type(data) in (bytes, bytearray):
        return data
    if type(data) is str:  # Python 2 str payloads, decoded with latin1
        return data.encode("latin-1")
    raise ctx.fail(f"{what} data is a {type(data).__name__}", "array data must be bytes")


def _shape(ctx: RebuildContext, shape: Any) -> tuple[int, ...]:
    if type(shape) is list:
        shape = tuple(shape)
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise ctx.fail(f"Array shape {shape!r:.80} is not a tuple of non-negative ints")
    if len(shape) > 64:
        raise ctx.fail(f"Array of {len(shape)} dimensions", "numpy allows at most 64")
    return shape


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count


def _dtype_of(ctx: RebuildContext, dtype: Any) -> Any:
    np = _np()
    if type(dtype) is not np.dtype and not isinstance(dtype, np.dtype):
        raise ctx.fail(f"Array dtype is a {type(dtype).__name__}", "expected a numpy dtype rebuilt earlier in the stream")
    return dtype


# ---- dtype --------------------------------------------------------------------------------------------------------

def _dtype_call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    if not 1 <= len(args) <= 3:
        raise ctx.fail(f"numpy.dtype called with {len(args)} arguments")
    code = args[0]
    if type(code) is bytes:
        code = code.decode("latin-1")
    if type(code) is not str or not _CODE.fullmatch(code):
        raise ctx.fail(f"numpy.dtype code {code!r:.40} refused", "pickled dtypes name a type code such as 'f4' or 'V16'")
    return ctx.start_pending("numpy.dtype", _dtype_build, (code,))


def _dtype_build(ctx: RebuildContext, pending: Pending, state: Any) -> Any:
    if type(state) is not tuple or len(state) not in (8, 9) or not is_one_of(state[0], (3, 4)):
        raise ctx.fail("numpy.dtype state has an unknown layout", "safeload reads dtype state versions 3 and 4")
    return build_dtype(ctx, pending.args[0], state)


def _make_dtype(ctx: RebuildContext, spec: Any, align: bool = False) -> Any:
    """``numpy.dtype(spec)`` of a spec safeload assembled from checked parts; numpy's refusals become refusals."""
    try:
        return _np().dtype(spec, align=align)
    except (ValueError, TypeError, OverflowError) as exc:  # numpy's errors for a spec it cannot build
        raise ctx.fail(f"numpy.dtype state {spec!r:.80} is not a valid dtype", f"numpy: {exc}") from None


def _state_int(ctx: RebuildContext, value: Any, what: str) -> int:
    if type(value) is not int or not -(1 << 31) <= value < 1 << 31:
        raise ctx.fail(f"numpy.dtype state {what} {value!r:.20} is not a C int", "numpy reads it as a C int")
    return value


def build_dtype(ctx: RebuildContext, code: str, state: tuple[Any, ...]) -> Any:
    """The dtype numpy's ``dtype(code).__setstate__(state)`` would make, built without it, or a refusal.

    numpy's setstate takes ``elsize`` and ``alignment`` from the state for the flexible kinds (S, U, V), takes the
    subarray and fields from the state whatever the code says, and takes the object flags from the state rather
    than from the fields. A reader that trusted the code instead would read another number of bytes per item
    (joblib reads ``count * itemsize`` bytes, then resumes the pickle) or take objects for bytes. So every item
    of the state must agree with the dtype safeload builds; anything numpy would honour differently is refused.
    """
    _version, byteorder, subarray, names, fields, elsize, alignment, flags = state[:8]
    elsize = _state_int(ctx, elsize, "elsize")
    alignment = _state_int(ctx, alignment, "alignment")
    flags = _state_int(ctx, flags, "flags")
    if -128 <= flags < 0:  # numpy's setstate: flags once pickled as a signed char are normalised this way
        flags += 128
    if flags < 0:
        raise ctx.fail(f"numpy.dtype flags {flags} refused", "numpy refuses negative flags below -128")
    if type(byteorder) is not str or byteorder not in ("<", ">", "|", "="):
        raise ctx.fail(f"numpy.dtype byte order {byteorder!r:.20} refused")
    if code[0] == "O":
        code = "O"
    if code[0] in "Mm" and code not in ("M8", "m8"):
        raise ctx.fail(f"numpy.dtype code {code!r} refused", "numpy pickles datetimes as 'M8' or 'm8' and a unit")
    flexible = code[0] in "SUVa"
    if (names is not None or fields is not None or subarray is not None) and code[0] != "V":
        raise ctx.fail(f"numpy.dtype {code!r} with fields or a subarray",
                       "numpy would give a non-void type the fields or subarray of its state while keeping the "
                       "code's item size; numpy pickles structured and subarray dtypes with a 'V' code")
    if subarray is not None and (names is not None or fields is not None):
        raise ctx.fail("numpy.dtype with both fields and a subarray",
                       "numpy would keep both, and make arrays of the subarray's shape from a structured item")
    if names is not None or fields is not None:
        if type(names) is not tuple or type(fields) is not dict or not all(type(n) is str for n in names):
            raise ctx.fail("Structured dtype with malformed names or fields")
        formats, offsets, titles = [], [], []
        for name in names:
            spec = fields.get(name)
            if type(spec) is not tuple or len(spec) not in (2, 3) or type(spec[1]) is not int:
                raise ctx.fail(f"Structured dtype field {name!r} is malformed")
            formats.append(_dtype_of(ctx, spec[0]))
            offsets.append(spec[1])
            titles.append(spec[2] if len(spec) == 3 else None)
        if elsize < 0:
            raise ctx.fail("Structured dtype with a bad itemsize")
        spec_dict: dict[str, Any] = {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": elsize}
        if any(t is not None for t in titles):
            spec_dict["titles"] = titles
        dt = _make_dtype(ctx, spec_dict, bool(flags & _ALIGNED_STRUCT))
    elif subarray is not None:
        if type(subarray) is not tuple or len(subarray) != 2:
            raise ctx.fail("Subarray dtype is malformed")
        base, shape = subarray
        shape = _shape(ctx, shape if type(shape) is tuple else (shape,))
        dt = _make_dtype(ctx, (_dtype_of(ctx, base), shape))
    elif code in ("M8", "m8"):
        if len(state) != 9 or type(state[8]) is not tuple or len(state[8]) != 2:
            raise ctx.fail("datetime dtype without its unit")
        meta = state[8][1]
        if type(meta) is not tuple or not 2 <= len(meta) <= 4 or any(type(x) is not int or x != 1 for x in meta[2:]):
            raise ctx.fail(f"datetime dtype unit {meta!r:.40} refused",
                           "numpy pickles (unit, count, 1, 1); other divisors and events change the unit")
        unit, num = meta[:2]
        if type(unit) is bytes:
            unit = unit.decode("latin-1")  # any byte: what is not a unit name is refused just below
        if type(unit) is not str or unit not in _DATETIME_UNITS or type(num) is not int or num < 1:
            raise ctx.fail(f"datetime dtype unit {unit!r} refused")
        dt = _make_dtype(ctx, f"{code}[{num}{unit}]" if unit != "generic" else code)
    else:
        dt = _make_dtype(ctx, code)
    if flexible and (elsize != dt.itemsize or alignment != dt.alignment):
        raise ctx.fail(f"numpy.dtype {code!r} state gives an item size of {elsize} and an alignment of {alignment}, "
                       f"but the dtype has {dt.itemsize} and {dt.alignment}",
                       "numpy takes the item size of S, U and V types from the state, so numpy and its readers (joblib "
                       "reads count x itemsize array bytes, then resumes the pickle) would read another number of "
                       "bytes than the type code says")
    if flags & _OBJECT_FLAGS != dt.flags & _OBJECT_FLAGS:
        raise ctx.fail(f"numpy.dtype {dt} with object flags {flags & _OBJECT_FLAGS:#x}, not {dt.flags & _OBJECT_FLAGS:#x}",
                       "numpy takes 'holds Python objects' from the flags in the state, so numpy and its readers "
                       "(joblib reads a nested pickle for object arrays and raw bytes otherwise) would read the array "
                       "another way than its type says")
    if byteorder in ("<", ">") and dt.byteorder == "|":
        raise ctx.fail(f"numpy.dtype {dt} with byte order {byteorder!r}",
                       "numpy pickles '|' for types without a byte order, and would otherwise mark the dtype (and "
                       "an object array's pointers) as byte-swapped")
    if byteorder in ("<", ">"):
        dt = dt.newbyteorder(byteorder)
    return dt


# ---- arrays ---------------------------------------------------------------------------------------------------------

def _reconstruct_call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    np = _np()
    if len(args) != 3:
        raise ctx.fail(f"_reconstruct called with {len(args)} arguments")
    subtype = args[0]
    if subtype is not np.ndarray and type(subtype) is not Stub:
        raise ctx.fail(f"_reconstruct of a {getattr(subtype, '__name__', type(subtype).__name__)}",
                       "safeload rebuilds plain ndarrays only")
    return ctx.start_pending("numpy.ndarray", _array_build, ())


def _array_build(ctx: RebuildContext, pending: Pending, state: Any) -> Any:
    if type(state) is not tuple or len(state) not in (4, 5):
        raise ctx.fail("ndarray state has an unknown layout")
    if len(state) == 5:
        if not is_one_of(state[0], (1,)):
            raise ctx.fail(f"ndarray state version {state[0]!r}")
        state = state[1:]
    shape, dtype, fortran, data = state
    if type(fortran) not in (bool, int):  # numpy takes its truth value; an array's would raise
        raise ctx.fail(f"ndarray Fortran flag is a {type(fortran).__name__}", "numpy pickles a bool")
    return make_array(ctx, _shape(ctx, shape), _dtype_of(ctx, dtype), bool(fortran), data)


def make_array(ctx: RebuildContext, shape: tuple[int, ...], dtype: Any, fortran: bool, data: Any) -> Any:
    """An ndarray from exactly ``prod(shape)`` elements of ``data``; every size is checked first."""
    np = _np()
    count = _count(shape)
    order = "F" if fortran else "C"
    if dtype.hasobject:
        if dtype.kind != "O":
            raise ctx.fail("Structured dtype holding objects", "safeload does not rebuild such arrays",
                           fix="Save the fields as separate arrays")
        if type(data) is not list:
            raise ctx.fail(f"Object array data is a {type(data).__name__}, not a list")
        if len(data) != count:
            raise ctx.fail(f"Object array of {count} elements holds {len(data)} objects")
        ctx.check_size(count, "object array")
        ctx.charge(8 * count, "Object array")
        # one element per item, never unpacked: a list or an array in ``data`` is stored as that object, as
        # element-wise assignment stores it (``flat[:] = data`` would broadcast nested sequences); fromiter with
        # the object dtype (numpy >= 1.23) does that in C, a fifth of the Python loop's time.
        flat = np.fromiter(data, dtype=object, count=count)
        # numpy pickles an object array's items in C (logical) order whatever its layout, and its setstate fills
        # them back the same way (``_getlist_pkl``/``_setlist_pkl`` iterate the array); only the raw bytes of
        # other dtypes are in memory order. A Fortran-ordered one is then laid out in Fortran order, as numpy's is.
        grid = flat.reshape(shape)
        return np.asfortranarray(grid) if fortran and len(shape) > 1 else grid
    raw = _as_bytes(ctx, data, "ndarray")
    nbytes = count * dtype.itemsize
    if nbytes != len(raw):
        raise ctx.fail(f"Array data is {len(raw)} bytes, but shape {shape} of {dtype} needs {nbytes}",
                       "a size that does not match the declared shape is truncation or an attempt to read out of bounds")
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    if type(raw) is bytes:
        ctx.charge(nbytes, "Array")
        flat = make_view(raw, dtype, (count,)).copy()  # numpy's own unpickling returns writeable arrays
    else:
        flat = make_view(raw, dtype, (count,))
    return flat.reshape(shape, order=order)


def _frombuffer_call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    np = _np()
    if len(args) not in (4, 5):
        raise ctx.fail(f"_frombuffer called with {len(args)} arguments")
    buf, dtype, shape, order = args[:4]
    axis_order = args[4] if len(args) == 5 else None
    if not is_one_of(order, ("C", "F", "K")):
        raise ctx.fail(f"_frombuffer order {order!r}")
    shape = _shape(ctx, shape)
    if axis_order is not None:  # numpy 2 writes non-contiguous arrays as order 'K' + the axis permutation
        if (order != "K" or type(axis_order) not in (tuple, list) or any(type(a) is not int for a in axis_order)
                or sorted(axis_order) != list(range(len(shape)))):
            raise ctx.fail("_frombuffer axis order is not a permutation of the axes")
    elif order == "K":
        raise ctx.fail("_frombuffer order 'K' without an axis order")
    dtype = _dtype_of(ctx, dtype)
    raw = _as_bytes(ctx, buf, "_frombuffer")
    if dtype.hasobject:
        raise ctx.fail("_frombuffer of an object dtype", "object arrays cannot come from raw bytes")
    nbytes = _count(shape) * dtype.itemsize
    if nbytes != len(raw):
        raise ctx.fail(f"_frombuffer data is {len(raw)} bytes, but shape {shape} of {dtype} needs {nbytes}")
    if axis_order is not None:
        if dtype.itemsize == 0:
            return np.empty(shape, dtype=dtype).transpose(axis_order)
        return make_view(raw, dtype, shape).transpose(axis_order)
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    return make_view(raw, dtype, (_count(shape),)).reshape(shape, order=order)


def _scalar_call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    np = _np()
    if not 1 <= len(args) <= 2:
        raise ctx.fail(f"numpy scalar called with {len(args)} arguments")
    dtype = _dtype_of(ctx, args[0])
    if dtype.hasobject:
        if dtype.kind != "O" or len(args) != 2:
            raise ctx.fail("numpy object scalar is malformed")
        return args[1]
    raw = _as_bytes(ctx, args[1] if len(args) == 2 else b"", "numpy scalar")
    if len(raw) != dtype.itemsize:
        raise ctx.fail(f"numpy scalar of {dtype} needs {dtype.itemsize} bytes, got {len(raw)}")
    if dtype.itemsize == 0:
        return np.zeros((), dtype=dtype)[()]
    return make_view(raw, dtype, ())[()]


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
