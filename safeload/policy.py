"""Policy and limits: frozen values that say which globals a file may name and how much it may ask for.

A :class:`Policy` maps exact ``module.qualname`` strings to :class:`Entry` records. Each entry says what a
GLOBAL of that name pushes (``value``) and, if the name may be called, which of safeload's own functions
rebuilds the object (``call`` for REDUCE, ``newobj`` for NEWOBJ). Nothing in a policy is imported because a file
named it: the default entries are safeload's own code and the standard library, and numpy values are resolved
the first time a file needs numpy data. Names are looked up after the Python 2 renames and the NumPy 1 / 2
spelling are applied, so ``__builtin__.set`` and ``numpy.core.multiarray._reconstruct`` find their entries.

Policies are never changed in place: :meth:`Policy.allowing` and :meth:`Policy.with_limits` return new ones,
and :func:`safe_globals` adds names for the code inside a ``with`` block only, through a context variable.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import contextvars
import dataclasses
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "DANGEROUS",
    "DEFAULT_LIMITS",
    "DEFAULT_POLICY",
    "Entry",
    "Limits",
    "Policy",
    "canonical_name",
    "effective_policy",
    "safe_globals",
]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one file may make safeload do. Hitting one raises LimitExceededError.

    max_depth            nesting of MARK frames, and of tuples used as dict keys or set members
    max_memo             the largest memo index a PUT may name
    max_opcodes          opcodes executed in one pickle stream
    max_container        items in one container built by a rebuilder (object arrays, sets from lists, ...)
    max_alloc            bytes safeload may allocate beyond the input itself (array copies, dense MXNet arrays, ...)
    max_decompressed     bytes one compressed stream or compressed archive member may inflate to
    max_hash_collisions  dict keys or set members sharing one hash value (hash-flooding inputs)
    max_members          entries in one archive
    work_base            work units every input gets (see safeload/_budget.py: one unit is about one opcode)
    work_per_byte        work units per byte of the input on disk: a load or scan of ``n`` bytes may do at most
                         ``work_base + work_per_byte * n`` units of work (opcodes, decompressed bytes, hashed key
                         nodes, number conversions), so time is bounded by the input's size
    """

    max_depth: int = 1000
    max_memo: int = 1 << 24
    max_opcodes: int = 200_000_000
    max_container: int = 100_000_000
    max_alloc: int = 1 << 36
    max_decompressed: int = 4 << 30
    max_hash_collisions: int = 1000
    max_members: int = 1_000_000
    work_base: int = 2_000_000
    work_per_byte: int = 8

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value) is not int:  # bool is an int subclass and is refused on purpose
                raise TypeError(f"Limits.{f.name} must be an int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"Limits.{f.name} must be at least 1, got {value}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Entry:
    """One allowed global.

    qualname  the exact name, canonical spelling
    value     what GLOBAL pushes: the real object (a type used as a value) or this entry itself (a function)
    call      REDUCE / INST / OBJ with arguments: ``call(vm, args) -> object``; None if the name may not be called
    newobj    NEWOBJ / NEWOBJ_EX: ``newobj(vm, args, kwargs) -> object``; None if not allowed
    build     BUILD on an instance of ``value`` (a type): ``build(vm, inst, state) -> object``; None refuses it
    reason    why it is safe, shown by ``safeload info`` and the scanner
    """

    qualname: str
    value: Any = None
    call: Callable[..., Any] | None = None
    newobj: Callable[..., Any] | None = None
    reason: str = ""
    build: Callable[..., Any] | None = None
    lazy: Callable[[], Any] | None = field(default=None, compare=False)

    def resolve(self) -> Any:
        """The object a GLOBAL pushes. Lazy values (numpy types) are resolved on first use."""
        if self.lazy is not None:
            return self.lazy()
        return self if self.value is None else self.value

    def __repr__(self) -> str:
        return f"<safeload global {self.qualname}>"


#: Known-dangerous names, each with the reason. Used for the scanner's verdicts; everything outside the
#: policy is refused whether or not it is listed here. Keys are a module (every name in it) or module.name.
DANGEROUS: Mapping[str, str] = MappingProxyType(
    {
        "os": "runs shell commands and touches the file system",
        "posix": "runs shell commands and touches the file system",
        "nt": "runs shell commands and touches the file system",
        "subprocess": "runs programs",
        "pty": "spawns a shell",
        "commands": "runs shell commands (Python 2)",
        "popen2": "runs shell commands (Python 2)",
        "shutil": "copies and deletes files",
        "socket": "opens network connections",
        "ssl": "opens network connections",
        "http": "opens network connections",
        "urllib": "opens network connections",
        "requests": "opens network connections",
        "webbrowser": "opens URLs in a browser",
        "runpy": "runs Python modules",
        "importlib": "imports arbitrary modules",
        "pickle": "unpickles nested data without safeload's checks",
        "_pickle": "unpickles nested data without safeload's checks",
        "dill": "unpickles code objects",
        "marshal": "loads code objects",
        "types": "builds functions and code objects",
        "ctypes": "calls native code",
        "code": "runs Python source",
        "codeop": "compiles Python source",
        "sys": "changes the interpreter",
        "asyncio": "runs processes and network code",
        "multiprocessing": "runs processes",
        "pdb": "runs Python source",
        "timeit": "runs Python source",
        "operator": "calls attributes and items by name (attrgetter, methodcaller)",
        "functools": "builds callables (partial, reduce)",
        "builtins.eval": "runs Python source",
        "builtins.exec": "runs Python source",
        "builtins.compile": "compiles Python source",
        "builtins.open": "opens files",
        "builtins.getattr": "reaches any attribute, and through it any callable",
        "builtins.setattr": "changes any attribute",
        "builtins.delattr": "deletes any attribute",
        "builtins.__import__": "imports arbitrary modules",
        "builtins.globals": "exposes the interpreter's globals",
        "builtins.vars": "exposes object internals",
        "builtins.breakpoint": "starts a debugger",
        "builtins.input": "reads from the terminal",
        "builtins.print": "writes to the terminal",
        "builtins.memoryview": "exposes raw memory",
        "builtins.type": "builds new classes",
        "copyreg._reconstructor": "calls the class it is given",
        "torch.load": "unpickles nested data",
        "torch.serialization.load": "unpickles nested data",
        "torch._utils._rebuild_from_type_v2": "calls the function it is given",
        "torch.hub": "downloads and runs code",
        "numpy.load": "unpickles nested data",
        "numpy.testing._private.utils.runstring": "runs Python source",
        "joblib.load": "unpickles nested data",
    }
)


_NUMPY_CORE_RENAMES = ("numpy.core.", "numpy.core")


def canonical_name(module: str, name: str) -> tuple[str, str]:
    """Apply the Python 2 renames and the NumPy 1/2 spelling, so every spelling meets the same entry.

    The renames are data from the standard library (``_compat_pickle``); nothing is imported.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core") :]
    return module, name


def danger_of(qualname: str) -> str | None:
    """The reason a name is known to be dangerous, or None. Checks the name and every enclosing module."""
    if qualname in DANGEROUS:
        return DANGEROUS[qualname]
    module = qualname
    while "." in module:
        module = module.rsplit(".", 1)[0]
        if module in DANGEROUS:
            return DANGEROUS[module]
    return None


class Policy:
    """A frozen allowlist plus limits. Build new ones with :meth:`allowing` and :meth:`with_limits`."""

    __slots__ = ("_entries", "_limits", "_derived")

    def __init__(self, entries: Mapping[str, Entry], limits: Limits = DEFAULT_LIMITS) -> None:
        for key, entry in entries.items():
            if type(key) is not str or not isinstance(entry, Entry) or entry.qualname != key:
                raise TypeError(f"policy table entry {key!r} must map a qualname string to its Entry")
        object.__setattr__(self, "_entries", MappingProxyType(dict(entries)))
        object.__setattr__(self, "_limits", limits)
        object.__setattr__(self, "_derived", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"Policy is frozen; use allowing() or with_limits() to derive a new one")

    @property
    def entries(self) -> Mapping[str, Entry]:
        return self._entries  # type: ignore[no-any-return]

    @property
    def limits(self) -> Limits:
        return self._limits  # type: ignore[no-any-return]

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
        return derived  # type: ignore[no-any-return]

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
        return self._entries.get(f"{module}.{name}")  # type: ignore[no-any-return]

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
        return Policy(entries, self._limits)

    def with_limits(self, **changes: int) -> Policy:
        return Policy(self._entries, dataclasses.replace(self._limits, **changes))

    def __repr__(self) -> str:
        return f"<Policy {len(self._entries)} globals, {self._limits}>"


def _entries_for(item: object) -> list[Entry]:
    if isinstance(item, Entry):
        return [item]
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
        names.add(_canonical_qualname(item))
    return [dataclasses.replace(entry, qualname=n) for n in sorted(names)]


def _by_name_entry(qualname: str) -> Entry:
    """``allow=["mypkg.config.Options"]`` where ``mypkg`` cannot be imported here: the name is allowed and what the
    file builds from it becomes a :class:`safeload.Stub` holding the data (nothing is imported or called). A name
    listed in DANGEROUS is refused: some other environment could import and run it."""
    from ._stub import Stub

    name = _canonical_qualname(qualname)
    if danger_of(name):
        raise ValueError(f"{qualname!r} cannot be allowed: it {danger_of(name)}")
    module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise ValueError(f"{qualname!r} is not a module.Name")
    return Entry(name, value=Stub(module, attr), reason="allowed by name; its module is not importable here, so it "
                 "is rebuilt as an inert Stub")


def _canonical_qualname(qualname: str) -> str:
    module, _, name = qualname.partition(":") if ":" in qualname else qualname.rpartition(".")
    module, name = canonical_name(module, name)
    return f"{module}.{name}"


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

    extra = _SCOPED.get() + torch_safe_globals() + tuple(allow)
    return base.allowing(*extra) if extra else base


def _default_entries() -> dict[str, Entry]:
    from ._rebuild import builtins as b
    from ._rebuild import joblib as j
    from ._rebuild import megengine as m
    from ._rebuild import mxnet as x
    from ._rebuild import numpy as n
    from ._rebuild import torch as t

    entries: dict[str, Entry] = {}
    for entry in (*b.ENTRIES, *n.ENTRIES, *t.ENTRIES, *j.ENTRIES, *m.ENTRIES, *x.ENTRIES):
        if entry.qualname in entries:
            raise RuntimeError(f"duplicate policy entry {entry.qualname}")
        entries[entry.qualname] = entry
    return entries


DEFAULT_POLICY = Policy(_default_entries())
