"""Rebuilders for plain Python data: builtins, collections, argparse/SimpleNamespace, datetime, decimal, fractions.

Each entry either pushes a real type as a value, or calls a pure constructor after checking the arguments'
types and sizes. None of them calls anything the file supplied. The datetime, decimal and fractions modules are
imported the first time a file names one of their classes (about 3 ms of every start otherwise, ``safeload scan``'s
included); their entries resolve to the same classes.
"""

from __future__ import annotations

import argparse
import importlib
import re
import types
from collections import Counter, OrderedDict, defaultdict

from .._hints import Any
from ..errors import UnsafeGlobalError
from .._types import Entry, is_one_of
from .context import RebuildContext
from .._stub import Stub

__all__ = ["ENTRIES", "apply_plain_state"]

_MAX_INT_BITS = 1 << 16  # ints handed to constructors that do arithmetic on them (Fraction's gcd)


def _argc(ctx: RebuildContext, args: tuple[Any, ...], name: str, lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise ctx.fail(f"{name} called with {len(args)} arguments, expected {want}", "the file's call does not match "
                       "the only form safeload rebuilds")


def _types(ctx: RebuildContext, name: str, value: Any, allowed: tuple[type, ...]) -> None:
    if type(value) not in allowed:
        raise ctx.fail(f"{name} argument of type {type(value).__name__} refused",
                       f"safeload accepts only {', '.join(t.__name__ for t in allowed)} here")


_REFUSED_ARGS = (ValueError, TypeError, OverflowError, ArithmeticError, LookupError)


def construct(ctx: RebuildContext, name: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` for a pure standard-library constructor whose own argument checks are part of the format:
    the ValueError/OverflowError/... it raises on arguments the file chose becomes a FormatError here (and only
    here: anything else unexpected is a safeload bug, an InternalError)."""
    try:
        return fn(*args)
    except _REFUSED_ARGS as exc:
        raise ctx.fail(f"{name} refuses the arguments in the file", f"{type(exc).__name__}: {exc}") from None


def _check_items(ctx: RebuildContext, items: Any, name: str) -> list[Any]:
    if type(items) not in (list, tuple, set, frozenset):
        raise ctx.fail(f"{name} called on a {type(items).__name__}", "only lists, tuples and sets are iterated")
    ctx.check_size(len(items), name)
    return list(items)


def check_attr_names(ctx: RebuildContext, state: dict[Any, Any], owner: str) -> None:
    """Attribute names from a file: strings, and never dunder names (``__setstate__``, ``__class__``, ...), which
    would let the file change how the object behaves when copied, pickled or printed later."""
    for key in state:
        if type(key) is not str:
            raise ctx.fail(f"BUILD attribute name of type {type(key).__name__}", "attribute names are strings")
        if key.startswith("__") and key.endswith("__"):
            raise ctx.fail(f"BUILD sets {key} on a {owner}",
                           "special names change how an object behaves; setting them from a file is state injection")


def apply_plain_state(ctx: RebuildContext, inst: Any, state: Any) -> Any:
    """BUILD for plain data holders: string keys go straight into ``__dict__``; no setattr, no __setstate__."""
    slotstate = None
    if type(state) is tuple and len(state) == 2:
        state, slotstate = state
    for part in (state, slotstate):
        if part is None:
            continue
        if type(part) is not dict:
            raise ctx.fail(f"BUILD state for {type(inst).__name__} is a {type(part).__name__}",
                           "plain data holders take a dict of attributes")
        check_attr_names(ctx, part, type(inst).__name__)
        try:
            target = inst.__dict__
        except AttributeError:
            raise ctx.fail(f"BUILD on a {type(inst).__name__}, which has no attribute dict") from None
        target.update(part)
    return inst


def _value(qualname: str, value: Any, reason: str, **kw: Any) -> Entry:
    return Entry(qualname, value=value, reason=reason, **kw)


# ---- builtins ---------------------------------------------------------------------------------------------------

def _set(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "set", 0, 1)
    items = _check_items(ctx, args[0], "set") if args else []
    ctx.check_keys(items, "set")
    return set(items)


def _frozenset(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "frozenset", 0, 1)
    items = _check_items(ctx, args[0], "frozenset") if args else []
    ctx.check_keys(items, "set")
    return frozenset(items)


def _bytearray(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "bytearray", 0, 2)
    if not args:
        return bytearray()
    if len(args) == 2:  # protocol 0-2: bytearray(latin1_text, 'latin-1')
        _types(ctx, "bytearray", args[0], (str,))
        if not is_one_of(args[1], ("latin-1", "latin1")):
            raise ctx.fail(f"bytearray encoding {args[1]!r} refused", "pickle writes bytearray text as latin-1")
        return construct(ctx, "bytearray", lambda t: bytearray(t.encode("latin-1")), args[0])
    _types(ctx, "bytearray", args[0], (bytes, bytearray, list))  # never an int: that allocates by argument
    if type(args[0]) is list:
        if not all(type(b) is int for b in args[0]):
            raise ctx.fail("bytearray list holds non-ints")
    return construct(ctx, "bytearray", bytearray, args[0])


def _bytes(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "bytes", 0, 1)
    if not args:
        return b""
    _types(ctx, "bytes", args[0], (bytes, list))
    if type(args[0]) is list and not all(type(b) is int for b in args[0]):
        raise ctx.fail("bytes list holds non-ints")
    return construct(ctx, "bytes", bytes, args[0])


def _complex(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "complex", 0, 2)
    for a in args:
        _types(ctx, "complex", a, (int, float, bool))
    return construct(ctx, "complex", complex, *args)


def _slice(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "slice", 1, 3)
    for a in args:
        _types(ctx, "slice", a, (int, type(None), bool))
    return construct(ctx, "slice", slice, *args)


def _range(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "range", 1, 3)
    for a in args:
        _types(ctx, "range", a, (int,))
    return construct(ctx, "range", range, *args)


def _tuple(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "tuple", 0, 1)
    return tuple(_check_items(ctx, args[0], "tuple")) if args else ()


def _list(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "list", 0, 1)
    return list(_check_items(ctx, args[0], "list")) if args else []


def _dict_ctor(kind: type) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        if not args:  # OrderedDict(): the backward hooks of every tensor torch.save writes
            return kind()
        _argc(ctx, args, kind.__name__, 0, 1)
        src = args[0]
        if type(src) in (dict, OrderedDict):
            ctx.check_keys(list(src))
            return kind(src)
        pairs = _check_items(ctx, src, kind.__name__)
        for p in pairs:
            if type(p) not in (list, tuple) or len(p) != 2:
                raise ctx.fail(f"{kind.__name__} item is not a key/value pair")
        ctx.check_keys([p[0] for p in pairs])
        return kind(pairs)

    return call


def _new(kind: type) -> Any:
    """``kind.__new__(kind)``: the class's own (C) allocator, typed for any class."""
    new: Any = kind.__new__
    return new(kind)


def _newobj_plain(kind: type) -> Any:
    def newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args or kwargs:
            raise ctx.fail(f"{kind.__name__} created with arguments", "safeload creates it empty and fills it from state")
        return _new(kind)

    return newobj


def _namespace_call(kind: type) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        _argc(ctx, args, kind.__name__, 0, 1)
        inst = _new(kind)
        if args:  # SimpleNamespace(**dict) in some reduce forms
            apply_plain_state(ctx, inst, args[0])
        return inst

    return call


_FACTORIES = (list, dict, set, frozenset, tuple, int, float, str, bytes, bool, OrderedDict, Counter)


def _defaultdict(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "defaultdict", 0, 2)
    factory = args[0] if args else None
    if factory is not None and not (type(factory) is type and factory in _FACTORIES):
        what = factory.qualname if isinstance(factory, Stub) else type(factory).__name__
        raise ctx.fail(f"defaultdict factory {what} refused",
                       "the factory is called on every missing key; only built-in container and number types are allowed")
    result: defaultdict[Any, Any] = defaultdict(factory)
    if len(args) == 2:
        if type(args[1]) is not dict:
            raise ctx.fail("defaultdict initial items are not a dict")
        ctx.check_keys(list(args[1]))
        result.update(args[1])
    return result


def _counter(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "Counter", 0, 1)
    if not args:
        return Counter()
    if type(args[0]) is not dict:
        raise ctx.fail("Counter built from a non-dict", "pickle writes Counter(dict)")
    ctx.check_keys(list(args[0]))
    result: Counter[Any] = Counter()
    dict.update(result, args[0])
    return result


def _codecs_encode(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "_codecs.encode", 2, 2)
    text, encoding = args
    _types(ctx, "_codecs.encode", text, (str,))
    if not is_one_of(encoding, ("latin1", "latin-1")):
        raise ctx.fail(f"_codecs.encode with encoding {encoding!r} refused", "pickle writes bytes as encode(text, 'latin1')")
    return construct(ctx, "_codecs.encode", text.encode, "latin-1")


def _reconstructor(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    """copyreg._reconstructor(cls, object, None), as protocols 0 and 1 write plain objects."""
    _argc(ctx, args, "copyreg._reconstructor", 3, 3)
    cls, base, state = args
    if base is not object or state is not None:
        raise ctx.fail("copyreg._reconstructor with a base other than object",
                       "calling base.__new__ and base.__init__ with file-chosen state is how this helper is abused")
    return ctx.newobj(cls, (), {})


def _newobj_helper(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    """copyreg.__newobj__(cls, *args): the same as the NEWOBJ opcode."""
    if not args:
        raise ctx.fail("copyreg.__newobj__ without a class")
    return ctx.newobj(args[0], tuple(args[1:]), {})


def _newobj_ex_helper(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    _argc(ctx, args, "copyreg.__newobj_ex__", 3, 3)
    cls, a, kw = args
    return ctx.newobj(cls, a, kw)


def _eval_paddle(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    """Paddle writes a DenseTensor as eval('data', {'data': ndarray}). Only that exact form; eval never runs."""
    import numpy as np

    if (len(args) == 2 and is_one_of(args[0], ("data",)) and type(args[1]) is dict and list(args[1]) == ["data"]
            and type(args[1]["data"]) is np.ndarray):
        return args[1]["data"]
    raise UnsafeGlobalError(
        "builtins", "eval", offset=ctx.op_start,
        why="safeload accepts only Paddle's exact eval('data', {'data': ndarray}) form and returns the array; any "
            "other use of eval runs code")


# ---- datetime, decimal, fractions -------------------------------------------------------------------------------

def _stdlib(module: str, name: str) -> Any:
    """The entry's ``lazy``: ``module.name`` of the standard library, imported on first use."""
    def resolve() -> Any:
        return getattr(importlib.import_module(module), name)

    return resolve


def _datetime_ctor(name: str, state_len: int) -> Any:
    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        import datetime

        kind = getattr(datetime, name)
        _argc(ctx, args, kind.__name__, 1, 8)
        first = args[0]
        if type(first) in (bytes, str):  # the compact state pickle writes: fixed-length bytes (+ tzinfo)
            if len(first) != state_len:
                raise ctx.fail(f"{kind.__name__} state of {len(first)} bytes", f"expected {state_len}")
            if type(first) is str:
                first = first.encode("latin-1")
            rest = args[1:]
            if len(rest) > 1 or (rest and rest[0] is not None and type(rest[0]) is not datetime.timezone):
                raise ctx.fail(f"{kind.__name__} tzinfo of type {type(rest[0]).__name__} refused",
                               "only datetime.timezone offsets are rebuilt")
            return construct(ctx, kind.__name__, kind, first, *rest)
        for a in args:
            _types(ctx, kind.__name__, a, (int, datetime.timezone, type(None)))
        return construct(ctx, kind.__name__, kind, *args)

    return call


def _timedelta(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    import datetime

    _argc(ctx, args, "timedelta", 0, 3)
    for a in args:
        _types(ctx, "timedelta", a, (int, float))
    return construct(ctx, "timedelta", datetime.timedelta, *args)


def _timezone(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    import datetime

    _argc(ctx, args, "timezone", 1, 2)
    _types(ctx, "timezone", args[0], (datetime.timedelta,))
    if len(args) == 2:
        _types(ctx, "timezone", args[1], (str,))
    return construct(ctx, "timezone", datetime.timezone, *args)


def _decimal(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    import decimal

    _argc(ctx, args, "Decimal", 0, 1)
    if not args:
        return decimal.Decimal()
    value = args[0]
    _types(ctx, "Decimal", value, (str, int))
    if type(value) is int:
        # Decimal(int) converts to decimal digits in quadratic time, and the memo lets a file repeat it for a few
        # bytes: bound the size, and charge every conversion to the work budget.
        bits = value.bit_length()
        if bits > _MAX_INT_BITS:
            raise ctx.fail(f"Decimal of a {bits}-bit integer refused", "converting it would take quadratic time")
        ctx.work_digits(bits * 30103 // 100000 + 1)
    elif len(value) > _MAX_NUMBER_TEXT:
        raise ctx.fail(f"Decimal text of {len(value)} characters refused", f"at most {_MAX_NUMBER_TEXT} are read")
    return construct(ctx, "Decimal", decimal.Decimal, value)


_MAX_NUMBER_TEXT = 4096  # characters of a Decimal or Fraction written as text
#: Fraction('1e30000000') computes 10**30000000: the exponent a Fraction's text may carry (the digits stay below
#: the bound on integer terms, 2**16 bits, about 19700 digits)
_MAX_FRACTION_EXPONENT = 19_000
_FRACTION_EXPONENT = re.compile(r"[eE]\s*([-+]?\d[\d_]*)\s*$")


def _fraction(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
    import fractions

    _argc(ctx, args, "Fraction", 0, 2)
    for a in args:
        _types(ctx, "Fraction", a, (str, int))
        if type(a) is int and a.bit_length() > _MAX_INT_BITS:
            raise ctx.fail(f"Fraction term of {a.bit_length()} bits refused", "reducing it would take quadratic time")
        if type(a) is str:
            if len(a) > _MAX_NUMBER_TEXT:
                raise ctx.fail("Fraction text too long", f"at most {_MAX_NUMBER_TEXT} characters are read")
            match = _FRACTION_EXPONENT.search(a)
            if match is not None and abs(int(match.group(1).replace("_", ""))) > _MAX_FRACTION_EXPONENT:
                raise ctx.fail(f"Fraction exponent {match.group(1)[:20]} refused",
                               f"Fraction computes 10**exponent; at most {_MAX_FRACTION_EXPONENT} is allowed")
            ctx.work_digits(len(a))
    if len(args) == 2 and args[1] == 0:
        raise ctx.fail("Fraction with a zero denominator")
    return construct(ctx, "Fraction", fractions.Fraction, *args)


def _type_value(name: str, kind: type, reason: str = "a built-in type, used as a value", **kw: Any) -> Entry:
    return _value(f"builtins.{name}", kind, reason, **kw)


ENTRIES: tuple[Entry, ...] = (
    _type_value("set", set, call=_set),
    _type_value("frozenset", frozenset, call=_frozenset),
    _type_value("bytearray", bytearray, call=_bytearray),
    _type_value("bytes", bytes, call=_bytes),
    _type_value("complex", complex, call=_complex),
    _type_value("slice", slice, call=_slice),
    _type_value("range", range, call=_range),
    _type_value("tuple", tuple, call=_tuple),
    _type_value("list", list, call=_list),
    _type_value("dict", dict, call=_dict_ctor(dict)),
    _type_value("int", int),
    _type_value("float", float),
    _type_value("str", str),
    _type_value("bool", bool),
    _type_value("object", object, "the base class, as copyreg._reconstructor names it"),
    Entry("builtins.eval", call=_eval_paddle,
          reason="only Paddle's eval('data', {'data': ndarray}) form, returned without calling eval"),
    _value("collections.OrderedDict", OrderedDict, "an ordered dict; BUILD may set attributes such as _metadata",
           call=_dict_ctor(OrderedDict), newobj=_newobj_plain(OrderedDict), build=apply_plain_state),
    _value("collections.Counter", Counter, "a dict of counts", call=_counter),
    _value("collections.defaultdict", defaultdict, "a dict whose factory must be a built-in type", call=_defaultdict),
    _value("argparse.Namespace", argparse.Namespace, "training arguments: attributes only",
           call=_namespace_call(argparse.Namespace), newobj=_newobj_plain(argparse.Namespace), build=apply_plain_state),
    _value("types.SimpleNamespace", types.SimpleNamespace, "attributes only",
           call=_namespace_call(types.SimpleNamespace), newobj=_newobj_plain(types.SimpleNamespace),
           build=apply_plain_state),
    Entry("_codecs.encode", call=_codecs_encode, reason="only encode(str, 'latin1'), as protocol 2 writes bytes"),
    Entry("copyreg._reconstructor", call=_reconstructor,
          reason="only _reconstructor(cls, object, None) for a class the policy allows"),
    Entry("copyreg.__newobj__", call=_newobj_helper, reason="the same as NEWOBJ, for classes the policy allows"),
    Entry("copyreg.__newobj_ex__", call=_newobj_ex_helper, reason="the same as NEWOBJ_EX"),
    Entry("datetime.datetime", lazy=_stdlib("datetime", "datetime"), reason="a date and time",
          call=_datetime_ctor("datetime", 10)),
    Entry("datetime.date", lazy=_stdlib("datetime", "date"), reason="a date", call=_datetime_ctor("date", 4)),
    Entry("datetime.time", lazy=_stdlib("datetime", "time"), reason="a time of day", call=_datetime_ctor("time", 6)),
    Entry("datetime.timedelta", lazy=_stdlib("datetime", "timedelta"), reason="a duration", call=_timedelta),
    Entry("datetime.timezone", lazy=_stdlib("datetime", "timezone"), reason="a fixed UTC offset", call=_timezone),
    Entry("decimal.Decimal", lazy=_stdlib("decimal", "Decimal"), reason="a decimal number from its text",
          call=_decimal),
    Entry("fractions.Fraction", lazy=_stdlib("fractions", "Fraction"), reason="a fraction from its text or terms",
          call=_fraction),
)
