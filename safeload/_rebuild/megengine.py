"""MegEngine ``Tensor`` and ``Parameter`` objects in ``megengine.save`` pickles, rebuilt as numpy arrays.

Every MegEngine version pickles the tensor's value as an ordinary numpy array, so the array is all safeload needs:

* 1.2 ... 1.13: ``NEWOBJ megengine.tensor.Tensor(ndarray, dtype, device[, is_const, no_cache, name, format])``
  then ``BUILD {}`` (or ``{'qparams': ...}``): the array is ``args[0]``.
* 1.0 ... 1.1: ``NEWOBJ Tensor()`` then ``BUILD {'data': ndarray, 'device': str, 'dtype': dtype, 'qdict': {...}}``.
* 0.x: ``megengine.core.tensor.Tensor`` / ``megengine.core.tensor_nn.Parameter`` with BUILD
  ``{'data', 'device', 'dtype', 'metadata'}``.

The object is a :class:`~safeload._types.Pending` until its BUILD; then the checked array is returned. MegEngine is
never imported, except when the caller asked for MegEngine tensors (``safeload.patch("megengine")`` sets
:data:`WANT_TENSORS` around ``megengine.load``): then the array is handed to ``megengine.Tensor`` /
``megengine.Parameter``, data only (the file's device string is not used).
"""

from __future__ import annotations

import contextvars

from .._hints import Any
from .._types import Entry, Pending
from .context import RebuildContext

__all__ = ["ENTRIES", "WANT_TENSORS"]

#: Set to True by the megengine.load wrapper: build real MegEngine tensors from the checked arrays.
WANT_TENSORS: contextvars.ContextVar[bool] = contextvars.ContextVar("safeload_megengine_tensors", default=False)

_STATE_KEYS = frozenset({"data", "device", "dtype", "qdict", "metadata", "qparams"})


def _newobj(qualname: str, parameter: bool) -> Any:
    def newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import numpy as np

        if kwargs:
            raise ctx.fail(f"{qualname} created with keyword arguments")
        if args:
            if not 1 <= len(args) <= 7:
                raise ctx.fail(f"{qualname} created with {len(args)} arguments",
                               "MegEngine pickles (ndarray, dtype, device[, is_const, no_cache, name, format])")
            if type(args[0]) is not np.ndarray:
                raise ctx.fail(f"{qualname} data is a {type(args[0]).__name__}, not an ndarray",
                               "MegEngine writes a tensor's value as a numpy array; anything else is not a tensor")
            if len(args) > 1 and args[1] is not None and not isinstance(args[1], np.dtype):
                raise ctx.fail(f"{qualname} dtype is a {type(args[1]).__name__}")
        return ctx.start_pending(qualname, _build, (parameter, args))

    return newobj


def _call(newobj: Any) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        return newobj(ctx, args, {})

    return call


def _build(ctx: RebuildContext, pending: Pending, state: Any) -> Any:
    import numpy as np

    parameter, args = pending.args
    if state is None:
        state = {}
    if type(state) is tuple and len(state) == 2 and state[1] is None:
        state = state[0]
    if type(state) is not dict or not set(state) <= _STATE_KEYS or not all(type(k) is str for k in state):
        raise ctx.fail(f"{pending.qualname} state has an unknown layout",
                       "MegEngine tensors carry data, device, dtype, qdict, metadata or qparams")
    if args:
        array = args[0]
        dtype = args[1] if len(args) > 1 else None
    else:
        array = state.get("data")
        dtype = state.get("dtype")
        if type(array) is not np.ndarray:
            raise ctx.fail(f"{pending.qualname} has no array data",
                           "a MegEngine tensor without constructor arguments keeps its value in state['data']")
    if dtype is not None and isinstance(dtype, np.dtype) and dtype != array.dtype:
        if dtype.hasobject or array.dtype.hasobject or dtype.itemsize == 0:
            raise ctx.fail(f"{pending.qualname} of dtype {dtype} from {array.dtype} data")
        ctx.charge(array.size * dtype.itemsize, "MegEngine tensor")
        array = array.astype(dtype)
    if WANT_TENSORS.get():
        import megengine  # type: ignore[import-not-found, import-untyped, unused-ignore]

        return (megengine.Parameter if parameter else megengine.Tensor)(array)
    return array


def _entries() -> tuple[Entry, ...]:
    out = []
    for qualname, parameter in (("megengine.tensor.Tensor", False), ("megengine.tensor.Parameter", True),
                                ("megengine.core.tensor.Tensor", False), ("megengine.core.tensor.tensor.Tensor", False),
                                ("megengine.core.tensor_nn.Parameter", True)):
        newobj = _newobj(qualname, parameter)
        out.append(Entry(qualname, call=_call(newobj), newobj=newobj,
                         reason="a MegEngine tensor: the numpy array it was pickled with, checked"))
    return tuple(out)


ENTRIES = _entries()
