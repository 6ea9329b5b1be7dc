"""The pickle opcode set as one data table, and the argument readers it names.

Everything that needs to know an opcode's argument or protocol reads it from :data:`OPCODES`: the walker
(:func:`iter_ops`), the scanner, ``safeload info`` and the VM's dispatch table. A test checks the table against
``pickletools.opcodes`` and ``pickle``, so a width written wrong here fails the suite.

The ``action`` column says what an opcode may do, and is how the VM and the scanner agree on what is dangerous:

``plain``     pushes or rearranges plain data (ints, strings, containers)
``memo``      reads or writes the memo
``global``    names a global by ``module.qualname`` (resolved through the policy, never imported)
``call``      calls what is on the stack (REDUCE, NEWOBJ, ...): only safeload's own rebuilders may be called
``build``     applies state to an object (BUILD)
``persid``    asks the container for a persistent object (torch storages)
``forbidden`` never valid in a file (out-of-band buffers)
``frame``     protocol 4 framing
``stop``      ends the stream
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from ._record import record
from .errors import FormatError

__all__ = ["OPCODES", "OpcodeSpec", "by_code", "iter_ops", "read_arg"]

_MAX_LINE = 1 << 16  # a text-mode argument (protocol 0) longer than this is refused


def _truncated(pos: int, what: str) -> FormatError:
    return FormatError(
        f"Truncated pickle: {what} runs past the end of the stream",
        offset=pos,
        why="the file ends in the middle of an opcode, or a length field claims more bytes than exist",
    )


def _line(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    nl = data.find(b"\n", pos, min(end, pos + _MAX_LINE + 1))
    if nl < 0:
        if end - pos > _MAX_LINE:
            raise FormatError("Text argument too long", offset=pos, why=f"protocol-0 lines are limited to {_MAX_LINE} bytes")
        raise _truncated(pos, "a newline-terminated argument")
    return data[pos:nl], nl + 1


def _fixed(width: int, fmt: str | None) -> Callable[[bytes, int, int], tuple[object, int]]:
    unpack = struct.Struct(fmt).unpack_from if fmt else None

    def read(data: bytes, pos: int, end: int) -> tuple[object, int]:
        if pos + width > end:
            raise _truncated(pos, f"a {width}-byte argument")
        if unpack is None:
            return data[pos], pos + 1
        return unpack(data, pos)[0], pos + width

    read.__name__ = f"read_fixed{width}"
    return read


def _counted(width: int) -> Callable[[bytes, int, int], tuple[object, int]]:
    """A length field of ``width`` bytes, then that many bytes. The length is checked against what remains."""
    unpack = {1: None, 4: struct.Struct("<I").unpack_from, 8: struct.Struct("<Q").unpack_from}[width]

    def read(data: bytes, pos: int, end: int) -> tuple[object, int]:
        if pos + width > end:
            raise _truncated(pos, "a length field")
        n = data[pos] if unpack is None else unpack(data, pos)[0]
        start = pos + width
        if n > end - start:
            raise FormatError(
                f"Length field claims {n} bytes but only {end - start} remain",
                offset=pos - 1,
                why="a length claim beyond the end of the stream is either truncation or an attempt to force a huge allocation",
            )
        return data[start : start + n], start + n

    read.__name__ = f"read_counted{width}"
    return read


def _read_line(data: bytes, pos: int, end: int) -> tuple[object, int]:
    return _line(data, pos, end)


def _read_two_lines(data: bytes, pos: int, end: int) -> tuple[object, int]:
    a, pos = _line(data, pos, end)
    b, pos = _line(data, pos, end)
    return (a, b), pos


def _read_long(width: int) -> Callable[[bytes, int, int], tuple[object, int]]:
    counted = _counted(width)

    def read(data: bytes, pos: int, end: int) -> tuple[object, int]:
        raw, pos = counted(data, pos, end)
        return int.from_bytes(raw, "little", signed=True), pos  # type: ignore[arg-type]

    read.__name__ = f"read_long{width}"
    return read


READERS: dict[str, Callable[[bytes, int, int], tuple[object, int]]] = {
    "none": lambda data, pos, end: (None, pos),
    "u1": _fixed(1, None),
    "u2": _fixed(2, "<H"),
    "i4": _fixed(4, "<i"),
    "u4": _fixed(4, "<I"),
    "u8": _fixed(8, "<Q"),
    "f8": _fixed(8, ">d"),
    "line": _read_line,
    "two_lines": _read_two_lines,
    "bytes1": _counted(1),
    "bytes4": _counted(4),
    "bytes8": _counted(8),
    "long1": _read_long(1),
    "long4": _read_long(4),
}


@record(frozen=True)
class OpcodeSpec:
    name: str
    code: int
    arg: str  # a key of READERS
    proto: int  # the protocol that introduced it
    action: str  # see the module docstring

    @property
    def char(self) -> bytes:
        return bytes([self.code])


# name, code, argument reader, protocol, action. Ordered by protocol as in pickletools.
_TABLE = [
    ("INT", b"I", "line", 0, "plain"),
    ("BININT", b"J", "i4", 1, "plain"),
    ("BININT1", b"K", "u1", 1, "plain"),
    ("BININT2", b"M", "u2", 1, "plain"),
    ("LONG", b"L", "line", 0, "plain"),
    ("LONG1", b"\x8a", "long1", 2, "plain"),
    ("LONG4", b"\x8b", "long4", 2, "plain"),
    ("STRING", b"S", "line", 0, "plain"),
    ("BINSTRING", b"T", "bytes4", 1, "plain"),
    ("SHORT_BINSTRING", b"U", "bytes1", 1, "plain"),
    ("BINBYTES", b"B", "bytes4", 3, "plain"),
    ("SHORT_BINBYTES", b"C", "bytes1", 3, "plain"),
    ("BINBYTES8", b"\x8e", "bytes8", 4, "plain"),
    ("BYTEARRAY8", b"\x96", "bytes8", 5, "plain"),
    ("NEXT_BUFFER", b"\x97", "none", 5, "forbidden"),
    ("READONLY_BUFFER", b"\x98", "none", 5, "forbidden"),
    ("NONE", b"N", "none", 0, "plain"),
    ("NEWTRUE", b"\x88", "none", 2, "plain"),
    ("NEWFALSE", b"\x89", "none", 2, "plain"),
    ("UNICODE", b"V", "line", 0, "plain"),
    ("SHORT_BINUNICODE", b"\x8c", "bytes1", 4, "plain"),
    ("BINUNICODE", b"X", "bytes4", 1, "plain"),
    ("BINUNICODE8", b"\x8d", "bytes8", 4, "plain"),
    ("FLOAT", b"F", "line", 0, "plain"),
    ("BINFLOAT", b"G", "f8", 1, "plain"),
    ("EMPTY_LIST", b"]", "none", 1, "plain"),
    ("APPEND", b"a", "none", 0, "plain"),
    ("APPENDS", b"e", "none", 1, "plain"),
    ("LIST", b"l", "none", 0, "plain"),
    ("EMPTY_TUPLE", b")", "none", 1, "plain"),
    ("TUPLE", b"t", "none", 0, "plain"),
    ("TUPLE1", b"\x85", "none", 2, "plain"),
    ("TUPLE2", b"\x86", "none", 2, "plain"),
    ("TUPLE3", b"\x87", "none", 2, "plain"),
    ("EMPTY_DICT", b"}", "none", 1, "plain"),
    ("DICT", b"d", "none", 0, "plain"),
    ("SETITEM", b"s", "none", 0, "plain"),
    ("SETITEMS", b"u", "none", 1, "plain"),
    ("EMPTY_SET", b"\x8f", "none", 4, "plain"),
    ("ADDITEMS", b"\x90", "none", 4, "plain"),
    ("FROZENSET", b"\x91", "none", 4, "plain"),
    ("POP", b"0", "none", 0, "plain"),
    ("DUP", b"2", "none", 0, "plain"),
    ("MARK", b"(", "none", 0, "plain"),
    ("POP_MARK", b"1", "none", 1, "plain"),
    ("GET", b"g", "line", 0, "memo"),
    ("BINGET", b"h", "u1", 1, "memo"),
    ("LONG_BINGET", b"j", "u4", 1, "memo"),
    ("PUT", b"p", "line", 0, "memo"),
    ("BINPUT", b"q", "u1", 1, "memo"),
    ("LONG_BINPUT", b"r", "u4", 1, "memo"),
    ("MEMOIZE", b"\x94", "none", 4, "memo"),
    ("EXT1", b"\x82", "u1", 2, "global"),
    ("EXT2", b"\x83", "u2", 2, "global"),
    ("EXT4", b"\x84", "i4", 2, "global"),
    ("GLOBAL", b"c", "two_lines", 0, "global"),
    ("STACK_GLOBAL", b"\x93", "none", 4, "global"),
    ("REDUCE", b"R", "none", 0, "call"),
    ("BUILD", b"b", "none", 0, "build"),
    ("INST", b"i", "two_lines", 0, "call"),
    ("OBJ", b"o", "none", 1, "call"),
    ("NEWOBJ", b"\x81", "none", 2, "call"),
    ("NEWOBJ_EX", b"\x92", "none", 4, "call"),
    ("PROTO", b"\x80", "u1", 2, "plain"),
    ("STOP", b".", "none", 0, "stop"),
    ("FRAME", b"\x95", "u8", 4, "frame"),
    ("PERSID", b"P", "line", 0, "persid"),
    ("BINPERSID", b"Q", "none", 1, "persid"),
]

OPCODES: tuple[OpcodeSpec, ...] = tuple(
    OpcodeSpec(name, code[0], arg, proto, action) for name, code, arg, proto, action in _TABLE
)

#: code -> spec; None where the byte is not an opcode. Indexing by byte value is the hot lookup.
by_code: list[OpcodeSpec | None] = [None] * 256
for _spec in OPCODES:
    by_code[_spec.code] = _spec


def opcode_name(code: int) -> str:
    spec = by_code[code]
    return spec.name if spec is not None else f"0x{code:02x}"


def read_arg(spec: OpcodeSpec, data: bytes, pos: int, end: int) -> tuple[object, int]:
    """Read the argument of ``spec`` whose bytes start at ``pos``; return it and the position after it."""
    return READERS[spec.arg](data, pos, end)


def iter_ops(data: bytes, pos: int = 0, end: int | None = None) -> Iterator[tuple[OpcodeSpec, object, int]]:
    """Walk one pickle stream, yielding ``(spec, arg, offset)`` up to and including STOP.

    Raises FormatError for an unknown opcode or a stream that ends before STOP. Nothing is built.
    """
    end = len(data) if end is None else end
    while pos < end:
        spec = by_code[data[pos]]
        if spec is None:
            raise FormatError(f"Unknown opcode byte 0x{data[pos]:02x}", offset=pos, why="this byte is not a pickle opcode")
        arg, nxt = READERS[spec.arg](data, pos + 1, end)
        yield spec, arg, pos
        if spec.code == 0x2E:  # STOP
            return
        pos = nxt
    raise _truncated(pos, "the stream (no STOP opcode)")
