"""``record`` and ``field``: the records of the scan path (:class:`~safeload.Limits`, the policy's entries, the scan
report, the opcode table) without importing :mod:`dataclasses` at start-up.

``dataclasses`` imports :mod:`inspect` (with ``ast``, ``dis`` and ``tokenize``), and ``@dataclass`` compiles five
or six methods for every class: together about 12 ms of the 60 ms a ``safeload scan`` of one small pickle took.
A ``@record`` class gets the same ``__init__`` (compiled once, as ``dataclass`` makes it), ``__repr__``, ``__eq__``,
``__hash__`` and, with ``frozen=True``, an ``__setattr__``/``__delattr__`` that raise
:class:`dataclasses.FrozenInstanceError`, all with the semantics ``@dataclass`` gives them (an ``__eq__`` and no
``frozen`` make the class unhashable, a method the class defines itself is kept, ``__post_init__`` runs last).

Records stay dataclasses to everyone who asks: the first ``dataclasses.is_dataclass``, ``fields``, ``replace`` or
``asdict`` on a record class or instance looks up ``__dataclass_fields__``, which is missing; the metaclass (for
the class) or the instance's ``__getattr__`` then imports ``dataclasses`` and gives the class the fields and
parameters ``@dataclass`` would have given it. tests/test_record.py compares every record with the dataclass
made from the same declaration.

The type checker sees ``dataclasses.dataclass`` and ``dataclasses.field`` themselves (below), so it checks every
record exactly as the dataclass it behaves as.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the type checker treats this name as true; at run time it spares importing typing
if TYPE_CHECKING:
    from dataclasses import dataclass as record
    from dataclasses import field, replace
else:
    _MISSING = object()
    _DATACLASS_NAMES = frozenset({"__dataclass_fields__", "__dataclass_params__"})

    class _Field:
        """What ``field(...)`` returns in a record's class body: a default or a default factory, and whether the
        field takes part in ``==`` and ``hash``."""

        __slots__ = ("default", "default_factory", "compare")

        def __init__(self, default, default_factory, compare):
            self.default = default
            self.default_factory = default_factory
            self.compare = compare

    def field(*, default=_MISSING, default_factory=_MISSING, compare=True):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory, compare)

    def _as_dataclass(cls):
        """Give a record class the ``__dataclass_fields__`` and ``__dataclass_params__`` of the dataclass made from
        the same declaration (imports ``dataclasses``: only when something asks for them)."""
        import dataclasses

        spec = cls.__dict__["__record__"]  # cls is the class that declared the record (_RecordType finds it)
        body = {"__annotations__": {name: cls.__annotations__[name] for name in spec["names"]},
                "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        for name, fld in spec["fields"].items():
            if fld.default_factory is not _MISSING:
                body[name] = dataclasses.field(default_factory=fld.default_factory, compare=fld.compare)
            elif fld.default is not _MISSING:
                body[name] = dataclasses.field(default=fld.default, compare=fld.compare)
            else:
                body[name] = dataclasses.field(compare=fld.compare)
        twin = dataclasses.dataclass(eq=spec["eq"], frozen=spec["frozen"])(type(cls.__name__, (), body))
        type.__setattr__(cls, "__dataclass_fields__", twin.__dict__["__dataclass_fields__"])
        type.__setattr__(cls, "__dataclass_params__", twin.__dict__["__dataclass_params__"])

    class _RecordType(type):
        """The metaclass of records: supplies the dataclass attributes on first use."""

        def __getattr__(cls, name):
            # a subclass of a record is a dataclass through the record, as a subclass of a dataclass is
            owner = _declaring(cls) if name in _DATACLASS_NAMES else None
            if owner is not None:
                _as_dataclass(owner)
                return owner.__dict__[name]
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")

    def _instance_getattr(self, name):
        if name in _DATACLASS_NAMES:
            return getattr(type(self), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _frozen_error(name):
        import dataclasses

        return dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_setattr(self, name, value):
        raise _frozen_error(name)

    def _frozen_delattr(self, name):
        raise _frozen_error(name)

    def _repr(self):
        names = field_names(self) or ()
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({inner})"

    def _make(cls, eq, frozen):
        names = [name for name in cls.__dict__.get("__annotations__", {})]
        fields = {}
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            fields[name] = value if isinstance(value, _Field) else _Field(value, _MISSING, True)
        params, lines, env = [], [], {"_MISSING": _MISSING}
        seen_default = False
        for name, fld in fields.items():
            if fld.default_factory is not _MISSING:
                env[f"_factory_{name}"] = fld.default_factory
                params.append(f"{name}=_MISSING")
                value = f"_factory_{name}() if {name} is _MISSING else {name}"
                seen_default = True
            elif fld.default is not _MISSING:
                env[f"_default_{name}"] = fld.default
                params.append(f"{name}=_default_{name}")
                value = name
                seen_default = True
            else:
                if seen_default:
                    raise TypeError(f"non-default argument {name!r} follows default argument")
                params.append(name)
                value = name
            lines.append(f"  _d[{name!r}] = {value}")
        post = "__post_init__" in cls.__dict__
        body = "\n".join(["  _d = self.__dict__", *lines, "  self.__post_init__()" if post else ""])
        source = f"def __init__(self, {', '.join(params)}):\n{body}\n" if params else f"def __init__(self):\n{body}\n"
        exec(source, env)  # noqa: S102 - the source is made from this module's own class declarations only
        init = env["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"

        compared = tuple(name for name, fld in fields.items() if fld.compare)
        namespace = dict(cls.__dict__)
        for name, fld in fields.items():  # a class attribute stays only as a plain default, as in a dataclass
            if isinstance(namespace.get(name), _Field):
                if fld.default is _MISSING:
                    del namespace[name]
                else:
                    namespace[name] = fld.default
        namespace.pop("__dict__", None)
        namespace.pop("__weakref__", None)
        namespace["__record__"] = {"names": tuple(names), "fields": fields, "eq": eq, "frozen": frozen}
        namespace["__init__"] = init
        namespace.setdefault("__repr__", _repr)
        namespace["__getattr__"] = _instance_getattr
        if eq and "__eq__" not in cls.__dict__:
            def __eq__(self, other):
                if other.__class__ is self.__class__:
                    return tuple(getattr(self, n) for n in compared) == tuple(getattr(other, n) for n in compared)
                return NotImplemented
            __eq__.__qualname__ = f"{cls.__qualname__}.__eq__"
            namespace["__eq__"] = __eq__
        if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
            if eq and frozen:
                def __hash__(self):
                    return hash(tuple(getattr(self, n) for n in compared))
                __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
                namespace["__hash__"] = __hash__
            elif eq:
                namespace["__hash__"] = None
        if frozen:
            namespace["__setattr__"] = _frozen_setattr
            namespace["__delattr__"] = _frozen_delattr
        namespace["__match_args__"] = tuple(names)
        return _RecordType(cls.__name__, cls.__bases__, namespace)

    def record(cls=None, /, *, eq=True, frozen=False):
        """``@record`` or ``@record(frozen=True)``: a class from its annotated fields, as ``@dataclass`` makes it."""
        if cls is None:
            return lambda c: _make(c, eq, frozen)
        return _make(cls, eq, frozen)

    def replace(obj, /, **changes):
        """``dataclasses.replace`` for a record, without importing ``dataclasses``."""
        names = field_names(obj)
        if names is None:
            raise TypeError("replace() should be called on a record instance")
        unknown = set(changes).difference(names)
        if unknown:
            raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
        return type(obj)(**{name: changes[name] if name in changes else getattr(obj, name) for name in names})


def _declaring(cls: type) -> type | None:
    """The record class ``cls`` is or derives from (a subclass inherits the fields, as with dataclasses)."""
    for klass in cls.__mro__:
        if "__record__" in klass.__dict__:
            return klass
    return None


def field_names(obj: object) -> tuple[str, ...] | None:
    """The field names of a record class or instance (or of a subclass of one), in order; None for anything
    else."""
    owner = _declaring(obj if isinstance(obj, type) else type(obj))
    if owner is None:
        return None
    names: tuple[str, ...] = owner.__dict__["__record__"]["names"]
    return names


__all__ = ["field", "field_names", "record", "replace"]
