"""The torch-style zip writer: a layout planned in full before a byte is written, then streamed to any sink."""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from collections.abc import Callable

from .._hints import Any
from .opcodes import pack_H
from .tensors import Record

_ALIGN = 64
ZIP64_LIMIT = 0xFFFFFFFF  # sizes and offsets at or above this go into zip64 fields (a variable for the tests)
_CHUNK = 1 << 22


class Member:
    __slots__ = ("name", "nbytes", "source", "offset", "extra", "zip64", "data_offset")

    def __init__(self, name: str, nbytes: int, source: Any) -> None:
        self.name = name
        self.nbytes = nbytes
        self.source = source  # bytes, or a Record
        self.offset = 0  # the rest is set by ZipPlan
        self.extra = b""
        self.zip64 = False
        self.data_offset = 0


class ZipPlan:
    """The layout of a torch-style zip: every offset is known before a byte is written, so the archive streams
    into any sink (a file, a pipe, a zstd frame) with no seeking. Records are stored, start on 64-byte boundaries
    (torch pads with an ``FB`` extra field) and carry a data descriptor after their bytes, as torch's writer does.
    """

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        pos = 0
        for m in members:
            name = m.name.encode("ascii")
            m.offset = pos
            m.zip64 = m.nbytes >= ZIP64_LIMIT or pos >= ZIP64_LIMIT
            z64 = struct.pack("<HHQQ", 1, 16, 0, 0) if m.zip64 else b""
            header = 30 + len(name) + len(z64)
            pad = (-(pos + header)) % _ALIGN
            if 0 < pad < 4:
                pad += _ALIGN
            fb = (b"FB" + pack_H(pad - 4) + b"Z" * (pad - 4)) if pad else b""
            m.extra = z64 + fb
            m.data_offset = pos + header + pad
            pos = m.data_offset + m.nbytes + (24 if m.zip64 else 16)
        self.cd_offset = pos
        self.central = [self._central(m) for m in members]
        self.cd_size = sum(len(c) for c in self.central)
        end = self.cd_offset + self.cd_size
        self.zip64 = (any(m.zip64 for m in members) or len(members) >= 0xFFFF or end >= ZIP64_LIMIT)
        self.total = end + (56 + 20 if self.zip64 else 0) + 22

    @staticmethod
    def _central(m: Member) -> bytearray:
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


def torch_members(pkl: bytes, records: list[Record]) -> list[Member]:
    prefix = "archive/"
    sid = str(int.from_bytes(hashlib.blake2b(pkl, digest_size=16).digest(), "big")).rjust(40, "0")[:40]
    members = [Member(prefix + "data.pkl", len(pkl), pkl),
               Member(prefix + ".format_version", 1, b"1"),
               Member(prefix + ".storage_alignment", 2, b"64"),
               Member(prefix + "byteorder", len(sys.byteorder), sys.byteorder.encode("ascii"))]
    members += [Member(f"{prefix}data/{r.key}", r.nbytes, r) for r in records]
    members += [Member(prefix + "version", 2, b"3\n"),
                Member(prefix + ".data/serialization_id", 40, sid.encode("ascii"))]
    return members
