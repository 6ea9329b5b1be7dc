"""joblib's ``NumpyArrayWrapper``: arrays whose bytes are spliced into the pickle stream right after BUILD.

``joblib.dump`` pickles every plain ndarray as ``NEWOBJ NumpyArrayWrapper`` + ``BUILD {subclass, shape, order,
dtype, allow_mmap[, numpy_array_alignment_bytes]}`` and then writes, outside any pickle opcode, either the raw
array bytes (after a padding-length byte and that many padding bytes) or, for object arrays, a complete nested
pickle. joblib's loader reads those bytes straight from the file when it runs the BUILD.

safeload does the same without joblib: the wrapper is a :class:`~safeload._vm.Pending` whose builder checks the
state, reads exactly ``prod(shape) * itemsize`` bytes that exist from ``vm.data`` at ``vm.pos`` and moves
``vm.pos`` past them (the run loop reloads its position after every BUILD). The bytes must start where the
current FRAME ends, because joblib commits the frame before writing them: data spliced into the middle of a
frame would be read differently by joblib and by a frame-aware reader, so it is refused. A nested object-array
pickle runs through a fresh VM with the same policy (joblib's own loader also routes it through the outer
``find_class``), nested at most :data:`MAX_NESTING` deep.

The wrappers of joblib < 0.10 (``NDArrayWrapper``, ``ZNDArrayWrapper``) name *other files* next to the
pickle; safeload never opens files a pickle names, so they are refused with directions.
"""

from __future__ import annotations

from typing import Any

from ..errors import FormatError, LimitExceededError
from .._types import Entry

__all__ = ["ENTRIES", "MAX_NESTING"]

MAX_NESTING = 16
_STATE_KEYS = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"})
_QUALNAME = "joblib.numpy_pickle.NumpyArrayWrapper"
#: VM counters a nested pickle shares with the pickle around it (those this VM has)
_SHARED_COUNTERS = ("ops", "ops_settled", "op_cap", "allocated")


def _wrapper_newobj(vm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from .._types import Pending

    if args or kwargs:
        raise vm.fail("NumpyArrayWrapper created with arguments", "joblib creates it empty and gives it state by BUILD")
    vm.pending += 1
    return Pending(_QUALNAME, _wrapper_build, ())


def _wrapper_call(vm: Any, args: tuple[Any, ...]) -> Any:
    return _wrapper_newobj(vm, args, {})


def _wrapper_build(vm: Any, pending: Any, state: Any) -> Any:
    import numpy as np

    from .numpy import _shape, make_array

    if type(state) is not dict or not {"subclass", "shape", "order", "dtype"} <= set(state) <= _STATE_KEYS:
        raise vm.fail("NumpyArrayWrapper state has an unknown layout",
                      "joblib writes subclass, shape, order, dtype, allow_mmap and numpy_array_alignment_bytes")
    subclass = state["subclass"]
    if not any(subclass is kind for kind in (np.ndarray, np.memmap, np.matrix)):  # identity: no __eq__ runs
        raise vm.fail(f"NumpyArrayWrapper of a {getattr(subclass, 'qualname', type(subclass).__name__)}",
                      "joblib splices only ndarray, matrix and memmap data; other subclasses would need their "
                      "own code to run")
    shape = _shape(vm, state["shape"])
    order = state["order"]
    if type(order) is not str or order not in ("C", "F"):
        raise vm.fail(f"NumpyArrayWrapper order {order!r:.20}")
    dtype = state["dtype"]
    if not isinstance(dtype, np.dtype):
        raise vm.fail(f"NumpyArrayWrapper dtype is a {type(dtype).__name__}", "expected a numpy dtype")
    if vm.frame_end >= 0 and vm.pos < vm.frame_end:
        raise vm.fail("joblib array data inside a pickle frame",
                      "joblib ends the frame before writing array bytes; data in the middle of a frame is read "
                      "differently by different readers")
    if dtype.hasobject:
        array = _nested_pickle(vm, shape)
    else:
        array = _raw_array(vm, state, shape, order, dtype, make_array)
    vm.frame_end = -1  # the bytes after the array are outside the frame that ended before it
    return array  # a plain ndarray for matrix and memmap too, as joblib.load gives with numpy 2


def _raw_array(vm: Any, state: dict[str, Any], shape: tuple[int, ...], order: str, dtype: Any, make_array: Any) -> Any:
    data, pos, end = vm.data, vm.pos, vm.end
    align = state.get("numpy_array_alignment_bytes")
    if align is not None:
        if type(align) is not int or not 1 <= align <= 255:
            raise vm.fail(f"numpy_array_alignment_bytes of {align!r:.20}")
        if pos >= end:
            raise vm.fail("joblib array padding byte missing: the file ends after BUILD")
        pad = data[pos]
        if pad > align:
            raise vm.fail(f"joblib array padding of {pad} bytes for an alignment of {align}")
        pos += 1 + pad
    if dtype.itemsize == 0:
        raise vm.fail(f"joblib array of {dtype}, whose items have no bytes",
                      "joblib.load divides by the item size and fails on such an array; safeload reads nothing it "
                      "cannot read")
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if pos + nbytes > end:
        raise FormatError(f"joblib array of shape {shape} and dtype {dtype} needs {nbytes} bytes, but only "
                          f"{max(end - pos, 0)} remain", offset=pos, why="the file is truncated or the shape lies",
                          fix="The file is damaged or was crafted; get a fresh copy from its source")
    vm.charge(nbytes, "joblib array")
    raw = bytearray(memoryview(data)[pos:pos + nbytes])
    array = make_array(vm, shape, dtype, order == "F", raw)
    vm.pos = pos + nbytes
    if not dtype.isnative:  # joblib.load returns arrays in the host's byte order, values preserved
        array = array.byteswap().view(dtype.newbyteorder("="))
    return array


def _nested_pickle(vm: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    from .._vm import VM

    depth = vm.context.get("joblib_nesting", 0) + 1
    if depth > MAX_NESTING:
        raise LimitExceededError("max_depth", depth, MAX_NESTING, offset=vm.op_start,
                                 what=f"joblib object arrays nested {depth} deep",
                                 why="each level is a pickle inside a pickle; deep nesting exhausts the stack")
    if vm.pos >= vm.end:
        raise vm.fail("joblib object array: the nested pickle is missing")
    context = dict(vm.context)
    context["joblib_nesting"] = depth
    # Started at 0 and then moved to vm.pos, so the VM shares the outer stream instead of copying its tail.
    inner = VM(vm.data, 0, policy=vm.policy, unknown=vm.unknown, encoding=vm.encoding, errors=vm.errors,
               persistent_load=None, observer=vm.observer, context=context)
    inner.pos = inner.start = inner.op_start = vm.pos
    inner.base = vm.base  # its errors then give offsets in the input, as the outer VM's do
    shared = [name for name in _SHARED_COUNTERS if hasattr(vm, name)]
    for name in shared:  # one opcode count, allocation count and work budget for the whole file
        setattr(inner, name, getattr(vm, name))
    array = inner.run()
    for name in shared:
        setattr(vm, name, getattr(inner, name))
    if 0 <= inner.frame_end and inner.pos != inner.frame_end:
        raise FormatError(f"joblib object array: the nested pickle stops {inner.frame_end - inner.pos} bytes before "
                          f"the end of its FRAME", offset=inner.pos - 1, opcode="STOP",
                          why="joblib's unpickler reads a whole frame from the file, so after the nested pickle it "
                              "resumes where the frame ends, not after STOP: the bytes in between would be read by "
                              "one reader and skipped by the other",
                          fix="The file is damaged or was crafted; get a fresh copy from its source")
    vm.pos = inner.pos
    if type(array) is not np.ndarray or not array.dtype.hasobject or array.shape != shape:
        raise FormatError(f"joblib object array: the nested pickle holds a {type(array).__name__}, not an object "
                          f"array of shape {shape}", offset=vm.op_start,
                          fix="The file is damaged or was crafted; get a fresh copy from its source")
    return array


def _legacy(qualname: str) -> Entry:
    def refuse(vm: Any, *args: Any) -> Any:
        raise vm.fail(f"{qualname} refused",
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
