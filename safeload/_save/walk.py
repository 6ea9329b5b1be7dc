"""The one walk of ``safeload.save``: check every object against what ``safeload.load`` accepts under the same
policy and, in the same pass, write the protocol-2 pickle torch's zip format keeps as ``data.pkl``.

The walk is iterative (no recursion limit) and keeps an id-memo, so shared and cyclic references are written once
and read back shared. Torch tensors and numpy arrays become ``torch._utils._rebuild_tensor_v2`` / ``_v3`` calls over
persistent storage ids (:mod:`.tensors`), exactly the form torch writes."""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import sys
import types
from argparse import Namespace
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable

from .._hints import Any
from .._rebuild.torch import TORCH_DTYPES
from ..errors import LimitExceededError
from ..policy import Policy
from .opcodes import (APPEND, APPENDS, BINFLOAT, BINPERSID, BUILD, EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, GLOBAL, MARK,
                      NEWFALSE, NEWOBJ, NEWTRUE, NONE, POP, POP_MARK, PROTO2, REDUCE, SETITEM, SETITEMS, STOP, TUPLE,
                      TUPLE1, TUPLE2, TUPLE_N, int_op, int_tuple, memo_get, memo_put, pack_d, str_op)
from .refusal import ROOT, SaveRefused, describe, qualname_of, refusal_for, render, user_state
from .tensors import STORAGE_CLASS, V3_DTYPES, Record, c_strides, check_tensor, f_strides, numpy_torch_dtype

_BATCH = 1000
_DEFAULTDICT_FACTORIES = {list: "list", dict: "dict", set: "set", frozenset: "frozenset", tuple: "tuple",
                          int: "int", float: "float", str: "str", bytes: "bytes", bool: "bool"}


class _Action:
    """A deferred step in the walk (finish a tuple, a REDUCE, ...)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., None], *args: Any) -> None:
        self.fn = fn
        self.args = args


class Walker:
    """Check an object graph against a policy and write it as a protocol-2 pickle with torch storage ids.

    ``arrays`` says where numpy arrays go: "storage" (tensor records of a torch zip) or "pickle" (numpy's own
    pickle form, for plain-pickle output).
    """

    def __init__(self, policy: Policy, arrays: str = "storage", allow_tensors: bool = True) -> None:
        self.policy = policy
        self.limits = policy.limits
        self.arrays = arrays
        self.allow_tensors = allow_tensors
        self.out: list[bytes] = [PROTO2]
        self.memo: dict[int, tuple[int, Any]] = {}
        self.global_memo: dict[str, int] = {}
        self.const_memo: dict[str, int] = {}
        self.records: list[Record] = []
        self.storage_ids: dict[int, Record] = {}
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
        self.out.append(memo_put(index))

    def _next_index(self) -> int:
        return len(self.memo) + len(self.global_memo) + len(self.const_memo)

    def global_(self, module: str, name: str, path: Any) -> None:
        qualname = f"{module}.{name}"
        index = self.global_memo.get(qualname)
        if index is not None:
            self.out.append(memo_get(index))
            return
        if qualname not in self.checked_globals:
            if self.policy.lookup(module, name) is None:
                raise SaveRefused(render(path), f"{qualname} is outside the policy, so safeload.load would refuse it",
                                  why="the file would name a global the loader's policy does not allow",
                                  fix=f"Pass the same allow=[...] to save and load if {qualname} is a plain data class "
                                      "you trust, or save its data instead")
            self.checked_globals.add(qualname)
        index = self._next_index()
        self.global_memo[qualname] = index
        self.out.append(GLOBAL + f"{module}\n{name}\n".encode("utf-8") + memo_put(index))

    def const(self, text: str) -> None:
        index = self.const_memo.get(text)
        if index is not None:
            self.out.append(memo_get(index))
            return
        index = self._next_index()
        self.const_memo[text] = index
        self.out.append(str_op(text) + memo_put(index))

    def getvalue(self) -> bytes:
        return b"".join(self.out) + STOP

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
                out.append(NONE)
            elif t is bool:
                out.append(NEWTRUE if obj else NEWFALSE)
            elif t is int:
                out.append(int_op(obj))
            elif t is float:
                out.append(BINFLOAT + pack_d(obj))
            else:
                m = memo.get(id(obj))
                if m is not None:
                    out.append(memo_get(m[0]))
                    continue
                if t is str:
                    out.append(str_op(obj))
                    self.put(obj)
                    continue
                if depth > max_depth:
                    raise LimitExceededError(
                        "max_depth", depth, max_depth, what=f"{render(path)} is nested {depth} levels deep",
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
            stack.append(MARK)

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
        self.write(EMPTY_LIST)
        self.put(obj)
        self._items(stack, list(obj), path, depth, APPEND, APPENDS)

    def _dict_items(self, obj: dict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        flat: list[Any] = []
        for k, v in obj.items():
            flat.append(k)
            flat.append(v)
        self._items(stack, flat, path, depth, SETITEM, SETITEMS, key_paths=True)

    def _dict(self, obj: dict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        self.write(EMPTY_DICT)
        self.put(obj)
        self._dict_items(obj, path, depth, stack)

    def _tuple(self, obj: tuple[Any, ...], path: Any, depth: int, stack: list[Any]) -> None:
        n = len(obj)
        if n == 0:
            self.write(EMPTY_TUPLE)
            return
        stack.append(_Action(self._finish_tuple, obj, n))
        for i in range(n - 1, -1, -1):
            stack.append((obj[i], (path, "item", i), depth + 1))
        if n > 3:
            stack.append(MARK)

    def _finish_tuple(self, obj: tuple[Any, ...], n: int) -> None:
        m = self.memo.get(id(obj))
        if m is not None:  # the tuple was reached again through its own items and written there: drop this copy
            self.write((POP_MARK if n > 3 else POP * n) + memo_get(m[0]))
            return
        self.write(TUPLE_N[n] if n <= 3 else TUPLE)
        self.put(obj)

    def _finish_reduce(self, obj: Any) -> None:
        m = self.memo.get(id(obj))
        if m is not None:
            self.write(POP + memo_get(m[0]))
            return
        self.put(obj)

    def _call(self, stack: list[Any], obj: Any, path: Any, depth: int, module: str, name: str, args: tuple[Any, ...],
              arg_paths: str = "arg") -> None:
        """``module.name(*args)`` by REDUCE, then memoized (or dropped for the copy reached through a cycle)."""
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(REDUCE)
        stack.append((args, (path, "via", ""), depth))
        stack.append(_Action(self.global_, module, name, path))

    def _set(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        name = "set" if type(obj) is set else "frozenset"
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(TUPLE1 + REDUCE)
        members = list(obj)
        d = depth + 1
        if len(members) == 1:
            stack.append(APPEND)
            stack.append((members[0], (path, "member", None), d))
        elif members:
            for start in reversed(range(0, len(members), _BATCH)):
                stack.append(APPENDS)
                for item in reversed(members[start:start + _BATCH]):
                    stack.append((item, (path, "member", None), d))
                stack.append(MARK)
        stack.append(EMPTY_LIST)
        stack.append(_Action(self.global_, "builtins", name, path))

    def _bytes(self, obj: bytes | bytearray, path: Any, depth: int, stack: list[Any]) -> None:
        # protocol 2 has no bytes opcodes: _codecs.encode(text, "latin1") and bytearray(text, "latin-1"), as pickle
        # writes them and both loaders read them
        if type(obj) is bytes:
            self.global_("_codecs", "encode", path)
        else:
            self.global_("builtins", "bytearray", path)
        self.write(str_op(obj.decode("latin-1")))
        self.const("latin1" if type(obj) is bytes else "latin-1")
        self.write(TUPLE2 + REDUCE)
        self.put(obj)

    def _complex(self, obj: complex, path: Any, depth: int, stack: list[Any]) -> None:
        self.global_("builtins", "complex", path)
        self.write(BINFLOAT + pack_d(obj.real) + BINFLOAT + pack_d(obj.imag) + TUPLE2 + REDUCE)
        self.put(obj)

    def _ordereddict(self, obj: OrderedDict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        self.global_("collections", "OrderedDict", path)
        self.write(EMPTY_TUPLE + REDUCE)
        self.put(obj)
        attrs = getattr(obj, "__dict__", None)
        if attrs:  # state_dict()'s _metadata
            self._check_attrs(attrs, path)
            stack.append(BUILD)
            stack.append((attrs, (path, "state", None), depth + 1))
        self._dict_items(obj, path, depth, stack)

    def _defaultdict(self, obj: defaultdict[Any, Any], path: Any, depth: int, stack: list[Any]) -> None:
        factory = obj.default_factory
        self.global_("collections", "defaultdict", path)
        if factory is None:
            self.write(NONE)
        elif factory in _DEFAULTDICT_FACTORIES:
            self.global_("builtins", _DEFAULTDICT_FACTORIES[factory], path)
        elif factory is OrderedDict or factory is Counter:
            self.global_("collections", factory.__name__, path)
        else:
            raise SaveRefused(render(path), f"a defaultdict whose factory is {describe(factory)}",
                              why="safeload.load accepts only built-in container and number types as factories, "
                                  "because the factory is called on every missing key",
                              fix="Convert it with dict(d), or use a built-in type as the factory")
        self.write(TUPLE1 + REDUCE)
        self.put(obj)
        self._dict_items(obj, path, depth, stack)

    def _counter(self, obj: Counter[Any], path: Any, depth: int, stack: list[Any]) -> None:
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(TUPLE1 + REDUCE)
        stack.append((dict(obj), (path, "via", ""), depth))
        stack.append(_Action(self.global_, "collections", "Counter", path))

    def _namespace(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        kind = type(obj)
        self.global_(kind.__module__, kind.__qualname__, path)
        self.write(EMPTY_TUPLE + NEWOBJ)
        self.put(obj)
        attrs = vars(obj)
        if attrs:
            self._check_attrs(attrs, path)
            stack.append(BUILD)
            stack.append((attrs, (path, "state", None), depth + 1))

    def _check_attrs(self, attrs: dict[Any, Any], path: Any) -> None:
        for key in attrs:
            if type(key) is not str or (key.startswith("__") and key.endswith("__")):
                raise SaveRefused(render(path), f"has the attribute {key!r}",
                                  why="safeload.load sets only plain attribute names, never special (dunder) names",
                                  fix="Rename or drop the attribute")

    def _reduce_builtin(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        """datetime, Decimal, Fraction, range, slice: their own reduce, which the loader's rebuilders mirror."""
        kind = type(obj)
        if kind is datetime.datetime or kind is datetime.time:
            tz = obj.tzinfo
            if tz is not None and type(tz) is not datetime.timezone:
                raise SaveRefused(render(path), f"a {kind.__name__} whose tzinfo is {qualname_of(type(tz))}",
                                  why="safeload.load rebuilds only fixed UTC offsets (datetime.timezone)",
                                  fix="Convert it with .astimezone(datetime.timezone.utc), or save the zone's name")
        if kind is fractions.Fraction and max(obj.numerator.bit_length(), obj.denominator.bit_length()) > 1 << 16:
            raise SaveRefused(render(path), "a Fraction with terms over 65536 bits",
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
                raise SaveRefused(render(path), f"an array of the subclass {qualname_of(kind)}",
                                  why="safeload.load rebuilds plain ndarrays only", fix="Save np.asarray(a)")
            handler = self._numpy_handler(obj, path)
            if handler is not None:
                return handler
        if isinstance(obj, type):
            if self.policy.lookup(obj.__module__, obj.__qualname__) is not None:
                return self._type_value
            raise refusal_for(obj, path)
        entry = self.policy.lookup(module, kind.__qualname__)
        if entry is not None and entry.lazy is None and entry.value is kind:
            return self._user_handler(kind, path)
        raise refusal_for(obj, path)

    def _type_value(self, obj: type, path: Any, depth: int, stack: list[Any]) -> None:
        """A class the policy names, as a value (numpy's ``ndarray`` in its reduce, a defaultdict factory)."""
        self.global_(obj.__module__, obj.__qualname__, path)

    def _user_handler(self, kind: type, path: Any) -> Callable[[Any, Any, int, list[Any]], None]:
        if issubclass(kind, enum.Enum):
            return self._enum
        if issubclass(kind, tuple) and hasattr(kind, "_fields"):
            return self._namedtuple
        if issubclass(kind, (set, frozenset)):
            raise SaveRefused(render(path), f"{qualname_of(kind)} is a set subclass",
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
        stack.append(NEWOBJ)
        stack.append((tuple(obj), (path, "via", ""), depth))
        stack.append(_Action(self.global_, kind.__module__, kind.__qualname__, path))

    def _plain_user(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        kind = type(obj)
        state, slotstate = user_state(obj, path)
        self.user_state[id(obj)] = (state, slotstate)
        self.global_(kind.__module__, kind.__qualname__, path)
        self.write(EMPTY_TUPLE + NEWOBJ)
        self.put(obj)
        if state or slotstate:
            stack.append(BUILD)
            if slotstate:
                stack.append((((state or None), slotstate), (path, "via", None), depth + 1))
            else:
                stack.append((state, (path, "state", None), depth + 1))
        if isinstance(obj, dict):
            self._dict_items(obj, path, depth, stack)
        elif isinstance(obj, list):
            self._items(stack, list(obj), path, depth, APPEND, APPENDS)

    # -- torch --

    def _torch_handler(self, obj: Any, path: Any) -> Callable[[Any, Any, int, list[Any]], None] | None:
        import torch

        kind = type(obj)
        if kind is torch.dtype:
            return self._torch_dtype
        if isinstance(obj, torch.Tensor):
            if kind not in (torch.Tensor, torch.nn.Parameter):
                raise SaveRefused(render(path), f"a tensor of the subclass {qualname_of(kind)}",
                                  why="safeload.load rebuilds plain tensors and Parameters only",
                                  fix="Save torch.Tensor(t) or t.as_subclass(torch.Tensor)")
            if not self.allow_tensors:
                raise SaveRefused(render(path), "a torch tensor in a plain pickle",
                                  why="a plain pickle holds tensors only through torch's own code",
                                  fix="Save in the torch format, or convert with .numpy()")
            return self._tensor
        return None

    def _torch_dtype(self, obj: Any, path: Any, depth: int, stack: list[Any]) -> None:
        name = str(obj).rpartition(".")[2]
        self.global_("torch", name, path)

    def _tensor(self, t: Any, path: Any, depth: int, stack: list[Any]) -> None:
        import torch

        if type(t) is torch.nn.Parameter:
            check_tensor(t, path)
            self.global_("torch._utils", "_rebuild_parameter", path)
            self.write(MARK)
            data = t.detach()
            self._write_tensor(data, path, memo=False)
            self.write(NEWTRUE if t.requires_grad else NEWFALSE)
            self.global_("collections", "OrderedDict", path)
            self.write(EMPTY_TUPLE + REDUCE + TUPLE + REDUCE)
            self.put(t)
            return
        self._write_tensor(t, path, memo=True)

    def _write_tensor(self, t: Any, path: Any, memo: bool) -> None:
        dtype = check_tensor(t, path)
        original = t
        if t.is_conj() or t.is_neg():
            t = t.resolve_conj().resolve_neg()
            self.keepalive.append(t)
        storage = t.untyped_storage()
        record = self.storage_ids.get(storage._cdata)
        if record is None:
            record = Record(str(len(self.records)), dtype, storage.nbytes(), storage, "torch")
            self.records.append(record)
            self.storage_ids[storage._cdata] = record
        elif record.dtype != dtype:
            raise SaveRefused(render(path), f"a {dtype} tensor viewing storage that another tensor views as "
                              f"{record.dtype}", why="torch and safeload read one storage as one dtype",
                              fix="Save t.clone() for one of them")
        self.tensors += 1
        self._write_rebuild(record, t.storage_offset(), tuple(t.shape), tuple(t.stride()), bool(t.requires_grad),
                            path)
        if memo:
            self.put(original)

    def _write_rebuild(self, record: Record, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                       requires_grad: bool, path: Any) -> None:
        dtype = record.dtype
        itemsize = TORCH_DTYPES[dtype][0]
        v3 = dtype in V3_DTYPES
        if not v3 and record.nbytes % itemsize:
            raise SaveRefused(render(path), f"a storage of {record.nbytes} bytes that holds no whole {dtype} items",
                              why="the record size must be a whole number of elements", fix="Save t.clone()")
        self.global_("torch._utils", "_rebuild_tensor_v3" if v3 else "_rebuild_tensor_v2", path)
        self.write(MARK + MARK)
        self.const("storage")
        if v3:
            self.global_("torch.storage", "UntypedStorage", path)
        else:
            self.global_("torch", STORAGE_CLASS[dtype], path)
        self.write(str_op(record.key))
        self.const("cpu")
        self.write(int_op(record.nbytes if v3 else record.nbytes // itemsize) + TUPLE + BINPERSID
                   + int_op(offset) + int_tuple(size) + int_tuple(stride)
                   + (NEWTRUE if requires_grad else NEWFALSE))
        self.global_("collections", "OrderedDict", path)
        self.write(EMPTY_TUPLE + REDUCE)
        if v3:
            self.global_("torch", dtype, path)
        self.write(TUPLE + REDUCE)

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
            stack.append(BUILD)
            stack.append((state, (path, "via", ""), depth + 1))
        stack.append(_Action(self._finish_reduce, obj))
        stack.append(REDUCE)
        stack.append((tuple(args), (path, "via", ""), depth + 1))
        stack.append(_Action(self.global_, module, name, path))

    def _ndarray(self, a: Any, path: Any, depth: int, stack: list[Any]) -> None:
        dtype = numpy_torch_dtype(a.dtype) if self.arrays == "storage" else None
        if dtype is None and a.dtype.type.__module__.startswith("ml_dtypes"):
            raise SaveRefused(render(path), f"a {a.dtype} array in a plain pickle",
                              why="numpy pickles it as an ml_dtypes class, which safe loaders refuse",
                              fix="Write it in the torch format (the default) or as safetensors")
        if dtype is None:
            if a.dtype.hasobject and a.dtype.kind != "O":
                raise SaveRefused(render(path), "a structured array holding Python objects",
                                  why="safeload.load does not rebuild such arrays",
                                  fix="Save the fields as separate arrays")
            self._np_reduce(a, path, depth, stack)
            return
        import numpy as np

        itemsize = a.dtype.itemsize
        if not a.dtype.isnative:
            a_native = a.astype(a.dtype.newbyteorder("="))
            buf, strides = a_native, c_strides(a.shape)
        elif a.flags.c_contiguous:
            buf, strides = a, c_strides(a.shape)
        elif a.flags.f_contiguous:
            buf, strides = a.T, f_strides(a.shape)
        else:
            buf, strides = a.copy(order="C"), c_strides(a.shape)
        record = Record(str(len(self.records)), dtype, a.size * itemsize, buf, "numpy")
        self.records.append(record)
        self.np_tensors += 1
        self._write_rebuild(record, 0, tuple(a.shape), strides, False, path)
        self.put(a)


def _function_name(func: Any) -> tuple[str, str]:
    return func.__module__, getattr(func, "__qualname__", func.__name__)
