"""The format registry: one format per file, decided by content. The file name is never consulted.

Every signature below is tested on every file (:func:`matches`), and :func:`detect` returns exactly one format, or
raises a ``FormatError`` ("polyglot") when two native readers would read the same bytes as different formats.
``safeload.load`` and ``safeload.scan`` both dispatch on :func:`detect`; the scanner only adds the traversal of
bundles (generic zip, tar, 7z, compressed streams).

Two signatures are not magic numbers, and are tested the way the native readers test them:

* **tar**: CPython's ``tarfile`` accepts any first 512-byte block whose checksum field (octal, or base-256)
  equals the unsigned or signed byte sum of the block with that field read as spaces (``TarInfo.frombuf``); the
  ``ustar`` magic is not required. So :func:`is_tar` is that test, not ``ustar`` at byte 257.
* **pickle**: ``pickle.load`` reads any bytes from byte 0. A file "is a pickle" to CPython when its unpickler
  could import or call something from byte 0 before it fails: :func:`cpython_reach` walks the stream as CPython
  parses it (``I0x1`` is an int, text lines have no length limit, MARKs are not counted) and reports the first
  opcode that could import (GLOBAL, INST, STACK_GLOBAL of two strings, EXT) or call (REDUCE, OBJ, NEWOBJ,
  NEWOBJ_EX, BUILD). A GLOBAL whose module is not a dotted identifier (``class Net:`` read as ``c`` + ``lass
  Net:``) imports nothing: ``__import__`` of such a name fails.

Where magic numbers overlap: strong magic first, then protocol 2+ pickles, compressors, the
magic-less binary formats, and protocol 0/1 pickles last. A file that is a tar and any other format, or another
format and a pickle CPython would act on, is a polyglot.
"""

from __future__ import annotations

from ._hints import Any
from ._containers.mxnet import is_mxnet_list
from ._kinds import classify
from ._reach import Reach, cpython_reach, is_tar
from ._reach import importable as importable  # for callers of safeload._detect.importable
from .errors import FormatError

__all__ = ["COMPRESSED", "BUNDLES", "Reach", "cpython_reach", "detect", "is_tar", "kind_reason", "matches"]

_PICKLE_FIRST = frozenset(b"(}])cNSVIFLJKMTUXGaqhgp0PRbd.tslue")  # opcodes a protocol 0/1 stream can start with

#: kinds that are a compression layer around another format
COMPRESSED = frozenset({"zlib", "zfile", "gzip", "bz2", "xz", "lzma", "lz4", "zstd"})
#: kinds the scanner opens member by member and ``load`` never opens: reported as bundles
BUNDLES = frozenset({"tar", "7z"})


# ---- the signatures -------------------------------------------------------------------------------------------

def _primary(data: Any) -> str:
    """The format by magic number and structure, in the order of the module docstring (tar excluded)."""
    head = bytes(data[:16])
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(data) >= 10 and data[8:9] == b"{" and int.from_bytes(head[:8], "little") <= len(data) - 8:
        return "safetensors"
    if is_mxnet_list(data):
        return "mxnet"
    if head[0] == 0x80 and len(head) > 1 and 0 <= head[1] <= 5:
        return "pickle"
    sniffers = _SNIFFERS or _sniffers()
    kind: str | None = sniffers["compressed"](data)
    if kind is not None:
        return kind
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if sniffers["mindspore-encrypted"](data) is not None:
        return "mindspore-encrypted"
    if sniffers["paddle-tensor"](data):
        return "paddle-tensor"
    if sniffers["mindspore"](data):
        return "mindspore"
    if head[0] in _PICKLE_FIRST:
        return "pickle"
    return "unknown"


_SNIFFERS: dict[str, Any] = {}


def _sniffers() -> dict[str, Any]:
    """The container readers' signature tests, imported on first use (a scan of binary pickles needs none)."""
    from ._containers.compressed import sniff
    from ._containers.mindspore import encrypted_kind, is_mindspore
    from ._containers.paddle import is_dense_tensor

    _SNIFFERS.update({"compressed": sniff, "mindspore-encrypted": encrypted_kind, "paddle-tensor": is_dense_tensor,
                      "mindspore": is_mindspore})
    return _SNIFFERS


def matches(data: Any) -> list[str]:
    """Every signature that ``data`` satisfies: the primary format, ``tar``, and ``pickle`` when CPython's
    unpickler could import or call something from byte 0."""
    kinds = [_primary(data)]
    if is_tar(data):
        kinds.append("tar")
    if kinds[0] != "pickle" and cpython_reach(data):
        kinds.append("pickle")
    return kinds


def _polyglot(kinds: list[str], why: str) -> FormatError:
    names = " and ".join(dict.fromkeys(k for k in kinds if k != "unknown"))
    return FormatError(f"Polyglot: the file is both {names}", offset=0,
                       why=f"{why}; a file that two native readers read as different formats is refused",
                       fix="Discard the file, or re-export it with the framework that wrote it, in a trusted "
                           "environment")


def detect(data: Any) -> str:
    """One of: pickle, npy, zip, tar, hdf5, safetensors, mxnet, zlib, zfile, gzip, bz2, xz, lzma, lz4, zstd, 7z,
    mindspore-encrypted, paddle-tensor, mindspore, empty, unknown. Raises ``FormatError`` for a polyglot."""
    kinds = matches(data)
    primary, extra = kinds[0], kinds[1:]
    if "tar" in extra:
        if "pickle" in extra or (primary == "pickle" and cpython_reach(data)):
            raise _polyglot(["tar", "pickle"], "tarfile reads a tar header in the first 512 bytes, and pickle.load "
                                               "could import or call something from byte 0")
        if primary not in ("pickle", "unknown"):
            raise _polyglot(["tar", primary], f"tarfile reads a tar header in the first 512 bytes, and the {primary} "
                                              "reader reads its own header from byte 0")
        return "tar"  # a tar whose first member name only spells opcodes CPython fails on (torch < 0.4: sys_info)
    if "pickle" in extra:
        if primary == "unknown":
            return "pickle"  # opcodes CPython reads without PROTO (FRAME, BINUNICODE, ...): a pickle
        raise _polyglot([primary, "pickle"], f"the {primary} reader reads its header from byte 0, and pickle.load "
                                             "could import or call something from byte 0")
    weak_pickle = primary == "pickle" and bytes(data[:1]) != b"\x80"
    if primary in ("unknown", "hdf5") or weak_pickle:
        stream = _headerless_stream(data)
        if stream is not None:  # what lzma.decompress or joblib.load read as a compressed stream is one
            if weak_pickle and cpython_reach(data):
                raise _polyglot([stream, "pickle"], f"lzma.decompress or joblib.load read a {stream} stream, and "
                                                    "pickle.load could import or call something from byte 0")
            return stream
    if primary in ("unknown", "hdf5") or weak_pickle:
        # files that cannot carry a pickle (GGUF, ONNX, images, libraries, LFS pointers, ...): safeload/_kinds.py
        # names them only when no pickle, zip or tar reader could act on them
        found = classify(data)
        if found is not None and found[0] != "safetensors":
            return found[0]
        if primary == "hdf5":
            # classify refused to name it: a zip end record lies in the tail (tar and pickle were refused above),
            # and zipfile and unzip read a zip after any prefix, where the HDF5 reader reads the superblock
            raise _polyglot(["hdf5", "zip"], "an HDF5 reader reads the superblock at byte 0, and zipfile and unzip "
                                             "read the zip whose end record lies in the last 64 KiB")
    return primary


def _headerless_stream(data: Any) -> str | None:
    """Compressed streams that native readers find without a magic number.

    * **lzma-alone** as liblzma's automatic detection reads it (``lzma.decompress``, ``lzma.open``;
      ``lzma_alone_decoder`` in picky mode): a properties byte below 225, a dictionary size of 2**n or
      2**n + 2**(n-1) (or all ones), an uncompressed size below 2**38 or unknown, and a range-coder stream that
      starts with a zero byte and decodes. Such a stream can spell a font's magic or sit in an HDF5 user block.
    * **joblib's zfile** as ``joblib.numpy_pickle_compat.read_zfile`` reads it: ``ZF`` and a length that
      ``int(text, 16)`` accepts (spaces, tabs, ``0X``, underscores), then zlib.
    """
    head = bytes(data[:32])
    if head[:2] == b"ZF" and len(head) >= 21:
        try:
            int(head[2:21], 16)
            return "zfile"
        except ValueError:
            pass
    if len(head) < 14 or head[0] >= 225 or head[13] != 0:
        return None
    dict_size = int.from_bytes(head[1:5], "little")
    if dict_size != 0xFFFFFFFF:
        d = (dict_size - 1) & 0xFFFFFFFF
        for shift in (2, 3, 4, 8, 16):
            d |= d >> shift
        if (d + 1) & 0xFFFFFFFF != dict_size:
            return None
    size = int.from_bytes(head[5:13], "little")
    if size != (1 << 64) - 1 and size >= 1 << 38:
        return None
    import lzma

    try:
        lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=64 << 20).decompress(bytes(data[:4096]), max_length=1)
    except lzma.LZMAError as exc:
        return "lzma" if "memory" in str(exc).lower() else None  # the native decoder has no memory limit
    return "lzma"


def kind_reason(kind: str) -> tuple[str, str] | None:
    """For a kind :func:`detect` took from safeload/_kinds.py: ``("model" | "code" | "other", reason)``."""
    return (_KIND_REASONS or _kind_reasons()).get(kind)


_KIND_REASONS: dict[str, tuple[str, str]] = {}


def _kind_reasons() -> dict[str, tuple[str, str]]:
    """safeload/_kinds.py's three tables as one, made on first use (a kind in two tables keeps the first group)."""
    from ._kinds import CODE_KINDS, MODEL_KINDS, OTHER_KINDS

    table: dict[str, tuple[str, str]] = {}
    for group, kinds in (("model", MODEL_KINDS), ("code", CODE_KINDS), ("other", OTHER_KINDS)):
        for kind, reason in kinds.items():
            table.setdefault(kind, (group, reason))
    table.pop("safetensors", None)  # load opens it
    _KIND_REASONS.update(table)
    return _KIND_REASONS
