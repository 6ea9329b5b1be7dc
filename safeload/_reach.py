"""What native readers reach in a file, walked as they read it: ``tarfile``'s test of a first header block
(:func:`is_tar`) and CPython's unpickler (:func:`cpython_reach`, the first opcode that could import or call).

safeload/_detect.py uses both to decide a format (a file is a tar, or a pickle, the way those readers decide it),
and safeload/_kinds.py to be sure a file it names as harmless is not one those readers would act on. The module
imports neither of them.
"""

from __future__ import annotations

import struct

from ._hints import Any
from ._record import record

__all__ = ["Reach", "cpython_reach", "importable", "is_tar"]


def is_tar(data: Any) -> bool:
    """CPython ``tarfile``'s test of a first header block (``TarInfo.frombuf`` and ``nti``)."""
    if len(data) < 512:
        return False
    block = bytes(data[:512])
    if block.count(0) == 512:
        return False
    field = block[148:156]
    if field[0] in (0o200, 0o377):  # base-256
        n = int.from_bytes(field[1:], "big")
        if field[0] == 0o377:
            n -= 256 ** 7
    else:
        text = field.split(b"\0", 1)[0]
        try:
            n = int(text.decode("ascii").strip() or "0", 8)
        except (UnicodeDecodeError, ValueError):
            return False
    unsigned = 256 + sum(block[:148]) + sum(block[156:])
    signed = 256 + sum(struct.unpack_from("148b8x356b", block))
    return n in (unsigned, signed)


# ---- CPython's unpickler, as a walk ---------------------------------------------------------------------------

@record(frozen=True)
class Reach:
    """An opcode at which CPython's unpickler could import or call something."""

    offset: int
    opcode: str
    module: str | None = None  # where the names are literal
    name: str | None = None

    @property
    def qualname(self) -> str | None:
        return None if self.module is None else f"{self.module}.{self.name}"


# opcode byte -> (name, argument kind); the argument kinds are read as CPython's C unpickler reads them
_OPS: dict[int, tuple[str, str]] = {
    0x28: ("MARK", ""), 0x2e: ("STOP", ""), 0x30: ("POP", ""), 0x31: ("POP_MARK", ""), 0x32: ("DUP", ""),
    0x46: ("FLOAT", "line"), 0x49: ("INT", "line"), 0x4a: ("BININT", "4"), 0x4b: ("BININT1", "1"),
    0x4c: ("LONG", "line"), 0x4d: ("BININT2", "2"), 0x4e: ("NONE", ""), 0x50: ("PERSID", "line"),
    0x51: ("BINPERSID", ""), 0x52: ("REDUCE", ""), 0x53: ("STRING", "line"), 0x54: ("BINSTRING", "s4"),
    0x55: ("SHORT_BINSTRING", "c1"), 0x56: ("UNICODE", "uline"), 0x58: ("BINUNICODE", "c4"),
    0x61: ("APPEND", ""), 0x62: ("BUILD", ""), 0x63: ("GLOBAL", "line2"), 0x64: ("DICT", ""),
    0x7d: ("EMPTY_DICT", ""), 0x65: ("APPENDS", ""), 0x67: ("GET", "line"), 0x68: ("BINGET", "1"),
    0x69: ("INST", "line2"), 0x6a: ("LONG_BINGET", "4"), 0x6c: ("LIST", ""), 0x5d: ("EMPTY_LIST", ""),
    0x6f: ("OBJ", ""), 0x70: ("PUT", "line"), 0x71: ("BINPUT", "1"), 0x72: ("LONG_BINPUT", "4"),
    0x73: ("SETITEM", ""), 0x74: ("TUPLE", ""), 0x29: ("EMPTY_TUPLE", ""), 0x75: ("SETITEMS", ""),
    0x47: ("BINFLOAT", "8"), 0x80: ("PROTO", "1"), 0x81: ("NEWOBJ", ""), 0x82: ("EXT1", "1"), 0x83: ("EXT2", "2"),
    0x84: ("EXT4", "4"), 0x85: ("TUPLE1", ""), 0x86: ("TUPLE2", ""), 0x87: ("TUPLE3", ""), 0x88: ("NEWTRUE", ""),
    0x89: ("NEWFALSE", ""), 0x8a: ("LONG1", "c1"), 0x8b: ("LONG4", "s4"), 0x42: ("BINBYTES", "c4"),
    0x43: ("SHORT_BINBYTES", "c1"), 0x8c: ("SHORT_BINUNICODE", "c1"), 0x8d: ("BINUNICODE8", "c8"),
    0x8e: ("BINBYTES8", "c8"), 0x8f: ("EMPTY_SET", ""), 0x90: ("ADDITEMS", ""), 0x91: ("FROZENSET", ""),
    0x92: ("NEWOBJ_EX", ""), 0x93: ("STACK_GLOBAL", ""), 0x94: ("MEMOIZE", ""), 0x95: ("FRAME", "8"),
    0x96: ("BYTEARRAY8", "c8"), 0x97: ("NEXT_BUFFER", ""), 0x98: ("READONLY_BUFFER", ""),
}
_CALLS = {"REDUCE": 2, "BUILD": 2, "NEWOBJ": 2, "NEWOBJ_EX": 3}  # opcode -> stack items it needs above the MARK
_STR_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}


class _Fail(Exception):
    """CPython's unpickler would raise here."""


def importable(module: str) -> bool:
    """Whether ``__import__(module)`` could find a module: a dotted name of Python identifiers. Surrounding
    whitespace is ignored, to be safe: ``os\r`` imports nothing in Python 3, but a reader that opens the file in
    text mode on Windows (Python 2's ``pickle``) reads ``\r\n`` as ``\n``."""
    module = module.strip()
    return bool(module) and all(part.isidentifier() for part in module.split("."))


def _int_c_or_py(text: bytes) -> bool:
    """INT/GET/PUT arguments: Python's ``int(x, 0)``, or C's ``strtol(x, &end, 0)`` ending at NUL."""
    import re

    try:
        int(text, 0)
        return True
    except ValueError:
        pass
    return re.match(rb"\s*[+-]?(0[xX][0-9a-fA-F]+|[0-9]+)(\0|$)", text) is not None


def _memo_index(text: bytes) -> int:
    """GET and PUT read a decimal line (C: ``PyLong_FromString(s, NULL, 10)``)."""
    try:
        return int(text)
    except ValueError:
        raise _Fail from None


def cpython_reach(data: Any, start: int = 0, end: int | None = None, *, every: bool = False) -> list[Reach]:
    """Where CPython's unpickler, reading ``data`` from ``start``, could import or call something.

    By default the walk stops where CPython would fail (unknown opcode, truncated argument, stack underflow, a
    missing memo entry, a text argument CPython rejects, a GLOBAL whose module cannot be imported) and returns at
    most the first reach. After a STOP it goes on: readers that call ``pickle.load`` until end of file do.

    With ``every``, the walk goes on past what CPython would refuse (only an unknown opcode or a truncated
    argument ends it) and returns every GLOBAL, INST and STACK_GLOBAL (names where they are literal): the
    scanner's report of what a stream names after the VM has refused it.

    FRAME is read two ways, and a reach under either counts: contiguously (``pickle.loads``, and the C unpickler
    on a file with ``peek`` while the frame sits in its read-ahead), and as the C unpickler reads a file without
    ``peek`` (``io.BytesIO``) or a frame larger than its read-ahead: an argument that runs past the end of a frame
    is read from the bytes after the frame, and what was left of the frame is skipped.
    """
    if not hasattr(data, "find"):
        data = bytes(data)
    end = len(data) if end is None else end
    found = _walk(data, start, end, every, False)
    if not every and not found and data.find(b"\x95", start, end) >= 0:
        found = _walk(data, start, end, every, True)
    return found


def _walk(data: Any, start: int, end: int, every: bool, cfile: bool) -> list[Reach]:
    """:func:`cpython_reach`, one reading of FRAME (``cfile``: the C unpickler on a file without ``peek``)."""
    found: list[Reach] = []
    frame_end = -1  # cfile: where the frame the C unpickler holds in its buffer ends
    first = True  # in the first pickle of the walk: no native reader has a persistent_load there
    stack: list[Any] = []  # items: a str value for strings, None for anything else
    meta: list[list[Any]] = []
    memo: dict[int, Any] = {}
    pos = start
    from . import _budget

    budget = _budget.current()  # the walk is work like the VM's: charged per opcode (safeload/_budget.py)
    steps = 0

    def take(at: int, width: int) -> int:
        """Where an argument of ``width`` bytes that would start at ``at`` is read from."""
        nonlocal frame_end
        if cfile and at < frame_end < at + width:
            at, frame_end = frame_end, -1  # the rest of the frame is dropped; the argument comes from the file
        return at

    def line(at: int, nonempty: bool = True) -> tuple[bytes, int]:
        nonlocal frame_end
        if cfile and at < frame_end and data.find(b"\n", at, frame_end) < 0:
            at, frame_end = frame_end, -1  # the C reader drops the partial line and reads one from the file
        nl = data.find(b"\n", at, end)
        if nl < 0:  # C reads to the end and drops the last byte, as if it were the newline
            raw, nxt = bytes(data[at:end]), end
            if not raw:
                raise _Fail
            raw = raw[:-1]
        else:
            raw, nxt = bytes(data[at:nl]), nl + 1
        if nonempty and not raw:
            raise _Fail
        return raw, nxt

    def pop(n: int = 1) -> list[Any]:
        if len(stack) < n:
            raise _Fail
        items = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return items

    def pop_mark() -> list[Any]:
        nonlocal stack
        if not meta:
            raise _Fail
        items = stack
        stack = meta.pop()
        return items

    while pos < end:
        op = data[pos]
        spec = _OPS.get(op)
        if spec is None:
            break
        steps += 1
        if steps & 0xFFFF == 0:  # 2 units an opcode: this walk costs about twice the VM's inline opcodes
            budget.charge("opcodes", 0x20000, pos)
        name, arg = spec
        at = pos
        pos += 1
        value: Any = None
        try:
            if arg in ("1", "2", "4", "8"):
                width = int(arg)
                pos = take(pos, width)
                if pos + width > end:
                    break
                value = int.from_bytes(data[pos:pos + width], "little")
                pos += width
            elif arg and arg[0] in "cs":
                width = int(arg[1])
                pos = take(pos, width)
                if pos + width > end:
                    break
                n = int.from_bytes(data[pos:pos + width], "little", signed=arg[0] == "s")
                pos += width
                if n < 0:
                    break
                pos = take(pos, n)
                if n > end - pos:
                    break
                value = data[pos:pos + n]
                pos += n
            elif arg in ("line", "uline"):
                try:
                    value, pos = line(pos, arg == "line")
                except _Fail:
                    break
            elif arg == "line2":
                try:
                    module, pos = line(pos)
                    qual, pos = line(pos, False)  # pickle.py accepts an empty name; C does not
                except _Fail:
                    break
                value = (module, qual)
        except IndexError:  # pragma: no cover - bounds are checked above
            break
        try:
            if name in ("GLOBAL", "INST"):
                try:
                    module = value[0].decode("utf-8")
                    qual = value[1].decode("utf-8")
                except UnicodeDecodeError:
                    raise _Fail from None
                if not importable(module):
                    raise _Fail
                found.append(Reach(at, name, module, qual))
                if not every:
                    return found
                if name == "INST":
                    pop_mark()
                stack.append(None)
            elif name == "STACK_GLOBAL":
                module, qual = pop(2)
                if not isinstance(module, str) or not isinstance(qual, str) or not importable(module):
                    if every:
                        found.append(Reach(at, name, None))
                        stack.append(None)
                        continue
                    raise _Fail
                found.append(Reach(at, name, module, qual))
                if not every:
                    return found
                stack.append(None)
            elif name in ("EXT1", "EXT2", "EXT4"):
                if value <= 0 and not every:
                    raise _Fail
                found.append(Reach(at, name, None))
                if not every:
                    return found
                stack.append(None)
            elif name in _CALLS:
                pop(_CALLS[name])
                if not every:
                    return [Reach(at, name)]
                stack.append(None)
            elif name == "OBJ":
                if not pop_mark():
                    raise _Fail
                if not every:
                    return [Reach(at, name)]
                stack.append(None)
            elif name == "STOP":
                pop()
                stack, meta, memo = [], [], {}
                first = False
            elif name == "MARK":
                meta.append(stack)
                stack = []
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(pop()[0])
                stack.append(stack[-1])
            elif name in ("INT", "LONG"):
                text = value[:-1] if name == "LONG" and value.endswith(b"L") else value
                if not _int_c_or_py(text):
                    raise _Fail
                stack.append(None)
            elif name == "FLOAT":
                try:
                    float(value)
                except ValueError:
                    raise _Fail from None
                stack.append(None)
            elif name in _STR_OPS:
                if name == "STRING":
                    if not (len(value) >= 2 and value[0] == value[-1] and value[:1] in (b'"', b"'")):
                        raise _Fail
                    value = value[1:-1]
                try:
                    text = bytes(value).decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    text = bytes(value).decode("latin-1")  # other encodings read it; the name stays literal
                stack.append(text)
            elif name in ("PERSID", "BINPERSID"):
                if name == "BINPERSID":
                    pop()
                if not every and first:
                    raise _Fail  # C pickle.load without persistent_load; torch's runs only on its third pickle
                stack.append(None)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if name == "GET":
                    value = _memo_index(value)
                if value not in memo:
                    if not every:
                        raise _Fail
                    stack.append(None)
                else:
                    stack.append(memo[value])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if name == "PUT":
                    value = _memo_index(value)
                elif name == "MEMOIZE":
                    value = len(memo)
                if not stack:
                    raise _Fail
                memo[value] = stack[-1]
            elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
                pop_mark()
                stack.append(None)
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
                pop_mark()
                if not stack:
                    raise _Fail
            elif name == "APPEND":
                pop(1)
                if not stack:
                    raise _Fail
            elif name == "SETITEM":
                pop(2)
                if not stack:
                    raise _Fail
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                pop(int(name[-1]))
                stack.append(None)
            elif name == "PROTO":
                if value > 5:
                    raise _Fail
            elif name == "FRAME":
                if cfile and not pos < frame_end:
                    frame_end = -1  # the buffer is spent: the frame is read from the file
                if cfile and (frame_end < 0 or pos + value > frame_end):
                    pos = take(pos, value) if frame_end >= 0 else pos
                    frame_end = pos + value
                if value > end - pos:
                    raise _Fail
            elif name == "NEXT_BUFFER":
                raise _Fail  # no native reader passes out-of-band buffers
            elif name == "READONLY_BUFFER":
                if not stack:
                    raise _Fail
            else:  # plain pushes: NONE, BININT*, BINFLOAT, LONG1/4, BINBYTES*, BYTEARRAY8, EMPTY_*, NEWTRUE/FALSE
                stack.append(None)
        except _Fail:
            if not every:
                return found
            stack, meta = [], []  # recover, and keep naming what follows
    return found
