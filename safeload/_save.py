"""``safeload.save``: write only what safe loaders open, refuse the rest before writing a byte.

One walk over the object graph checks every object against what ``safeload.load`` accepts under the same policy
and, in the same pass, writes the pickle that torch's zip format keeps as ``data.pkl``. The walk is iterative (no
recursion limit) and keeps an id-memo, so shared and cyclic references are written once and read back shared.
It emits only the opcodes that ``torch.load(weights_only=True)`` reads (protocol 2, no FRAME): torch tensors and
numpy arrays become ``torch._utils._rebuild_tensor_v2`` / ``_v3`` calls over persistent storage ids, exactly the
form torch writes, so the file needs no torch to be written and no code to be read.

What the file becomes:

* anything holding a torch tensor or a numpy array whose dtype torch has: torch's zip checkpoint
  (``archive/data.pkl``, ``archive/data/<key>`` records aligned to 64 bytes, ``byteorder``, ``version``,
  ``.format_version``, ``.storage_alignment``, ``.data/serialization_id``). ``torch.load`` sees numpy arrays as
  CPU tensors; ``safeload.load(tensors="numpy")`` gives arrays back.
* anything else (plain data, numpy scalars, string arrays): a plain pickle at ``pickle_protocol``, which
  ``pickle.load`` reads on every Python that knows that protocol.
* ``compress="zstd"``: either of them inside one zstd frame (safeload reads it; torch alone does not).

The file is written to a temporary file in the same folder, flushed, fsynced and renamed over the target, so a
crash leaves the old file or the new one, never half of one. On a refusal nothing is written.
"""

from __future__ import annotations

import copyreg
import dataclasses
import datetime
import decimal
import enum
import fractions
import hashlib
import io
import os
import struct
import sys
import tempfile
import types
import zlib
from argparse import Namespace
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from ._compat import check_protocol, pickle_module_for
from ._rebuild.torch import TORCH_DTYPES
from .errors import LimitExceededError, SafeLoadError
from .policy import Policy, effective_policy

__all__ = ["save", "SaveRefused"]

ROOT = "checkpoint"
_ALIGN = 64
_BATCH = 1000
_ZIP64_LIMIT = 0xFFFFFFFF  # sizes and offsets at or above this go into zip64 fields (a variable for the tests)
_CHUNK = 1 << 22

# torch dtypes written with _rebuild_tensor_v3 over an untyped storage, as torch itself does
_V3_DTYPES = frozenset({"uint16", "uint32", "uint64", "complex32", "float8_e4m3fn", "float8_e5m2",
                        "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"})
_STORAGE_CLASS = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage", "bfloat16": "BFloat16Storage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
    "uint8": "ByteStorage", "bool": "BoolStorage", "complex64": "ComplexFloatStorage",
    "complex128": "ComplexDoubleStorage",
}
_DEFAULTDICT_FACTORIES = {list: "list", dict: "dict", set: "set", frozenset: "frozenset", tuple: "tuple",
                          int: "int", float: "float", str: "str", bytes: "bytes", bool: "bool"}


class SaveRefused(SafeLoadError):
    """``safeload.save`` found an object that ``safeload.load`` would refuse. ``obj_path`` says where it is."""

    default_fix = "Save plain data: state_dict()s, tensors, arrays, numbers, strings, lists and dicts"

    def __init__(self, obj_path: str, what: str, **kwargs: Any) -> None:
        self.obj_path = obj_path
        super().__init__(f"{obj_path}: {what}", **kwargs)


# ---- paths inside the object, rendered only for messages ------------------------------------------------------

def _render(path: Any) -> str:
    nodes = []
    while type(path) is tuple:
        nodes.append(path)
        path = path[0]
    text = path if isinstance(path, str) else ROOT
    as_attr = False
    for _parent, kind, value in reversed(nodes):
        if kind == "via":  # inside a reduce's arguments: name the object itself
            break
        if kind == "state":
            as_attr = True
            continue
        if kind == "item":
            text += f".{value}" if as_attr and type(value) is str else f"[{_short(value)}]"
        elif kind == "key":
            text += f" (the dict key {_short(value)})"
        elif kind == "member":
            text += " (a set member)"
        as_attr = False
    return text


def _short(value: Any) -> str:
    text = repr(value) if type(value) in (str, int, bool, float, bytes, type(None)) else f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


# ---- opcodes (protocol 2 and below only: what torch's weights_only unpickler reads) -----------------------------

_MARK = b"("
_STOP = b"."
_POP = b"0"
_POP_MARK = b"1"
_BININT = b"J"
_BININT1 = b"K"
_BININT2 = b"M"
_NONE = b"N"
_BINUNICODE = b"X"
_APPEND = b"a"
_BUILD = b"b"
_GLOBAL = b"c"
_APPENDS = b"e"
_BINGET = b"h"
_LONG_BINGET = b"j"
_EMPTY_LIST = b"]"
_BINPUT = b"q"
_LONG_BINPUT = b"r"
_SETITEM = b"s"
_TUPLE = b"t"
_SETITEMS = b"u"
_EMPTY_DICT = b"}"
_EMPTY_TUPLE = b")"
_BINFLOAT = b"G"
_REDUCE = b"R"
_BINPERSID = b"Q"
_PROTO2 = b"\x80\x02"
_NEWOBJ = b"\x81"
_TUPLE1 = b"\x85"
_TUPLE2 = b"\x86"
_TUPLE3 = b"\x87"
_NEWTRUE = b"\x88"
_NEWFALSE = b"\x89"
_LONG1 = b"\x8a"
_LONG4 = b"\x8b"
_TUPLE_N = (_EMPTY_TUPLE, _TUPLE1, _TUPLE2, _TUPLE3)

_pack_I = struct.Struct("<I").pack
_pack_i = struct.Struct("<i").pack
_pack_H = struct.Struct("<H").pack
_pack_d = struct.Struct(">d").pack


def _int_op(v: int) -> bytes:
    if 0 <= v < 0x100:
        return _BININT1 + bytes((v,))
    if 0 <= v < 0x10000:
        return _BININT2 + _pack_H(v)
    if -0x80000000 <= v < 0x80000000:
        return _BININT + _pack_i(v)
    raw = v.to_bytes((v.bit_length() >> 3) + 1, "little", signed=True)
    if len(raw) < 0x100:
        return _LONG1 + bytes((len(raw),)) + raw
    return _LONG4 + _pack_i(len(raw)) + raw


def _str_op(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")
    return _BINUNICODE + _pack_I(len(raw)) + raw


# ---- storage records --------------------------------------------------------------------------------------------

class _Record:
    """One ``data/<key>`` record: its size, and how to get its bytes when the archive is written."""

    __slots__ = ("key", "dtype", "nbytes", "source", "kind")

    def __init__(self, key: str, dtype: str, nbytes: int, source: Any, kind: str) -> None:
        self.key = key
        self.dtype = dtype
        self.nbytes = nbytes
        self.source = source  # a torch UntypedStorage or a C-contiguous numpy array
        self.kind = kind

    def buffer(self) -> memoryview:
        if self.kind == "numpy":
            arr = self.source
            return memoryview(arr.reshape(-1).view("u1")) if arr.size else memoryview(b"")
        storage = self.source
        if storage.device.type != "cpu":
            storage = storage.cpu()  # one storage at a time: peak memory stays one record above the input
        if storage.nbytes() == 0:
            return memoryview(b"")
        import torch

        return memoryview(torch.empty(0, dtype=torch.uint8).set_(storage).numpy())


# ---- the walk ---------------------------------------------------------------------------------------------------

class _Action:
    """A deferred step in the walk (finish a tuple, a REDUCE, ...)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., None], *args: Any) -> None:
        self.fn = fn
        self.args = args


class _Walker:
    """Check an object graph against a policy and write it as a protocol-2 pickle with torch storage ids.

    ``arrays`` says where numpy arrays go: "storage" (tensor records of a torch zip) or "pickle" (numpy's own
    pickle form, for plain-pickle output).
    """

    def __init__(self, policy: Policy, arrays: str = "storage", allow_tensors: bool = True) -> None:
        self.policy = policy
        self.limits = policy.limits
        self.arrays = arrays
        self.allow_tensors = allow_tensors
        self.out: list[bytes] = [_PROTO2]
        self.memo: dict[int, tuple[int, Any]] = {}
        self.global_memo: dict[str, int] = {}
        self.const_memo: dict[str, int] = {}
        self.records: list[_Record] = []
        self.storage_ids: dict[int, _Record] = {}
        self.user_state: dict[int, Any] = {}  # id(obj) -> (state, slotstate) of allowed user classes
        self.tensors = 0
        self.np_tensors = 0
        self.checked_globals: set[str] = set()
        self.keepalive: list[Any] = []
        self.dispatch: dict[type, Callable[[Any, Any, int, list[Any]], None]] = {
            list: self._list, dict: self._dict, tuple: self._tuple, set: self._set, frozenset: self._set,
            bytes: self._bytes, bytearray: self._bytes, complex: self._complex, OrderedDict: self._ordereddict,
            defaultdict: self._defaultdict, Counter: self._counter, Namespace: self._namespace,
            types.SimpleNamespace: self._namespace,
        }
        for kind in (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, datetime.timezone,
                     decimal.Decimal, fractions.Fraction, range, slice):
            self.dispatch[kind] = self._reduce_builtin

    # -- output helpers --

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def put(self, obj: Any) -> None:
        index = len(self.memo) + len(self.global_memo) + len(self.const_memo)
        if index >= self.limits.max_memo:
            raise LimitExceededError("max_memo", index + 1, self.limits.max_memo,
                                     what="The object has more distinct objects than safeload.load's memo limit")
        self.memo[id(obj)] = (index, obj)  # the memo keeps obj alive, so its id is never reused during the walk
        self.out.append(_memo_put(index))

    def _next_index(self) -> int:
        return len(self.memo) + len(self.global_memo) + len(self.const_memo)

    def global_(self, module: str, name: str, path: Any) -> None:
        qualname = f"{module}.{name}"
        index = self.global_memo.get(qualname)
        if index is not None:
            self.out.append(_memo_get(index))
            return
        if qualname not in self.checked_globals:
            if self.policy.lookup(module, name) is None:
                raise SaveRefused(_render(path), f"{qualname} is outside the policy, so safeload.load would refuse it",
                                  why="the file would name a global the loader's policy does not allow",
                                  fix=f"Pass the same allow=[...] to save and load if {qualname} is a plain data class "
                                      "you trust, or save its data instead")
            self.checked_globals.add(qualname)
        index = self._next_index()
        self.global_memo[qualname] = index
        self.out.append(_GLOBAL + f"{module}\n{name}\n".encode("utf-8") + _memo_put(index))

    def const(self, text: str) -> None:
        index = self.const_memo.get(text)
        if index is not None:
            self.out.append(_memo_get(index))
            return
        index = self._next_index()
        self.const_memo[text] = index
        self.out.append(_str_op(text) + _memo_put(index))

    def getvalue(self) -> bytes:
        return b"".join(self.out) + _STOP

    # -- the loop --

    def walk(self, root: Any) -> None:
        stack: list[Any] = [(root, ROOT, 0)]
        max_depth = self.limits.max_depth
        dispatch = self.dispatch
        memo = self.memo
        out = self.out
        pop = stack.pop
        while stack:
            item = pop()
            kind = type(item)
            if kind is bytes:
                out.append(item)
                continue
            if kind is _Action:
                item.fn(*item.args)
                continue
            obj, path, depth = item
            t = type(obj)
            if obj is None:
                out.append(_NONE)
            elif t is bool:
                out.append(_NEWTRUE if obj else _NEWFALSE)
            elif t is int:
                out.append(_int_op(obj))
            elif t is float:
                out.append(_BINFLOAT + _pack_d(obj))
            else:
                m = memo.get(id(obj))
                if m is not None:
                    out.append(_memo_get(m[0]))
                    continue
                if t is str:
                    out.append(_str_op(obj))
                    self.put(obj)
                    continue
                if depth > max_depth:
                    raise LimitExceededError(
                        "max_depth", depth, max_depth, what=f"{_render(path)} is nested {depth} levels deep",
                        why="safeload.load refuses data nested deeper than its limit")
                handler = dispatch.get(t)
                if handler is None:
                    handler = self._classify(obj, path)
                handler(obj, path, depth, stack)
        return None

    # -- containers --

    def _items(self, stack: list[Any], items: list[Any], path: Any, depth: int, one: bytes, many: bytes,
               key_paths: bool = False) -> None:
        """Push APPEND(S)/SETITEM(S) batches for ``items`` (values, or flattened key/value pairs)."""
        step = 2 if key_paths else 1
        n = len(items)
        if n == 0:
            return
        if n == step:
            stack.append(one)
            self._push_values(stack, items, path, depth, key_paths)
            return
        batch = _BATCH * step
        starts = list(range(0, n, batch))
        for start in reversed(starts):
            chunk = items[start:start + batch]
            stack.append(many)
            self._push_values(stack, chunk, path, depth, key_paths, start)
            stack.append(_MARK)

    @staticmethod
    def _push_values(stack: list[Any], items: list[Any], path: Any, depth: int, key_paths: bool,
                     start: int = 0) -> None:
        d = depth + 1
        if key_paths:
            for i in range(len(items) - 2, -1, -2):
                key = items[i]
                stack.append((items[i + 1], (path, "item", key), d))
                stack.append((key, (path, "key", key), d))
        else:
            for i in range(len(items) - 1, -1, -1):
                stack.append((items[i], (path, "item", start + i), d))

    def _list(self, obj: list[Any], path: Any, depth: int, stack: list[Any]) -> None:
        self.write(_EMPTY_LIST)
        self.put(obj)
        self._items(stack, list(obj), path, depth, _APPEND, _APPENDS)

    def _dict_items(self, obj: dict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        flat: list[Any] = []
        for k, v in obj.items():
            flat.append(k)
            flat.append(v)
        self._items(stack, flat, path, depth, _SETITEM, _SETITEMS, key_paths=True)

    def _dict(self, obj: dict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        self.write(_EMPTY_DICT)
        self.put(obj)
        self._dict_items(obj, path, depth, stack)

    def _tuple(self, obj: tuple[Any, ...], path: Any, depth: int, stack: list[Any]) -> None:
        n = len(obj)
        if n == 0:
            self.write(_EMPTY_TUPLE)
            return
        stack.append(_Action(self._finish_tuple, obj, n))
        for i in range(n - 1, -1, -1):
            stack.append((obj[i], (path, "item", i), depth + 1))
        if n > 3:
            stack.append(_MARK)

    def _finish_tuple(self, obj: tuple[Any, ...], n: int) -> None:
        m = self.memo.get(id(obj))
        if m is not None:  # the tuple was reached again through its own items and written there: drop this copy
            self.write((_POP_MARK if n > 3 else _POP * n) + _memo_get(m[0]))
            return
        self.write(_TUPLE_N[n] if n <= 3 else _TUPLE)
        self.put(obj)

    def _finish_reduce(self, obj: Any) -> None:
        m = self.memo.get(id(obj))
        if m is not None:
            self.write(_POP + _memo_get(m[0]))
            return
        self.put(obj)

    def _call(self, stack: list[Any], obj: Any, path: Any, depth: int, module: str, name: str, args: tuple[Any, ...],
              arg_paths: str = "arg") -> None:
        """``module.name(*args)`` by REDUCE, then memoized (or dropped for the copy reached through a cycle)."""
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(_REDUCE)
        stack.append((args, (path, "via", ""), depth))
        stack.append(_Action(self.global_, module, name, path))

    def _set(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        name = "set" if type(obj) is set else "frozenset"
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(_TUPLE1 + _REDUCE)
        members = list(obj)
        d = depth + 1
        if len(members) == 1:
            stack.append(_APPEND)
            stack.append((members[0], (path, "member", None), d))
        elif members:
            for start in reversed(range(0, len(members), _BATCH)):
                stack.append(_APPENDS)
                for item in reversed(members[start:start + _BATCH]):
                    stack.append((item, (path, "member", None), d))
                stack.append(_MARK)
        stack.append(_EMPTY_LIST)
        stack.append(_Action(self.global_, "builtins", name, path))

    def _bytes(self, obj: bytes | bytearray, path: Any, depth: int, stack: list[Any]) -> None:
        # protocol 2 has no bytes opcodes: _codecs.encode(text, "latin1") and bytearray(text, "latin-1"), as pickle
        # writes them and both loaders read them
        if type(obj) is bytes:
            self.global_("_codecs", "encode", path)
        else:
            self.global_("builtins", "bytearray", path)
        self.write(_str_op(obj.decode("latin-1")))
        self.const("latin1" if type(obj) is bytes else "latin-1")
        self.write(_TUPLE2 + _REDUCE)
        self.put(obj)

    def _complex(self, obj: complex, path: Any, depth: int, stack: list[Any]) -> None:
        self.global_("builtins", "complex", path)
        self.write(_BINFLOAT + _pack_d(obj.real) + _BINFLOAT + _pack_d(obj.imag) + _TUPLE2 + _REDUCE)
        self.put(obj)

    def _ordereddict(self, obj: OrderedDict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        self.global_("collections", "OrderedDict", path)
        self.write(_EMPTY_TUPLE + _REDUCE)
        self.put(obj)
        attrs = getattr(obj, "__dict__", None)
        if attrs:  # state_dict()'s _metadata
            self._check_attrs(attrs, path)
            stack.append(_BUILD)
            stack.append((attrs, (path, "state", None), depth + 1))
        self._dict_items(obj, path, depth, stack)

    def _defaultdict(self, obj: defaultdict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        factory = obj.default_factory
        self.global_("collections", "defaultdict", path)
        if factory is None:
            self.write(_NONE)
        elif factory in _DEFAULTDICT_FACTORIES:
            self.global_("builtins", _DEFAULTDICT_FACTORIES[factory], path)
        elif factory is OrderedDict or factory is Counter:
            self.global_("collections", factory.__name__, path)
        else:
            raise SaveRefused(_render(path), f"a defaultdict whose factory is {_describe(factory)}",
                              why="safeload.load accepts only built-in container and number types as factories, "
                                  "because the factory is called on every missing key",
                              fix="Convert it with dict(d), or use a built-in type as the factory")
        self.write(_TUPLE1 + _REDUCE)
        self.put(obj)
        self._dict_items(obj, path, depth, stack)

    def _counter(self, obj: Counter[Any], path: Any, depth: int, stack: list[Any]) -> None:
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(_TUPLE1 + _REDUCE)
        stack.append((dict(obj), (path, "via", ""), depth))
        stack.append(_Action(self.global_, "collections", "Counter", path))

    def _namespace(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        kind = type(obj)
        self.global_(kind.__module__, kind.__qualname__, path)
        self.write(_EMPTY_TUPLE + _NEWOBJ)
        self.put(obj)
        attrs = vars(obj)
        if attrs:
            self._check_attrs(attrs, path)
            stack.append(_BUILD)
            stack.append((attrs, (path, "state", None), depth + 1))

    def _check_attrs(self, attrs: dict[Any, Any], path: Any) -> None:
        for key in attrs:
            if type(key) is not str or (key.startswith("__") and key.endswith("__")):
                raise SaveRefused(_render(path), f"has the attribute {key!r}",
                                  why="safeload.load sets only plain attribute names, never special (dunder) names",
                                  fix="Rename or drop the attribute")

    def _reduce_builtin(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        """datetime, Decimal, Fraction, range, slice: their own reduce, which the loader's rebuilders mirror."""
        kind = type(obj)
        if kind is datetime.datetime or kind is datetime.time:
            tz = obj.tzinfo
            if tz is not None and type(tz) is not datetime.timezone:
                raise SaveRefused(_render(path), f"a {kind.__name__} whose tzinfo is {_qualname(type(tz))}",
                                  why="safeload.load rebuilds only fixed UTC offsets (datetime.timezone)",
                                  fix="Convert it with .astimezone(datetime.timezone.utc), or save the zone's name")
        if kind is fractions.Fraction and max(obj.numerator.bit_length(), obj.denominator.bit_length()) > 1 << 16:
            raise SaveRefused(_render(path), "a Fraction with terms over 65536 bits",
                              why="safeload.load refuses such terms (reducing them takes quadratic time)",
                              fix="Save str(fraction) instead")
        rv = obj.__reduce_ex__(2)
        self._call(stack, obj, path, depth, kind.__module__, kind.__qualname__, tuple(rv[1]))

    # -- classification of everything else --

    def _classify(self, obj: Any, path: Any) -> Callable[[Any, Any, int, list[Any]], None]:
        kind = type(obj)
        module = kind.__module__ or ""
        torch = sys.modules.get("torch")  # never imported here: a tensor exists only if torch already is
        if torch is not None and (module == "torch" or module.startswith("torch.") or isinstance(obj, torch.Tensor)):
            handler = self._torch_handler(obj, path)
            if handler is not None:
                return handler
        np = sys.modules.get("numpy")
        if np is not None and (module == "numpy" or module.startswith(("numpy.", "ml_dtypes"))
                               or isinstance(obj, (np.ndarray, np.generic))):
            if isinstance(obj, np.ndarray) and kind is not np.ndarray:
                raise SaveRefused(_render(path), f"an array of the subclass {_qualname(kind)}",
                                  why="safeload.load rebuilds plain ndarrays only", fix="Save np.asarray(a)")
            handler = self._numpy_handler(obj, path)
            if handler is not None:
                return handler
        if isinstance(obj, type):
            if self.policy.lookup(obj.__module__, obj.__qualname__) is not None:
                return self._type_value
            raise _refusal(obj, path)
        entry = self.policy.lookup(module, kind.__qualname__)
        if entry is not None and entry.lazy is None and entry.value is kind:
            return self._user_handler(kind, path)
        raise _refusal(obj, path)

    def _type_value(self, obj: type, path: Any, depth: int, stack: list[Any]) -> None:
        """A class the policy names, as a value (numpy's ``ndarray`` in its reduce, a defaultdict factory)."""
        self.global_(obj.__module__, obj.__qualname__, path)

    def _user_handler(self, kind: type, path: Any) -> Callable[[Any, Any, int, list[Any]], None]:
        if issubclass(kind, enum.Enum):
            return self._enum
        if issubclass(kind, tuple) and hasattr(kind, "_fields"):
            return self._namedtuple
        if issubclass(kind, (set, frozenset)):
            raise SaveRefused(_render(path), f"{_qualname(kind)} is a set subclass",
                              why="safeload.load can fill only dicts and lists of allowed classes",
                              fix="Save set(obj) instead")
        self.dispatch[kind] = self._plain_user
        return self._plain_user

    def _enum(self, obj: enum.Enum, path: Any, depth: int, stack: list[Any]) -> None:
        kind = type(obj)
        self._call(stack, obj, path, depth, kind.__module__, kind.__qualname__, (obj.value,))

    def _namedtuple(self, obj: tuple[Any, ...], path: Any, depth: int, stack: list[Any]) -> None:
        kind = type(obj)
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(_NEWOBJ)
        stack.append((tuple(obj), (path, "via", ""), depth))
        stack.append(_Action(self.global_, kind.__module__, kind.__qualname__, path))

    def _plain_user(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        kind = type(obj)
        state, slotstate = user_state(obj, path)
        self.user_state[id(obj)] = (state, slotstate)
        self.global_(kind.__module__, kind.__qualname__, path)
        self.write(_EMPTY_TUPLE + _NEWOBJ)
        self.put(obj)
        if state or slotstate:
            stack.append(_BUILD)
            if slotstate:
                stack.append((((state or None), slotstate), (path, "via", None), depth + 1))
            else:
                stack.append((state, (path, "state", None), depth + 1))
        if isinstance(obj, dict):
            self._dict_items(obj, path, depth, stack)
        elif isinstance(obj, list):
            self._items(stack, list(obj), path, depth, _APPEND, _APPENDS)

    # -- torch --

    def _torch_handler(self, obj: Any, path: Any) -> Callable[[Any, Any, int, list[Any]], None] | None:
        import torch

        kind = type(obj)
        if kind is torch.dtype:
            return self._torch_dtype
        if isinstance(obj, torch.Tensor):
            if kind not in (torch.Tensor, torch.nn.Parameter):
                raise SaveRefused(_render(path), f"a tensor of the subclass {_qualname(kind)}",
                                  why="safeload.load rebuilds plain tensors and Parameters only",
                                  fix="Save torch.Tensor(t) or t.as_subclass(torch.Tensor)")
            if not self.allow_tensors:
                raise SaveRefused(_render(path), "a torch tensor in a plain pickle",
                                  why="a plain pickle holds tensors only through torch's own code",
                                  fix="Save in the torch format, or convert with .numpy()")
            return self._tensor
        return None

    def _torch_dtype(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        name = str(obj).rpartition(".")[2]
        self.global_("torch", name, path)

    def _check_tensor(self, t: Any, path: Any) -> str:
        import torch

        problem = None
        if t.layout != torch.strided:
            problem, fix = f"a {t.layout} tensor", "Save t.to_dense()"
        elif t.is_quantized:
            problem, fix = "a quantized tensor", "Save t.dequantize() (and its scale and zero point as data)"
        elif getattr(t, "is_nested", False):
            problem, fix = "a nested tensor", "Save its components with t.unbind()"
        elif t.device.type == "meta":
            problem, fix = "a meta tensor (it has no data)", "Materialize it first (t.to_empty(device='cpu'))"
        elif str(t.dtype).rpartition(".")[2] not in TORCH_DTYPES:
            problem, fix = f"a tensor of dtype {t.dtype}", "Convert it to a dtype safeload reads (t.to(torch.float32))"
        elif torch._utils._get_obj_state(t):
            problem, fix = "a tensor carrying Python attributes", "Save the attributes next to the tensor in a dict"
        elif torch._utils.get_tensor_metadata(t):
            problem, fix = "a tensor carrying extra metadata", "Save t.clone()"
        if problem is not None:
            raise SaveRefused(_render(path), problem, why="safeload.load rebuilds dense, plain tensors only", fix=fix)
        return str(t.dtype).rpartition(".")[2]

    def _tensor(self, t: Any, path: Any, depth: int, stack: list[Any]) -> None:
        import torch

        if type(t) is torch.nn.Parameter:
            self._check_tensor(t, path)
            self.global_("torch._utils", "_rebuild_parameter", path)
            self.write(_MARK)
            data = t.detach()
            self._write_tensor(data, path, memo=False)
            self.write(_NEWTRUE if t.requires_grad else _NEWFALSE)
            self.global_("collections", "OrderedDict", path)
            self.write(_EMPTY_TUPLE + _REDUCE + _TUPLE + _REDUCE)
            self.put(t)
            return
        self._write_tensor(t, path, memo=True)

    def _write_tensor(self, t: Any, path: Any, memo: bool) -> None:
        dtype = self._check_tensor(t, path)
        original = t
        if t.is_conj() or t.is_neg():
            t = t.resolve_conj().resolve_neg()
            self.keepalive.append(t)
        storage = t.untyped_storage()
        record = self.storage_ids.get(storage._cdata)
        if record is None:
            record = _Record(str(len(self.records)), dtype, storage.nbytes(), storage, "torch")
            self.records.append(record)
            self.storage_ids[storage._cdata] = record
        elif record.dtype != dtype:
            raise SaveRefused(_render(path), f"a {dtype} tensor viewing storage that another tensor views as "
                              f"{record.dtype}", why="torch and safeload read one storage as one dtype",
                              fix="Save t.clone() for one of them")
        self.tensors += 1
        self._write_rebuild(record, t.storage_offset(), tuple(t.shape), tuple(t.stride()), bool(t.requires_grad),
                            path)
        if memo:
            self.put(original)

    def _write_rebuild(self, record: _Record, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                       requires_grad: bool, path: Any) -> None:
        dtype = record.dtype
        itemsize = TORCH_DTYPES[dtype][0]
        v3 = dtype in _V3_DTYPES
        if not v3 and record.nbytes % itemsize:
            raise SaveRefused(_render(path), f"a storage of {record.nbytes} bytes that holds no whole {dtype} items",
                              why="the record size must be a whole number of elements", fix="Save t.clone()")
        self.global_("torch._utils", "_rebuild_tensor_v3" if v3 else "_rebuild_tensor_v2", path)
        self.write(_MARK + _MARK)
        self.const("storage")
        if v3:
            self.global_("torch.storage", "UntypedStorage", path)
        else:
            self.global_("torch", _STORAGE_CLASS[dtype], path)
        self.write(_str_op(record.key))
        self.const("cpu")
        self.write(_int_op(record.nbytes if v3 else record.nbytes // itemsize) + _TUPLE + _BINPERSID
                   + _int_op(offset) + _int_tuple(size) + _int_tuple(stride)
                   + (_NEWTRUE if requires_grad else _NEWFALSE))
        self.global_("collections", "OrderedDict", path)
        self.write(_EMPTY_TUPLE + _REDUCE)
        if v3:
            self.global_("torch", dtype, path)
        self.write(_TUPLE + _REDUCE)

    # -- numpy --

    def _numpy_handler(self, obj: Any, path: Any) -> Callable[[Any, Any, int, list[Any]], None] | None:
        import numpy as np

        if type(obj) is np.ndarray:
            return self._ndarray
        if isinstance(obj, np.dtype):
            return self._np_reduce
        if isinstance(obj, np.generic):
            if obj.dtype.hasobject:
                return None
            return self._np_reduce
        return None

    def _np_reduce(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        """numpy's own reduce for scalars, dtypes and arrays torch cannot hold: the forms safeload's rebuilders
        read (``scalar``, ``dtype`` + state, ``_reconstruct`` + state)."""
        func, args, *rest = obj.__reduce__()
        state = rest[0] if rest else None
        module, name = _function_name(func)
        if state is not None:
            stack.append(_BUILD)
            stack.append((state, (path, "via", ""), depth + 1))
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(_REDUCE)
        stack.append((tuple(args), (path, "via", ""), depth + 1))
        stack.append(_Action(self.global_, module, name, path))

    def _ndarray(self, a: Any, path: Any, depth: int, stack: list[Any]) -> None:
        dtype = numpy_torch_dtype(a.dtype) if self.arrays == "storage" else None
        if dtype is None and a.dtype.type.__module__.startswith("ml_dtypes"):
            raise SaveRefused(_render(path), f"a {a.dtype} array in a plain pickle",
                              why="numpy pickles it as an ml_dtypes class, which safe loaders refuse",
                              fix="Write it in the torch format (the default) or as safetensors")
        if dtype is None:
            if a.dtype.hasobject and a.dtype.kind != "O":
                raise SaveRefused(_render(path), "a structured array holding Python objects",
                                  why="safeload.load does not rebuild such arrays",
                                  fix="Save the fields as separate arrays")
            self._np_reduce(a, path, depth, stack)
            return
        import numpy as np

        itemsize = a.dtype.itemsize
        if not a.dtype.isnative:
            a_native = a.astype(a.dtype.newbyteorder("="))
            buf, strides = a_native, _c_strides(a.shape)
        elif a.flags.c_contiguous:
            buf, strides = a, _c_strides(a.shape)
        elif a.flags.f_contiguous:
            buf, strides = a.T, _f_strides(a.shape)
        else:
            buf, strides = a.copy(order="C"), _c_strides(a.shape)
        record = _Record(str(len(self.records)), dtype, a.size * itemsize, buf, "numpy")
        self.records.append(record)
        self.np_tensors += 1
        self._write_rebuild(record, 0, tuple(a.shape), strides, False, path)
        self.put(a)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


def _f_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for n in shape:
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(strides)


def _int_tuple(values: tuple[int, ...]) -> bytes:
    body = b"".join(_int_op(v) for v in values)
    if len(values) <= 3:
        return body + _TUPLE_N[len(values)]
    return _MARK + body + _TUPLE


def _memo_put(index: int) -> bytes:
    return _BINPUT + bytes((index,)) if index < 0x100 else _LONG_BINPUT + _pack_I(index)


def _memo_get(index: int) -> bytes:
    return _BINGET + bytes((index,)) if index < 0x100 else _LONG_BINGET + _pack_I(index)


def _function_name(func: Any) -> tuple[str, str]:
    return func.__module__, getattr(func, "__qualname__", func.__name__)


def numpy_torch_dtype(dt: Any) -> str | None:
    """The torch dtype name a numpy dtype maps to (converting byte order), or None if torch has none."""
    if dt.names is not None or dt.subdtype is not None:
        return None
    if dt.kind in "biufc":
        name = dt.name if dt.kind != "b" else "bool"
    elif dt.type.__module__.startswith("ml_dtypes"):
        name = dt.name
    else:
        return None
    return name if name in TORCH_DTYPES and name != "complex32" else None


def user_state(obj: Any, path: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(``__dict__`` state, slot state) of an allowed plain class, checked as safeload.load's BUILD checks it."""
    kind = type(obj)
    state = getattr(obj, "__dict__", None)
    slots: dict[str, Any] = {}
    for klass in kind.__mro__:
        names = klass.__dict__.get("__slots__", ())
        for name in [names] if isinstance(names, str) else names:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                slots[name] = object.__getattribute__(obj, name)
            except AttributeError:
                pass
    for part in (state, slots):
        for key in part or ():
            if type(key) is not str or (key.startswith("__") and key.endswith("__")):
                raise SaveRefused(_render(path), f"{_qualname(kind)} has the attribute {key!r}",
                                  why="safeload.load sets only plain attribute names",
                                  fix="Rename or drop the attribute")
    if dataclasses.is_dataclass(kind) and state:
        fields = {f.name for f in dataclasses.fields(kind)}
        extra = sorted(set(state) - fields)
        if extra:
            raise SaveRefused(_render(path), f"dataclass {_qualname(kind)} has attributes {extra} that are not fields",
                              why="safeload.load sets only a dataclass's declared fields",
                              fix="Declare them as fields or drop them")
    return (dict(state) if state else None), (slots or None)


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{getattr(obj, '__module__', '?')}.{name}"


_HINTS = (
    ("torch.nn.modules.module.Module", "a whole torch module", "Save model.state_dict() and rebuild the model in code"),
    ("torch.optim.optimizer.Optimizer", "a whole optimizer", "Save optimizer.state_dict()"),
    ("torch.optim.lr_scheduler.LRScheduler", "a whole LR scheduler", "Save scheduler.state_dict()"),
    ("torch.optim.lr_scheduler._LRScheduler", "a whole LR scheduler", "Save scheduler.state_dict()"),
    ("torch.cuda.amp.grad_scaler.GradScaler", "a GradScaler", "Save scaler.state_dict()"),
    ("torch.amp.grad_scaler.GradScaler", "a GradScaler", "Save scaler.state_dict()"),
    ("torch.Size", "a torch.Size", "Save tuple(size)"),
    ("torch.device", "a torch.device", "Save str(device)"),
    ("torch._C.Generator", "a torch.Generator", "Save generator.get_state()"),
    ("io.IOBase", "an open file or stream", "Save its path or its contents"),
    ("_io._IOBase", "an open file or stream", "Save its path or its contents"),
)


def _refusal(obj: Any, path: Any) -> SaveRefused:
    kind = type(obj)
    where = _render(path)
    mro = {_qualname(c) for c in kind.__mro__}
    for base, what, fix in _HINTS:
        if base in mro:
            return SaveRefused(where, f"{_qualname(kind)} ({what}) is not loadable safely",
                               why="safeload.load, like torch.load(weights_only=True), refuses objects whose class "
                                   "would have to run code", fix=fix)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.LambdaType)) or (
            callable(obj) and not isinstance(obj, type) and kind.__module__ == "functools"):
        name = getattr(obj, "__qualname__", kind.__name__)
        return SaveRefused(where, f"the function {name} is not loadable safely",
                           why="a function is code, and safe loaders never load code",
                           fix="Save its name, or the data it computes, instead")
    if isinstance(obj, type):
        return SaveRefused(where, f"the class {_qualname(obj)} is not loadable safely",
                           why="a class is code; safe loaders never resolve one from a file",
                           fix="Save its name as a string")
    if isinstance(obj, types.ModuleType):
        return SaveRefused(where, f"the module {obj.__name__} is not loadable safely",
                           why="a module is code", fix="Save its name as a string")
    if isinstance(obj, (types.GeneratorType, types.CoroutineType)):
        return SaveRefused(where, f"a {kind.__name__} is not loadable safely", why="it is running code",
                           fix="Save list(...) of what it yields")
    qualname = _qualname(kind)
    return SaveRefused(where, f"{qualname} is not loadable safely",
                       why=f"safeload.load refuses {qualname}: it is outside the policy",
                       fix=f"Save its data (a dict, a state_dict()) instead; or, if it is a plain data class you "
                           f"trust, pass allow=[{qualname!r}] to both save and load")


# ---- the zip writer ---------------------------------------------------------------------------------------------

class _Member:
    __slots__ = ("name", "nbytes", "source", "offset", "extra", "zip64", "data_offset")

    def __init__(self, name: str, nbytes: int, source: Any) -> None:
        self.name = name
        self.nbytes = nbytes
        self.source = source  # bytes, or a _Record


class ZipPlan:
    """The layout of a torch-style zip: every offset is known before a byte is written, so the archive streams
    into any sink (a file, a pipe, a zstd frame) with no seeking. Records are stored, start on 64-byte boundaries
    (torch pads with an ``FB`` extra field) and carry a data descriptor after their bytes, as torch's writer does.
    """

    def __init__(self, members: list[_Member]) -> None:
        self.members = members
        pos = 0
        for m in members:
            name = m.name.encode("ascii")
            m.offset = pos
            m.zip64 = m.nbytes >= _ZIP64_LIMIT or pos >= _ZIP64_LIMIT
            z64 = struct.pack("<HHQQ", 1, 16, 0, 0) if m.zip64 else b""
            header = 30 + len(name) + len(z64)
            pad = (-(pos + header)) % _ALIGN
            if 0 < pad < 4:
                pad += _ALIGN
            fb = (b"FB" + _pack_H(pad - 4) + b"Z" * (pad - 4)) if pad else b""
            m.extra = z64 + fb
            m.data_offset = pos + header + pad
            pos = m.data_offset + m.nbytes + (24 if m.zip64 else 16)
        self.cd_offset = pos
        self.central = [self._central(m) for m in members]
        self.cd_size = sum(len(c) for c in self.central)
        end = self.cd_offset + self.cd_size
        self.zip64 = (any(m.zip64 for m in members) or len(members) >= 0xFFFF or end >= _ZIP64_LIMIT)
        self.total = end + (56 + 20 if self.zip64 else 0) + 22

    @staticmethod
    def _central(m: _Member) -> bytearray:
        # the CRC is patched in once known; sizes and offsets go to the zip64 field when they do not fit
        name = m.name.encode("ascii")
        if m.zip64:
            extra = struct.pack("<HHQQQ", 1, 24, m.nbytes, m.nbytes, m.offset)
            size = offset = 0xFFFFFFFF
        else:
            extra, size, offset = b"", m.nbytes, m.offset
        need = 45 if m.zip64 else 20
        return bytearray(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", need, need, 0x08, 0, 0, 0x21, 0, size,
                                     size, len(name), len(extra), 0, 0, 0, 0, offset) + name + extra)

    def write(self, write: Callable[[Any], Any]) -> None:
        for m, central in zip(self.members, self.central):
            name = m.name.encode("ascii")
            need = 45 if m.zip64 else 20
            size_field = 0xFFFFFFFF if m.zip64 else 0
            write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", need, 0x08, 0, 0, 0x21, 0, size_field, size_field,
                              len(name), len(m.extra)) + name + m.extra)
            crc = 0
            if isinstance(m.source, (bytes, bytearray)):
                crc = zlib.crc32(m.source)
                write(m.source)
            else:
                view = m.source.buffer()
                if len(view) != m.nbytes:
                    raise RuntimeError(f"storage {m.name} changed size while it was saved")
                for start in range(0, len(view), _CHUNK):
                    chunk = view[start:start + _CHUNK]
                    crc = zlib.crc32(chunk, crc)
                    write(chunk)
                del view
            if m.zip64:
                write(struct.pack("<4sIQQ", b"PK\x07\x08", crc, m.nbytes, m.nbytes))
            else:
                write(struct.pack("<4sIII", b"PK\x07\x08", crc, m.nbytes, m.nbytes))
            struct.pack_into("<I", central, 16, crc)
        for central in self.central:
            write(bytes(central))
        count = len(self.members)
        end = self.cd_offset + self.cd_size
        if self.zip64:
            write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, self.cd_size,
                              self.cd_offset))
            write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1))
        write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                          min(self.cd_size, 0xFFFFFFFF), min(self.cd_offset, 0xFFFFFFFF), 0))


def _torch_members(pkl: bytes, records: list[_Record]) -> list[_Member]:
    prefix = "archive/"
    sid = str(int.from_bytes(hashlib.blake2b(pkl, digest_size=16).digest(), "big")).rjust(40, "0")[:40]
    members = [_Member(prefix + "data.pkl", len(pkl), pkl),
               _Member(prefix + ".format_version", 1, b"1"),
               _Member(prefix + ".storage_alignment", 2, b"64"),
               _Member(prefix + "byteorder", len(sys.byteorder), sys.byteorder.encode("ascii"))]
    members += [_Member(f"{prefix}data/{r.key}", r.nbytes, r) for r in records]
    members += [_Member(prefix + "version", 2, b"3\n"),
                _Member(prefix + ".data/serialization_id", 40, sid.encode("ascii"))]
    return members


# ---- output: atomic file, or the caller's stream --------------------------------------------------------------

def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _is_path(f: Any) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def _emit(sink: Any, size: int, body: Callable[[Callable[[Any], Any]], None], compress: str | None) -> None:
    if compress is None:
        body(sink.write)
        return
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3, threads=-1, write_content_size=True, write_checksum=True)
    with cctx.stream_writer(sink, size=size, closefd=False) as writer:
        body(writer.write)


def write_output(f: Any, size: int, body: Callable[[Callable[[Any], Any]], None], compress: str | None) -> None:
    """Run ``body(write)`` into ``f``: a path is written atomically (temp file, fsync, rename); a stream directly."""
    if not _is_path(f):
        if not hasattr(f, "write"):
            raise TypeError(f"safeload.save needs a path or a binary file object, not {type(f).__name__}")
        _emit(f, size, body, compress)
        return
    path = os.fsdecode(os.fspath(f))
    if os.path.islink(path):
        path = os.path.realpath(path)  # write through the link, as torch.save does, and keep the link
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            _emit(fh, size, body, compress)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- plain pickles ------------------------------------------------------------------------------------------------

def _plain_pickle(obj: Any, protocol: int, pickle_module: Any, walker: _Walker) -> bytes:
    """``obj`` as a standard pickle at ``protocol``. Classes the caller allowed are written as NEWOBJ + their
    state, never through their own ``__reduce__``, so the bytes hold exactly what the walk checked."""
    forced = walker.user_state
    newobj = copyreg.__newobj__  # type: ignore[attr-defined]

    class Pickler(pickle_module.Pickler):  # type: ignore[misc, name-defined]
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


# ---- the entry point ------------------------------------------------------------------------------------------------

def save(obj: Any, f: Any, pickle_protocol: int = 4, *, compress: str | None = None, policy: Policy | None = None,
         allow: Iterable[Any] = (), pickle_module: Any = None) -> None:
    """Write ``obj`` so that ``safeload.load`` and ``torch.load(weights_only=True)`` can open it without code.

    ``f`` is a path (written atomically) or a binary stream. Anything ``safeload.load`` would refuse under the
    same ``policy``/``allow`` raises :class:`SaveRefused` (a ``SafeLoadError``) naming where it is inside ``obj``,
    and nothing is written. ``pickle_protocol`` (0 to 5) pins the protocol of a plain pickle; torch-format files
    always use protocol-2 opcodes in ``data.pkl``, which every torch reads. ``compress="zstd"`` wraps the file in
    zstd (safeload reads it; torch does not). ``pickle_module`` may be ``pickle``, ``pickle5`` or ``safeload``.
    """
    _save(obj, f, pickle_protocol, compress=compress, policy=policy, allow=allow, pickle_module=pickle_module)


def _save(obj: Any, f: Any, pickle_protocol: int = 4, *, compress: str | None = None, policy: Policy | None = None,
          allow: Iterable[Any] = (), pickle_module: Any = None, fmt: str = "auto") -> str:
    """:func:`save` with ``fmt``: "auto", "torch" (zip even without tensors) or "pickle" (arrays as numpy pickles).
    Returns the format written."""
    protocol = check_protocol(pickle_protocol)
    module = pickle_module_for(protocol, pickle_module)
    if compress is False:
        compress = None
    if compress not in (None, "zstd"):
        raise ValueError(f"compress must be None or 'zstd', not {compress!r}")
    if fmt not in ("auto", "torch", "pickle"):
        raise ValueError(f"format must be 'auto', 'torch' or 'pickle', not {fmt!r}")
    if compress == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            raise ValueError("compress='zstd' needs the zstandard package: pip install zstandard") from None
    pol = effective_policy(policy, allow)
    walker = _Walker(pol, arrays="pickle" if fmt == "pickle" else "storage", allow_tensors=fmt != "pickle")
    walker.walk(obj)
    if fmt == "torch" or (fmt == "auto" and walker.records):
        if protocol < 2:
            raise ValueError(f"pickle_protocol={protocol} cannot hold tensors: torch's zip format keeps its pickle at "
                             "protocol 2, which every torch reads. Pass pickle_protocol=2 or higher")
        pkl = walker.getvalue()
        plan = ZipPlan(_torch_members(pkl, walker.records))
        write_output(f, plan.total, plan.write, compress)
        return "torch"
    data = _plain_pickle(obj, protocol, module, walker)
    write_output(f, len(data), lambda write: write(data), compress)
    return "pickle"
