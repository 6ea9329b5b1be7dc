"""The protobuf wire format, as far as safeload's readers need it: varints, signed 64-bit values and a walker over
one message's fields. Used by the MindSpore checkpoint reader (safeload/_containers/mindspore.py), the Paddle
DenseTensor descriptor (safeload/_containers/paddle.py) and the ONNX sniffer (safeload/_kinds.py).

Only what every protobuf reader reads the same way is accepted: a varint of at most 10 bytes whose value fits 64
bits (protobuf's Python decoder masks wider values to 64 bits where a stricter reader refuses them, so such a
varint is refused), and fields of wire type 0 (varint) or 2 (length-delimited) whose lengths stay inside the
message. Imports nothing but safeload/errors.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._hints import Any
from .errors import FormatError

__all__ = ["fields", "int64", "varint"]

_MAX_VARINT = 10


def varint(data: Any, pos: int, end: int) -> tuple[int, int]:
    """``(value, position after it)`` of the varint at ``pos``; it must end before ``end``."""
    result = shift = 0
    stop = pos + _MAX_VARINT
    while True:
        if pos >= stop:
            raise FormatError("Protobuf varint longer than 10 bytes", offset=pos,
                              why="protobuf readers stop at 10 bytes; a longer one is corrupt or crafted")
        if pos >= end:
            raise FormatError("Truncated protobuf varint", offset=pos, why="the file is truncated or corrupt")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if result >> 64:
                raise FormatError("Protobuf varint does not fit 64 bits", offset=pos - 1,
                                  why="protobuf's Python decoder cuts it to 64 bits where other readers refuse it")
            return result, pos
        shift += 7


def int64(value: int) -> int:
    """A varint read as protobuf's ``int64`` (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(data: Any, pos: int, end: int, what: str) -> Iterator[tuple[int, int, Any, int]]:
    """``(field number, wire type, value, position after it)`` for each field of the message ``data[pos:end]``:
    the value of a varint field, or ``(start, stop)`` of a length-delimited one. Other wire types are refused."""
    while pos < end:
        key, pos = varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(data, pos, end)
            yield field, wire, value, pos
        elif wire == 2:
            length, pos = varint(data, pos, end)
            if length > end - pos:
                raise FormatError(f"Protobuf {what} field {field} claims {length} bytes but {end - pos} remain",
                                  offset=pos, why="the file is truncated or a length lies")
            yield field, wire, (pos, pos + length), pos
            pos += length
        else:
            raise FormatError(f"Unexpected protobuf wire type {wire} in a {what} (field {field})", offset=pos,
                              why="this format uses only varint and length-delimited fields")
