"""A canonical zip reader: the one reading every native zip reader agrees on, or a refusal.

The native readers of a checkpoint zip are CPython's ``zipfile`` (``numpy.load``, ``zipfile``), miniz (torch's
``PyTorchStreamReader``) and Info-ZIP ``unzip``. They locate, walk and name members differently; each rule below
closes one difference, and SECURITY.md ("Zip archives: one reading") states the native behaviour it mirrors:

* the end record: the last ``PK\x05\x06`` signature in the last 22 + 65,535 + 4,096 bytes (the widest window a
  native reader searches backwards, taking the last one), ending exactly at the end of the file, and the only
  one that does;
* zip64: the locator names the 56-byte zip64 end record right before it (where CPython reads it and where miniz
  follows the pointer), the record holds no extensible data, the 32-bit fields agree with it or are the sentinel,
  one disk, entries on this disk equal to the total;
* the central directory walked by its byte size (CPython) and by its entry count (miniz) ends at the same byte;
* members that start at byte 0 and follow each other with no gaps or overlaps, the directory right after them;
* each local header agreeing with its central entry (raw name bytes, method, flag bits, sizes, CRC, data
  descriptor);
* names unique after ASCII case folding of the raw bytes (miniz) and after Unicode case folding, NFC and
  separator normalisation of the decoded text (CPython, unzip); no ``..``, leading ``/``, backslash or NUL;
* extra fields an exact chain of known ids (zip64, UT, ux, NTFS, torch's FB padding with its fixed content);
* stored members whose compressed size equals their size; deflated members that inflate to exactly their size
  and end exactly at their compressed size; CRC-32 verified when a member is read (deferred when the caller maps
  records without reading them); no encryption, no directory entry with data, no symbolic link or volume label;
  at most ``max_members`` members.
"""

from __future__ import annotations

import struct
from collections import namedtuple
import unicodedata
from functools import partial
from operator import itemgetter
import zlib

from .._hints import TYPE_CHECKING, Any
from .. import _budget
from .._source import copy_range
from ..errors import FormatError, LimitExceededError

__all__ = ["ZipArchive", "ZipMember"]

# Cython's pure-Python mode, as in safeload/_vm.py: compiled, the central directory walk reads its fixed fields
# from a typed view of the bytes; as a .py file, safeload/_cy.py stands in and ``struct`` reads the same fields.
if TYPE_CHECKING or __file__.endswith(".py"):
    from .. import _cy as cython
else:
    import cython
    from cython.cimports.cpython.bytes import PyBytes_FromStringAndSize

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOC = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CDIR = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_DESCRIPTOR64 = struct.Struct("<4sIQQ")
_DESCRIPTOR32 = struct.Struct("<4sIII")

#: how far back a native reader looks for the end record: CPython 22 + 65,536 bytes, miniz up to
#: 22 + 65,535 + 4,093 (it searches in 4 KiB blocks and stops only once a block starts that far back)
_EOCD_WINDOW = 22 + 0xFFFF + 4096
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
#: flag bits that must be the same in a local header and its central entry: encrypted, data descriptor,
#: compressed patch, strong encryption, UTF-8 name, masked local header
_FLAG_BITS = 0x1 | 0x8 | 0x20 | 0x40 | 0x800 | 0x2000
#: Info-ZIP unzip 6.0 skips members that need a version above 4.6 to extract; CPython refuses those above 6.3
_MAX_EXTRACT_VERSION = 46
#: flag bits refused: encrypted, compressed patch data, strong encryption, masked local header
_REFUSED_FLAGS = 0x1 | 0x20 | 0x40 | 0x2000
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000

_ZIP64 = 0x0001
_NTFS = 0x000A
_TORCH_PAD = 0x4246  # b"FB": torch's writer pads each local header so that its record starts aligned
_UT = 0x5455
_UX = 0x7875
_UNICODE_PATH = 0x7075
_KNOWN_EXTRA = {_ZIP64: "zip64", _NTFS: "NTFS", _TORCH_PAD: "torch alignment padding", _UT: "extended timestamp (UT)",
                _UX: "Unix uid/gid (ux)"}
_FIX = "Re-save the file with the framework that wrote it (torch.save, numpy.savez) from a trusted copy"


if TYPE_CHECKING:
    from typing import NamedTuple

    class ZipMember(NamedTuple):
        """One member as the central directory and its local header (checked to agree) describe it. A tuple: made
        once per member, never changed."""

        name: str
        method: int
        flags: int
        crc: int
        compressed_size: int
        size: int
        header_offset: int
        data_offset: int
        end: int  # first byte after the data and any data descriptor
else:  # the same tuple, made without importing typing (safeload/_hints.py); tests/test_zip_canonical.py compares
    ZipMember = namedtuple("ZipMember", "name method flags crc compressed_size size header_offset data_offset end")


_new_member = partial(tuple.__new__, ZipMember)  # the fields in order, without NamedTuple's Python-level __new__
_BY_HEADER = itemgetter(ZipMember._fields.index("header_offset"))


@cython.cfunc
@cython.inline
@cython.returns(cython.Py_ssize_t)
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, value=cython.Py_ssize_t)
def _u16(buf: Any, a: int) -> int:
    """The little-endian unsigned 2-byte integer at ``a`` (compiled build; indexes are bounds-checked)."""
    value: int = buf[a] | (buf[a + 1] << 8)
    return value


@cython.cfunc
@cython.inline
@cython.returns(cython.Py_ssize_t)
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, value=cython.Py_ssize_t)
def _u32(buf: Any, a: int) -> int:
    """The little-endian unsigned 4-byte integer at ``a`` (compiled build; indexes are bounds-checked)."""
    value: int = buf[a] | (buf[a + 1] << 8) | (buf[a + 2] << 16) | (cython.cast(cython.Py_ssize_t, buf[a + 3]) << 24)
    return value


@cython.cfunc
@cython.inline
@cython.returns(cython.ulonglong)
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, i=cython.Py_ssize_t, value=cython.ulonglong)
def _u64(buf: Any, a: int) -> int:
    """The little-endian unsigned 8-byte integer at ``a`` (compiled build; indexes are bounds-checked)."""
    value = 0
    for i in range(a + 7, a - 1, -1):
        value = (value << 8) | buf[i]
    return value


@cython.cfunc
@cython.locals(buf="const unsigned char[:]", a=cython.Py_ssize_t, b=cython.Py_ssize_t)
def _span(data: Any, buf: Any, a: int, b: int) -> bytes:
    """``bytes(data[a:b])`` for ``0 <= a <= b`` (compiled build: copied straight from the typed view when the
    range lies in it, else sliced, truncated at the end as a slice is)."""
    if a == b:
        return b""
    if b <= buf.shape[0]:  # and a < b: buf[a] is inside the view (and bounds-checked all the same)
        made: bytes = PyBytes_FromStringAndSize(  # type: ignore[name-defined]  # noqa: F821
            cython.cast(cython.p_char, cython.address(buf[a])), b - a)
        return made
    return bytes(data[a:b])


def _bad(what: str, offset: int | None = None, why: str = "", member: str | None = None,
         fix: str | None = _FIX) -> FormatError:
    return FormatError(what, offset=offset, member=member, fix=fix,
                       why=why or "an archive that two zip readers could read differently is refused")


def _text_key(name: str) -> str:
    """The key under which two decoded member names are the same member for CPython or unzip: the text in NFC,
    case-folded, with empty and ``.`` path components dropped (CPython compares decoded text; unzip extracts
    ``a//b``, ``./a/b`` and ``a/b/`` to one path, and a case-insensitive file system folds case). miniz's key, the
    raw bytes with ASCII letters folded, is :meth:`bytes.lower` (see ``ZipArchive._walk``)."""
    # NFC leaves ASCII text as it is, and ASCII's case folding is lower()
    folded = name.lower() if name.isascii() else unicodedata.normalize("NFC", name).casefold()
    # no empty component (no leading or trailing "/", no "//") and none that is "." (no leading ".", no "/."):
    # the text is its own key, without splitting it
    if folded and folded[0] != "/" and folded[0] != "." and folded[-1] != "/" and "//" not in folded and (
            "/." not in folded):
        return folded
    parts = folded.split("/")
    if "" in parts or "." in parts:
        return "/".join([p for p in parts if p not in ("", ".")])
    return folded


class ZipArchive:
    def __init__(self, data: bytes | memoryview, max_members: int = 1_000_000) -> None:
        self.data = data
        self.members: dict[str, ZipMember] = {}
        # each distinct extra field is checked once: a checkpoint's members repeat a handful of them
        self._extras: tuple[dict[bytes, dict[int, bytes]], dict[bytes, dict[int, bytes]]] = ({}, {})
        self._parse(max_members)

    def _extra(self, extra: bytes, offset: int, name: str, local: bool) -> dict[int, bytes]:
        """:func:`_extra_fields` of a field not seen yet, remembered in ``self._extras[local]``, where the callers
        look each field up first (the result is only read, never changed)."""
        fields = self._extras[local][extra] = _extra_fields(extra, offset, name, local)
        return fields

    def _find_eocd(self) -> int:
        """The end record every native reader takes: the last ``PK\x05\x06`` in the window they search (miniz skips
        one with fewer than 22 bytes after it, CPython gives up on it; neither checks the comment length). It must
        end exactly at the end of the file, and no earlier record may end there too. Earlier signatures (a stored
        zip inside a member) are read by no native reader and are allowed."""
        data = self.data
        n = len(data)
        lo = max(0, n - _EOCD_WINDOW)
        tail = bytes(data[lo:n])
        found = []
        i = tail.rfind(b"PK\x05\x06")
        while i >= 0:
            found.append(lo + i)
            i = tail.rfind(b"PK\x05\x06", 0, i)
        if not found:
            raise _bad("No zip end-of-central-directory record", why="the archive is truncated or is not a zip")
        ending = [pos for pos in found if pos + _EOCD.size <= n
                  and pos + _EOCD.size + struct.unpack_from("<H", data, pos + 20)[0] == n]
        last = found[0]
        if ending and ending[0] != last:
            raise _bad("A second zip end-of-central-directory signature after the end record", last,
                       why="native zip readers take the last signature and do not check the comment length, so a "
                           "second archive hidden in the comment is what they read")
        if not ending:
            raise _bad("The zip end-of-central-directory record does not end the file", last,
                       why="data after the archive, or a comment length that disagrees with the file size")
        if len(ending) > 1:
            raise _bad("Several zip end-of-central-directory records end the file", last,
                       why="an archive hidden in another archive's comment can be read two ways")
        return last

    def _zip64_end(self, eocd: int, fields: tuple[int, ...]) -> tuple[int, int, int, int, int, int]:
        """The zip64 end record that the locator before the end record names, checked against the 32-bit one.
        Returns (disk, cd_disk, entries on this disk, entries, cd_size, cd_offset) and sets ``self._cd_end``."""
        data = self.data
        loc = eocd - _EOCD64_LOC.size
        _s, loc_disk, eocd64, disks = _EOCD64_LOC.unpack_from(data, loc)
        record = loc - _EOCD64.size
        if record < 0 or eocd64 != record or bytes(data[record : record + 4]) != b"PK\x06\x06":
            raise _bad("The zip64 locator does not point at a zip64 end record right before it", loc,
                       why="CPython reads the zip64 end record from the 56 bytes before the locator, miniz where "
                           "the locator points; the two must be the same record")
        _s, rsize, _vm, _vn, disk, cd_disk, n_here, count, cd_size, cd_offset = _EOCD64.unpack_from(data, record)
        if rsize != _EOCD64.size - 12:
            raise _bad(f"The zip64 end record declares {rsize} bytes instead of 44", record,
                       why="extensible data in the zip64 end record moves it away from where CPython reads it")
        if loc_disk != 0 or disks != 1:
            raise _bad("Multi-disk zip archives are not supported", loc,
                       why="the zip64 locator names another disk (miniz requires exactly one)")
        d32, cd32, here32, count32, size32, off32 = fields
        for what, small, big, sentinel in (("disk number", d32, disk, _U16), ("directory disk", cd32, cd_disk, _U16),
                                           ("entries on this disk", here32, n_here, _U16),
                                           ("entries", count32, count, _U16),
                                           ("directory size", size32, cd_size, _U32),
                                           ("directory offset", off32, cd_offset, _U32)):
            if small != big and small != sentinel:
                raise _bad(f"The zip end record and the zip64 end record disagree on the {what}", eocd,
                           why=f"{small} in one, {big} in the other: readers without zip64 read the first, "
                               "CPython and miniz the second")
        self._cd_end = record
        return disk, cd_disk, n_here, count, cd_size, cd_offset

    def _parse(self, max_members: int) -> None:
        data = self.data
        eocd = self._find_eocd()
        _sig, disk, cd_disk, n_here, count, cd_size, cd_offset, _clen = _EOCD.unpack_from(data, eocd)
        self._cd_end = eocd
        loc = eocd - _EOCD64_LOC.size
        if loc >= 0 and bytes(data[loc : loc + 4]) == b"PK\x06\x07":  # torch's writer always adds the zip64 records
            disk, cd_disk, n_here, count, cd_size, cd_offset = self._zip64_end(
                eocd, (disk, cd_disk, n_here, count, cd_size, cd_offset))
        elif _U16 in (count, n_here, disk, cd_disk) or _U32 in (cd_size, cd_offset):
            raise _bad("zip64 end-of-central-directory locator is missing", eocd)
        cd_end_expected = self._cd_end
        if disk != 0 or cd_disk != 0:
            raise _bad("Multi-disk zip archives are not supported", eocd, why="the end record names another disk")
        if n_here != count:
            raise _bad(f"The zip end record counts {n_here} entries on this disk and {count} in all", eocd,
                       why="miniz refuses the archive, other readers use one of the two counts")
        if count > max_members:
            raise LimitExceededError("max_members", count, max_members, what=f"The archive lists {count} members")
        if cd_offset + cd_size != cd_end_expected:
            raise _bad("The zip central directory does not end where the end record begins", eocd,
                       why="bytes before the archive or between the directory and its end record: CPython shifts "
                           "every offset by them, miniz does not")
        entries = self._walk(data, cd_offset, count, cd_end_expected)
        expected = 0
        for member in sorted(entries, key=_BY_HEADER):
            if member.header_offset != expected:
                where = "before the first member" if expected == 0 else "between members"
                raise _bad(f"Unexplained bytes {where} of the zip archive", expected, member=member.name,
                           why="data before or between members can hide another file (a pickle that is also a zip)")
            expected = member.end
        if expected != cd_offset:
            raise _bad("Unexplained bytes between the last zip member and the central directory", expected)

    @cython.locals(buf="const unsigned char[:]", pos=cython.Py_ssize_t, cd_end=cython.Py_ssize_t,
                   entry=cython.Py_ssize_t, need=cython.Py_ssize_t, flags=cython.Py_ssize_t, method=cython.Py_ssize_t,
                   nlen=cython.Py_ssize_t, elen=cython.Py_ssize_t, clen=cython.Py_ssize_t,
                   disk_start=cython.Py_ssize_t, eattr=cython.Py_ssize_t, kind=cython.Py_ssize_t)
    def _walk(self, data: Any, pos: int, count: int, cd_end: int) -> list[ZipMember]:
        """The central directory's ``count`` entries from ``pos`` (the caller checked that the directory lies in
        the file and ends at ``cd_end``), each checked and matched with its local header. The compiled build reads
        the fixed fields straight from the bytes; the pure-Python build unpacks the same fields with ``struct``."""
        buf = data
        entries: list[ZipMember] = []
        raw_keys: dict[bytes, str] = {}
        text_keys: dict[str, str] = {}
        central_extras = self._extras[0]
        for _ in range(count):  # miniz walks the directory by its count, CPython by its size: both must agree
            if pos + 46 > cd_end:
                raise _bad("The zip central directory is shorter than its entry count", pos,
                           why="CPython walks the directory by its size, miniz by its count")
            if cython.compiled:
                if buf[pos] != 0x50 or buf[pos + 1] != 0x4B or buf[pos + 2] != 1 or buf[pos + 3] != 2:
                    raise _bad("Bad zip central directory entry", pos)
                need, flags, method = _u16(buf, pos + 6), _u16(buf, pos + 8), _u16(buf, pos + 10)
                crc, csize, usize = _u32(buf, pos + 16), _u32(buf, pos + 20), _u32(buf, pos + 24)
                nlen, elen, clen, disk_start = _u16(buf, pos + 28), _u16(buf, pos + 30), _u16(buf, pos + 32), _u16(
                    buf, pos + 34)
                eattr, hoff = _u32(buf, pos + 38), _u32(buf, pos + 42)
            else:
                (sig, _made, need, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen, disk_start, _iattr,
                 eattr, hoff) = _CDIR.unpack_from(data, pos)
                if sig != b"PK\x01\x02":
                    raise _bad("Bad zip central directory entry", pos)
            entry = pos
            if cython.compiled:
                name_raw = _span(data, buf, pos + 46, pos + 46 + nlen)
                extra = _span(data, buf, pos + 46 + nlen, pos + 46 + nlen + elen)
            else:
                name_raw = bytes(data[pos + 46 : pos + 46 + nlen])
                extra = bytes(data[pos + 46 + nlen : pos + 46 + nlen + elen])
            pos += 46 + nlen + elen + clen
            if pos > cd_end:
                raise _bad("A zip central directory entry runs past the directory", entry)
            name = _decode_name(name_raw, flags, entry)
            fields = central_extras.get(extra)
            if fields is None:
                fields = self._extra(extra, entry, name, False)
            usize, csize, hoff = _central_zip64(fields.get(_ZIP64), usize, csize, hoff, entry, name)
            if not name or "\\" in name or "\x00" in name or ".." in name or name[0] == "/":
                self._check_name(name, hoff)
            kind = (eattr >> 16) & _S_IFMT
            # one test for the plain file every writer makes; anything else goes through every rule in turn
            if (flags & _REFUSED_FLAGS or need > _MAX_EXTRACT_VERSION or eattr & 0x18 or kind not in (0, _S_IFREG)
                    or disk_start or method not in (0, 8) or (method == 0 and csize != usize) or (usize and not csize)
                    or name[-1] == "/"):
                _check_entry(name, hoff, need, flags, method, csize, usize, eattr, disk_start)
            # A name is refused when an earlier one has its text key (CPython, unzip) or its raw key (miniz). An
            # ASCII name has an ASCII raw key, met only by ASCII names, whose text keys then meet too (the text key
            # of ASCII text is its lower case, path-normalised): raw keys are kept for non-ASCII names only.
            text_key = _text_key(name)
            other = text_keys.get(text_key)
            raw_key = None if name_raw.isascii() else name_raw.lower()
            if other is None and raw_key is not None:
                other = raw_keys.get(raw_key)
            if other is not None:  # the same name twice meets its own text key
                raise _bad(f"Duplicate zip member {name!r}" + ("" if other == name else f" (same as {other!r})"),
                           hoff, member=name,
                           why="two members that one name reaches are read differently by different tools: miniz "
                               "(torch.load) compares names without case, CPython decoded, unzip as paths",
                           fix="If the archive is yours, give its members (an .npz's keys) names that differ in more "
                               "than case or path spelling and save it again; otherwise discard it")
            if raw_key is not None:
                raw_keys[raw_key] = name
            text_keys[text_key] = name
            member = _local(self, buf, name, name_raw, flags, method, crc, csize, usize, hoff)
            self.members[name] = member
            entries.append(member)
        if pos != cd_end:
            raise _bad("The zip central directory holds more than its entry count", pos,
                       why="CPython walks the directory by its size and would read more members than miniz, which "
                           "walks it by its count")
        return entries

    @staticmethod
    def _check_name(name: str, offset: int) -> None:
        parts = name.split("/")
        if not name or name.startswith("/") or "\\" in name or ".." in parts or "\x00" in name:
            raise _bad(f"Unsafe zip member name {name!r}", offset, member=name,
                       why="absolute paths, '..' and backslashes are path-traversal tricks")

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
            _budget.current().charge_bytes(member.size, "zip")  # the work budget (safeload/_budget.py)
            inflater = zlib.decompressobj(-15)
            try:
                out = inflater.decompress(raw, member.size + 1)
            except zlib.error as exc:
                raise _bad(f"Zip member {name!r} does not inflate", member.data_offset, member=name, why=str(exc)) from None
            if len(out) != member.size or not inflater.eof:
                raise _bad(f"Zip member {name!r} inflates to a size other than the declared {member.size}",
                           member.data_offset, member=name)
            if inflater.unused_data or inflater.unconsumed_tail:
                raise _bad(f"Zip member {name!r}: bytes after the end of its deflate stream", member.data_offset,
                           member=name, why="the compressed size covers data that the deflate stream does not use")
        if verify:
            self.verify(name, out)
        return out

    def verify(self, name: str, content: bytes | memoryview) -> None:
        member = self.members[name]
        if zlib.crc32(content) & 0xFFFFFFFF != member.crc:
            raise FormatError(f"Zip member {name!r} fails its CRC-32 check", member=name,
                              offset=member.data_offset, why="the record was changed after the archive was written")


@cython.cfunc
@cython.locals(buf="const unsigned char[:]", at=cython.Py_ssize_t, flags=cython.Py_ssize_t,
               method=cython.Py_ssize_t, lflags=cython.Py_ssize_t, lmethod=cython.Py_ssize_t,
               nlen=cython.Py_ssize_t, elen=cython.Py_ssize_t)
def _local(archive: ZipArchive, buf: Any, name: str, name_raw: bytes, flags: int, method: int, crc: int, csize: int,
           usize: int, hoff: int) -> ZipMember:
    """The member whose central entry says these values, checked against its local header at ``hoff``
    (``buf`` is the archive's bytes, typed in the compiled build; a C function there, called without Python's
    call protocol)."""
    data = archive.data
    if hoff + 30 > len(data):
        raise _bad(f"Zip member {name!r} points past the end of the file", hoff, member=name)
    at = hoff  # within the file: a C integer from here in the compiled build
    if cython.compiled:
        if buf[at] != 0x50 or buf[at + 1] != 0x4B or buf[at + 2] != 3 or buf[at + 3] != 4:
            raise _bad(f"Zip member {name!r} has no local header", hoff, member=name)
        lflags, lmethod = _u16(buf, at + 6), _u16(buf, at + 8)
        lcrc, lcsize, lusize = _u32(buf, at + 14), _u32(buf, at + 18), _u32(buf, at + 22)
        nlen, elen = _u16(buf, at + 26), _u16(buf, at + 28)
    else:
        sig, _need, lflags, lmethod, _t, _d, lcrc, lcsize, lusize, nlen, elen = _LOCAL.unpack_from(data, at)
        if sig != b"PK\x03\x04":
            raise _bad(f"Zip member {name!r} has no local header", hoff, member=name)
    if cython.compiled:
        lname_raw = _span(data, buf, at + 30, at + 30 + nlen)
    else:
        lname_raw = bytes(data[at + 30 : at + 30 + nlen])
    if lname_raw != name_raw or lmethod != method or (lflags & _FLAG_BITS) != (flags & _FLAG_BITS):
        raise _bad(f"Zip member {name!r}: local header disagrees with the central directory", hoff, member=name,
                   why="its name bytes, method or flag bits differ, and readers that walk local headers read "
                       "another member")
    if cython.compiled:
        lextra = _span(data, buf, at + 30 + nlen, at + 30 + nlen + elen)
    else:
        lextra = bytes(data[at + 30 + nlen : at + 30 + nlen + elen])
    fields = archive._extras[1].get(lextra)
    if fields is None:
        fields = archive._extra(lextra, hoff, name, True)
    has_descriptor = bool(lflags & 0x8)
    zip64 = fields.get(_ZIP64)
    if zip64 is not None:
        values = [struct.unpack_from("<Q", zip64, i)[0] for i in range(0, len(zip64), 8)]
        if any(v not in (0, usize, csize, hoff) for v in values):
            raise _bad(f"Zip member {name!r}: the local zip64 field disagrees with the central directory", hoff,
                       member=name)
        # CPython's order: the size, then the compressed size, each where the 32-bit field is the sentinel
        it = iter(values)
        if lusize == _U32:
            lusize = next(it, -1)
        if lcsize == _U32:
            lcsize = next(it, -1)
    if has_descriptor:  # the writer did not know the sizes yet: zeros (torch, CPython) or the real values
        if (lcrc and lcrc != crc) or (lcsize and lcsize != csize) or (lusize and lusize != usize):
            raise _bad(f"Zip member {name!r}: local sizes or CRC disagree with the central directory", hoff,
                       member=name)
    elif (lcrc, lcsize, lusize) != (crc, csize, usize):
        raise _bad(f"Zip member {name!r}: local sizes or CRC disagree with the central directory", hoff,
                   member=name)
    start = at + 30 + nlen + elen
    end = start + csize
    if end > len(data):
        raise _bad(f"Zip member {name!r} runs past the end of the file", hoff, member=name)
    if has_descriptor:
        end = _descriptor_end(data, buf, name, end, crc, csize, usize, zip64 is not None)
    return _new_member((name, method, flags, crc, csize, usize, hoff, start, end))


@cython.cfunc
@cython.locals(buf="const unsigned char[:]", at=cython.Py_ssize_t, size=cython.Py_ssize_t, agree=cython.bint)
def _descriptor_end(data: Any, buf: Any, name: str, pos: int, crc: int, csize: int, usize: int, wide: bool) -> int:
    """The end of the data descriptor after a member at ``pos`` (within the file): its signature, the CRC, then
    the sizes in 8 bytes each when the local header has a zip64 field (as miniz and CPython write it), else in 4."""
    size = 24 if wide else 16
    if pos + size > len(data):
        agree = False
    elif cython.compiled:
        at = pos
        agree = buf[at] == 0x50 and buf[at + 1] == 0x4B and buf[at + 2] == 7 and buf[at + 3] == 8 and _u32(
            buf, at + 4) == crc
        if agree and wide:
            agree = _u64(buf, at + 8) == csize and _u64(buf, at + 16) == usize
        elif agree:
            agree = _u32(buf, at + 8) == csize and _u32(buf, at + 12) == usize
    else:
        agree = (_DESCRIPTOR64 if wide else _DESCRIPTOR32).unpack_from(data, pos) == (b"PK\x07\x08", crc, csize, usize)
    if not agree:
        raise _bad(f"Zip member {name!r}: data descriptor disagrees with the central directory", pos, member=name)
    return pos + size


def _check_entry(name: str, hoff: int, need: int, flags: int, method: int, csize: int, usize: int,
                 eattr: int, disk_start: int) -> None:
    """The rules for a central entry that is not a plain stored or deflated file (checked in this order)."""
    if flags & 0x1 or flags & 0x40 or flags & 0x2000:
        raise FormatError(f"Encrypted zip member {name!r}", member=name, offset=hoff,
                          why="safeload cannot check what it cannot read",
                          fix="Decrypt the archive with a trusted tool first")
    if flags & 0x20:
        raise _bad(f"Zip member {name!r} is compressed patch data (flag bit 5)", hoff, member=name,
                   why="CPython and miniz refuse it")
    if need > _MAX_EXTRACT_VERSION:
        raise _bad(f"Zip member {name!r} needs zip version {need / 10:.1f} to extract", hoff, member=name,
                   why="unzip skips it while CPython and miniz read it")
    kind = (eattr >> 16) & _S_IFMT
    if eattr & 0x08 or kind not in (0, _S_IFREG, _S_IFDIR) or (kind == _S_IFDIR and not name.endswith("/")):
        raise _bad(f"Zip member {name!r} is not a plain file (external attributes 0x{eattr:08x})", hoff,
                   member=name,
                   why="unzip skips a volume label and extracts a symbolic link (its data is the target) or "
                       "a directory, while CPython and miniz read the data as the member's content")
    if disk_start != 0:
        raise _bad(f"Zip member {name!r} starts on disk {disk_start}", hoff, member=name,
                   why="multi-disk archives are not supported")
    if method not in (0, 8):
        raise _bad(f"Zip member {name!r} uses compression method {method}", hoff,
                   why="only stored and deflated members are read", member=name)
    if method == 0 and csize != usize:
        raise _bad(f"Stored zip member {name!r} has a compressed size ({csize}) other than its size ({usize})",
                   hoff, member=name,
                   why="a stored member's bytes are its content; readers that trust one size or the other "
                       "read different bytes")
    if usize and not csize:
        raise _bad(f"Zip member {name!r} has {usize} bytes of content and no stored data", hoff, member=name,
                   why="miniz refuses it and treats an empty member as empty whatever its size")
    if (name.endswith("/") or eattr & 0x10) and (usize or csize or not name.endswith("/")):
        raise _bad(f"Zip member {name!r} is a directory entry with data, or a file marked as a directory",
                   hoff, member=name,
                   why="miniz reads an entry whose name ends in '/' or whose DOS directory attribute is set "
                       "as empty; CPython reads its data")


def _decode_name(raw: bytes, flags: int, offset: int) -> str:
    """A member name: UTF-8 when flag bit 11 says so, else ASCII. Invalid UTF-8 is a FormatError, and so is a
    non-ASCII name without the flag: CPython decodes it as cp437, miniz compares its raw bytes and unzip converts it
    from the writer's code page (cp437 to Latin-1 for DOS hosts), so two readers can see two names."""
    if raw.isascii():
        return raw.decode("ascii")  # the same text in UTF-8 and in cp437
    if not flags & 0x800:
        raise _bad(f"Zip member name {raw!r} is neither ASCII nor flagged UTF-8", offset,
                   why="readers decode such a name with different code pages, and two names can become one")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(f"Zip member name {raw!r} is not valid UTF-8", offset,
                   why="flag bit 11 says the name is UTF-8, and it is not") from None


def _extra_fields(extra: bytes, offset: int, name: str, local: bool) -> dict[int, bytes]:
    """An extra field as an exact chain of (id, size, body) with known ids only, each at most once."""
    fields: dict[int, bytes] = {}
    where = "local header" if local else "central entry"
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise _bad(f"Zip member {name!r}: trailing bytes in the {where}'s extra field", offset, member=name,
                       why="an extra field is a chain of (id, size) records that must end exactly")
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if len(body) != size:
            raise _bad(f"Zip member {name!r}: extra field 0x{tag:04x} runs past the {where}'s extra data", offset,
                       member=name, why="CPython and miniz refuse it, other readers read past it")
        pos += 4 + size
        if tag == _UNICODE_PATH:
            raise _bad(f"Zip member {name!r} has an Info-ZIP Unicode Path extra field", offset, member=name,
                       why="unzip extracts the member under the name in that field, other readers under the "
                           "header's name")
        if tag not in _KNOWN_EXTRA or (tag == _TORCH_PAD and not local):
            raise _bad(f"Zip member {name!r}: unknown extra field 0x{tag:04x} in the {where}", offset, member=name,
                       why="only the extra fields written by torch, numpy, CPython's zipfile and Info-ZIP zip are "
                           "read (zip64, UT, ux, NTFS, torch's padding); another could change how a reader sees it")
        if tag in fields:
            raise _bad(f"Zip member {name!r}: extra field 0x{tag:04x} appears twice in the {where}", offset,
                       member=name, why="readers differ on which of the two they use")
        if not _extra_body_ok(tag, body, local):
            raise _bad(f"Zip member {name!r}: malformed {_KNOWN_EXTRA[tag]} extra field ({size} bytes) in the "
                       f"{where}", offset, member=name,
                       why="its content is not what the writers of that field write, and could hide another file")
        fields[tag] = body
    return fields


def _extra_body_ok(tag: int, body: bytes, local: bool) -> bool:
    size = len(body)
    if tag == _TORCH_PAD:  # torch's writer fills its alignment padding with b"Z" (caffe2 serialize getPadding)
        return body == b"Z" * size
    if tag == _ZIP64:  # the central entry's exact length is checked against its sentinels (_central_zip64)
        return size % 8 == 0 and 8 <= size <= 24
    if tag == _UT:  # a flags byte, then up to three 32-bit times
        return 1 <= size <= 13 and (size - 1) % 4 == 0
    if tag == _UX:  # version 1, uid size, uid, gid size, gid
        if size < 3 or body[0] != 1 or body[1] > 8 or 2 + body[1] >= size:
            return False
        gid_size = body[2 + body[1]]
        return gid_size <= 8 and 3 + body[1] + gid_size == size
    if tag == _NTFS:  # 4 reserved bytes, then the one attribute tag 0x0001 with its three 64-bit times
        return size == 32 and body[4:8] == b"\x01\x00\x18\x00"
    return False


def _central_zip64(body: bytes | None, usize: int, csize: int, hoff: int, offset: int,
                   name: str) -> tuple[int, int, int]:
    """A central entry's 64-bit size, compressed size and header offset: one 8-byte value in the zip64 field for
    each 32-bit field that holds the sentinel, in that order (CPython's _decodeExtra and miniz read them so), and
    nothing else in the field."""
    if body is None:
        return usize, csize, hoff
    fields = [usize, csize, hoff]
    wanted = fields.count(_U32)
    if wanted == 0 or len(body) != 8 * wanted:
        raise _bad(f"Zip member {name!r}: the zip64 extra field holds {len(body)} bytes for {wanted} 64-bit values",
                   offset, member=name,
                   why="miniz reads the values past the field's end and CPython within it; only the exact field is "
                       "read the same way")
    i = 0
    for index in range(3):
        if fields[index] == _U32:
            fields[index] = struct.unpack_from("<Q", body, i)[0]
            i += 8
    return fields[0], fields[1], fields[2]
