"""The restricted pickle VM: one bounded pass over a pickle stream, shared by load and scan.

The dispatch table is built from :data:`safeload._opcodes.OPCODES`: every opcode whose action is not
``forbidden`` has a handler registered next to its definition, and a byte without a handler is refused by
construction. The run loop handles the most frequent plain-data opcodes inline (their argument widths are the
table's; a test checks them against ``pickletools``) and hands every other opcode to its handler.

What the VM will and will not do:

* GLOBAL, STACK_GLOBAL, INST and EXT look up the exact ``module.name`` in the policy. Nothing is imported and no
  dotted name is walked. A name outside the policy is refused, or becomes an inert :class:`Stub`.
* REDUCE, NEWOBJ, NEWOBJ_EX, OBJ and INST call only safeload's own rebuilders (``Entry.call``/``Entry.newobj``),
  which check their arguments. Calling anything else (a value, a container, a string) is refused.
* BUILD applies state only to safeload's pending objects (arrays, dtypes), stubs, and types whose policy entry
  has a ``build`` rule (plain data holders). APPEND and SETITEM act only on lists, dicts and stubs.
* Out-of-band buffers are refused. Memo indexes, MARK nesting, hash collisions, opcode count and allocations are
  bounded by the policy's limits; every length field is checked against the bytes that remain.

In scan mode (``observer`` set) a refused global is reported to the observer and replaced by a Stub, so the
whole stream is walked with exactly the code that load runs.
"""

from __future__ import annotations

import copyreg
import mmap
import re
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable

from ._hints import TYPE_CHECKING, Any, NoReturn
from . import _budget
from ._opcodes import _MAX_LINE, OPCODES, READERS, by_code, opcode_name
from ._stub import Stub
from .errors import (
    DangerousGlobalError,
    FormatError,
    InternalError,
    LimitExceededError,
    SafeLoadError,
    UnsafeCallError,
    UnsafeGlobalError,
    int_text_limit,
)
from ._names import canonical_name, danger_of
from ._types import Entry, Pending
from ._rebuild.context import RebuildContext

if TYPE_CHECKING:
    from .policy import Policy

# Cython's pure-Python mode (setup.py compiles this file): compiled, ``import cython`` is Cython's compile-time
# module and the ``if cython.compiled:`` branches are the ones built; run as a .py file, safeload/_cy.py stands
# in and the plain-Python branches run. Both builds run the same checks in the same order (tests/test_builds.py).
if TYPE_CHECKING or __file__.endswith(".py"):
    from . import _cy as cython
else:
    import cython
    from cython.cimports.cpython.dict import PyDict_SetItem
    from cython.cimports.cpython.unicode import PyUnicode_DecodeRawUnicodeEscape, PyUnicode_DecodeUTF8
    from cython.cimports.libc.string import memcpy

__all__ = ["VM", "Pending", "check_keys"]

_unpack_H = struct.Struct("<H").unpack_from
_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_d = struct.Struct(">d").unpack_from

_INT_HASH_SAFE = (1 << 61) - 2  # ints with |x| below this have distinct hashes (except -1 and -2)
_SSIZE_MAX = sys.maxsize  # limits above this are clamped to it for the run loop's C integers
#: protocol-0 decimals of up to this many characters (sign included) are read inline by the run loop
_SHORT_DECIMAL = cython.declare(cython.Py_ssize_t, 18)
_LINE_LIMIT = cython.declare(cython.Py_ssize_t, _MAX_LINE)


def _keys_plain(keys: Any) -> bool:
    """True when hashing ``keys`` needs no check (:func:`check_keys`' fast path): every key is a str, bytes,
    bool or None (strings and bytes hash with a random seed), or an int whose hash is distinct from other ints'."""
    if cython.compiled and type(keys) is list:
        return _c_plain(keys, 0, 1)
    kinds = set(map(type, keys))
    if kinds <= _STR_ONLY:
        return True
    if kinds <= _PLAIN_FAST:
        ints = [k for k in keys if type(k) is int]
        return not ints or (max(ints) < _INT_HASH_SAFE and min(ints) > -_INT_HASH_SAFE)
    return False


_STR_ONLY = frozenset({str})
_PLAIN_FAST = frozenset({str, int, bool, type(None), bytes})


@cython.cfunc
@cython.returns(cython.bint)
@cython.locals(items=list, start=cython.Py_ssize_t, step=cython.Py_ssize_t, i=cython.Py_ssize_t)
def _c_plain(items: list[Any], start: int, step: int) -> bool:
    """Compiled build only: :func:`_keys_plain` of ``items[start::step]``, without building the slice."""
    for i in range(start, len(items), step):
        key = items[i]
        kind = type(key)
        if kind is str or kind is bytes or kind is bool or key is None:
            continue
        if kind is int and -_INT_HASH_SAFE < key < _INT_HASH_SAFE:
            continue
        return False
    return True


@cython.cfunc
@cython.inline
@cython.returns(cython.Py_ssize_t)
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, value=cython.Py_ssize_t)
def _u4(data: Any, buf: Any, a: int) -> int:
    """The little-endian unsigned 4-byte integer at ``a`` (the caller checked ``a + 4 <= end``)."""
    value: int  # a C integer in the compiled build (an untyped local would be a PyLong made and freed per call)
    if cython.compiled:
        value = buf[a] | (buf[a + 1] << 8) | (buf[a + 2] << 16) | (cython.cast(cython.Py_ssize_t, buf[a + 3]) << 24)
    else:
        value = _unpack_I(data, a)[0]
    return value


@cython.cfunc
@cython.returns(cython.Py_ssize_t)
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, lim=cython.Py_ssize_t, i=cython.Py_ssize_t)
def _c_line_end(buf: Any, a: int, lim: int) -> int:
    """Compiled build only: the index of the first newline in ``buf[a:lim]``, or -1 (``data.find`` in Python)."""
    for i in range(a, lim):
        if buf[i] == 0x0A:
            return i
    return -1


@cython.cfunc
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, b=cython.Py_ssize_t, i=cython.Py_ssize_t,
               c=cython.int, v=cython.longlong, neg=cython.bint)
def _c_decimal(buf: Any, a: int, b: int) -> int | None:
    """Compiled build only: the value of ``buf[a:b]`` if it is a canonical decimal integer (``_CANONICAL_INT``)
    of at most ``_SHORT_DECIMAL`` characters, else None (the Python build: the regular expression, then int)."""
    if b - a > _SHORT_DECIMAL or a >= b:
        return None
    neg = buf[a] == 0x2D
    if neg:
        a += 1
        if a >= b:
            return None
    if buf[a] == 0x30:
        return 0 if b - a == 1 and not neg else None
    v = 0
    for i in range(a, b):
        c = buf[i]
        if c < 0x30 or c > 0x39:
            return None
        v = v * 10 + (c - 0x30)
    return -v if neg else v


def check_keys(vm: VM, keys: Any, what: str = "dict") -> None:
    """Check dict keys and set members before anything hashes them. Strings and small ints pass in C speed.

    Refused: unhashable keys; keys (or tuple members) whose ``__hash__`` or ``__eq__`` is Python code of a class
    the caller allowed (hashing would run that class's code on values the file chose); tuples nested deeper than
    ``max_depth``; hash flooding (more than ``max_hash_collisions`` keys on one hash value). Hashing a tuple walks
    it again on every visit of a shared member, so every visited node is charged to the work budget
    (``key_nodes``): a small file cannot make hashing take exponential time.
    """
    if _keys_plain(keys):
        return
    limits = vm.limits
    counts = vm.hash_counts
    for key in keys:
        kind = type(key)
        if kind is str or kind is bytes:
            continue  # randomised hashes
        if kind not in _PLAIN_KEYS:
            _check_key_graph(vm, key, what)
        try:
            h = hash(key)
        except TypeError:  # a signalling-NaN Decimal (or a tuple holding one) raises here, in pickle.load too
            raise vm.fail(f"A {what} key of type {kind.__name__} cannot be hashed",
                          "pickle.load fails on the same key with TypeError") from None
        n = counts.get(h, 0) + 1
        counts[h] = n
        if n > limits.max_hash_collisions:
            raise LimitExceededError(
                "max_hash_collisions",
                n,
                limits.max_hash_collisions,
                what=f"Too many {what} keys share one hash value ({n})",
                why="colliding keys make building a dict or set take quadratic time (hash flooding)",
            )


_PLAIN_KEYS = frozenset({int, bool, float, complex, type(None)})
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python rather than in C
_SAFE_KEY_TYPES: dict[type, str] = {}  # type -> "" (safe to hash) or why not


def _key_type_problem(kind: type) -> str:
    """Why instances of ``kind`` may not be hashed as keys ("" if they may): unhashable, or hashing and comparing
    them runs Python code of a class other than the few trusted ones (enum.Enum, fractions.Fraction)."""
    known = _SAFE_KEY_TYPES.get(kind)
    if known is not None:
        return known
    if getattr(kind, "__hash__", None) is None:
        why = f"a {kind.__name__} is unhashable"
    else:
        why = ""
        for method in ("__hash__", "__eq__"):
            owner = next((k for k in kind.__mro__ if method in k.__dict__), object)
            if owner.__flags__ & _HEAPTYPE and f"{owner.__module__}.{owner.__qualname__}" not in _TRUSTED_KEY_CLASSES:
                why = (f"{kind.__module__}.{kind.__qualname__} defines {method} in Python; hashing it as a key would "
                       "run that code on values the file chose")
                break
    _SAFE_KEY_TYPES[kind] = why
    return why


#: Python classes whose ``__hash__``/``__eq__`` only read their own fields (standard library, torch's id hash,
#: and safeload's own device/layout/qscheme values (safeload/_tensors.py), made by safeload/_rebuild/torch.py from
#: checked strings and ints)
_TRUSTED_KEY_CLASSES = frozenset({"enum.Enum", "fractions.Fraction", "torch._tensor.Tensor",
                                  "safeload._tensors.TorchDevice", "safeload._tensors.TorchConstant"})


def _check_key_graph(vm: VM, key: Any, what: str) -> None:
    """Walk one key as ``hash`` will: refuse bad node types and deep nesting, charge every visit to the budget."""
    limit = vm.limits.max_depth
    todo = [(key, 1)]
    seen_sets: set[int] = set()
    visits = 0
    room = vm.budget.left + (vm.op_cap - vm.ops)  # rough: the exact check is vm.work() below
    while todo:
        obj, depth = todo.pop()
        visits += 1
        kind = type(obj)
        if kind is tuple or kind is frozenset:
            if depth > limit:
                raise LimitExceededError(
                    "max_depth", depth, limit, what=f"A {what} key or set member is nested too deep",
                    why="hashing a deeply nested tuple recurses in C and can crash the interpreter",
                )
            if kind is frozenset:
                if id(obj) in seen_sets:
                    continue  # a frozenset caches its hash: its members are hashed once
                seen_sets.add(id(obj))
            if visits > room:
                vm.work("key_nodes", visits)
            for item in obj:
                if type(item) not in _LEAF_KEYS:
                    todo.append((item, depth + 1))
                else:
                    visits += 1
        elif kind not in _LEAF_KEYS:
            problem = _key_type_problem(kind)
            if problem:
                raise vm.fail(f"Refused {what} key of type {kind.__module__}.{kind.__qualname__}", problem)
    if visits > vm.limits.max_container:
        vm.check_size(visits, "dict key or set member")
    vm.work("key_nodes", visits)


_LEAF_KEYS = frozenset({str, bytes, int, bool, float, complex, type(None)})


class VM:
    """Run one pickle stream ``data[start:end]`` under ``policy``. Use :meth:`run` once."""

    def __init__(
        self,
        data: bytes,
        start: int = 0,
        end: int | None = None,
        *,
        policy: Policy,
        unknown: str = "raise",
        encoding: str = "latin1",
        errors: str = "strict",
        persistent_load: Callable[[Any], Any] | None = None,
        observer: Any = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        if unknown not in ("raise", "stub"):
            raise ValueError(f"unknown must be 'raise' or 'stub', not {unknown!r}")
        end = len(data) if end is None else end
        if not 0 <= start <= end <= len(data):
            raise FormatError(f"Pickle stream bounds {start}..{end} are outside the input", offset=start)
        #: offsets inside the VM are relative to ``data``; errors add ``base`` to give offsets in the input
        self.base = 0
        if start != 0 or end != len(data) or not isinstance(data, (bytes, mmap.mmap)):
            # One copy of just this stream: the run loop relies on the stream ending where the buffer does.
            # A whole mapped file is read in place (indexing, slicing and struct work on maps as on bytes).
            data = bytes(data[start:end])
            self.base, start = start, 0
        self.data = data
        self.pos = start
        self.start = start
        self.end = len(data)
        self.policy = policy
        self.limits = policy.limits
        self.unknown = unknown
        self.encoding = encoding
        self.errors = errors
        self.persistent_load = persistent_load
        self.observer = observer
        #: free-form data the container gives the rebuilders (torch: the storages, map_location, tensors=)
        self.context: dict[str, Any] = {} if context is None else context
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        #: the memo: slots 0..len(memo)-1, all filled, in a list (what C pickle's memo array holds); every other
        #: filled slot in ``memo_sparse``, whose keys are all above len(memo). The filled count, where MEMOIZE
        #: stores, is len(memo) + len(memo_sparse) (see _memo_store).
        self.memo: list[Any] = []
        self.memo_sparse: dict[int, Any] = {}
        self.proto = 0
        self.ops = 0
        self.frame_end = -1
        self.pending = 0
        self.hash_counts: dict[int, int] = {}
        #: id(value pushed by GLOBAL) -> (its entry, the value): the value is kept, so an id is never reused
        self.values: dict[int, tuple[Entry, Any]] = {}
        self.globals_seen: list[tuple[str, int]] = []
        self.allocated = 0
        self.op_start = start
        #: the work budget of the load in progress (safeload/_budget.py); opcodes are settled into it in batches
        self.budget = _budget.current(self.limits, self.end - self.start)
        self.ops_settled = 0
        self.op_cap = min(self.limits.max_opcodes, self.budget.left)
        #: the one object rebuilders receive (safeload/_rebuild/context.py), never the VM itself; made by
        #: :meth:`context_for_rebuilders` when the stream first calls one (most small pickles call none)
        self.rebuild: RebuildContext | None = None

    # ---- helpers for handlers and rebuilders -------------------------------------------------------------

    def context_for_rebuilders(self) -> RebuildContext:
        """The one :class:`RebuildContext` of this stream, made on first use."""
        ctx = self.rebuild
        if ctx is None:
            ctx = self.rebuild = RebuildContext(self, check_keys)
        return ctx

    def fail(self, what: str, why: str = "", cls: type[SafeLoadError] = FormatError, **kw: Any) -> SafeLoadError:
        return cls(what, why=why, offset=self.op_start, opcode=opcode_name(self.data[self.op_start]), **kw)

    def charge(self, nbytes: int, what: str) -> None:
        """Count bytes a rebuilder allocates beyond the input; refuse past ``max_alloc``."""
        self.allocated += nbytes
        if self.allocated > self.limits.max_alloc:
            raise LimitExceededError("max_alloc", self.allocated, self.limits.max_alloc,
                                     what=f"{what} would allocate more than the limit allows",
                                     offset=self.op_start)

    def decode_str8(self, raw: bytes) -> Any:
        """A Python 2 ``str`` (STRING, BINSTRING, SHORT_BINSTRING), decoded as the caller's ``encoding`` asks."""
        if self.encoding == "bytes":
            return raw
        return raw.decode(self.encoding, self.errors)

    def pop_mark(self) -> list[Any]:
        items = self.stack
        if not self.metastack:
            raise self.fail("Stack underflow: no MARK to pop to", "the stream uses a MARK-based opcode without a MARK")
        self.stack = self.metastack.pop()
        return items

    def take(self, n: int) -> list[Any]:
        stack = self.stack
        if len(stack) < n:
            raise self.fail(f"Stack underflow: {opcode_name(self.data[self.op_start])} needs {n} items", "the stream is malformed")
        items = stack[-n:]
        del stack[-n:]
        return items

    # ---- globals and calls -------------------------------------------------------------------------------

    def resolve_global(self, module: Any, name: Any) -> Any:
        if type(module) is not str or type(name) is not str:
            raise self.fail("GLOBAL name is not a string", "STACK_GLOBAL needs two strings on the stack")
        self.count_op()
        cmodule, cname = canonical_name(module, name)
        entry = self.policy.lookup(cmodule, cname)
        qualname = f"{cmodule}.{cname}"
        self.globals_seen.append((qualname, self.op_start))
        if self.observer is not None:
            self.observer.on_global(qualname, entry, self.op_start, opcode_name(self.data[self.op_start]))
        if entry is None:
            danger = danger_of(qualname)
            opcode = opcode_name(self.data[self.op_start])
            err = DangerousGlobalError(cmodule, cname, danger, offset=self.op_start, opcode=opcode) if danger else \
                UnsafeGlobalError(cmodule, cname, offset=self.op_start, opcode=opcode, why=f"{qualname} is not in the "
                                  "allowlist, and safeload never imports a module because a file names it")
            if self.observer is not None:
                self.observer.on_refusal(err)
                return Stub(cmodule, cname)
            if self.unknown == "stub":
                return Stub(cmodule, cname)
            raise err
        value = entry.resolve()
        if value is not entry:
            mapper = self.context.get("value_map")
            if mapper is not None:  # e.g. torch dtypes named as values become real torch dtypes with torch tensors
                value = mapper(value)
            self.values[id(value)] = (entry, value)
        return value

    def entry_of(self, obj: Any) -> Entry | None:
        if type(obj) is Entry:
            return obj
        pair = self.values.get(id(obj))
        if pair is not None and pair[1] is obj:
            return pair[0]
        return None

    def _not_callable(self, func: Any, how: str) -> SafeLoadError:
        entry = self.entry_of(func)
        if entry is not None:
            module, _, name = entry.qualname.rpartition(".")
            return UnsafeCallError(
                module, name, offset=self.op_start, opcode=opcode_name(self.data[self.op_start]),
                why=f"{entry.qualname} is allowed as a value, but {how} it would run it with arguments the file chose",
            )
        return self.fail(
            f"{opcode_name(self.data[self.op_start])} on a {type(func).__name__}, which is not a callable the policy allows",
            "only safeload's own rebuilders may be called; this is how 'call what is on the stack' exploits work",
        )

    def call(self, func: Any, args: Any) -> Any:
        """REDUCE semantics: ``func(*args)``, for safeload rebuilders and stubs only."""
        self.count_op()
        if type(args) is not tuple:
            raise self.fail(f"REDUCE arguments are a {type(args).__name__}, not a tuple")
        if type(func) is Stub:
            return func.called(args)
        entry = self.entry_of(func)
        if entry is None or entry.call is None:
            raise self._not_callable(func, "calling")
        return entry.call(self.context_for_rebuilders(), args)

    def newobj(self, cls: Any, args: Any, kwargs: Any) -> Any:
        """NEWOBJ semantics: ``cls.__new__(cls, *args, **kwargs)``, for safeload rebuilders and stubs only."""
        self.count_op()
        if type(args) is not tuple or type(kwargs) is not dict:
            raise self.fail("NEWOBJ arguments must be a tuple (and a dict for NEWOBJ_EX)")
        if type(cls) is Stub:
            return cls.called(args, kwargs or None)
        entry = self.entry_of(cls)
        if entry is None or entry.newobj is None:
            raise self._not_callable(cls, "instantiating")
        return entry.newobj(self.context_for_rebuilders(), args, kwargs)

    def instantiate(self, cls: Any, args: tuple[Any, ...]) -> Any:
        """INST and OBJ: with arguments, a call; without, a bare instance (as pickle does)."""
        if args:
            return self.call(cls, args)
        entry = self.entry_of(cls)
        if entry is not None and entry.newobj is not None:
            return entry.newobj(self.context_for_rebuilders(), (), {})
        return self.call(cls, ())

    def build(self, inst: Any, state: Any) -> Any:
        self.count_op()
        kind = type(inst)
        if kind is Pending:
            if inst.result is not None:
                raise self.fail(f"Second BUILD on {inst.qualname}", "an object's state can be set once")
            result = inst.builder(self.context_for_rebuilders(), inst, state)
            inst.result = result
            self.pending -= 1
            return result
        if kind is Stub:
            if inst.args is None:
                raise self.fail(f"BUILD on the global {inst.qualname} itself", "state can only be set on instances")
            inst.state = state
            return inst
        builder = self.policy.builders.get(kind)
        if builder is None:
            raise self.fail(
                f"BUILD on a {kind.__module__}.{kind.__qualname__}, which takes no state",
                "setting state on anything but a plain data holder is how __setstate__ injection works",
            )
        return builder(self.context_for_rebuilders(), inst, state)

    def count_op(self) -> None:
        self.ops += 1  # count_ops(1), without a second call
        if self.ops > self.op_cap:
            self.settle()

    def count_ops(self, n: int) -> None:
        self.ops += n
        if self.ops > self.op_cap:
            self.settle()

    def settle(self) -> None:
        """Charge the opcodes run so far to the work budget, and check ``max_opcodes``."""
        if self.ops > self.limits.max_opcodes:
            raise LimitExceededError("max_opcodes", self.ops, self.limits.max_opcodes, offset=self.op_start,
                                     what=f"The stream runs more than {self.limits.max_opcodes} opcodes")
        fresh = self.ops - self.ops_settled
        self.ops_settled = self.ops
        self.budget.charge("opcodes", fresh, self.op_start)
        self.op_cap = min(self.limits.max_opcodes, self.ops + self.budget.left)

    def _room(self) -> int:
        """Work units the run loop may count before it must settle them (``max_opcodes`` or the budget)."""
        room: int = min(self.op_cap - self.ops, _SSIZE_MAX)
        return room

    def _settled(self, pos: int, units: int, digits: int) -> int:
        """Settle the run loop's count at the opcode at ``pos`` (refusing there if a limit is passed); return the
        new room."""
        self.op_start = pos
        self._settle_units(units, digits)
        return self._room()

    def _settle_units(self, units: int, digits: int) -> None:
        """Settle what the run loop counted: ``units`` work units, of which ``digits`` small number conversions
        (one unit each, as :meth:`work_digits` charges them) and the rest opcodes."""
        self.ops += units - digits
        if digits:
            self.work("digits", digits)
        elif self.ops > self.op_cap:
            self.settle()

    def work(self, kind: str, amount: int) -> None:
        """Charge work other than opcodes (hashed key nodes, digits) to the budget."""
        self.settle()
        self.budget.charge(kind, amount, self.op_start)
        self.op_cap = min(self.limits.max_opcodes, self.ops + self.budget.left)

    def work_digits(self, digits: int) -> None:
        """Charge a conversion quadratic in ``digits`` (int from text, Decimal from int)."""
        self.work("digits", max(1, digits * digits // _budget.DIGITS_SQUARED_PER_UNIT))

    def check_size(self, n: int, what: str) -> None:
        if n > self.limits.max_container:
            raise LimitExceededError("max_container", n, self.limits.max_container, offset=self.op_start,
                                     what=f"A {what} of {n} items is larger than the limit")

    # ---- bytes outside the opcodes (joblib's arrays), for RebuildContext.splice_raw and run_nested ----------------

    def _outside_frame(self, what: str) -> None:
        if 0 <= self.frame_end and self.pos < self.frame_end:
            raise self.fail(f"{what} inside a pickle frame", "the writer ends the frame before writing these bytes; "
                            "bytes in the middle of a frame are read differently by different readers")

    def splice_raw(self, nbytes: int, what: str) -> bytearray:
        """Consume ``nbytes`` raw bytes after the current opcode, outside any FRAME, as a private charged copy."""
        self._outside_frame(what)
        pos = self.pos
        if not 0 <= nbytes <= self.end - pos:
            raise FormatError(f"{what} needs {nbytes} bytes, but only {max(self.end - pos, 0)} remain", offset=pos,
                              why="the file is truncated or a length in it lies")
        self.charge(nbytes, what)
        raw = bytearray(memoryview(self.data)[pos:pos + nbytes])
        self.pos = pos + nbytes
        self.frame_end = -1  # the bytes after these are outside the frame that ended before them
        return raw

    def run_nested(self, context: dict[str, Any]) -> Any:
        """Run the whole pickle that follows the current opcode, outside any FRAME, with this VM's policy, observer
        and counters (one opcode count, allocation count and work budget per file); resume after it."""
        self._outside_frame("A nested pickle")
        if self.pos >= self.end:
            raise self.fail("The nested pickle is missing: the stream ends here")
        inner = VM(self.data, 0, policy=self.policy, unknown=self.unknown, encoding=self.encoding, errors=self.errors,
                   observer=self.observer, context=context)  # shares the stream: started at 0, then moved
        inner.pos = inner.start = inner.op_start = self.pos
        inner.base = self.base  # its errors give offsets in the input, as this VM's do
        inner.ops, inner.ops_settled, inner.op_cap, inner.allocated = self.ops, self.ops_settled, self.op_cap, self.allocated
        result = inner.run()
        self.ops, self.ops_settled, self.op_cap, self.allocated = inner.ops, inner.ops_settled, inner.op_cap, inner.allocated
        if 0 <= inner.frame_end and inner.pos != inner.frame_end:
            raise FormatError(f"The nested pickle stops {inner.frame_end - inner.pos} bytes before the end of its FRAME",
                              offset=inner.pos - 1, opcode="STOP",
                              why="an unpickler that reads whole frames from the file resumes where the frame ends, "
                                  "not after STOP: the bytes in between would be read by one reader and skipped by "
                                  "another")
        self.pos = inner.pos
        self.frame_end = -1
        return result

    # ---- the run loop ------------------------------------------------------------------------------------

    def run(self) -> Any:
        try:
            result = self._run_relative()
            self.settle()
            return result
        except SafeLoadError as err:
            if self.base and err.offset is not None and not getattr(err, "_based", False):
                err.offset += self.base
                err._based = True  # type: ignore[attr-defined]
            raise

    def _run_relative(self) -> Any:
        try:
            return self._run()
        except SafeLoadError as err:
            if err.offset is None:
                err.offset = self.op_start
                if self.op_start < len(self.data):
                    err.opcode = opcode_name(self.data[self.op_start])
            raise
        except RecursionError as exc:
            raise LimitExceededError("max_depth", 0, self.limits.max_depth, what="Nesting too deep to rebuild",
                                     offset=self.op_start) from exc
        except MemoryError as exc:
            raise LimitExceededError("max_alloc", 0, self.limits.max_alloc, what="Out of memory while rebuilding",
                                     offset=self.op_start) from exc
        except ValueError as exc:
            refusal = int_text_limit(exc, self.op_start)
            if refusal is None:
                raise self._unexpected(exc) from exc
            raise refusal from exc
        except Exception as exc:
            raise self._unexpected(exc) from exc

    def _unexpected(self, exc: Exception) -> SafeLoadError:
        """The refusal for an exception other than a SafeLoadError, RecursionError or MemoryError from the run loop.
        Only the deliberate cases become a FormatError: an argument past the end of the stream, a stack underflow, a
        missing memo slot and undecodable text, raised by the VM's own code on the stream. Any other exception (and
        any exception raised inside a rebuilder) is a safeload bug: InternalError."""
        start = self.op_start
        own = _raised_here(exc)
        if start >= self.end:
            if not own:
                return InternalError.wrap(exc, where="after the end of the pickle stream", offset=start)
            return FormatError("Truncated pickle: no STOP opcode", why="the stream ends before STOP", offset=start,
                               opcode="end of stream")
        op = opcode_name(self.data[start])
        if not own:
            return InternalError.wrap(exc, where=f"while running {op}", offset=start, opcode=op)
        spec = by_code[self.data[start]]
        if isinstance(exc, (IndexError, struct.error)) and spec is not None and spec.arg != "none" and _overruns(self, spec):
            what, why = f"Truncated pickle: the argument of {op} runs past the end of the stream", \
                "the file ends in the middle of an opcode"
        elif isinstance(exc, IndexError):
            what, why = f"Stack underflow at {op}", "the opcode needs more items than the stream pushed"
        elif isinstance(exc, KeyError):
            what = f"Memo index {exc.args[0] if exc.args else '?'} was never stored"
            why = "a GET names a memo slot that no PUT filled"
        elif isinstance(exc, UnicodeDecodeError):
            what, why = f"Text of {op} is not valid UTF-8", f"{exc.reason} at byte {exc.start} of the text"
        else:
            return InternalError.wrap(exc, where=f"while running {op}", offset=start, opcode=op)
        return FormatError(what, why=why, offset=start, opcode=op)

    @cython.locals(pos=cython.Py_ssize_t, end=cython.Py_ssize_t, a=cython.Py_ssize_t, b=cython.Py_ssize_t,
                   n=cython.Py_ssize_t, op=cython.int, hot=cython.Py_ssize_t, digits=cython.Py_ssize_t,
                   room=cython.Py_ssize_t, max_depth=cython.Py_ssize_t, max_memo=cython.Py_ssize_t,
                   max_items=cython.Py_ssize_t, u=cython.ulonglong, d=cython.double, compiled=cython.bint,
                   buf="const unsigned char[:]", stack=list, metastack=list, memo=list, sparse=dict)
    def _run(self) -> Any:
        """The run loop. ``pos`` always points at the current opcode while it can still fail.

        The hot plain-data opcodes run inline. Each reads its argument only after checking that it lies before
        ``end`` (``end == len(data)``, see __init__); when the check fails, or the opcode would fail, the loop
        leaves the opcode to its table handler, which raises the precise error. In the compiled build ``buf`` is
        a typed view of the input whose every index is bounds-checked as well, and positions are C integers.

        Every opcode, and every small protocol-0 number conversion (one ``digits`` unit each), counts against
        ``room``, the work left before ``max_opcodes`` or the work budget is reached: the run is refused at the
        exact opcode that exceeds either.
        """
        data = self.data
        end = self.end
        if self.start >= end:
            raise FormatError("Empty pickle stream", offset=self.start, why="there is no opcode to run")
        buf = data
        compiled = cython.compiled  # a local: the pure-Python build tests it without a global look-up
        memo = self.memo
        sparse = self.memo_sparse
        metastack = self.metastack
        stack = self.stack
        dispatch = _DISPATCH
        limits = self.limits
        max_depth = min(limits.max_depth, _SSIZE_MAX)
        max_memo = min(limits.max_memo, _SSIZE_MAX)
        max_items = min(limits.max_container, _SSIZE_MAX)
        unpack_i, unpack_H, unpack_d, unpack_I = _unpack_i, _unpack_H, _unpack_d, _unpack_I
        pos = self.start
        hot = 0  # work units since the last settling: one per opcode, plus ``digits``
        digits = 0  # small protocol-0 number conversions among them, one unit each
        v: Any  # the value being pushed
        d = 0.0  # BINFLOAT's value (compiled build)
        room = self._room()
        try:
            while True:
                op = buf[pos]  # past the end (no STOP): IndexError, a truncation (see _run_relative)
                hot += 1
                if hot > room:
                    room = self._settled(pos, hot, digits)
                    hot = digits = 0
                # The hot plain-data opcodes, inline. Widths as in OPCODES (checked by tests/test_opcodes.py).
                # A fixed-width argument past the end raises IndexError (``buf`` is bounds-checked in both builds)
                # or struct.error, which _run_relative reports as a truncated argument; a length field is checked
                # against ``end`` before the bytes it counts are read.
                if op == 0x8C or op == 0x58:  # SHORT_BINUNICODE, BINUNICODE, and the MEMOIZE that often follows
                    if op == 0x8C:
                        a = pos + 2
                        b = a + buf[pos + 1]
                    else:
                        a = pos + 5
                        b = a + (_u4(data, buf, pos + 1) if compiled else unpack_I(data, pos + 1)[0])
                    if b > end:
                        break
                    if not compiled:
                        v = str(data[a:b], "utf-8", "surrogatepass")
                    elif b > a:
                        v = PyUnicode_DecodeUTF8(  # type: ignore[name-defined]  # noqa: F821
                            cython.cast(cython.p_char, cython.address(buf[a])), b - a, "surrogatepass")
                    else:
                        v = ""
                    stack.append(v)
                    pos = b
                    if b < end and buf[b] == 0x94:
                        n = len(memo) + len(sparse)
                        if n > max_memo:
                            break
                        hot += 1  # the MEMOIZE counts as an opcode of its own
                        if hot > room:
                            room = self._settled(b, hot, digits)
                            hot = digits = 0
                        if sparse:
                            _memo_store(self, n, v)
                        else:
                            memo.append(v)
                        pos = b + 1
                    continue
                elif op == 0x94:  # MEMOIZE
                    n = len(memo) + len(sparse)
                    if n > max_memo or not stack:
                        break
                    if sparse:
                        _memo_store(self, n, stack[-1])
                    else:
                        memo.append(stack[-1])
                    pos += 1
                    continue
                elif op == 0x4A:  # BININT
                    if compiled:
                        n = _u4(data, buf, pos + 1)  # signed: minus 2**32 when the top bit is set (in C integers;
                        n -= cython.cast(cython.Py_ssize_t, buf[pos + 4] >> 7) << 32  # a literal 2**31 is a PyLong)
                        stack.append(n)
                    else:
                        stack.append(unpack_i(data, pos + 1)[0])
                    pos += 5
                    continue
                elif op == 0x4D:  # BININT2
                    if compiled:
                        n = buf[pos + 1] | (buf[pos + 2] << 8)
                        stack.append(n)
                    else:
                        stack.append(unpack_H(data, pos + 1)[0])
                    pos += 3
                    continue
                elif op == 0x4B:  # BININT1
                    stack.append(buf[pos + 1])
                    pos += 2
                    continue
                elif op == 0x71 or op == 0x68 or op == 0x72 or op == 0x6A:  # BINPUT, BINGET, LONG_BINPUT, LONG_BINGET
                    a = 2 if op == 0x71 or op == 0x68 else 5
                    n = buf[pos + 1] if a == 2 else \
                        _u4(data, buf, pos + 1) if compiled else unpack_I(data, pos + 1)[0]
                    if op == 0x71 or op == 0x72:
                        if n > max_memo or not stack:
                            break
                        if n < len(memo):
                            memo[n] = stack[-1]
                        elif n == len(memo) and not sparse:
                            memo.append(stack[-1])
                        else:
                            _memo_store(self, n, stack[-1])
                    else:
                        v = memo[n] if n < len(memo) else sparse[n]  # KeyError: a missing slot (_run_relative)
                        if type(v) is Pending:
                            v = _built(self, v, pos)
                        stack.append(v)
                    pos += a
                    continue
                elif op == 0x47:  # BINFLOAT
                    if compiled:
                        u = 0
                        for n in range(pos + 1, pos + 9):
                            u = (u << 8) | buf[n]
                        memcpy(cython.address(d), cython.address(u), 8)  # type: ignore[name-defined]  # noqa: F821
                        stack.append(d)
                    else:
                        stack.append(unpack_d(data, pos + 1)[0])
                    pos += 9
                    continue
                elif op == 0x4E:  # NONE
                    stack.append(None)
                    pos += 1
                    continue
                elif op == 0x30:  # POP
                    if stack:
                        del stack[-1]
                        pos += 1
                        continue
                elif op == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                    pos += 1
                    continue
                elif op == 0x89:  # NEWFALSE
                    stack.append(False)
                    pos += 1
                    continue
                elif op == 0x88:  # NEWTRUE
                    stack.append(True)
                    pos += 1
                    continue
                elif op == 0x7D:  # EMPTY_DICT
                    stack.append({})
                    pos += 1
                    continue
                elif op == 0x5D:  # EMPTY_LIST
                    stack.append([])
                    pos += 1
                    continue
                elif op == 0x86:  # TUPLE2
                    if len(stack) >= 2:
                        v = (stack[-2], stack[-1])
                        del stack[-2:]
                        stack.append(v)
                        pos += 1
                        continue
                elif op == 0x85:  # TUPLE1
                    if stack:
                        stack[-1] = (stack[-1],)
                        pos += 1
                        continue
                elif op == 0x87:  # TUPLE3
                    if len(stack) >= 3:
                        v = (stack[-3], stack[-2], stack[-1])
                        del stack[-3:]
                        stack.append(v)
                        pos += 1
                        continue
                elif op == 0x74:  # TUPLE
                    if metastack and len(stack) <= max_items:
                        v = tuple(stack)
                        stack = self.stack = metastack.pop()
                        stack.append(v)
                        pos += 1
                        continue
                elif op == 0x28:  # MARK
                    if len(metastack) >= max_depth:
                        self.op_start = pos
                        raise LimitExceededError("max_depth", len(metastack) + 1, max_depth,
                                                 what="MARK nesting deeper than the limit")
                    metastack.append(stack)
                    stack = self.stack = []
                    pos += 1
                    continue
                elif op == 0x75:  # SETITEMS
                    if metastack:
                        target = metastack[-1][-1]
                        n = len(stack)
                        if type(target) is dict and not n & 1:
                            if not (_c_plain(stack, 0, 2) if compiled else _keys_plain(stack[0::2])):
                                self.op_start = pos
                                self._settle_units(hot, digits)  # check_keys may charge the budget
                                hot = digits = 0
                                check_keys(self, stack[0::2])
                                room = self._room()
                            if compiled:
                                for a in range(0, n, 2):  # dict.update's C loop, without the two slices
                                    PyDict_SetItem(  # type: ignore[name-defined]  # noqa: F821
                                        target, stack[a], stack[a + 1])
                            else:
                                target.update(zip(stack[0::2], stack[1::2]))
                            if len(target) > max_items:
                                self.op_start = pos
                                self.check_size(len(target), "dict")
                        else:
                            self.op_start = pos
                            self._settle_units(hot, digits)
                            hot = digits = 0
                            _setitems(self, target, stack)
                            room = self._room()
                        stack = self.stack = metastack.pop()
                        pos += 1
                        continue
                elif op == 0x65:  # APPENDS
                    if metastack:
                        target = metastack[-1][-1]
                        if type(target) is list:
                            target.extend(stack)
                            if len(target) > max_items:
                                self.op_start = pos
                                self.check_size(len(target), "list")
                        else:
                            self.op_start = pos
                            _appends(self, target, stack)
                        stack = self.stack = metastack.pop()
                        pos += 1
                        continue
                elif op == 0x73:  # SETITEM of a plain key (see _keys_plain) into a dict
                    if len(stack) >= 3:
                        target = stack[-3]
                        v = stack[-2]
                        if type(target) is dict and (type(v) is str or (
                                _c_plain(stack, len(stack) - 2, 2) if compiled else _keys_plain([v]))):
                            target[v] = stack[-1]
                            del stack[-2:]
                            if len(target) > max_items:
                                self.op_start = pos
                                self.check_size(len(target), "dict")
                            pos += 1
                            continue
                elif op == 0x61:  # APPEND (protocol 0 and 1) to a list
                    if len(stack) >= 2:
                        target = stack[-2]
                        if type(target) is list:
                            target.append(stack[-1])
                            del stack[-1]
                            if len(target) > max_items:
                                self.op_start = pos
                                self.check_size(len(target), "list")
                            pos += 1
                            continue
                elif op == 0x49 or op == 0x4C or op == 0x67 or op == 0x70:  # INT, LONG, GET, PUT: short decimals
                    a = pos + 1
                    if compiled:
                        b = _c_line_end(buf, a, min(end, a + _SHORT_DECIMAL + 1))
                    else:
                        b = data.find(b"\n", a, min(end, a + _SHORT_DECIMAL + 1))
                    if b >= 0:
                        n = b
                        if op == 0x4C and n > a and buf[n - 1] == 0x4C:  # LONG's trailing L
                            n -= 1
                        if op == 0x49 and n - a == 2 and buf[a] == 0x30 and (buf[a + 1] == 0x30 or buf[a + 1] == 0x31):
                            stack.append(buf[a + 1] == 0x31)  # INT 00 and 01 are False and True
                            pos = b + 1
                            continue
                        if compiled:
                            v = _c_decimal(buf, a, n)
                        else:
                            v = data[a:n]
                            v = int(v) if n - a <= _SHORT_DECIMAL and _CANONICAL_INT.fullmatch(v) else None
                        if v is not None and (op == 0x49 or op == 0x4C or
                                              (op == 0x67 and (0 <= v < len(memo) or v in sparse)) or
                                              (op == 0x70 and 0 <= v <= max_memo and stack)):
                            hot += 1  # the conversion: one digits unit (up to 64 digits, see _parse_int)
                            digits += 1
                            if hot > room:
                                room = self._settled(pos, hot, digits)
                                hot = digits = 0
                            if op == 0x67:  # GET
                                v = memo[v] if v < len(memo) else sparse[v]
                                if type(v) is Pending:
                                    v = _built(self, v, pos)
                                stack.append(v)
                            elif op == 0x70:  # PUT
                                _memo_store(self, v, stack[-1])
                            else:
                                stack.append(v)
                            pos = b + 1
                            continue
                elif op == 0x56:  # UNICODE
                    a = pos + 1
                    if compiled:
                        b = _c_line_end(buf, a, min(end, a + _LINE_LIMIT + 1))
                    else:
                        b = data.find(b"\n", a, min(end, a + _LINE_LIMIT + 1))
                    if b >= 0:
                        if compiled:
                            v = PyUnicode_DecodeRawUnicodeEscape(  # type: ignore[name-defined]  # noqa: F821
                                cython.cast(cython.p_char, cython.address(buf[a])), b - a, cython.NULL)
                        else:
                            v = str(data[a:b], "raw-unicode-escape")
                        stack.append(v)
                        pos = b + 1
                        continue
                elif op == 0x2E:  # STOP
                    self.op_start = pos
                    self._settle_units(hot, digits)
                    self.pos = pos + 1
                    return self._stop(stack)
                # Every other opcode, and an inline one that would fail: its table handler.
                handler = dispatch[op]
                self.op_start = pos
                if handler is None:
                    _refuse_opcode(self, op)
                self.pos = pos + 1
                if digits or self.ops + hot > self.op_cap:
                    self._settle_units(hot, digits)
                else:  # _settle_units when there is nothing to charge yet
                    self.ops += hot
                hot = digits = 0
                handler(self)
                room = min(self.op_cap - self.ops, _SSIZE_MAX)  # self._room()
                pos = self.pos
                stack = self.stack
        except SafeLoadError:
            raise
        except Exception:
            self.op_start = pos
            raise
        # An inline opcode stopped short (a memo limit or an argument past the end), or the stream ended before
        # STOP: the table handler raises the precise error (reading ``data``, the same object in both builds).
        self.op_start = pos
        self.pos = pos + 1
        if data[pos] == 0x8C:  # the fused SHORT_BINUNICODE + MEMOIZE: the MEMOIZE is what failed, or the string
            self.op_start = pos = pos + 2 + data[pos + 1] if pos + 2 + data[pos + 1] < end else pos
            self.pos = pos + 1
        handler = dispatch[data[pos]]
        if handler is not None:
            handler(self)
        raise FormatError("Truncated pickle: an argument runs past the end of the stream", offset=pos,
                          opcode=opcode_name(data[pos]), why="the file ends in the middle of an opcode")

    def _stop(self, stack: list[Any]) -> Any:
        if self.metastack:
            raise self.fail("STOP inside an unclosed MARK", "the stream is malformed")
        if len(stack) != 1:
            raise self.fail(f"STOP with {len(stack)} items on the stack", "a well-formed pickle leaves exactly one object")
        if self.pending:
            raise self.fail("An array or dtype was never given its state", "a BUILD opcode is missing")
        if 0 <= self.frame_end and self.pos > self.frame_end:
            raise self.fail("STOP lies beyond the end of its FRAME", "FRAME lengths must match the opcodes they hold")
        result = stack[0]
        if type(result) is Pending:
            result = result.result
        return result

    # cold handlers read their argument with the table's reader
    def arg(self) -> Any:
        spec = by_code[self.data[self.op_start]]
        assert spec is not None
        value, self.pos = READERS[spec.arg](self.data, self.pos, self.end)
        return value


def _raised_here(exc: BaseException) -> bool:
    """True if ``exc`` was raised by this module's own code (the run loop or a handler), not by a rebuilder.

    Frames are told apart by their module globals, which the compiled build's frames carry too (their file name
    is the ``.py`` source, not ``__file__``)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_globals is globals()


def _overruns(vm: VM, spec: Any) -> bool:
    try:
        READERS[spec.arg](vm.data, vm.op_start + 1, vm.end)
    except FormatError:
        return True
    return False


def _refuse_opcode(vm: VM, op: int) -> NoReturn:
    spec = by_code[op]
    if spec is not None and spec.action == "forbidden":
        raise vm.fail(f"Opcode {spec.name} refused", "out-of-band buffers never occur in files; a pickle that uses "
                      "them needs buffers the loader would have to supply")
    raise FormatError(f"Unknown opcode byte 0x{op:02x}", offset=vm.op_start, opcode=f"0x{op:02x}",
                      why="this byte is not a pickle opcode; the stream is corrupt or crafted")


def _setitems(vm: VM, target: Any, items: list[Any]) -> None:
    if len(items) & 1:
        raise vm.fail("SETITEMS with an odd number of items", "keys and values must come in pairs")
    keys = items[0::2]
    check_keys(vm, keys)
    setter = _dict_setter(vm, target)
    for k, v in zip(keys, items[1::2]):
        setter(k, v)
    vm.check_size(len(target.dictitems if type(target) is Stub else target), "dict")


def _dict_setter(vm: VM, target: Any) -> Callable[[Any, Any], None]:
    kind = type(target)
    if kind is Stub:
        if target.args is None:
            raise vm.fail(f"SETITEM on the global {target.qualname} itself")
        setter: Callable[[Any, Any], None] = target.dictitems.__setitem__
        return setter
    if kind is dict or (kind in vm.policy.types and issubclass(kind, dict)):
        # The C __setitem__ of the nearest built-in base: a subclass's own __setitem__ never runs.
        base = OrderedDict if issubclass(kind, OrderedDict) else dict
        return base.__setitem__.__get__(target)  # type: ignore[no-any-return]
    raise vm.fail(f"SETITEM on a {kind.__name__}", "SETITEM and SETITEMS may only fill dicts")


def _appends(vm: VM, target: Any, items: list[Any]) -> None:
    kind = type(target)
    if kind is list or (kind in vm.policy.types and issubclass(kind, list)):
        list.extend(target, items)
        vm.check_size(len(target), "list")
    elif kind is Stub and target.args is not None:
        target.items.extend(items)
    else:
        raise vm.fail(f"APPEND on a {kind.__name__}", "APPEND and APPENDS may only fill lists")


# ---- cold handlers, registered by opcode name -----------------------------------------------------------------

_HANDLERS: dict[str, Callable[[VM], None]] = {}


def handles(*names: str) -> Callable[[Callable[[VM], None]], Callable[[VM], None]]:
    def register(fn: Callable[[VM], None]) -> Callable[[VM], None]:
        for name in names:
            _HANDLERS[name] = fn
        return fn

    return register


@handles("PROTO")
def _proto(vm: VM) -> None:
    proto = vm.arg()
    if not 0 <= proto <= 5:
        raise vm.fail(f"Unsupported pickle protocol {proto}", "safeload reads protocols 0 to 5")
    vm.proto = proto


@handles("FRAME")
def _frame(vm: VM) -> None:
    length = vm.arg()
    if vm.pos < vm.frame_end:
        raise vm.fail("FRAME inside a frame", "a new frame may only start where the previous one ends")
    if length > vm.end - vm.pos:
        raise vm.fail(f"FRAME claims {length} bytes but only {vm.end - vm.pos} remain",
                      "a frame length that lies can make two readers see different opcodes")
    vm.frame_end = vm.pos + length


@handles("STOP")
def _stop_handler(vm: VM) -> None:  # reached only from the table walk in tests; the run loop handles STOP inline
    raise vm.fail("STOP dispatched out of the run loop")


def _push(vm: VM, value: Any) -> None:
    vm.stack.append(value)


@handles("INT")
def _int(vm: VM) -> None:
    raw = vm.arg()
    if raw == b"00":
        _push(vm, False)
    elif raw == b"01":
        _push(vm, True)
    else:
        _push(vm, _parse_int(vm, raw))


@handles("LONG")
def _long(vm: VM) -> None:
    raw = vm.arg()
    if raw.endswith(b"L"):
        raw = raw[:-1]
    _push(vm, _parse_int(vm, raw))


#: what every pickler writes for INT and LONG: no leading zeros, no '+', no spaces or underscores, no '-0'
_CANONICAL_INT = re.compile(rb"0|-?[1-9][0-9]*")
#: what repr(float) writes (Python 2 and 3), for FLOAT
_CANONICAL_FLOAT = re.compile(rb"-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|inf)|nan")


def _parse_int(vm: VM, raw: bytes) -> int:
    """A protocol-0 decimal integer. Text to int is quadratic in the digits, so the digits are charged to the
    work budget (and Python's own 4300-digit limit applies, as it does to pickle.loads)."""
    vm.work_digits(len(raw))
    if _CANONICAL_INT.fullmatch(raw) is None:
        # C pickle reads INT with strtol(base 0) (``010`` is 8, ``-0`` with its newline is False), pickle.py with
        # int(base 0) (``010`` is an error, ``1_0`` is 10): only the form every writer emits reads one way.
        raise vm.fail(f"{opcode_name(vm.data[vm.op_start])} argument {raw[:40]!r} is not a canonical decimal integer",
                      "C pickle and pickle.py read leading zeros, signs, spaces and underscores differently")
    return int(raw, 10)


@handles("BININT", "BININT1", "BININT2", "LONG1", "LONG4")
def _binint(vm: VM) -> None:
    _push(vm, vm.arg())


@handles("BINFLOAT")
def _binfloat(vm: VM) -> None:
    _push(vm, vm.arg())


@handles("FLOAT")
def _float(vm: VM) -> None:
    raw = vm.arg()
    if _CANONICAL_FLOAT.fullmatch(raw) is None:
        # float() accepts underscores, spaces and a trailing '\r' that C pickle's PyOS_string_to_double refuses
        raise vm.fail(f"FLOAT argument {raw[:40]!r} is not written as repr(float) writes it",
                      "C pickle and pickle.py read other spellings differently")
    try:
        _push(vm, float(raw))
    except ValueError:
        raise vm.fail("FLOAT argument is not a number", "protocol-0 floats are written as repr(float)") from None


@handles("STRING")
def _string(vm: VM) -> None:
    raw = vm.arg()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in b"\"'":
        raw = raw[1:-1]
    else:
        raise vm.fail("STRING argument is not quoted", "protocol-0 strings are written as Python literals")
    import codecs

    try:
        text = codecs.escape_decode(raw)[0]
    except ValueError as exc:
        raise vm.fail("STRING argument has a bad escape", str(exc)) from None
    _push(vm, vm.decode_str8(text))


@handles("BINSTRING", "SHORT_BINSTRING")
def _binstring(vm: VM) -> None:
    raw = vm.arg()
    if vm.op_start < len(vm.data) and vm.data[vm.op_start] == 0x54 and len(raw) > 0x7FFFFFFF:
        raise vm.fail("BINSTRING with a negative length")
    _push(vm, vm.decode_str8(raw))


@handles("BINBYTES", "SHORT_BINBYTES", "BINBYTES8")
def _binbytes(vm: VM) -> None:
    _push(vm, vm.arg())


@handles("BYTEARRAY8")
def _bytearray8(vm: VM) -> None:
    _push(vm, bytearray(vm.arg()))


@handles("UNICODE")
def _unicode(vm: VM) -> None:
    _push(vm, str(vm.arg(), "raw-unicode-escape"))


@handles("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8")
def _binunicode(vm: VM) -> None:
    _push(vm, str(vm.arg(), "utf-8", "surrogatepass"))


@handles("NONE")
def _none(vm: VM) -> None:
    _push(vm, None)


@handles("NEWTRUE")
def _true(vm: VM) -> None:
    _push(vm, True)


@handles("NEWFALSE")
def _false(vm: VM) -> None:
    _push(vm, False)


@handles("EMPTY_LIST")
def _empty_list(vm: VM) -> None:
    _push(vm, [])


@handles("EMPTY_TUPLE")
def _empty_tuple(vm: VM) -> None:
    _push(vm, ())


@handles("EMPTY_DICT")
def _empty_dict(vm: VM) -> None:
    _push(vm, {})


@handles("EMPTY_SET")
def _empty_set(vm: VM) -> None:
    _push(vm, set())


@handles("LIST")
def _list(vm: VM) -> None:
    items = vm.pop_mark()
    vm.check_size(len(items), "list")
    _push(vm, items)


@handles("TUPLE")
def _tuple(vm: VM) -> None:
    items = vm.pop_mark()
    vm.check_size(len(items), "tuple")
    _push(vm, tuple(items))


@handles("TUPLE1", "TUPLE2", "TUPLE3")
def _tuple_n(vm: VM) -> None:
    n = vm.data[vm.op_start] - 0x84
    _push(vm, tuple(vm.take(n)))


@handles("DICT")
def _dict(vm: VM) -> None:
    items = vm.pop_mark()
    if len(items) & 1:
        raise vm.fail("DICT with an odd number of items", "keys and values must come in pairs")
    keys = items[0::2]
    vm.check_size(len(keys), "dict")
    check_keys(vm, keys)
    _push(vm, dict(zip(keys, items[1::2])))


@handles("FROZENSET")
def _frozenset(vm: VM) -> None:
    items = vm.pop_mark()
    vm.check_size(len(items), "frozenset")
    check_keys(vm, items, "set")
    _push(vm, frozenset(items))


@handles("ADDITEMS")
def _additems(vm: VM) -> None:
    items = vm.pop_mark()
    target = vm.stack[-1] if vm.stack else None
    check_keys(vm, items, "set")
    if type(target) is set:
        target.update(items)
        vm.check_size(len(target), "set")
    elif type(target) is Stub and target.args is not None:
        target.items.extend(items)
    else:
        raise vm.fail(f"ADDITEMS on a {type(target).__name__}", "ADDITEMS may only fill sets")


@handles("APPEND")
def _append(vm: VM) -> None:
    value, = vm.take(1)
    if not vm.stack:
        raise vm.fail("Stack underflow: APPEND has no list to append to")
    _appends(vm, vm.stack[-1], [value])


@handles("APPENDS")
def _appends_handler(vm: VM) -> None:
    items = vm.pop_mark()
    if not vm.stack:
        raise vm.fail("Stack underflow: APPENDS has no list to append to")
    _appends(vm, vm.stack[-1], items)


@handles("SETITEM")
def _setitem(vm: VM) -> None:
    items = vm.take(2)
    if not vm.stack:
        raise vm.fail("Stack underflow: SETITEM has no dict to fill")
    _setitems(vm, vm.stack[-1], items)


@handles("SETITEMS")
def _setitems_handler(vm: VM) -> None:
    items = vm.pop_mark()
    if not vm.stack:
        raise vm.fail("Stack underflow: SETITEMS has no dict to fill")
    _setitems(vm, vm.stack[-1], items)


@handles("POP")
def _pop(vm: VM) -> None:
    if vm.stack:
        vm.stack.pop()
    else:
        vm.pop_mark()


@handles("DUP")
def _dup(vm: VM) -> None:
    value = vm.stack[-1]
    if type(value) is Pending:
        value = _built(vm, value, vm.op_start)
    _push(vm, value)


@handles("MARK")
def _mark(vm: VM) -> None:
    vm.metastack.append(vm.stack)
    if len(vm.metastack) > vm.limits.max_depth:
        raise LimitExceededError("max_depth", len(vm.metastack), vm.limits.max_depth,
                                 what="MARK nesting deeper than the limit")
    vm.stack = []


@handles("POP_MARK")
def _pop_mark(vm: VM) -> None:
    vm.pop_mark()


def _memo_get(vm: VM, index: int) -> None:
    try:
        value = vm.memo[index] if 0 <= index < len(vm.memo) else vm.memo_sparse[index]
    except KeyError:
        raise vm.fail(f"Memo index {index} was never stored", "a GET names a memo slot that no PUT filled") from None
    if type(value) is Pending:
        value = _built(vm, value, vm.op_start)
    _push(vm, value)


def _built(vm: VM, pending: Pending, pos: int) -> Any:
    """The object a memo GET or DUP copies: a Pending's result, once its BUILD ran. Before that, a second
    reference is refused: it would stay a Pending forever in whatever container took it (CPython's unpickler
    fills the same object in place; safeload makes a new one at BUILD)."""
    if pending.result is None:
        vm.op_start = pos
        raise vm.fail(f"A second reference to {pending.qualname} before its BUILD",
                      "safeload builds arrays and dtypes when their state arrives; a reference taken earlier (a "
                      "self-referencing object array, or a crafted stream) cannot be resolved")
    return pending.result


def _memo_put(vm: VM, index: int) -> None:
    if index < 0 or index > vm.limits.max_memo:
        raise LimitExceededError("max_memo", index, vm.limits.max_memo,
                                 what=f"Memo index {index} is beyond the limit",
                                 why="a huge memo index is how memo bombs force giant allocations in other unpicklers")
    if not vm.stack:
        raise vm.fail("Stack underflow: PUT with an empty stack")
    _memo_store(vm, index, vm.stack[-1])


def _memo_store(vm: VM, index: int, value: Any) -> None:
    """Fill memo slot ``index`` (0 <= index <= max_memo, checked by the caller), as C pickle's memo array and
    pickle.py's dict do: a slot is overwritten in place, and the filled count (where MEMOIZE stores) grows only
    when an empty slot is filled. The dense list takes the slot right after it, and then every sparse slot that
    now follows on; any other slot goes to the sparse dict, so a far index costs one entry, not an array."""
    memo = vm.memo
    if index < len(memo):
        memo[index] = value
        return
    sparse = vm.memo_sparse
    if index != len(memo):
        sparse[index] = value
        return
    memo.append(value)
    while sparse and len(memo) in sparse:
        memo.append(sparse.pop(len(memo)))


@handles("GET")
def _get(vm: VM) -> None:
    _memo_get(vm, _parse_int(vm, vm.arg()))


@handles("BINGET", "LONG_BINGET")
def _binget(vm: VM) -> None:
    _memo_get(vm, vm.arg())


@handles("PUT")
def _put(vm: VM) -> None:
    _memo_put(vm, _parse_int(vm, vm.arg()))


@handles("BINPUT", "LONG_BINPUT")
def _binput(vm: VM) -> None:
    _memo_put(vm, vm.arg())


@handles("MEMOIZE")
def _memoize(vm: VM) -> None:
    _memo_put(vm, len(vm.memo) + len(vm.memo_sparse))


def _decode_name(vm: VM, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise vm.fail("GLOBAL name is not UTF-8") from None


@handles("GLOBAL")
def _global(vm: VM) -> None:
    module, name = vm.arg()
    _push(vm, vm.resolve_global(_decode_name(vm, module), _decode_name(vm, name)))


@handles("STACK_GLOBAL")
def _stack_global(vm: VM) -> None:
    module, name = vm.take(2)
    _push(vm, vm.resolve_global(module, name))


@handles("EXT1", "EXT2", "EXT4")
def _ext(vm: VM) -> None:
    code = vm.arg()
    key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
    if key is None:
        raise vm.fail(f"Unregistered extension code {code}", "EXT opcodes name globals through copyreg's registry, "
                      "and this process registered no such code")
    _push(vm, vm.resolve_global(*key))


@handles("REDUCE")
def _reduce(vm: VM) -> None:
    stack = vm.stack
    if len(stack) < 2:
        vm.take(2)  # raises the underflow
    args = stack.pop()
    func = stack.pop()
    stack.append(vm.call(func, args))


@handles("NEWOBJ")
def _newobj(vm: VM) -> None:
    cls, args = vm.take(2)
    _push(vm, vm.newobj(cls, args, {}))


@handles("NEWOBJ_EX")
def _newobj_ex(vm: VM) -> None:
    cls, args, kwargs = vm.take(3)
    _push(vm, vm.newobj(cls, args, kwargs))


@handles("OBJ")
def _obj(vm: VM) -> None:
    items = vm.pop_mark()
    if not items:
        raise vm.fail("OBJ without a class", "OBJ needs the class and its arguments after a MARK")
    _push(vm, vm.instantiate(items[0], tuple(items[1:])))


@handles("INST")
def _inst(vm: VM) -> None:
    module, name = vm.arg()
    cls = vm.resolve_global(_decode_name(vm, module), _decode_name(vm, name))
    args = tuple(vm.pop_mark())
    _push(vm, vm.instantiate(cls, args))


@handles("BUILD")
def _build(vm: VM) -> None:
    state, = vm.take(1)
    if not vm.stack:
        raise vm.fail("Stack underflow: BUILD has no object")
    vm.stack[-1] = vm.build(vm.stack[-1], state)


@handles("PERSID")
def _persid(vm: VM) -> None:
    raw = vm.arg()
    _persistent(vm, raw.decode("ascii"))


@handles("BINPERSID")
def _binpersid(vm: VM) -> None:
    if not vm.stack:
        vm.take(1)  # raises the underflow
    _persistent(vm, vm.stack.pop())


def _persistent(vm: VM, pid: Any) -> None:
    vm.count_op()
    if vm.persistent_load is None:
        raise vm.fail(
            "Persistent id in a plain pickle",
            "persistent ids refer to data outside the stream (torch storages); this container supplies none",
            fix="If this is the data.pkl of a torch checkpoint, load the whole .pt file instead",
        )
    _push(vm, vm.persistent_load(pid))


_DISPATCH: list[Callable[[VM], None] | None] = [None] * 256
for _spec in OPCODES:
    if _spec.action != "forbidden":
        _DISPATCH[_spec.code] = _HANDLERS[_spec.name]
