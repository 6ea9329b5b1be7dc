"""joblib's ``NumpyArrayWrapper``: arrays whose bytes are spliced into the pickle stream right after BUILD.

``joblib.dump`` pickles every plain ndarray as ``NEWOBJ NumpyArrayWrapper`` + ``BUILD {subclass, shape, order,
dtype, allow_mmap[, numpy_array_alignment_bytes]}`` and then writes, outside any pickle opcode, either the raw
array bytes (after a padding-length byte and that many padding bytes) or, for object arrays, a complete nested
pickle. joblib's loader reads those bytes straight from the file when it runs the BUILD.

safeload does the same without joblib: the wrapper is a :class:`~safeload._types.Pending` whose builder checks the
state and asks the VM for the bytes that follow through its two explicit primitives
(safeload/_rebuild/context.py): ``splice_raw`` consumes exactly the padding and ``prod(shape) * itemsize`` bytes,
which must exist, and ``run_nested`` runs a nested object-array pickle with the same policy (joblib's own loader
also routes it through the outer ``find_class``), nested at most :data:`MAX_NESTING` deep. The VM refuses either
when it would start inside a FRAME, because joblib commits the frame before writing them: data spliced into the
middle of a frame would be read differently by joblib and by a frame-aware reader.

The wrappers of joblib < 0.10 (``NDArrayWrapper``, ``ZNDArrayWrapper``) name *other files* next to the
pickle; safeload never opens files a pickle names, so they are refused with directions.
"""

from __future__ import annotations

from .._hints import Any
from ..errors import FormatError, LimitExceededError
from .._types import Entry, Pending
from .context import RebuildContext

__all__ = ["ENTRIES", "MAX_NESTING"]

MAX_NESTING = 16
_STATE_KEYS = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"})
_QUALNAME = "joblib.numpy_pickle.NumpyArrayWrapper"


def _wrapper_newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if args or kwargs:
        raise ctx.fail("NumpyArrayWrapper created with arguments", "joblib creates it empty and gives it state by BUILD")
    return ctx.start_pending(_QUALNAME, _wrapper_build)


def _wrapper_call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    return _wrapper_newobj(ctx, args, {})


def _wrapper_build(ctx: RebuildContext, pending: Pending, state: Any) -> Any:
    import numpy as np

    from .numpy import _shape, make_array

    if type(state) is not dict or not {"subclass", "shape", "order", "dtype"} <= set(state) <= _STATE_KEYS:
        raise ctx.fail("NumpyArrayWrapper state has an unknown layout",
                       "joblib writes subclass, shape, order, dtype, allow_mmap and numpy_array_alignment_bytes")
    subclass = state["subclass"]
    if not any(subclass is kind for kind in (np.ndarray, np.memmap, np.matrix)):  # identity: no __eq__ runs
        raise ctx.fail(f"NumpyArrayWrapper of a {getattr(subclass, 'qualname', type(subclass).__name__)}",
                       "joblib splices only ndarray, matrix and memmap data; other subclasses would need their "
                       "own code to run")
    shape = _shape(ctx, state["shape"])
    order = state["order"]
    if type(order) is not str or order not in ("C", "F"):
        raise ctx.fail(f"NumpyArrayWrapper order {order!r:.20}")
    dtype = state["dtype"]
    if not isinstance(dtype, np.dtype):
        raise ctx.fail(f"NumpyArrayWrapper dtype is a {type(dtype).__name__}", "expected a numpy dtype")
    if dtype.hasobject:
        return _nested_pickle(ctx, shape)
    align = state.get("numpy_array_alignment_bytes")
    if align is not None:
        if type(align) is not int or not 1 <= align <= 255:
            raise ctx.fail(f"numpy_array_alignment_bytes of {align!r:.20}")
        pad = ctx.splice_raw(1, "joblib array padding byte")[0]
        if pad > align:
            raise ctx.fail(f"joblib array padding of {pad} bytes for an alignment of {align}")
        ctx.splice_raw(pad, "joblib array padding")
    if dtype.itemsize == 0:
        raise ctx.fail(f"joblib array of {dtype}, whose items have no bytes",
                       "joblib.load divides by the item size and fails on such an array; safeload reads nothing it "
                       "cannot read")
    count = 1
    for n in shape:
        count *= n
    raw = ctx.splice_raw(count * dtype.itemsize, f"joblib array of shape {shape} and dtype {dtype}")
    array = make_array(ctx, shape, dtype, order == "F", raw)
    if not dtype.isnative:  # joblib.load returns arrays in the host's byte order, values preserved
        array = array.byteswap().view(dtype.newbyteorder("="))
    return array  # a plain ndarray for matrix and memmap too, as joblib.load gives with numpy 2


def _nested_pickle(ctx: RebuildContext, shape: tuple[int, ...]) -> Any:
    import numpy as np

    depth = ctx.context.get("joblib_nesting", 0) + 1
    if depth > MAX_NESTING:
        raise LimitExceededError("max_depth", depth, MAX_NESTING, offset=ctx.op_start,
                                 what=f"joblib object arrays nested {depth} deep",
                                 why="each level is a pickle inside a pickle; deep nesting exhausts the stack")
    array = ctx.run_nested({**ctx.context, "joblib_nesting": depth})
    if type(array) is not np.ndarray or not array.dtype.hasobject or array.shape != shape:
        raise FormatError(f"joblib object array: the nested pickle holds a {type(array).__name__}, not an object "
                          f"array of shape {shape}", offset=ctx.op_start,
                          fix="The file is damaged or was crafted; get a fresh copy from its source")
    return array


def _legacy(qualname: str) -> Entry:
    def refuse(ctx: RebuildContext, *args: Any) -> Any:
        raise ctx.fail(f"{qualname} refused",
                       "files from joblib < 0.10 keep their arrays in separate files next to the pickle, and safeload "
                       "never opens files that a pickle names",
                       fix="Load it with joblib in a trusted environment and save it again with a current joblib "
                           "(or with safeload.save)")

    return Entry(qualname, call=refuse, newobj=refuse, reason="joblib < 0.10 external arrays: refused with directions")


ENTRIES: tuple[Entry, ...] = (
    Entry(_QUALNAME, call=_wrapper_call, newobj=_wrapper_newobj,
          reason="a joblib array: its bytes follow BUILD in the stream and are read by safeload, sizes checked"),
    _legacy("joblib.numpy_pickle_compat.NDArrayWrapper"),
    _legacy("joblib.numpy_pickle_compat.ZNDArrayWrapper"),
    Entry("numpy.memmap", lazy=lambda: __import__("numpy").memmap, reason="an array type, as a value only"),
    Entry("numpy.matrix", lazy=lambda: __import__("numpy").matrix, reason="an array type, as a value only"),
)
