"""Pickled MXNet NDArrays (``Trainer.save_states`` ``.states`` files, ``pickle.dump`` of NDArrays).

``NDArray.__reduce__`` is ``(NDArray, (None,), {'handle': bytearray(<one NDArray record>)})``: a REDUCE of the class
with ``None``, then a BUILD whose ``handle`` holds exactly the bytes of one record as in a ``.params`` file. The
class becomes a :class:`~safeload._types.Pending`; its BUILD parses the record with safeload's own reader
(:func:`safeload._containers.mxnet.read_record`) and returns a numpy array (dense, for sparse arrays). MXNet is never
imported. The optimizer object in a ``.states`` file is a user-visible class and stays outside the policy.
"""

from __future__ import annotations

from .._hints import Any
from .._types import Entry, Pending
from .context import RebuildContext

__all__ = ["ENTRIES"]

_CLASSES = ("mxnet.ndarray.ndarray.NDArray", "mxnet.numpy.ndarray", "mxnet.numpy.multiarray.ndarray",
            "mxnet.ndarray.sparse.RowSparseNDArray", "mxnet.ndarray.sparse.CSRNDArray",
            "mxnet.ndarray.sparse.BaseSparseNDArray")


def _call(qualname: str) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        if not (args == () or (len(args) == 1 and args[0] is None)):  # by identity: never an array's __eq__
            raise ctx.fail(f"{qualname} called with arguments", "MXNet pickles NDArray(None) and sets the data by BUILD")
        return ctx.start_pending(qualname, _build, ())

    return call


def _newobj(call: Any) -> Any:
    def newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs:
            raise ctx.fail("MXNet NDArray created with keyword arguments")
        return call(ctx, args)

    return newobj


def _build(ctx: RebuildContext, pending: Pending, state: Any) -> Any:
    from .._containers.mxnet import read_record

    if type(state) is not dict or set(state) != {"handle"}:
        raise ctx.fail(f"{pending.qualname} state has an unknown layout", "MXNet pickles {'handle': bytearray}")
    handle = state["handle"]
    if handle is None:
        return None
    if type(handle) not in (bytes, bytearray):
        raise ctx.fail(f"{pending.qualname} handle is a {type(handle).__name__}", "expected the record's bytes")
    raw = bytes(handle)
    room = ctx.alloc_left()
    budget = [room]
    array, end = read_record(raw, 0, len(raw), budget)
    ctx.charge(room - budget[0], "MXNet array")
    if end != len(raw):
        raise ctx.fail(f"{len(raw) - end} bytes after the NDArray record in {pending.qualname}",
                       "a handle holds exactly one record")
    return array


def _entries() -> tuple[Entry, ...]:
    out = []
    for qualname in _CLASSES:
        call = _call(qualname)
        out.append(Entry(qualname, call=call, newobj=_newobj(call),
                         reason="an MXNet NDArray: its record bytes, parsed by safeload into a numpy array"))
    return tuple(out)


ENTRIES = _entries()
