"""Whole-file compression layers: the ones joblib writes (zlib, gzip, bz2, xz, lzma-alone, lz4, joblib's old
``ZF`` zfile) and zstd (``safeload.save(compress="zstd")``).

Each decompressor runs incrementally with an output cap (``Limits.max_decompressed``), so a small bomb cannot make
safeload allocate more than the policy allows. A stream that is truncated, or that is followed by any byte after
its end, is refused: a file is read one way only. Only one layer is opened; a compressed file inside a compressed
file is refused by the caller.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import FormatError, LimitExceededError

__all__ = ["KINDS", "decompress", "sniff"]

#: Every kind :func:`sniff` can return (and :mod:`safeload._detect` reports).
KINDS = ("zlib", "zfile", "gzip", "bz2", "xz", "lzma", "lz4", "zstd")

_ZF_HEADER = re.compile(rb"ZF(0x)?([0-9a-fA-F]{1,17})L? *")
_ZF_LEN = 2 + 19  # joblib: b"ZF" + hex length, left-justified to 19 characters
_CHUNK = 1 << 24
_LZMA_MEMLIMIT = 256 << 20  # memory the lzma/xz decoder may use (its dictionary)


def _is_zlib_header(data: bytes) -> bool:
    return (len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0
            and not data[1] & 0x20)  # no preset dictionary


def sniff(data: bytes) -> str | None:
    """The compression of ``data`` (bytes or a mapped file) from its first bytes, or None."""
    data = bytes(data[:_ZF_LEN + 1])
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"BZh"):
        return "bz2"
    if data.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if data.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if data.startswith(b"ZF") and _ZF_HEADER.match(data[:_ZF_LEN + 1]):
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


def _incremental(kind: str, dec: Any, data: bytes, limit: int) -> bytes:
    """Drive a bz2/lzma/lz4 decompressor (``decompress(data, max_length)``, ``eof``, ``needs_input``)."""
    out = bytearray()
    chunk = dec.decompress(data, min(_CHUNK, limit + 1))
    while True:
        out += chunk
        if len(out) > limit:
            raise _too_big(kind, limit)
        if dec.eof:
            break
        if dec.needs_input:
            raise FormatError(f"Truncated {kind} stream", offset=len(data),
                              why="the compressed data ends before its end-of-stream marker",
                              fix="The file is incomplete; download it again")
        chunk = dec.decompress(b"", min(_CHUNK, limit + 1 - len(out)))
    if dec.unused_data:
        n = len(dec.unused_data)
        raise FormatError(f"{n} bytes after the end of the {kind} stream", offset=len(data) - n,
                          why="data after the compressed stream could be a second payload that another reader opens",
                          fix="If the file is trusted, cut it at the end of the stream; otherwise discard it")
    return bytes(out)


def _zlib(data: bytes, limit: int, wbits: int, kind: str) -> bytes:
    import zlib

    dec = zlib.decompressobj(wbits)
    out = bytearray()
    buf = data
    while True:
        try:
            chunk = dec.decompress(buf, min(_CHUNK, limit + 1 - len(out)) or 1)
        except zlib.error as exc:
            raise FormatError(f"Corrupt {kind} stream", offset=0, why=str(exc)) from None
        out += chunk
        if len(out) > limit:
            raise _too_big(kind, limit)
        if dec.eof:
            break
        buf = dec.unconsumed_tail
        if not buf and not chunk:
            raise FormatError(f"Truncated {kind} stream", offset=len(data),
                              why="the compressed data ends before its end-of-stream marker",
                              fix="The file is incomplete; download it again")
    if dec.unused_data:
        n = len(dec.unused_data)
        raise FormatError(f"{n} bytes after the end of the {kind} stream", offset=len(data) - n,
                          why="data after the compressed stream could be a second payload that another reader opens "
                              "(gzip files with several members are refused too)",
                          fix="If the file is trusted, cut it at the end of the stream; otherwise discard it")
    return bytes(out)


def _zfile(data: bytes, limit: int) -> bytes:
    match = _ZF_HEADER.match(data[:_ZF_LEN + 1])
    if match is None:  # pragma: no cover - sniff checked it
        raise FormatError("Malformed joblib zfile header", offset=0)
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


def decompress(kind: str, data: bytes, limit: int) -> bytes:
    """The content of one compressed stream, at most ``limit`` bytes."""
    if kind == "zlib":
        return _zlib(data, limit, 15, "zlib")
    if kind == "gzip":
        return _zlib(data, limit, 31, "gzip")
    if kind == "zfile":
        return _zfile(data, limit)
    if kind == "bz2":
        import bz2

        try:
            return _incremental("bz2", bz2.BZ2Decompressor(), data, limit)
        except OSError as exc:
            raise FormatError("Corrupt bz2 stream", offset=0, why=str(exc)) from None
    if kind in ("xz", "lzma"):
        import lzma

        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        try:
            # The header names the dictionary size (up to 4 GiB in 13 bytes of lzma-alone): cap what the decoder
            # may allocate, at the 64 MiB dictionary of xz -9 and then some.
            dec = lzma.LZMADecompressor(fmt, memlimit=_LZMA_MEMLIMIT)
            return _incremental(kind, dec, data, limit)
        except lzma.LZMAError as exc:
            raise FormatError(f"Corrupt {kind} stream", offset=0, why=str(exc)) from None
    if kind == "lz4":
        try:
            import lz4.frame
        except ImportError:
            raise FormatError("lz4-compressed file, but the lz4 package is not installed", offset=0,
                              why="safeload decompresses lz4 with the lz4 package, as joblib does",
                              fix="pip install lz4") from None
        dec = lz4.frame.LZ4FrameDecompressor()
        try:
            return _incremental("lz4", dec, data, limit)
        except RuntimeError as exc:
            raise FormatError("Corrupt lz4 stream", offset=0, why=str(exc)) from None
    if kind == "zstd":
        return _zstd(data, limit)
    raise FormatError(f"Unknown compression {kind}", offset=0)  # pragma: no cover


def _zstd_frame_end(data: bytes) -> int:
    """Where the first zstd frame ends, walked from its block headers (RFC 8878), so trailing data is seen."""
    import zstandard

    try:
        pos = zstandard.frame_header_size(data)
    except zstandard.ZstdError as exc:
        raise FormatError("Corrupt zstd frame header", offset=0, why=str(exc)) from None
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

    end = _zstd_frame_end(data)
    if end > len(data):
        raise FormatError("Truncated zstd stream", offset=len(data), why="the frame ends before its last block",
                          fix="The file is incomplete; download it again")
    if end < len(data):
        raise FormatError(f"{len(data) - end} bytes after the end of the zstd frame", offset=end,
                          why="data after the compressed stream could be a second payload that another reader opens",
                          fix="If the file is trusted, cut it at the end of the stream; otherwise discard it")
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=False) as reader:
            while True:
                chunk = reader.read(min(_CHUNK, limit + 1 - len(out)) or 1)
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise _too_big("zstd", limit)
    except zstandard.ZstdError as exc:
        raise FormatError("Corrupt zstd stream", offset=0, why=str(exc)) from None
    return bytes(out)
