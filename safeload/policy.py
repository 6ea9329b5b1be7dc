"""Policy and limits: frozen values that say which globals a file may name and how much it may ask for.

A :class:`Policy` maps exact ``module.qualname`` strings to :class:`Entry` records. Each entry says what a
GLOBAL of that name pushes (``value``) and, if the name may be called, which of safeload's own functions
rebuilds the object (``call`` for REDUCE, ``newobj`` for NEWOBJ). Nothing in a policy is imported because a file
named it: the default entries are safeload's own code and the standard library, and numpy values are resolved
the first time a file needs numpy data. Names are looked up after the Python 2 renames and the NumPy 1 / 2
spelling are applied, so ``__builtin__.set`` and ``numpy.core.multiarray._reconstruct`` find their entries.

Policies are never changed in place: :meth:`Policy.allowing` and :meth:`Policy.with_limits` return new ones,
and :func:`safe_globals` adds names for the code inside a ``with`` block only, through a context variable.
``allowing``, ``safe_globals`` and ``allow=`` take classes and names of classes only: an :class:`Entry` (which can
name any function and attach any rebuilder) is refused there with a ``TypeError``. Entries are internal; safeload's
own extensions (the scan stand-ins, safeload/policies/) add them with :func:`_with_entries`.

The records (:class:`Limits`, :class:`Entry`) are defined in safeload/_types.py and the name tables in
safeload/_names.py, which import nothing of safeload's; the default table is assembled from the rebuilders in
safeload/_rebuild/registry.py. So no rebuilder imports this module, and this module imports them only through
the registry.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType

from ._hints import Any
from ._record import replace
from ._names import DANGEROUS, canonical_name, canonical_qualname
from ._names import danger_of as danger_of  # for safeload/_scan.py and safeload/_cli.py
from ._types import DEFAULT_LIMITS, Entry, Limits
from ._rebuild.registry import default_entries

__all__ = [
    "DANGEROUS",
    "DEFAULT_LIMITS",
    "DEFAULT_POLICY",
    "Limits",
    "Policy",
    "canonical_name",
    "effective_policy",
    "safe_globals",
]


#: what only this module passes to ``Policy()``: a table of entries can attach any rebuilder to any name, so
#: callers derive policies from DEFAULT_POLICY with allowing() and with_limits() instead
_INTERNAL = object()


class Policy:
    """A frozen allowlist plus limits. Build new ones from :data:`DEFAULT_POLICY` with :meth:`allowing` and
    :meth:`with_limits`; the constructor is internal (a table of entries could make any name callable)."""

    __slots__ = ("_entries", "_limits", "_derived")
    _entries: Mapping[str, Entry]
    _limits: Limits
    _derived: tuple[frozenset[type], dict[type, Callable[..., Any]]] | None

    def __init__(self, entries: Mapping[str, Entry], limits: Limits = DEFAULT_LIMITS, *,
                 _made_by: object = None) -> None:
        if _made_by is not _INTERNAL:
            raise TypeError("safeload.Policy is not built from a table: derive one from safeload.DEFAULT_POLICY with "
                            ".allowing(classes or 'module.QualName' strings) and .with_limits(...)")
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be a safeload.Limits, not {type(limits).__name__}")
        for key, entry in entries.items():
            if type(key) is not str or not isinstance(entry, Entry) or entry.qualname != key:
                raise TypeError(f"policy table entry {key!r} must map a qualname string to its Entry")
        object.__setattr__(self, "_entries", MappingProxyType(dict(entries)))
        object.__setattr__(self, "_limits", limits)
        object.__setattr__(self, "_derived", None)

    def __setattr__(self, name: str, value: object) -> None:
        import dataclasses  # on this error path only: safeload/_record.py keeps it out of start-up

        raise dataclasses.FrozenInstanceError(f"Policy is frozen; use allowing() or with_limits() to derive a new one")

    @property
    def entries(self) -> Mapping[str, Entry]:
        return self._entries

    @property
    def limits(self) -> Limits:
        return self._limits

    def _derive(self) -> tuple[frozenset[type], dict[type, Callable[..., Any]]]:
        derived = self._derived
        if derived is None:
            types: set[type] = set()
            builders: dict[type, Callable[..., Any]] = {}
            for entry in self._entries.values():
                if entry.lazy is None and isinstance(entry.value, type):
                    types.add(entry.value)
                    if entry.build is not None:
                        builders[entry.value] = entry.build
            derived = (frozenset(types), builders)
            object.__setattr__(self, "_derived", derived)
        return derived

    @property
    def types(self) -> frozenset[type]:
        """The classes this policy allows (eagerly known ones), for APPEND and SETITEM targets."""
        return self._derive()[0]

    @property
    def builders(self) -> Mapping[type, Callable[..., Any]]:
        """Exact type -> BUILD rule, for plain data holders."""
        return self._derive()[1]

    def lookup(self, module: str, name: str) -> Entry | None:
        module, name = canonical_name(module, name)
        return self._entries.get(f"{module}.{name}")

    def allows(self, qualname: str) -> bool:
        module, _, name = qualname.rpartition(".")
        return self.lookup(module, name) is not None

    def allowing(self, *items: object) -> Policy:
        """A new policy that also allows ``items``: classes, or ``"module.QualName"`` strings naming classes.

        A string is resolved now, by importing its module: the caller names it, not a file. Allowed classes are
        rebuilt by safeload's documented protocol (see :func:`user_class_entry`), never through their own
        ``__reduce__``, ``__setstate__`` or ``__init__``.
        """
        if not items:
            return self
        entries = dict(self._entries)
        for item in items:
            for entry in _entries_for(item):
                entries[entry.qualname] = entry
        return Policy(entries, self._limits, _made_by=_INTERNAL)

    def with_limits(self, **changes: int) -> Policy:
        return Policy(self._entries, replace(self._limits, **changes), _made_by=_INTERNAL)

    def __repr__(self) -> str:
        return f"<Policy {len(self._entries)} globals, {self._limits}>"


def _with_entries(policy: Policy, entries: Iterable[Entry]) -> Policy:
    """``policy`` plus ``entries`` (replacing entries of the same names): how safeload's own extensions add
    rebuilders. Internal on purpose: an entry can make any name callable, so callers' ``allow=`` never takes one."""
    table = dict(policy.entries)
    for entry in entries:
        if not isinstance(entry, Entry):
            raise TypeError(f"_with_entries takes Entry records, not {type(entry).__name__}")
        table[entry.qualname] = entry
    return Policy(table, policy.limits, _made_by=_INTERNAL)


def _entries_for(item: object) -> list[Entry]:
    if isinstance(item, Entry):
        raise TypeError(
            f"allow= and Policy.allowing take classes or 'module.QualName' strings, not a policy entry "
            f"({item.qualname}): an entry can make any name callable with a rebuilder of its own; allow the class "
            "itself, which safeload rebuilds by its documented protocol without running the class's code"
        )
    if isinstance(item, str):
        try:
            cls = _import_named(item)
        except ValueError:  # a module this environment cannot import: allowed by name, rebuilt as an inert Stub
            return [_by_name_entry(item)]
    else:
        cls = item
    if not isinstance(cls, type):
        raise TypeError(
            f"safeload can allow classes only, not {item!r}: a function allowed by name could be called with "
            "arguments the file chose"
        )
    from ._rebuild.user import user_class_entry

    entry = user_class_entry(cls)
    names = {entry.qualname}
    if isinstance(item, str):
        names.add(canonical_qualname(item))
    return [replace(entry, qualname=n) for n in sorted(names)]


def _by_name_entry(qualname: str) -> Entry:
    """``allow=["mypkg.config.Options"]`` where ``mypkg`` cannot be imported here: the name is allowed and what the
    file builds from it becomes a :class:`safeload.Stub` holding the data (nothing is imported or called). A name
    listed in DANGEROUS is refused: some other environment could import and run it."""
    from ._stub import Stub

    name = canonical_qualname(qualname)
    if danger_of(name):
        raise ValueError(f"{qualname!r} cannot be allowed: it {danger_of(name)}")
    module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise ValueError(f"{qualname!r} is not a module.Name")
    return Entry(name, value=Stub(module, attr), reason="allowed by name; its module is not importable here, so it "
                 "is rebuilt as an inert Stub")


def _import_named(qualname: str) -> object:
    """Resolve a name the *caller* gave. ``pkg.mod:Outer.Inner`` or ``pkg.mod.Class``."""
    if ":" in qualname:
        module_name, _, attr_path = qualname.partition(":")
        candidates = [(module_name, attr_path)]
    else:
        parts = qualname.split(".")
        candidates = [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]
    errors = []
    for module_name, attr_path in candidates:
        try:
            obj: object = importlib.import_module(module_name)
        except ImportError as exc:
            errors.append(str(exc))
            continue
        try:
            for part in attr_path.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            errors.append(str(exc))
            continue
        return obj
    raise ValueError(f"cannot find {qualname!r} to allow it: {'; '.join(errors)}")


_SCOPED: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar("safeload_scoped_globals", default=())


@contextlib.contextmanager
def safe_globals(items: Iterable[object]) -> Iterator[None]:
    """Allow ``items`` (classes or names) for loads inside this block, in this context only."""
    items = tuple(items)
    for item in items:
        _entries_for(item)  # validate now, so a bad name fails at the ``with`` line
    token = _SCOPED.set(_SCOPED.get() + items)
    try:
        yield
    finally:
        _SCOPED.reset(token)


def effective_policy(policy: Policy | None, allow: Iterable[object] = ()) -> Policy:
    base = DEFAULT_POLICY if policy is None else policy
    if not isinstance(base, Policy):
        raise TypeError(f"policy must be a safeload.Policy, not {type(base).__name__}")
    if isinstance(allow, (str, type)):
        allow = (allow,)
    from ._rebuild.torch import torch_safe_globals

    scoped, torch_entries, allow = _SCOPED.get(), torch_safe_globals(), tuple(allow)
    policy = base.allowing(*scoped)
    if torch_entries:  # classes from torch's own allowlist, already checked and rebuilt as allow= does
        policy = _with_entries(policy, torch_entries)
    return policy.allowing(*allow)


DEFAULT_POLICY = Policy(default_entries(), _made_by=_INTERNAL)
