"""Format detection by content. The file name is never consulted: an attacker chooses it.

The order matters where magic numbers overlap (see formats.md §0.1): a safetensors header length whose low byte
is 0x78 looks like zlib, and lzma-alone's ``5d 00 00`` is also the protocol-0 opcode ``]``. So: containers with
strong magic first, then protocol 2+ pickles, then compressors, then the magic-less binary formats, and protocol
0/1 pickles last.
"""

from __future__ import annotations

__all__ = ["detect", "COMPRESSED"]

_PICKLE_FIRST = frozenset(b"(}])cNSVIFLJKMTUXGaqhgp0PRbd.tslue")  # opcodes a protocol 0/1 stream can start with

#: kinds that are a compression layer around another format
COMPRESSED = frozenset({"zlib", "zfile", "gzip", "bz2", "xz", "lzma", "lz4", "zstd"})


def detect(data: bytes) -> str:
    """One of: pickle, npy, zip, hdf5, safetensors, mxnet, zlib, zfile, gzip, bz2, xz, lzma, lz4, zstd, 7z,
    mindspore-encrypted, paddle-tensor, mindspore, empty, unknown."""
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
    from ._containers.mxnet import is_mxnet_list

    if is_mxnet_list(data):
        return "mxnet"
    if head[0] == 0x80 and len(head) > 1 and 0 <= head[1] <= 5:
        return "pickle"
    from ._containers.compressed import sniff

    kind = sniff(data)
    if kind is not None:
        return kind
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    from ._containers.mindspore import encrypted_kind, is_mindspore

    if encrypted_kind(data) is not None:
        return "mindspore-encrypted"
    from ._containers.paddle import is_dense_tensor

    if is_dense_tensor(data):
        return "paddle-tensor"
    if is_mindspore(data):
        return "mindspore"
    if head[0] in _PICKLE_FIRST:
        return "pickle"
    return "unknown"
