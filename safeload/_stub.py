"""Inert stand-ins for globals outside the policy (``unknown="stub"``).

A :class:`Stub` records what the file asked for (the qualified name, the call arguments, the BUILD state and
any items appended or set on it) and does nothing else: it is never imported, called, or given behaviour.
The weights inside a whole pickled model stay reachable through ``args``, ``state``, ``items`` and
``dictitems``.
"""

from __future__ import annotations

from ._hints import Any


__all__ = ["Stub"]


class Stub:
    """An inert record of an object the file would have built from ``module.name``.

    ``args`` is None for the bare global (the class or function itself), else the arguments it was called
    with. ``kwargs`` holds NEWOBJ_EX keyword arguments, ``state`` the BUILD state, ``items`` what APPEND added,
    ``dictitems`` what SETITEM added.
    """

    __slots__ = ("module", "name", "args", "kwargs", "state", "items", "dictitems")

    def __init__(self, module: str, name: str, args: tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None) -> None:
        self.module = module
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None
        self.items: list[Any] = []
        self.dictitems: dict[Any, Any] = {}

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def called(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Stub:
        """The stub for calling this one (REDUCE, NEWOBJ): a new record with the same name."""
        return Stub(self.module, self.name, args, kwargs)

    def __repr__(self) -> str:
        if self.args is None:
            return f"<Stub {self.qualname}>"
        parts = [f"args={len(self.args)}"]
        if self.state is not None:
            parts.append(f"state={type(self.state).__name__}")
        if self.items:
            parts.append(f"items={len(self.items)}")
        if self.dictitems:
            parts.append(f"dictitems={len(self.dictitems)}")
        return f"<Stub {self.qualname}({', '.join(parts)})>"

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError(f"a safeload.Stub of {self.qualname} cannot be pickled: it stands for an object that was never built")
