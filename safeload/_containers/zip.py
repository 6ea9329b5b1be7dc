"""A strict zip reader: one reading of the archive or a refusal.

Python's ``zipfile`` trusts the central directory and ignores what lies around it, so a file can be read one way
by ``zipfile`` and another way by a tool that walks local headers. This reader refuses every such ambiguity:

* exactly one end-of-central-directory record, ending exactly at the end of the file (no trailing data);
* members that start at byte 0 and follow each other with no gaps or overlaps, the central directory right after
  them (no data before the archive, none hidden between members);
* each local header agreeing with its central entry (name, method, sizes, CRC unless a data descriptor follows);
* no duplicate names, no names with ``..``, a leading ``/`` or a backslash; no encryption; only stored (0) and
  deflated (8) members; at most ``max_members`` of them;
* CRC-32 verified when a member is read (deferred when the caller maps records without reading them).
"""

from __future__ import annotations

import struct
from typing import Any
import zlib
from dataclasses import dataclass

from ..errors import FormatError, LimitExceededError

__all__ = ["ZipArchive", "ZipMember"]

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOC = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CDIR = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")


@dataclass(frozen=True)
class ZipMember:
    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    end: int  # first byte after the data and any data descriptor


def _bad(what: str, offset: int | None = None, why: str = "", member: str | None = None) -> FormatError:
    return FormatError(what, offset=offset, member=member,
                       why=why or "an archive that two zip readers could read differently is refused")


class ZipArchive:
    def __init__(self, data: bytes | memoryview, max_members: int = 1_000_000) -> None:
        self.data = data
        self.members: dict[str, ZipMember] = {}
        self._parse(max_members)

    def _find_eocd(self) -> int:
        data = self.data
        n = len(data)
        lo = max(0, n - (22 + 0xFFFF))
        tail = bytes(data[lo:n])
        found = []
        i = tail.rfind(b"PK\x05\x06")
        while i >= 0:
            pos = lo + i
            if pos + 22 <= n:
                comment_len = struct.unpack_from("<H", data, pos + 20)[0]
                if pos + 22 + comment_len == n:
                    found.append(pos)
            i = tail.rfind(b"PK\x05\x06", 0, i)
        if not found:
            raise _bad("No zip end-of-central-directory record ends the file",
                       why="the archive is truncated, or data was appended after it")
        if len(found) > 1:
            raise _bad("Several zip end-of-central-directory records", found[0],
                       why="an archive hidden in another archive's comment can be read two ways")
        return found[0]

    def _parse(self, max_members: int) -> None:
        data = self.data
        eocd = self._find_eocd()
        _sig, disk, cd_disk, _n_here, count, cd_size, cd_offset, _clen = _EOCD.unpack_from(data, eocd)
        cd_end_expected = eocd
        loc = eocd - _EOCD64_LOC.size
        has_zip64 = loc >= 0 and bytes(data[loc : loc + 4]) == b"PK\x06\x07"
        if not has_zip64 and (0xFFFF in (count, disk) or 0xFFFFFFFF in (cd_size, cd_offset)):
            raise _bad("zip64 end-of-central-directory locator is missing", eocd)
        if has_zip64:  # torch's writer always adds the zip64 records
            _s, _d, eocd64, _disks = _EOCD64_LOC.unpack_from(data, loc)
            if eocd64 + _EOCD64.size > loc or bytes(data[eocd64 : eocd64 + 4]) != b"PK\x06\x06":
                raise _bad("zip64 end-of-central-directory record is malformed", loc)
            _s, _rsize, _vm, _vn, disk, cd_disk, _n_here, count, cd_size, cd_offset = _EOCD64.unpack_from(data, eocd64)
            cd_end_expected = eocd64
        if disk != 0 or cd_disk != 0:
            raise _bad("Multi-disk zip archives are not supported", eocd)
        if count > max_members:
            raise LimitExceededError("max_members", count, max_members, what=f"The archive lists {count} members")
        if cd_offset + cd_size != cd_end_expected:
            raise _bad("The zip central directory does not end where the end record begins", eocd,
                       why="bytes hidden between the directory and its end record")
        pos = cd_offset
        entries: list[ZipMember] = []
        for _ in range(count):
            if pos + _CDIR.size > cd_end_expected:
                raise _bad("The zip central directory is truncated", pos)
            (sig, _made, _need, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen, _disk, _iattr, _eattr,
             hoff) = _CDIR.unpack_from(data, pos)
            if sig != b"PK\x01\x02":
                raise _bad("Bad zip central directory entry", pos)
            name_raw = bytes(data[pos + 46 : pos + 46 + nlen])
            extra = bytes(data[pos + 46 + nlen : pos + 46 + nlen + elen])
            pos += 46 + nlen + elen + clen
            if pos > cd_end_expected:
                raise _bad("A zip central directory entry runs past the directory", pos)
            name = _decode_name(name_raw, flags, pos)
            usize, csize, hoff = _zip64_sizes(extra, usize, csize, hoff)
            self._check_name(name, hoff)
            if flags & 0x1 or flags & 0x40:
                raise FormatError(f"Encrypted zip member {name!r}", member=name, offset=hoff,
                                  why="safeload cannot check what it cannot read",
                                  fix="Decrypt the archive with a trusted tool first")
            if method not in (0, 8):
                raise _bad(f"Zip member {name!r} uses compression method {method}", hoff,
                           why="only stored and deflated members are read", member=name)
            if name in self.members:
                raise _bad(f"Duplicate zip member {name!r}", hoff, member=name,
                           why="two members with one name are read differently by different tools")
            member = self._local(name, flags, method, crc, csize, usize, hoff)
            self.members[name] = member
            entries.append(member)
        if pos != cd_end_expected:
            raise _bad("The zip central directory has trailing bytes", pos)
        expected = 0
        for member in sorted(entries, key=lambda m: m.header_offset):
            if member.header_offset != expected:
                where = "before the first member" if expected == 0 else "between members"
                raise _bad(f"Unexplained bytes {where} of the zip archive", expected, member=member.name,
                           why="data before or between members can hide another file (a pickle that is also a zip)")
            expected = member.end
        if expected != cd_offset:
            raise _bad("Unexplained bytes between the last zip member and the central directory", expected)

    @staticmethod
    def _check_name(name: str, offset: int) -> None:
        parts = name.split("/")
        if not name or name.startswith("/") or "\\" in name or ".." in parts or "\x00" in name:
            raise _bad(f"Unsafe zip member name {name!r}", offset, member=name,
                       why="absolute paths, '..' and backslashes are path-traversal tricks")

    def _local(self, name: str, flags: int, method: int, crc: int, csize: int, usize: int, hoff: int) -> ZipMember:
        data = self.data
        if hoff + _LOCAL.size > len(data):
            raise _bad(f"Zip member {name!r} points past the end of the file", hoff, member=name)
        sig, _need, lflags, lmethod, _t, _d, lcrc, lcsize, lusize, nlen, elen = _LOCAL.unpack_from(data, hoff)
        if sig != b"PK\x03\x04":
            raise _bad(f"Zip member {name!r} has no local header", hoff, member=name)
        lname = _decode_name(bytes(data[hoff + 30 : hoff + 30 + nlen]), lflags, hoff)
        lextra = bytes(data[hoff + 30 + nlen : hoff + 30 + nlen + elen])
        lusize, lcsize, _ = _zip64_sizes(lextra, lusize, lcsize, 0)
        if lname != name or lmethod != method or (lflags & 0x1) != (flags & 0x1):
            raise _bad(f"Zip member {name!r}: local header disagrees with the central directory", hoff, member=name)
        has_descriptor = bool(lflags & 0x8)
        if not has_descriptor and (lcrc, lcsize, lusize) != (crc, csize, usize):
            raise _bad(f"Zip member {name!r}: local sizes or CRC disagree with the central directory", hoff,
                       member=name)
        start = hoff + 30 + nlen + elen
        end = start + csize
        if end > len(data):
            raise _bad(f"Zip member {name!r} runs past the end of the file", hoff, member=name)
        if has_descriptor:
            end = self._skip_descriptor(name, end, crc, csize, usize)
        return ZipMember(name, method, flags, crc, csize, usize, hoff, start, end)

    def _skip_descriptor(self, name: str, pos: int, crc: int, csize: int, usize: int) -> int:
        data = self.data
        if bytes(data[pos : pos + 4]) == b"PK\x07\x08":
            pos += 4
        for width, fmt in ((8, "<IQQ"), (4, "<III")):
            size = 4 + 2 * width
            if pos + size <= len(data) and struct.unpack_from(fmt, data, pos) == (crc, csize, usize):
                return pos + size
        raise _bad(f"Zip member {name!r}: data descriptor disagrees with the central directory", pos, member=name)

    def names(self) -> list[str]:
        return list(self.members)

    def raw(self, name: str) -> memoryview:
        """The stored bytes of a member without copying (stored members only)."""
        member = self.members[name]
        if member.method != 0:
            raise FormatError(f"Zip member {name!r} is compressed", member=name,
                              why="this record must be stored uncompressed to be mapped")
        return memoryview(self.data)[member.data_offset : member.data_offset + member.size]

    def read_writeable(self, name: str, verify: bool = True) -> Any:
        """A stored member's bytes, copied once into writeable memory and CRC-checked (unless the caller checks
        it later with :meth:`verify`)."""
        from .._source import copy_range

        member = self.members[name]
        if member.method != 0:
            return bytearray(self.read(name))
        buf = copy_range(self.data, member.data_offset, member.size)
        if verify:
            self.verify(name, buf)
        return buf

    def read(self, name: str, max_size: int | None = None, verify: bool = True, limit: str = "max_alloc") -> bytes:
        member = self.members[name]
        if max_size is not None and member.size > max_size:
            raise LimitExceededError(limit, member.size, max_size, member=name,
                                     what=f"Zip member {name!r} inflates to {member.size} bytes")
        raw = memoryview(self.data)[member.data_offset : member.data_offset + member.compressed_size]
        if member.method == 0:
            out = bytes(raw)
        else:
            inflater = zlib.decompressobj(-15)
            try:
                out = inflater.decompress(raw, member.size + 1)
            except zlib.error as exc:
                raise _bad(f"Zip member {name!r} does not inflate", member.data_offset, member=name, why=str(exc)) from None
            if len(out) != member.size or not inflater.eof:
                raise _bad(f"Zip member {name!r} inflates to a size other than the declared {member.size}",
                           member.data_offset, member=name)
        if verify:
            self.verify(name, out)
        return out

    def verify(self, name: str, content: bytes | memoryview) -> None:
        member = self.members[name]
        if zlib.crc32(content) & 0xFFFFFFFF != member.crc:
            raise FormatError(f"Zip member {name!r} fails its CRC-32 check", member=name,
                              offset=member.data_offset, why="the record was changed after the archive was written")


def _decode_name(raw: bytes, flags: int, offset: int) -> str:
    """A member name: UTF-8 when flag bit 11 says so, else cp437. Invalid UTF-8 is a FormatError."""
    try:
        return raw.decode("utf-8" if flags & 0x800 else "cp437")
    except UnicodeDecodeError:
        raise _bad(f"Zip member name {raw!r} is not valid UTF-8", offset,
                   why="flag bit 11 says the name is UTF-8, and it is not") from None


def _zip64_sizes(extra: bytes, usize: int, csize: int, hoff: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != 0x0001:
            continue
        fields = [v for v in (usize, csize, hoff)]
        i = 0
        for index in range(3):
            if fields[index] == 0xFFFFFFFF:
                if i + 8 > len(body):
                    raise _bad("zip64 extra field is truncated")
                fields[index] = struct.unpack_from("<Q", body, i)[0]
                i += 8
        return fields[0], fields[1], fields[2]
    return usize, csize, hoff
