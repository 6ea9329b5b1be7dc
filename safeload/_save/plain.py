"""The plain-pickle path of ``safeload.save``: the standard library's pickler at the pinned protocol, after the
walk (:mod:`.walk`) has checked the object."""

from __future__ import annotations

import copyreg
import io
import sys

from .._hints import Any
from ..errors import LimitExceededError
from .refusal import ROOT
from .walk import Walker


def plain_pickle(obj: Any, protocol: int, pickle_module: Any, walker: Walker) -> bytes:
    """``obj`` as a standard pickle at ``protocol``. Classes the caller allowed are written as NEWOBJ + their
    state, never through their own ``__reduce__``, so the bytes hold exactly what the walk checked."""
    forced = walker.user_state
    newobj = copyreg.__newobj__  # type: ignore[attr-defined]

    class Pickler(pickle_module.Pickler):  # type: ignore[misc]
        def reducer_override(self, value: Any) -> Any:
            state = forced.get(id(value))
            if state is None or value is None:
                return NotImplemented
            plain, slots = state
            packed = (plain, slots) if slots else plain
            items = iter(value.items()) if isinstance(value, dict) else None
            listitems = iter(value) if isinstance(value, list) else None
            return (newobj, (type(value),), packed, listitems, items)

    buf = io.BytesIO()
    try:
        Pickler(buf, protocol=protocol).dump(obj)
    except RecursionError:
        raise LimitExceededError("max_depth", sys.getrecursionlimit(), sys.getrecursionlimit(),
                                 what=f"{ROOT} is nested deeper than pickle can write as a plain pickle",
                                 fix="Flatten the data, or save it with a tensor so that it is written in the torch "
                                     "format, whose writer has no depth limit below safeload.load's") from None
    return buf.getvalue()
