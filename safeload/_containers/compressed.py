"""Whole-file compression layers: the ones joblib writes (zlib, gzip, bz2, xz, lzma-alone, lz4, joblib's old
``ZF`` zfile) and zstd (``safeload.save(compress="zstd")``).

Each decompressor runs incrementally with an output cap (``Limits.max_decompressed``), so a small bomb cannot make
safeload allocate more than the policy allows. A file is read one way only, the way every native reader reads it:

* exactly one stream. ``gzip.decompress``/``gzip.open`` read every gzip member and skip zero padding between them,
  ``bz2``, ``lzma`` and joblib's bz2/xz/lzma/lz4 file readers read concatenated streams and frames, and
  ``zstd -d`` reads every frame and skips skippable frames, so a second stream, a skippable frame or any byte
  after the end of the first stream is refused;
* a gzip header as Python's ``gzip`` module and zlib write it: an optional file name (FNAME, written by
  ``gzip.open``), and no FEXTRA, FCOMMENT, FHCRC or reserved flag, which no framework writes and in which another
  format could hide;
* joblib's ``ZF`` header exactly as joblib writes it.

Errors the decompression libraries raise become a FormatError in :func:`decompress` and nowhere else. Only one
layer is opened; a compressed file inside a compressed file is refused by the caller.
"""

from __future__ import annotations

import io
import re

from .._hints import Any
from .. import _budget
from ..errors import FormatError, LimitExceededError, third_party

__all__ = ["KINDS", "decompress", "sniff"]

#: Every kind :func:`sniff` can return (and :mod:`safeload._detect` reports).
KINDS = ("zlib", "zfile", "gzip", "bz2", "xz", "lzma", "lz4", "zstd")

_ZF_HEADER = re.compile(rb"ZF(0x)?([0-9a-fA-F]{1,17}) *")  # the 21 bytes, whole
_ZF_LEN = 2 + 19  # joblib: b"ZF" + hex length, left-justified to 19 characters
_CHUNK = 1 << 24
_MAX_FNAME = 255  # NAME_MAX: the longest base name gzip.open can write
_LZMA_MEMLIMIT = 256 << 20  # memory the lzma/xz decoder may use (its dictionary)


def _is_zlib_header(data: bytes) -> bool:
    return (len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0
            and not data[1] & 0x20)  # no preset dictionary


def _is_skippable(data: bytes) -> bool:
    """A zstd/lz4 skippable frame (magic 0x184D2A50..0x184D2A5F, RFC 8878 section 3.1.2)."""
    return len(data) >= 4 and data[0] & 0xF0 == 0x50 and data[1:4] == b"\x2a\x4d\x18"


def sniff(data: bytes) -> str | None:
    """The compression of ``data`` (bytes or a mapped file) from its first bytes, or None."""
    data = bytes(data[:_ZF_LEN + 1])
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"BZh"):
        return "bz2"
    if data.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if data.startswith(b"\x28\xb5\x2f\xfd") or _is_skippable(data):
        return "zstd"  # a skippable frame first: zstd and lz4 readers skip it; refused by the zstd reader
    if data.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if data.startswith(b"ZF") and _ZF_HEADER.fullmatch(data[:_ZF_LEN]):
        return "zfile"
    if _is_zlib_header(data):
        return "zlib"
    # lzma-alone: properties byte 0x5d (lc=3, lp=0, pb=2, joblib's and xz's default), then a 4-byte dictionary size
    if len(data) >= 13 and data[0] == 0x5D and data[1] == 0 and data[2] == 0:
        return "lzma"
    return None


def _too_big(kind: str, limit: int) -> LimitExceededError:
    return LimitExceededError(
        "max_decompressed", limit + 1, limit, offset=0,
        what=f"The {kind} stream decompresses to more than {limit} bytes",
        why="a small compressed file that expands without bound is a decompression bomb",
    )


def _after_end(kind: str, data: Any, n: int) -> FormatError:
    return FormatError(f"{n} bytes after the end of the {kind} stream", offset=len(data) - n,
                       why="gzip, bz2, lzma and joblib's readers go on into a second stream (or skip zero padding "
                           "to one), so bytes after the first stream could be a second payload that another reader "
                           "opens",
                       fix="If the file is trusted, cut it at the end of the first stream; otherwise discard it")


def _truncated(kind: str, data: Any) -> FormatError:
    return FormatError(f"Truncated {kind} stream", offset=len(data),
                       why="the compressed data ends before its end-of-stream marker",
                       fix="The file is incomplete; download it again")


class _Output:
    """The decompressed bytes, capped at ``limit``. Kept in a BytesIO, whose getvalue() hands over its buffer
    without a copy, so a stream of n bytes costs about n bytes of memory, not 2n."""

    def __init__(self, kind: str, limit: int) -> None:
        self.kind, self.limit, self.size = kind, limit, 0
        self.buf = io.BytesIO()

    def room(self) -> int:
        """How many bytes the next read may return: one more than the limit allows, so a bomb is seen."""
        # at most an eighth of the limit per read, so the chunk in flight adds at most limit/8 to the peak
        return min(_CHUNK, self.limit + 1 - self.size, max(self.limit >> 3, 1 << 16)) or 1

    def add(self, chunk: bytes) -> None:
        self.buf.write(chunk)
        self.size += len(chunk)
        _budget.current().charge_bytes(len(chunk), self.kind)  # the work budget (safeload/_budget.py)
        if self.size > self.limit:
            raise _too_big(self.kind, self.limit)

    def value(self) -> bytes:
        out = self.buf.getvalue()
        self.buf = io.BytesIO()
        return out


def _incremental(kind: str, dec: Any, data: Any, limit: int) -> bytes:
    """Drive a bz2/lzma/lz4 decompressor (``decompress(data, max_length)``, ``eof``, ``needs_input``)."""
    out = _Output(kind, limit)
    out.add(dec.decompress(data, out.room()))
    while not dec.eof:
        if dec.needs_input:
            raise _truncated(kind, data)
        out.add(dec.decompress(b"", out.room()))
    if dec.unused_data:
        raise _after_end(kind, data, len(dec.unused_data))
    return out.value()


def _gzip_header(data: Any) -> None:
    """Refuse the gzip header fields no framework writes. zlib then parses the header and checks the rest."""
    if len(data) < 10:
        raise _truncated("gzip", data)
    method, flags = data[2], data[3]
    if method != 8:
        raise FormatError(f"gzip compression method {method}", offset=2, why="gzip defines only deflate (8)")
    extra = [name for bit, name in ((0x04, "FEXTRA"), (0x10, "FCOMMENT"), (0x02, "FHCRC"), (0xE0, "reserved"))
             if flags & bit]
    if extra:
        raise FormatError(f"gzip header with {', '.join(extra)} field(s)", offset=3,
                          why="Python's gzip, zlib and joblib write at most a file name (FNAME); the other fields "
                              "are skipped by every reader and can hide another format (a tar header, a pickle)",
                          fix="If the file is trusted, decompress it and compress it again with gzip or joblib")
    if flags & 0x08 and bytes(data[10:10 + _MAX_FNAME + 1]).find(b"\0") < 0:
        raise FormatError(f"gzip file name (FNAME) longer than {_MAX_FNAME} bytes", offset=10,
                          why="gzip.open writes the base name of a file, which no file system lets exceed 255 "
                              "bytes; a longer field is room to hide another format in",
                          fix="If the file is trusted, decompress it and compress it again with gzip or joblib")


def _zlib(data: Any, limit: int, wbits: int, kind: str) -> bytes:
    import zlib

    if wbits == 31:
        _gzip_header(data)
    dec = zlib.decompressobj(wbits)
    out = _Output(kind, limit)
    buf = data
    while True:
        chunk = dec.decompress(buf, out.room())
        out.add(chunk)
        if dec.eof:
            break
        buf = dec.unconsumed_tail
        if not buf and not chunk:
            raise _truncated(kind, data)
    if dec.unused_data:
        raise _after_end(kind, data, len(dec.unused_data))
    return out.value()


def _zfile(data: Any, limit: int) -> bytes:
    match = _ZF_HEADER.fullmatch(bytes(data[:_ZF_LEN]))
    if match is None:
        raise FormatError("Malformed joblib zfile header", offset=2,
                          why="joblib writes 'ZF' and the content length in hex, padded with spaces to 19 "
                              "characters; anything else is read differently by int() and by other readers")
    declared = int(match.group(2), 16)
    start = _ZF_LEN
    if len(data) > start and data[start:start + 1] == b" ":  # joblib <= 0.8.4 wrote one more space
        start += 1
    if declared > limit:
        raise LimitExceededError("max_decompressed", declared, limit, offset=2,
                                 what=f"The joblib zfile declares {declared} bytes of content")
    out = _zlib(data[start:], limit, 15, "joblib zfile")
    if len(out) != declared:
        raise FormatError(f"The joblib zfile declares {declared} bytes but holds {len(out)}", offset=2,
                          why="a length that does not match the content is corruption or tampering")
    return out


def _library_errors(kind: str) -> tuple[type[BaseException], ...]:
    """What the decompression library of ``kind`` raises on bad input (and only that)."""
    if kind in ("zlib", "gzip", "zfile"):
        import zlib

        return (zlib.error,)
    if kind == "bz2":
        return (OSError, EOFError)  # _bz2: OSError("Invalid data stream"), EOFError after the end
    if kind in ("xz", "lzma"):
        import lzma

        return (lzma.LZMAError, EOFError)
    if kind == "lz4":
        return (RuntimeError, EOFError)  # lz4.frame: RuntimeError("LZ4F_decompress failed ...")
    if kind == "zstd":
        import zstandard

        return (zstandard.ZstdError,)
    return ()


def decompress(kind: str, data: Any, limit: int) -> bytes:
    """The content of one compressed stream (bytes, a memoryview or a mapped file), at most ``limit`` bytes.

    The decompression libraries run behind safeload.errors.third_party, the one boundary for third-party parsers:
    what they raise on bad input becomes a FormatError; any other exception is left to the caller (a bug)."""
    with third_party(f"the {kind} stream", _library_errors(kind), what=f"Corrupt {kind} stream", offset=0):
        return _decompress(kind, data, limit)


def _decompress(kind: str, data: Any, limit: int) -> bytes:
    if kind == "zlib":
        return _zlib(data, limit, 15, "zlib")
    if kind == "gzip":
        return _zlib(data, limit, 31, "gzip")
    if kind == "zfile":
        return _zfile(data, limit)
    if kind == "bz2":
        import bz2

        return _incremental("bz2", bz2.BZ2Decompressor(), data, limit)
    if kind in ("xz", "lzma"):
        import lzma

        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        # The header names the dictionary size (up to 4 GiB in 13 bytes of lzma-alone): cap what the decoder
        # may allocate, at the 64 MiB dictionary of xz -9 and then some.
        return _incremental(kind, lzma.LZMADecompressor(fmt, memlimit=_LZMA_MEMLIMIT), data, limit)
    if kind == "lz4":
        try:
            import lz4.frame  # type: ignore[import-untyped]
        except ImportError:
            raise FormatError("lz4-compressed file, but the lz4 package is not installed", offset=0,
                              why="safeload decompresses lz4 with the lz4 package, as joblib does",
                              fix="pip install lz4") from None
        return _incremental("lz4", lz4.frame.LZ4FrameDecompressor(), data, limit)
    if kind == "zstd":
        return _zstd(data, limit)
    raise FormatError(f"Unknown compression {kind}", offset=0)  # pragma: no cover


def _zstd_frame_end(data: Any) -> int:
    """Where the first zstd frame ends, walked from its block headers (RFC 8878), so trailing data is seen."""
    import zstandard

    pos = zstandard.frame_header_size(data)
    has_checksum = bool(data[4] & 0x04)
    while True:
        if pos + 3 > len(data):
            raise FormatError("Truncated zstd stream", offset=len(data), why="a block header runs past the end",
                              fix="The file is incomplete; download it again")
        header = int.from_bytes(data[pos:pos + 3], "little")
        last, block_type, size = header & 1, (header >> 1) & 3, header >> 3
        if block_type == 3:
            raise FormatError("Corrupt zstd stream", offset=pos, why="reserved block type")
        pos += 3 + (1 if block_type == 1 else size)
        if last:
            break
    return pos + (4 if has_checksum else 0)


def _zstd(data: Any, limit: int) -> bytes:
    import zstandard

    data = memoryview(data)  # a mapped file has a read() method that zstandard would use instead
    if _is_skippable(data):
        raise FormatError("zstd skippable frame", offset=0,
                          why="zstd and lz4 readers skip it and decompress what follows; safeload writes one frame "
                              "and nothing else, and a skippable frame can hide another format",
                          fix="If the file is trusted, decompress it and compress it again without skippable frames")
    end = _zstd_frame_end(data)
    if end > len(data):
        raise FormatError("Truncated zstd stream", offset=len(data), why="the frame ends before its last block",
                          fix="The file is incomplete; download it again")
    if end < len(data):
        raise FormatError(f"{len(data) - end} bytes after the end of the zstd frame", offset=end,
                          why="zstd -d reads every frame of a file and skips skippable frames, so bytes after the "
                              "first frame could be a second payload that another reader opens",
                          fix="If the file is trusted, cut it at the end of the first frame; otherwise discard it")
    out = _Output("zstd", limit)
    with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=False) as reader:
        while True:
            chunk = reader.read(out.room())
            if not chunk:
                break
            out.add(chunk)
    return out.value()
