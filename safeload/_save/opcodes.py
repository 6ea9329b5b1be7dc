"""The pickle opcodes ``safeload.save`` writes and their byte encoders.

Protocol 2 and below only, no FRAME: the opcodes that ``torch.load(weights_only=True)`` reads. The names are
those of :mod:`pickletools`."""

from __future__ import annotations

import struct

MARK = b"("
STOP = b"."
POP = b"0"
POP_MARK = b"1"
BININT = b"J"
BININT1 = b"K"
BININT2 = b"M"
NONE = b"N"
BINUNICODE = b"X"
APPEND = b"a"
BUILD = b"b"
GLOBAL = b"c"
APPENDS = b"e"
BINGET = b"h"
LONG_BINGET = b"j"
EMPTY_LIST = b"]"
BINPUT = b"q"
LONG_BINPUT = b"r"
SETITEM = b"s"
TUPLE = b"t"
SETITEMS = b"u"
EMPTY_DICT = b"}"
EMPTY_TUPLE = b")"
BINFLOAT = b"G"
REDUCE = b"R"
BINPERSID = b"Q"
PROTO2 = b"\x80\x02"
NEWOBJ = b"\x81"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"
LONG1 = b"\x8a"
LONG4 = b"\x8b"
TUPLE_N = (EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3)

pack_I = struct.Struct("<I").pack
pack_i = struct.Struct("<i").pack
pack_H = struct.Struct("<H").pack
pack_d = struct.Struct(">d").pack


def int_op(v: int) -> bytes:
    if 0 <= v < 0x100:
        return BININT1 + bytes((v,))
    if 0 <= v < 0x10000:
        return BININT2 + pack_H(v)
    if -0x80000000 <= v < 0x80000000:
        return BININT + pack_i(v)
    raw = v.to_bytes((v.bit_length() >> 3) + 1, "little", signed=True)
    if len(raw) < 0x100:
        return LONG1 + bytes((len(raw),)) + raw
    return LONG4 + pack_i(len(raw)) + raw


def str_op(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")
    return BINUNICODE + pack_I(len(raw)) + raw


def int_tuple(values: tuple[int, ...]) -> bytes:
    body = b"".join(int_op(v) for v in values)
    if len(values) <= 3:
        return body + TUPLE_N[len(values)]
    return MARK + body + TUPLE


def memo_put(index: int) -> bytes:
    return BINPUT + bytes((index,)) if index < 0x100 else LONG_BINPUT + pack_I(index)


def memo_get(index: int) -> bytes:
    return BINGET + bytes((index,)) if index < 0x100 else LONG_BINGET + pack_I(index)
