"""The safe protocol for classes a user allows (``allow=[...]``, ``Policy.allowing``, ``safe_globals``).

An allowed class is never called, and its ``__reduce__``, ``__setstate__``, ``__init__`` and ``__new__`` never run.
safeload rebuilds an instance this way, and only this way:

* **plain classes and dataclasses**: ``object.__new__(cls)`` (or the nearest built-in base's ``__new__`` for
  dict and list subclasses), then the BUILD state goes into ``__dict__`` by a plain dict update. Slot state goes
  through ``object.__setattr__`` for names in the class's ``__slots__`` only. A dataclass accepts only its
  declared field names.
* **Enum members**: looked up by value in the class's member table; the class is not called.
* **namedtuples**: ``tuple.__new__(cls, args)`` with exactly ``len(cls._fields)`` arguments.

Anything else the file asks of the class (REDUCE with arguments for a plain class, state that is not a dict of
strings, a field the dataclass does not declare) is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib
from collections import OrderedDict

from .._hints import Any
from .._types import Entry
from .context import RebuildContext
from .builtins import check_attr_names

__all__ = ["user_class_entry"]


def _slots_of(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update([slots] if isinstance(slots, str) else slots)
    return names


def _blank(cls: type) -> Any:
    for base in (OrderedDict, dict, list, set):
        if issubclass(cls, base):
            new: Any = base.__new__
            return new(cls)
    return object.__new__(cls)


def user_class_entry(cls: type) -> Entry:
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    if issubclass(cls, enum.Enum):
        return Entry(qualname, value=cls, call=_enum_call(cls), reason="an Enum allowed by the caller; members by value")
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return Entry(qualname, value=cls, call=_namedtuple_new(cls), newobj=_namedtuple_newobj(cls),
                     reason="a namedtuple allowed by the caller")
    if cls.__module__ == "pathlib" and issubclass(cls, pathlib.PurePath):
        return Entry(qualname, value=cls, call=_path_call(cls), reason="a pathlib class allowed by the caller: "
                     "built from strings only (pathlib's own __reduce__), which touches no file")
    if issubclass(cls, (int, float, str, bytes, tuple, frozenset, complex)):
        raise TypeError(f"safeload cannot rebuild {qualname} safely: subclasses of immutable built-ins need their "
                        "own constructor to run")
    fields = frozenset(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
    return Entry(qualname, value=cls, call=_plain_call(cls), newobj=_plain_newobj(cls), build=_plain_build(cls, fields),
                 reason="a class allowed by the caller: object.__new__ plus a plain __dict__ update")


def _enum_call(cls: type[enum.Enum]) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        if len(args) != 1:
            raise ctx.fail(f"{cls.__qualname__} called with {len(args)} arguments", "Enum members are pickled by value")
        for member in cls.__members__.values():
            if type(member.value) is type(args[0]) and member.value == args[0]:
                return member
        raise ctx.fail(f"{args[0]!r} is not a value of {cls.__qualname__}")

    return call


def _namedtuple_new(cls: type) -> Any:
    n = len(cls._fields)  # type: ignore[attr-defined]

    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        if len(args) != n:
            raise ctx.fail(f"{cls.__qualname__} needs {n} fields, got {len(args)}")
        return tuple.__new__(cls, args)

    return call


def _namedtuple_newobj(cls: type) -> Any:
    call = _namedtuple_new(cls)

    def newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs:
            raise ctx.fail(f"{cls.__qualname__} created with keyword arguments")
        return call(ctx, args)

    return newobj


def _path_call(cls: type) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        if not all(type(a) is str for a in args) or len(args) > 4096:
            raise ctx.fail(f"{cls.__qualname__} called with something other than path strings")
        ctx.charge(sum(len(a) for a in args), cls.__qualname__)
        try:
            return cls(*args)
        except (TypeError, ValueError, NotImplementedError) as exc:  # e.g. WindowsPath on POSIX
            raise ctx.fail(f"{cls.__qualname__} cannot be made here: {exc}"[:200]) from None

    return call


def _plain_call(cls: type) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        if args:
            raise ctx.fail(f"{cls.__qualname__} called with arguments",
                           "safeload never runs an allowed class's constructor; it creates the instance and sets its "
                           "state (save the object's __dict__ or a dataclass instead of a custom __reduce__)")
        return _blank(cls)

    return call


def _plain_newobj(cls: type) -> Any:
    def newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args or kwargs:
            raise ctx.fail(f"{cls.__qualname__} created with __new__ arguments",
                           "safeload creates allowed classes with object.__new__ and no arguments")
        return _blank(cls)

    return newobj


def _plain_build(cls: type, fields: frozenset[str] | None) -> Any:
    slots = _slots_of(cls)

    def build(ctx: RebuildContext, inst: Any, state: Any) -> Any:
        slotstate = None
        if type(state) is tuple and len(state) == 2:
            state, slotstate = state
        for part, is_slots in ((state, False), (slotstate, True)):
            if part is None:
                continue
            if type(part) is not dict:
                raise ctx.fail(f"BUILD state for {cls.__qualname__} is not a dict of attribute names")
            check_attr_names(ctx, part, cls.__qualname__)
            if fields is not None and not set(part) <= fields:
                extra = sorted(set(part) - fields)
                raise ctx.fail(f"BUILD sets {extra} on dataclass {cls.__qualname__}", "only declared fields are set")
            if is_slots or not hasattr(inst, "__dict__"):
                for key, value in part.items():
                    if key not in slots:
                        raise ctx.fail(f"BUILD sets {key!r}, which is not a slot of {cls.__qualname__}")
                    object.__setattr__(inst, key, value)
            else:
                inst.__dict__.update(part)
        return inst

    return build
