"""Format detection by content. The file name is never consulted: an attacker chooses it."""

from __future__ import annotations

__all__ = ["detect"]

_PICKLE_FIRST = frozenset(b"(}])cNSVIFLJKMTUXGaqhgp0PRbd.tslue")  # opcodes a protocol 0/1 stream can start with


def detect(data: bytes) -> str:
    """One of: pickle, npy, zip, gzip, bz2, xz, zstd, 7z, hdf5, safetensors, empty, unknown."""
    head = data[:16]
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(data) >= 10 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") <= len(data) - 8:
        return "safetensors"
    if head[0] == 0x80 and len(head) > 1 and 0 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head[0] in _PICKLE_FIRST:
        return "pickle"
    return "unknown"
