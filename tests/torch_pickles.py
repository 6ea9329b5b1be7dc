"""Hand-built torch checkpoints for malformed-storage tests: protocol-2 data.pkl written opcode by opcode (so no
torch is needed to make them), zipped like torch.save does."""

from __future__ import annotations

import io
import struct
import zipfile


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])  # BININT1
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)  # BININT
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def tensor_ops(key: str, storage_cls: str, numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
               location: str = "cpu") -> bytes:
    """_rebuild_tensor_v2(('storage', torch.<cls>, key, location, numel), offset, size, stride, False, OrderedDict())"""
    pid = _tuple([_str("storage"), b"ctorch\n" + storage_cls.encode() + b"\n", _str(key), _str(location), _int(numel)])
    return (b"ctorch._utils\n_rebuild_tensor_v2\n"       # GLOBAL
            + _tuple([pid + b"Q",                         # BINPERSID
                      _int(offset), _tuple([_int(n) for n in size]), _tuple([_int(s) for s in stride]),
                      b"\x89",                             # NEWFALSE (requires_grad)
                      b"ccollections\nOrderedDict\n)R"])   # OrderedDict() (backward_hooks)
            + b"R")                                        # REDUCE


def checkpoint(tensors: dict[str, bytes], records: dict[str, bytes], archive: str = "archive") -> bytes:
    """A torch zip checkpoint: {name: tensor_ops(...)} as a dict, and the raw records by key."""
    body = b"".join(_str(name) + ops for name, ops in tensors.items())
    pkl = b"\x80\x02}(" + body + b"u."  # PROTO 2, EMPTY_DICT, MARK, ..., SETITEMS, STOP
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", pkl)
        zf.writestr(f"{archive}/byteorder", "little")
        for key, raw in records.items():
            zf.writestr(f"{archive}/data/{key}", raw)
        zf.writestr(f"{archive}/version", "3\n")
    return buf.getvalue()
