"""Remote sources: ``safeload scan s3://bucket/models``, ``https://...``, ``hf://...``, ``memory://...``.

Needs ``fsspec`` (``pip install 'safeload[remote]'``); the protocol's own implementation (``s3fs``, ``gcsfs``,
``aiohttp`` for http, ``huggingface_hub`` for hf) must be installed. Credentials come from fsspec's usual
configuration; the scanner never prints them: the user and password part of a URL is removed from every path it
reports.

A remote file is scanned by the same code as a local one (:func:`safeload._scan.scan_url` calls :func:`safeload._scan.scan_file`): its bytes are put in a
temporary file of the same size, which is mapped, as a local file is. What is fetched:

* a zip whose central directory names a torch checkpoint (a member ``data.pkl``): everything except the payload
  bytes of its storage records (``<prefix>/data/<key>``) larger than :data:`SKIP_AT_LEAST`. Those are the bytes the
  local scan never reads either (the loader size-checks storage records from the directory and local headers, and
  the scanner sets them aside as data), so the report is the same; the temporary file is sparse there. End
  record, zip64 records, central directory, every local header, every data descriptor and every other member are
  fetched in full, with ranged reads;
* any other file: the whole file, streamed to the temporary file in blocks.

The limits are the local ones (the policy's ``max_decompressed`` and work budget apply to the scan as for a local
file); a remote file larger than ``max_download`` (default: the policy's ``max_decompressed``) whose bytes would all
have to be fetched is an error, not a partial scan.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from ._hints import Any

__all__ = ["is_url", "redact", "iter_remote", "fetch_to", "SKIP_AT_LEAST"]

#: storage records at least this large are not fetched (their bytes are never read by a scan)
SKIP_AT_LEAST = 64 * 1024
#: a zip is read by ranges only when it is at least this large; smaller files are fetched whole
RANGED_AT_LEAST = 4 * 1024 * 1024
_BLOCK = 1024 * 1024
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@]*@")
_EOCD_WINDOW = 22 + 0xFFFF + 4096


def is_url(path: Any) -> bool:
    """A string with a scheme (``s3://``, ``http://``, ...) other than a Windows drive letter."""
    return isinstance(path, str) and _URL.match(path) is not None


def redact(url: str) -> str:
    """The URL without ``user:password@``: reports and messages never carry credentials."""
    return _USERINFO.sub(r"\1", url)


def _fs(url: str) -> tuple[Any, str]:
    try:
        import fsspec  # type: ignore[import-untyped]
    except ImportError:
        raise ValueError(f"{redact(url)}: scanning URLs needs fsspec: pip install 'safeload[remote]'") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"{redact(url)}: {exc}") from None
    return fs, path


def _display(fs: Any, url: str, path: str) -> str:
    if _URL.match(path):  # http(s): paths are the URLs
        return redact(path)
    return redact(fs.unstrip_protocol(path))


def iter_remote(url: str) -> Iterator[tuple[str, str]]:
    """The files at or below ``url``, lazily (one folder listing at a time), as (URL, URL without credentials), in
    name order within each folder. A URL that names nothing raises FileNotFoundError."""
    fs, path = _fs(url)
    try:
        is_dir = fs.isdir(path)
    except Exception:  # noqa: BLE001 - a backend's own error for a file URL
        is_dir = False
    if not is_dir:
        if not fs.exists(path):
            raise FileNotFoundError(f"{redact(url)}: no such file or folder")
        yield url, _display(fs, url, path)
        return
    for dirpath, dirnames, filenames in fs.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d != ".git") if isinstance(dirnames, list) else dirnames
        for name in sorted(filenames):
            full = name if _URL.match(name) else f"{dirpath.rstrip('/')}/{name}"
            if _URL.match(full):
                yield full, redact(full)
            else:
                yield fs.unstrip_protocol(full), _display(fs, url, full)


# ---- fetching ------------------------------------------------------------------------------------------------------

class _Ranged:
    """Ranged reads (``fs.cat_file(path, start, end)``, an HTTP Range request, an S3 ranged GET) with a block cache;
    counts what it fetched."""

    def __init__(self, fs: Any, path: str, size: int) -> None:
        self.fs, self.path, self.size, self.fetched = fs, path, size, 0
        self.blocks: dict[int, bytes] = {}

    def get(self, start: int, end: int) -> bytes:
        data = bytes(self.fs.cat_file(self.path, start=start, end=end))
        if len(data) != end - start:
            raise OSError(f"short read at byte {start}: the file changed while it was read, or the server ignores "
                          f"ranges")
        self.fetched += len(data)
        return data

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        out = []
        for b in range(start // _BLOCK, (end - 1) // _BLOCK + 1):
            block = self.blocks.get(b)
            if block is None:
                lo = b * _BLOCK
                block = self.get(lo, min(lo + _BLOCK, self.size))
                self.blocks[b] = block
            out.append(block)
        joined = b"".join(out)
        base = (start // _BLOCK) * _BLOCK
        return joined[start - base : end - base]


def _zip_skips(rd: _Ranged) -> list[tuple[int, int]] | None:
    """(start, end) spans of storage-record payloads a scan never reads, or None (not a torch zip we can plan:
    the whole file is fetched, and the zip reader judges it)."""
    size = rd.size
    tail_start = max(0, size - _EOCD_WINDOW)
    tail = rd.read(tail_start, size)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        return None
    _, _, _, _, count, cd_size, cd_off, comment = struct.unpack("<4sHHHHIIH", tail[i : i + 22])
    eocd = tail_start + i
    if eocd + 22 + comment != size:
        return None  # not the end record the zip reader takes: it refuses the file, and reads it whole to say so
    if 0xFFFFFFFF in (cd_size, cd_off) or count == 0xFFFF:
        loc = rd.read(eocd - 20, eocd)
        if len(loc) != 20 or loc[:4] != b"PK\x06\x07":
            return None
        rec_off = struct.unpack("<Q", loc[8:16])[0]
        rec = rd.read(rec_off, rec_off + 56)
        if len(rec) != 56 or rec[:4] != b"PK\x06\x06":
            return None
        count, cd_size, cd_off = struct.unpack("<QQQ", rec[32:56])
    if cd_off + cd_size > size:
        return None
    cd = rd.read(cd_off, cd_off + cd_size)
    entries = []
    pos = 0
    for _ in range(count):
        if cd[pos : pos + 4] != b"PK\x01\x02" or pos + 46 > len(cd):
            return None
        csize, _usize = struct.unpack("<II", cd[pos + 20 : pos + 28])
        nlen, elen, klen = struct.unpack("<HHH", cd[pos + 28 : pos + 34])
        hoff = struct.unpack("<I", cd[pos + 42 : pos + 46])[0]
        name = cd[pos + 46 : pos + 46 + nlen].decode("utf-8", "replace")
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        if 0xFFFFFFFF in (csize, _usize, hoff):  # zip64 extra: the sentinel fields, in order
            j = 0
            while j + 4 <= len(extra):
                xid, xlen = struct.unpack("<HH", extra[j : j + 4])
                if xid == 1:
                    vals = list(struct.unpack(f"<{xlen // 8}Q", extra[j + 4 : j + 4 + (xlen // 8) * 8]))
                    if _usize == 0xFFFFFFFF and vals:
                        vals.pop(0)
                    if csize == 0xFFFFFFFF and vals:
                        csize = vals.pop(0)
                    if hoff == 0xFFFFFFFF and vals:
                        hoff = vals.pop(0)
                j += 4 + xlen
        entries.append((name, hoff, csize))
        pos += 46 + nlen + elen + klen
    pickles = [n for n, _, _ in entries if n.endswith("data.pkl") and n.count("/") <= 1]
    if not pickles:
        return None
    prefix = pickles[0][: -len("data.pkl")]
    starts = sorted({hoff for _, hoff, _ in entries} | {cd_off})
    skips = []
    for name, hoff, csize in entries:
        if not (name.startswith(prefix + "data/") and "/" not in name[len(prefix) + 5 :]) or csize < SKIP_AT_LEAST:
            continue
        local = rd.read(hoff, hoff + 30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        lnlen, lelen = struct.unpack("<HH", local[26:30])
        start = hoff + 30 + lnlen + lelen
        rd.read(start - lnlen - lelen, start)  # the local name and extra field are read by the zip reader
        following = min((h for h in starts if h > hoff), default=size)
        if start + csize > following:
            return None  # a record that overlaps the next member or the directory: fetch all, the reader judges
        skips.append((start, start + csize))
    return sorted(skips)


def _fill(rd: _Ranged, out: Any, spans: list[tuple[int, int]]) -> None:
    """Copy ``spans`` into ``out`` block by block; blocks already fetched are reused, others are not kept."""
    for start, end in spans:
        pos = start
        while pos < end:
            b = pos // _BLOCK
            step = min(end, (b + 1) * _BLOCK)
            block = rd.blocks.get(b)
            if block is not None:
                chunk = block[pos - b * _BLOCK : step - b * _BLOCK]
            else:
                chunk = rd.get(pos, step)
            out.seek(pos)
            out.write(chunk)
            pos = step


def fetch_to(url: str, out: Any, *, max_download: int, ranged_at_least: int = RANGED_AT_LEAST) -> int:
    """Write the bytes of ``url`` a scan needs into ``out`` (a file opened ``w+b``), at their offsets; return the
    file size. Raises OSError/ValueError (reported by :func:`safeload._scan.scan_url` as an unreadable file)."""
    from .errors import LimitExceededError

    fs, path = _fs(url)
    size = int(fs.size(path))
    rd = _Ranged(fs, path, size)
    skips = None
    if size >= ranged_at_least and rd.read(0, 4) == b"PK\x03\x04":
        skips = _zip_skips(rd)
    spans, pos = [], 0
    for start, end in skips or []:
        spans.append((pos, start))
        pos = end
    spans.append((pos, size))
    needed = sum(e - s for s, e in spans)
    if needed > max_download:
        raise LimitExceededError("max_decompressed", needed, max_download,
                                 what=f"{redact(url)} needs {needed} bytes fetched",
                                 fix="Download the file with a trusted tool and scan it locally, or raise "
                                     "--max-decompressed")
    out.truncate(size)
    _fill(rd, out, spans)
    out.flush()
    return size
