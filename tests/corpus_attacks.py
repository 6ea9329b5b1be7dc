"""Attacks on the reading of containers (issue 10), generated around real files and a live payload.

Each :class:`Attack` writes its files into a folder and returns the path a native loader opens (``target``) and the
path ``safeload scan`` is given (``scan_path``: the same file, or the folder for folder scans). ``loaders`` are the
native loaders of :mod:`oracle` that run the payload (``oracle.live`` proves it); an attack with no loaders is an
*agreement* case: ``safeload.load`` refuses it, so the scan must not call it clean.

The eight classes:

1. zip end-record ambiguity (a second archive in the comment; a zip64 record not adjacent to its locator)
2. member names that differ only in case (torch looks names up case-insensitively)
3. members that ``safeload.load`` never reads (an extra pickle member; an ``.npy`` member ``numpy.load`` opens)
4. polyglots: a tar header (``ustar`` at byte 257) inside a zip extra field, a gzip FEXTRA, an npy header, a pickle
5. joblib desyncs: a dtype state whose ``elsize`` differs from its type code; a nested FRAME running past STOP
6. the text skip: protocol-0 text refused before its first GLOBAL (long line, ``I0x1``, MARK flood)
7. symlinks out of the scanned folder
8. mode differences: checks only the torch back end makes, and bundles load refuses

Real framework files are written here by ``torch.save``, ``numpy.save``/``savez``, ``joblib.dump``, ``gzip`` and
the zip writer below (which copies the members of those real files and adds what the attack needs).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import pickletools
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import oracle

MARKER = oracle.MARKER.encode()
#: protocol-0 opcodes that run ``open(MARKER, 'w')`` and leave the file object on the stack (no STOP)
OPS_OPEN = b"cbuiltins\nopen\n(V" + MARKER + b"\nVw\ntR"
#: the same with STOP: a whole protocol-0 pickle, which is also a text file
TEXT_PAYLOAD = OPS_OPEN + b"."


@dataclass(frozen=True)
class Attack:
    name: str
    cls: int  # the class of issue 10, 1-8
    build: Callable[[Path], tuple[Path, Path]]  # folder -> (target, scan_path)
    loaders: tuple[str, ...]  # native loaders that run the payload; () for an agreement case


# ---- real files ------------------------------------------------------------------------------------------------------

def torch_members(obj: object = None) -> list[tuple[str, bytes]]:
    """The members of a real ``torch.save`` archive, in order."""
    import torch

    buf = io.BytesIO()
    torch.save({"weight": torch.arange(6, dtype=torch.float32)} if obj is None else obj, buf)
    return zip_members(buf.getvalue())


def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def npz_members(**arrays: object) -> list[tuple[str, bytes]]:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return zip_members(buf.getvalue())


def npy_object(payload: bytes | None = None) -> bytes:
    """A real ``numpy.save`` of an object array; with ``payload``, its pickle replaced by that pickle."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    if payload is None:
        return data
    hlen = struct.unpack_from("<H", data, 8)[0]
    return data[:10 + hlen] + payload


def torch_payload_members() -> list[tuple[str, bytes]]:
    """A real torch archive whose data.pkl is the live payload."""
    return [(n, oracle.payload(2) if n.endswith("/data.pkl") else d) for n, d in torch_members()]


# ---- a zip writer with every field under control ---------------------------------------------------------------------

@dataclass
class Entry:
    name: bytes
    data: bytes
    local_extra: bytes = b""
    central_extra: bytes = b""
    crc: int | None = None  # None: the real CRC-32


def entries(members: list[tuple[str, bytes]]) -> list[Entry]:
    return [Entry(n.encode(), d) for n, d in members]


def zip_parts(items: list[Entry], base: int = 0) -> tuple[bytes, bytes]:
    """(local headers with data, central directory); offsets are absolute, counted from ``base``."""
    body, cd = bytearray(), bytearray()
    for e in items:
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        offset = base + len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(e.data), len(e.data),
                            len(e.name), len(e.local_extra)) + e.name + e.local_extra + e.data
        cd += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, len(e.data), len(e.data),
                          len(e.name), len(e.central_extra), 0, 0, 0, 0, offset) + e.name + e.central_extra
    return bytes(body), bytes(cd)


def eocd(count: int, cd_size: int, cd_offset: int, comment: bytes = b"", comment_len: int | None = None) -> bytes:
    n = len(comment) if comment_len is None else comment_len
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, n) + comment


def make_zip(items: list[Entry], base: int = 0, comment: bytes = b"") -> bytes:
    body, cd = zip_parts(items, base)
    return body + cd + eocd(len(items), len(cd), base + len(body), comment)


def zip64_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sQ2H2L2Q2Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)


def zip64_locator(record_offset: int) -> bytes:
    return struct.pack("<4sLQL", b"PK\x06\x07", 0, record_offset, 1)


# ---- tar headers hidden in other formats -------------------------------------------------------------------------------

def tar_block(head: bytes, fill: bytes = b"a", nul: bytes = b"\x00") -> bytes:
    """A 512-byte ustar header for one empty regular member whose first bytes are ``head`` (someone else's bytes:
    a zip local header, a gzip header, a pickle). ``nul`` is what terminates fields (a space where NUL is banned)."""
    assert len(head) <= 100
    name = head + fill * (100 - len(head))
    fields = (b"0000644" + nul + b"0000000" + nul + b"0000000" + nul + b"00000000000" + nul
              + b"00000000000" + nul)
    linkname = fill * 100 if nul != b"\x00" else b"\x00" * 100
    tail = (b"ustar" + (b"\x0000" if nul == b"\x00" else b"   ") + (fill if nul != b"\x00" else b"\x00") * 32 * 2
            + b"0000000" + nul + b"0000000" + nul + (fill if nul != b"\x00" else b"\x00") * 155
            + (fill if nul != b"\x00" else b"\x00") * 12)
    block = bytearray(name + fields + b" " * 8 + b"0" + linkname + tail)
    assert len(block) == 512, len(block)
    chk = sum(block)
    block[148:156] = b"%06o" % chk + (b"\x00 " if nul == b"\x00" else b"  ")
    return bytes(block)


def zip_with_tar_extra(items: list[Entry]) -> bytes:
    """The first local header's extra field holds the rest of a tar header: the file is also a tar."""
    first = items[0]
    xlen = 512 - 30 - len(first.name)
    head = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(first.data), len(first.data),
                       len(first.data), len(first.name), xlen) + first.name + struct.pack("<2H", 0x6C73, xlen - 4)
    block = tar_block(head)
    first.local_extra = block[len(head) - 4:]
    assert len(first.local_extra) == xlen
    data = make_zip(items)
    assert data[:512] == block and data[257:262] == b"ustar"
    return data


def gzip_with_tar_extra(raw: bytes) -> bytes:
    """A gzip member whose FEXTRA field holds the rest of a tar header."""
    head = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", 500)
    block = tar_block(head)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = comp.compress(raw) + comp.flush()
    return block + deflated + struct.pack("<2L", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)


def npy_with_tar_header(payload: bytes) -> bytes:
    """An object-array .npy whose header dict is followed by a comment that spells a tar header (no NUL: the
    header is Python source to numpy)."""
    real = npy_object()
    hlen = struct.unpack_from("<H", real, 8)[0]
    text = real[10:10 + hlen].rstrip().rstrip(b"\n").rstrip()
    total = 576 - 10  # header length: 10 + total is a multiple of 64
    head = real[:8] + struct.pack("<H", total) + text + b" #"
    block = tar_block(head, fill=b" ", nul=b" ")
    header = block[10:] + b" " * (total - 502 - 1) + b"\n"
    return real[:8] + struct.pack("<H", total) + header + payload


def pickle_with_tar_header() -> bytes:
    """A pickle whose first opcode is not one a text sniffer expects (SHORT_BINUNICODE), then a tar header."""
    pkl = (b"\x8c\x08builtins\x8c\x04open\x93\x8c" + bytes([len(MARKER)]) + MARKER + b"\x8c\x01w\x86R.")
    return tar_block(pkl, fill=b" ")


# ---- joblib ------------------------------------------------------------------------------------------------------------

def joblib_bytes(obj: object) -> bytes:
    import tempfile

    import joblib

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.joblib")
        joblib.dump(obj, p)
        return Path(p).read_bytes()


def joblib_elsize(code: str, true_size: int, fake_size: int) -> bytes:
    """joblib.dump of a 4-element ``code`` array; its dtype state then claims ``elsize=fake_size``, so joblib reads
    ``4 * fake_size`` array bytes where the type code says ``4 * true_size``. The bytes in between hold a BINBYTES
    (what a type-code reader sees) that joblib reads as array data, then opcodes only joblib runs."""
    import numpy as np

    value = b"\xa5" if code == "S1" else "\u00a5"
    arr = np.array([value] * 4, dtype=code)
    data = joblib_bytes({"a": arr})
    state = b"NNNK" + bytes([true_size]) + b"K" + bytes([true_size if code == "S1" else 4]) + b"K"
    at = data.find(state)
    assert at >= 0, "dtype state not found"
    data = data[:at + 4] + bytes([fake_size]) + data[at + 5:]
    raw = arr.tobytes()
    start = data.find(raw)
    assert start >= 0 and data.find(raw, start + 1) < 0
    end = start + len(raw)
    joblib_reads = 4 * fake_size
    skip = joblib_reads - len(raw) - 5  # bytes of the BINBYTES that joblib reads as array data
    hidden = b"\x00" * skip + OPS_OPEN
    return data[:end] + b"B" + struct.pack("<L", len(hidden)) + hidden + b"0" + data[end:]


def joblib_frame_past_stop() -> bytes:
    """joblib.dump of an object array; its nested pickle is framed (protocol 4) and the frame runs past STOP. C
    ``pickle.load`` consumes the whole frame, so joblib resumes after it; a STOP-exact reader resumes inside it."""
    import numpy as np

    data = joblib_bytes({"o": np.array([1, "x"], dtype=object)})
    start = min(i for i in (data.find(b"\x80\x05\x95", 2), data.find(b"\x80\x04\x95", 2)) if i > 0)
    stop = max(pos for _op, _arg, pos in pickletools.genops(io.BytesIO(data[start:]))) + start
    assert data[stop:stop + 1] == b"."
    body = data[start + 11:stop + 1]  # the nested pickle's frame, ending with its STOP
    frame = body + b"C" + bytes([len(OPS_OPEN)])  # a STOP-exact reader sees SHORT_BINBYTES swallow the payload
    nested = data[start:start + 3] + struct.pack("<Q", len(frame)) + frame
    return data[:start] + nested + OPS_OPEN + b"0" + data[stop + 1:]


# ---- torch pickles for the mode cases ------------------------------------------------------------------------------------

def torch_pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def storage_pid(location: str) -> bytes:
    return (b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
            + b"X" + struct.pack("<L", len(location)) + location.encode() + b"K\x04tQ")


def tensor_from_storage(location: str = "cpu") -> bytes:
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage_pid(location)
            + b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR")


def torch_zip_with(pkl: bytes, storage: bytes | None = None) -> bytes:
    members = [(n, d) for n, d in torch_members() if "/data/" not in n]
    out = []
    for n, d in members:
        out.append((n, pkl if n.endswith("/data.pkl") else d))
    if storage is not None:
        out.append(("archive/data/0", storage))
    return make_zip(entries(out))


# ---- the attacks -------------------------------------------------------------------------------------------------------

def _file(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], tuple[Path, Path]]:
    def build(folder: Path) -> tuple[Path, Path]:
        p = folder / name
        p.write_bytes(data() if callable(data) else data)
        return p, p

    return build


def _comment_hides(outer: list[tuple[str, bytes]], inner: list[tuple[str, bytes]], trailing: bytes) -> bytes:
    body, cd = zip_parts(entries(outer))
    head_len = len(body) + len(cd) + 22
    hidden = make_zip(entries(inner), base=head_len) + trailing
    return body + cd + eocd(len(outer), len(cd), len(body), hidden)


def _zip64_nonadjacent(benign: list[tuple[str, bytes]], evil: list[tuple[str, bytes]]) -> bytes:
    """The locator points at a zip64 record for the benign directory; the 56 bytes before the locator are a zip64
    record for another directory (CPython reads that one)."""
    body, cd = zip_parts(entries(benign))
    rec_a_at = len(body) + len(cd)
    rec_a = zip64_record(len(benign), len(cd), len(body))
    base = rec_a_at + len(rec_a)
    body2, cd2 = zip_parts(entries(evil), base=base)
    rec_b = zip64_record(len(evil), len(cd2), base + len(body2))
    out = body + cd + rec_a + body2 + cd2 + rec_b + zip64_locator(rec_a_at)
    return out + eocd(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def _case_names(order: str) -> bytes:
    real = torch_members()
    evil = ({"last": "archive/DATA.PKL", "mixed": "archive/Data.pkl", "second": "archive/DATA.pkl"}[order],
            oracle.payload(2))
    at = 1 if order == "second" else len(real)  # miniz finds the name by a case-insensitive binary search
    members = real[:at] + [evil] + real[at:]
    return make_zip(entries(members))


def _text_folder(folder: Path) -> tuple[Path, Path]:
    import torch

    d = folder / "repo"
    d.mkdir()
    torch.save({"w": torch.ones(3)}, d / "model.pt")
    evil = d / "extra.pkl"
    evil.write_bytes(b"I0x1\n0" + TEXT_PAYLOAD)
    return evil, d


def _symlink_file(folder: Path) -> tuple[Path, Path]:
    import torch

    outside = folder / "outside"
    outside.mkdir()
    (outside / "evil.pkl").write_bytes(oracle.payload(2))
    repo = folder / "repo"
    repo.mkdir()
    torch.save({"w": torch.ones(3)}, repo / "model.pt")
    link = repo / "extra.pkl"
    link.symlink_to(Path("..") / "outside" / "evil.pkl")
    return link, repo


def _symlink_absolute(folder: Path) -> tuple[Path, Path]:
    outside = folder / "elsewhere"
    outside.mkdir()
    (outside / "model.pt").write_bytes(make_zip(entries(torch_payload_members())))
    repo = folder / "repo"
    repo.mkdir()
    (repo / "config.json").write_text('{"a": 1}')
    link = repo / "pytorch_model.bin"
    link.symlink_to((outside / "model.pt").resolve())
    return link, repo


def _symlink_dir(folder: Path) -> tuple[Path, Path]:
    import numpy as np

    outside = folder / "shared"
    outside.mkdir()
    (outside / "arr.npy").write_bytes(npy_object(oracle.payload(2)))
    repo = folder / "repo"
    repo.mkdir()
    np.save(repo / "ok.npy", np.arange(3))
    (repo / "sub").symlink_to(Path("..") / "shared", target_is_directory=True)
    return repo / "sub" / "arr.npy", repo


def _hf_blob_store(folder: Path) -> tuple[Path, Path]:
    """A Hugging Face cache with the shared blob store: the repository's snapshot links to <cache>/blobs/<prefix>/
    <hash>, outside the repository folder that is scanned."""
    import torch

    cache = folder / "hub"
    blob = cache / "blobs" / "ab" / "ab12cd34ef"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(make_zip(entries(torch_payload_members())))
    repo = cache / "models--org--name"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    torch.save({"w": torch.ones(2)}, snap / "other.pt")
    link = snap / "pytorch_model.bin"
    link.symlink_to(Path("..") / ".." / ".." / "blobs" / "ab" / "ab12cd34ef")
    return link, repo


def _bad_crc_bundle() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.arange(4))
    items = [Entry(b"ok.npy", buf.getvalue()), Entry(b"extra.pkl", oracle.payload(2), crc=0x12345678)]
    return make_zip(items)


def _count_hides_entry() -> bytes:
    """The end record counts the benign members only; the central directory holds one more, a pickle member.
    CPython's zipfile reads the directory to its size, miniz (torch) reads as many entries as the count says."""
    real = torch_members()
    body, cd = zip_parts(entries(real + [("archive/extra.pkl", oracle.payload(2))]))
    return body + cd + eocd(len(real), len(cd), len(body))


def _npz_key_twice() -> bytes:
    """``x.npy`` (benign) and ``x`` (an object array with the payload): ``NpzFile['x']`` opens the member named
    exactly ``x`` first."""
    return make_zip(entries(npz_members(x=__import__("numpy").arange(3)) + [("x", npy_object(oracle.payload(2)))]))


def safetensors_pickle() -> bytes:
    """A valid safetensors file that is also a pickle from byte 0. The header length's first byte is BINBYTES,
    whose 4-byte length swallows the start of the JSON; then a chain of SHORT_BINSTRINGs (``U`` and a printable
    length, all legal JSON string characters inside ``__metadata__``) walks over the rest of the header; the
    payload is the bytes of a U8 tensor. ``pickle.load``, ``numpy.load(allow_pickle=True)`` and ``joblib.load``
    run it; a safetensors reader sees one tensor."""
    import json

    payload = oracle.payload(2)
    swallow = 25  # BINBYTES length: 3 zero bytes of the header length, then '{"__metadata__":{"p":"'
    size = 0x42 + 256 * swallow  # the u64 header length, whose bytes are 'B', the BINBYTES length and 3 zeros
    head = '{"__metadata__":{"p":"'
    tail = '"},"t":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]}}' % (len(payload), len(payload))
    last = 100  # the final SHORT_BINSTRING swallows the closing of the JSON, padded with spaces
    tail += " " * (last - len(tail))
    need, steps = size - len(head) - 2 - last, ""
    while need > 0:
        n = min(126, need - 2)
        if need - (n + 2) in (1, 2, 3):
            n -= 4
        n -= n in (34, 92)  # '"' and '\\' would end or escape the JSON string
        steps += "U" + chr(n) + "a" * n
        need -= n + 2
    header = head + steps + "U" + chr(last) + tail
    assert len(header) == size and json.loads(header)
    return b"B" + struct.pack("<L", swallow) + b"\x00" * 3 + header.encode() + payload


def lzma_alone(data: bytes, props: int, dict_size: int) -> bytes:
    """An lzma-alone (.lzma) stream with the header bytes chosen: properties byte and dictionary size. liblzma's
    automatic format detection (``lzma.decompress``, ``lzma.open``) takes any properties byte below 225 and any
    dictionary size of the form 2**n or 2**n + 2**(n-1): the format has no magic number."""
    import lzma

    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": max(dict_size, 4096), "lc": props % 9,
                "lp": (props % 45) // 9, "pb": props // 45}]
    raw = lzma.compress(data, format=lzma.FORMAT_ALONE, filters=filters)
    return raw[:1] + struct.pack("<L", dict_size) + raw[5:]


def _with_clean_model(name: str, data: Callable[[], bytes]) -> Callable[[Path], tuple[Path, Path]]:
    """The file next to a clean torch checkpoint in a folder; the folder is what is scanned."""
    def build(folder: Path) -> tuple[Path, Path]:
        import torch

        repo = folder / "repo"
        repo.mkdir()
        torch.save({"w": torch.ones(2)}, repo / "model.pt")
        p = repo / name
        p.write_bytes(data())
        return p, repo

    return build


def _hdf5_user_block() -> bytes:
    """An lzma-alone stream of the payload in the 512-byte user block of an HDF5 file (the superblock at 512)."""
    return in_hdf5_user_block(lzma_alone(oracle.payload(2), 0x01, 1 << 16))


def zfile(data: bytes, header: str = "0x%x") -> bytes:
    """joblib's old ``ZF`` format: b"ZF", the content length in 19 characters that joblib reads with
    ``int(text, 16)`` (so spaces, tabs, ``0X`` and underscores are accepted), then a zlib stream."""
    text = (header % len(data)).ljust(19).encode()
    assert len(text) == 19
    return b"ZF" + text + zlib.compress(data)


def in_hdf5_user_block(head: bytes) -> bytes:
    """``head`` in the user block of an HDF5 file: the superblock signature at 512, 1024 or 2048."""
    size = next(n for n in (512, 1024, 2048) if n >= len(head))
    return head + b"\x00" * (size - len(head)) + b"\x89HDF\r\n\x1a\n" + b"\x00" * 504


def _gzip_members() -> bytes:
    return gzip.compress(pickle.dumps({"a": 1}, protocol=2)) + gzip.compress(oracle.payload(2))


def build() -> list[Attack]:
    import numpy as np

    long_line = b"S'" + b"a" * ((1 << 16) + 8) + b"'\n0" + TEXT_PAYLOAD
    marks = b"(" * 1001 + TEXT_PAYLOAD
    hexint = b"I0x1\n0" + TEXT_PAYLOAD
    a: list[Attack] = [
        # 1. zip end records
        Attack("comment-hides-torch-zip", 1,
               _file("model.pt", lambda: _comment_hides(torch_members(), torch_payload_members(), b"\x00")),
               ("torch", "zipfile")),
        Attack("comment-hides-npz", 1,
               _file("arrays.npz", lambda: _comment_hides(npz_members(a=np.arange(4)),
                                                          [("x.npy", npy_object(oracle.payload(2)))], b"\x00")),
               ("numpy",)),
        Attack("comment-hides-zip-5-trailing", 1,
               _file("model.pt", lambda: _comment_hides(torch_members(), torch_payload_members(), b"\x00" * 5)),
               ("zipfile",)),
        Attack("zip64-record-not-adjacent", 1,
               _file("arrays.npz", lambda: _zip64_nonadjacent(npz_members(a=np.arange(4)),
                                                              [("x.npy", npy_object(oracle.payload(2)))])),
               ("numpy", "zipfile")),
        Attack("eocd-count-hides-entry", 1, _file("model.pt", _count_hides_entry), ("zipfile",)),
        # 2. names that differ only in case
        Attack("case-variant-data-pkl-last", 2, _file("model.pt", lambda: _case_names("last")), ("torch",)),
        Attack("case-variant-data-pkl-second", 2, _file("model.pt", lambda: _case_names("second")), ("torch",)),
        Attack("case-variant-data-pkl-mixed", 2, _file("model.pt", lambda: _case_names("mixed")), ("torch",)),
        Attack("npz-x-and-x-npy", 2, _file("arrays.npz", _npz_key_twice), ("numpy",)),
        # 3. members load never reads
        Attack("torch-extra-config-txt", 3,
               _file("model.pt", lambda: make_zip(entries(torch_members() + [("archive/config.txt",
                                                                              oracle.payload(2))]))),
               ("zipfile",)),
        Attack("torch-extra-npy-member", 3,
               _file("model.pt", lambda: make_zip(entries(torch_members() + [("x.npy",
                                                                              npy_object(oracle.payload(2)))]))),
               ("numpy",)),
        Attack("npz-extra-pickle-member", 3,
               _file("arrays.npz", lambda: make_zip(entries(npz_members(a=np.arange(3))
                                                            + [("notes.pkl", oracle.payload(4))]))),
               ("zipfile", "unzip")),
        Attack("npz-member-without-npy-extension", 3,
               _file("arrays.npz", lambda: make_zip(entries(npz_members(a=np.arange(3))
                                                            + [("config", npy_object(oracle.payload(2)))]))),
               ("numpy",)),
        Attack("zip-bundle-directory-member-with-data", 3,
               _file("bundle.zip", lambda: make_zip([Entry(b"README.txt", b"hello\n"),
                                                     Entry(b"x/", oracle.payload(2))])), ("zipfile",)),
        Attack("npz-directory-member-npy", 3,
               _file("arrays.npz", lambda: make_zip(entries(npz_members(a=np.arange(3)))
                                                    + [Entry(b"x/", npy_object(oracle.payload(2)))])), ("numpy",)),
        # 4. polyglots
        Attack("tar-header-in-zip-extra", 4,
               _file("model.pt", lambda: zip_with_tar_extra(entries(torch_payload_members()))), ("torch",)),
        Attack("tar-header-in-gzip-fextra", 4,
               _file("model.pkl.gz", lambda: gzip_with_tar_extra(oracle.payload(2))), ("decompress",)),
        Attack("tar-header-in-npy-header", 4,
               _file("x.npy", lambda: npy_with_tar_header(oracle.payload(2))), ("numpy",)),
        Attack("tar-header-in-pickle", 4, _file("model.pkl", pickle_with_tar_header), ("pickle",)),
        Attack("pickle-prepended-to-torch-zip", 4,
               _file("model.pt", lambda: oracle.payload(2) + make_zip(entries(torch_members()),
                                                                     base=len(oracle.payload(2)))),
               ("pickle", "torch")),
        Attack("safetensors-and-pickle", 4, _file("model.safetensors", safetensors_pickle),
               ("pickle", "numpy", "joblib")),
        Attack("lzma-alone-spelling-ttf-magic", 4,
               _with_clean_model("font.ttf", lambda: lzma_alone(oracle.payload(2), 0x00, 1)), ("decompress",)),
        Attack("lzma-alone-in-hdf5-user-block", 4, _with_clean_model("weights.h5", _hdf5_user_block),
               ("decompress",)),
        Attack("lzma-alone-joblib-prefix-in-hdf5", 4,
               _with_clean_model("weights.h5", lambda: in_hdf5_user_block(lzma_alone(oracle.payload(2), 0x5D, 256))),
               ("joblib", "decompress")),
        Attack("zip-appended-to-hdf5-magic", 4,  # found by the hypothesis long run on 88fe887
               _with_clean_model("weights.h5", lambda: b"\x89HDF\r\n\x1a\n" + make_zip(entries(torch_payload_members()),
                                                                                        base=8)),
               ("zipfile", "unzip")),
        # 5. joblib desyncs
        Attack("joblib-dtype-elsize-S", 5, _file("model.joblib", lambda: joblib_elsize("S1", 1, 64)), ("joblib",)),
        Attack("joblib-dtype-elsize-U", 5, _file("model.joblib", lambda: joblib_elsize("U1", 4, 64)), ("joblib",)),
        Attack("joblib-nested-frame-past-stop", 5, _file("model.joblib", joblib_frame_past_stop), ("joblib",)),
        Attack("joblib-dtype-elsize-zlib", 5,
               _file("model.joblib.z", lambda: zlib.compress(joblib_elsize("S1", 1, 64))), ("joblib",)),
        Attack("joblib-nested-frame-gzip", 5,
               _file("model.joblib.gz", lambda: gzip.compress(joblib_frame_past_stop())), ("joblib",)),
        Attack("lzma-alone-joblib-2-byte-prefix", 5,
               _file("model.joblib.lzma", lambda: lzma_alone(oracle.payload(2), 0x5D, 256)),
               ("joblib", "decompress")),
        Attack("joblib-zfile-lenient-header", 5, _file("model.pkl.z", lambda: zfile(oracle.payload(2), " 0X%x")),
               ("joblib",)),
        Attack("joblib-zfile-lenient-header-in-hdf5", 5,
               _with_clean_model("weights.h5", lambda: in_hdf5_user_block(zfile(oracle.payload(2), "\t0x0_%x"))),
               ("joblib",)),
        # 6. the text skip
        Attack("text-long-line", 6, _file("model.pkl", long_line), ("pickle",)),
        Attack("text-hex-int", 6, _file("model.pkl", hexint), ("pickle",)),
        Attack("text-mark-flood", 6, _file("model.pkl", marks), ("pickle",)),
        Attack("text-octal-int-c-only", 6, _file("model.pkl", b"I010\n0" + TEXT_PAYLOAD), ("pickle",)),
        Attack("text-float-crlf-python-only", 6, _file("model.pkl", b"F1\r\n0" + TEXT_PAYLOAD), ("pickle_py",)),
        Attack("text-hex-int-gzip", 6, _file("model.pkl.gz", lambda: gzip.compress(hexint)), ("decompress",)),
        Attack("text-long-line-gzip", 6, _file("model.pkl.gz", lambda: gzip.compress(long_line)), ("decompress",)),
        Attack("text-hex-int-folder", 6, _text_folder, ("pickle",)),
        # 7. symlinks
        Attack("symlink-file-out-of-folder", 7, _symlink_file, ("pickle",)),
        Attack("symlink-absolute-torch", 7, _symlink_absolute, ("torch",)),
        Attack("symlink-dir-out-of-folder", 7, _symlink_dir, ("numpy",)),
        Attack("symlink-hf-blob-store", 7, _hf_blob_store, ("torch",)),
        # 8. mode differences and bundles
        Attack("rebuild-parameter-on-dict", 8,
               _file("model.pt", lambda: torch_zip_with(torch_pickle(
                   b"ctorch._utils\n_rebuild_parameter\n(}\x89ccollections\nOrderedDict\n)RtR"))), ()),
        Attack("storage-location-not-a-device", 8,
               _file("model.pt", lambda: torch_zip_with(torch_pickle(tensor_from_storage("evil:0")),
                                                        struct.pack("<4f", 1, 2, 3, 4))), ()),
        Attack("zip-bundle-bad-crc-member", 8, _file("bundle.zip", _bad_crc_bundle), ("unzip",)),
        Attack("gzip-second-member", 8, _file("model.pkl.gz", _gzip_members), ("decompress",)),
    ]
    return a


ATTACKS = build()
BY_NAME = {a.name: a for a in ATTACKS}


# ---- the container-level mutation builder (tests/test_fuzz_containers.py, fuzz/fuzz_containers.py) --------------------

class Choices:
    """What a fuzzer decides, one small integer at a time. ``pick(n)`` is in ``range(n)``; an exhausted source
    answers 0. Subclasses draw from hypothesis or from atheris' FuzzedDataProvider."""

    def pick(self, n: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def blob(self, limit: int) -> bytes:
        return bytes(self.pick(256) for _ in range(self.pick(limit + 1)))


class ByteChoices(Choices):
    """Choices read from a byte string (atheris' input, or a stored finding)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def pick(self, n: int) -> int:
        if n <= 1:
            return 0
        width = 1 if n <= 256 else 2
        raw = self.data[self.pos:self.pos + width]
        self.pos += width
        return int.from_bytes(raw, "little") % n if raw else 0


_MATERIALS: dict[str, object] = {}


def materials() -> dict[str, object]:
    """Real files written once per process: benign and payload-carrying torch, npz, npy, joblib and pickles."""
    if not _MATERIALS:
        import numpy as np

        _MATERIALS.update({
            "torch": torch_members(),
            "torch_evil": torch_payload_members(),
            "npz": npz_members(a=np.arange(4), b=np.ones((2, 2))),
            "npy": npz_members(a=np.arange(4))[0][1],
            "npy_evil": npy_object(oracle.payload(2)),
            "joblib": joblib_bytes({"a": np.arange(3), "b": [1, 2]}),
            "benign": [pickle.dumps({"a": [1, 2.5, "x"]}, protocol=p) for p in range(6)],
        })
    return _MATERIALS


#: names a zip or tar member can take: torch's, numpy's, and case and separator variants of them
_NAMES = ("archive/data.pkl", "archive/DATA.PKL", "archive/Data.pkl", "archive/data.pkl", "ARCHIVE/data.pkl",
          "archive\\data.pkl", "archive/data/0", "archive/version", "archive/config.txt", "x.npy", "X.npy",
          "a.npy", "model.pkl", "archive/./data.pkl", "./archive/data.pkl", "archive//data.pkl", "data.pkl")


def _payload(ch: Choices) -> bytes:
    return oracle.payload(ch.pick(6)) if ch.pick(4) else TEXT_PAYLOAD


def _pickle_stream(ch: Choices) -> bytes:
    """A live pickle, alone or after/before a benign one, or framed so that the frame runs past a STOP."""
    m = materials()
    benign = m["benign"][ch.pick(6)]  # type: ignore[index]
    evil = _payload(ch)
    how = ch.pick(5)
    if how == 0:
        return evil
    if how == 1:
        return benign + evil
    if how == 2:
        return evil + benign
    if how == 3:  # a frame that runs past its STOP, the payload inside the frame after it
        body = pickle.dumps({"a": 1}, protocol=4)[11:]
        frame = body + evil[2:] if evil[:1] == b"\x80" else body + evil
        return b"\x80\x04\x95" + struct.pack("<Q", len(frame)) + frame
    return benign + ch.blob(8) + evil


def _zip(ch: Choices, depth: int) -> bytes:
    m = materials()
    base = [("torch", "torch"), ("torch_evil", "torch"), ("npz", "npz"), ("npz", "npz")][ch.pick(4)]
    members = list(m[base[0]])  # type: ignore[call-overload]
    for _ in range(ch.pick(3) + (base[0] != "torch_evil")):  # every mutant carries a live payload
        name = _NAMES[ch.pick(len(_NAMES))]
        content = [oracle.payload(2), m["npy_evil"], build_mutant(ch, depth + 1)][ch.pick(3)]
        members.insert(ch.pick(len(members) + 1), (name, content))
    items = entries(members)  # type: ignore[arg-type]
    for _ in range(ch.pick(3)):
        e = items[ch.pick(len(items))]
        field = [struct.pack("<2H", 0x6C73, 4) + b"abcd", struct.pack("<2H", 0x0001, 8) + bytes(8),
                 struct.pack("<2H", 0x7075, 5) + b"\x01abc", ch.blob(12)][ch.pick(4)]
        if ch.pick(2):
            e.local_extra += field
        else:
            e.central_extra += field
    ending = ch.pick(7)
    if ending == 1:
        return zip_with_tar_extra(items)
    if ending == 2:  # a second archive hidden in the comment, then trailing bytes
        hidden = [m["torch_evil"], [("x.npy", m["npy_evil"])]][ch.pick(2)]
        body, cd = zip_parts(items)
        extra = make_zip(entries(hidden), base=len(body) + len(cd) + 22) + b"\x00" * ch.pick(30)  # type: ignore
        return body + cd + eocd(len(items), len(cd), len(body), extra)
    if ending == 3:  # zip64 records, adjacent to their locator or not
        return _zip64_nonadjacent(members, [("x.npy", m["npy_evil"])]  # type: ignore[arg-type]
                                  if ch.pick(2) else m["torch_evil"])  # type: ignore[arg-type]
    if ending == 4:  # bytes before the archive, offsets relocated or not
        pad = ch.blob(40) or _payload(ch)
        return pad + make_zip(items, base=len(pad) if ch.pick(2) else 0)
    if ending == 5:  # bytes (or a whole archive) after it
        return make_zip(items) + [ch.blob(30), _payload(ch), make_zip(entries(m["torch_evil"]))][ch.pick(3)]  # type: ignore
    if ending == 6:
        return make_zip(items, comment=ch.blob(40))
    return make_zip(items)


def _tar(ch: Choices, depth: int) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=[tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                                     tarfile.PAX_FORMAT][ch.pick(3)]) as tf:
        for i in range(1 + ch.pick(3)):
            name = _NAMES[ch.pick(len(_NAMES))]
            content = [_payload(ch), build_mutant(ch, depth + 1), materials()["npy"]][ch.pick(3 if i else 2)]
            info = tarfile.TarInfo(name)
            info.size = len(content)  # type: ignore[arg-type]
            info.type = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE][ch.pick(3)]
            tf.addfile(info, io.BytesIO(content))  # type: ignore[arg-type]
    data = buf.getvalue()
    return data + ch.blob(20) if ch.pick(3) == 0 else data


def _compressed(ch: Choices, depth: int) -> bytes:
    import bz2
    import lzma

    inner = build_mutant(ch, depth + 1)
    kind = ch.pick(8)
    if kind == 7:  # joblib's ZF with the length as joblib's int(text, 16) reads it
        return zfile(inner, ["0x%x", " 0x%x", "0X%x", "%x", "\t%x", "0x0_%x", "+0x%x"][ch.pick(7)])
    if kind == 0:
        return gzip_with_tar_extra(inner)
    if kind == 6:  # lzma-alone: no magic number, the header bytes are free within liblzma's rules
        props = [0x5D, 0x00, 0x01, _props(ch)][ch.pick(4)]
        return lzma_alone(inner, props, [1, 256, 1 << 16, 1 << 23, 3 << 12][ch.pick(5)])
    if kind == 1:
        out = gzip.compress(inner)
    elif kind == 2:
        out = bz2.compress(inner)
    elif kind == 3:
        out = lzma.compress(inner)
    elif kind == 4:
        out = zlib.compress(inner)
    else:
        try:
            import zstandard
        except ImportError:
            out = gzip.compress(inner)
        else:
            out = zstandard.ZstdCompressor().compress(inner)
    tail = ch.pick(4)
    if tail == 1:  # a second stream of the same kind
        out += gzip.compress(_payload(ch)) if kind == 1 else bz2.compress(_payload(ch)) if kind == 2 else b""
    elif tail == 2:
        out += ch.blob(16)
    return out


def _joblib(ch: Choices) -> bytes:
    how = ch.pick(4)
    if how == 0:
        return joblib_elsize("S1", 1, 2 + ch.pick(60))
    if how == 1:
        return joblib_elsize("U1", 4, 8 + 4 * ch.pick(15))
    if how == 2:
        return joblib_frame_past_stop()
    return materials()["joblib"] + _payload(ch)  # type: ignore[operator]


def _npy(ch: Choices) -> bytes:
    how = ch.pick(3)
    if how == 0:
        return npy_with_tar_header(oracle.payload(ch.pick(6)))
    if how == 1:
        return materials()["npy"] + _payload(ch)  # type: ignore[operator]
    return npy_object(_pickle_stream(ch))


def build_mutant(ch: Choices, depth: int = 0) -> bytes:
    """One file built from real files, a live payload and the container tricks of issue 10, as ``ch`` decides:
    pickles (multi-pickle, frames past STOP), zips (case-variant and duplicate names, extra fields, hidden and
    zip64 end records, prepended/appended data and archives), tars, compressed streams (FEXTRA, second streams),
    joblib desyncs, npy headers, tar-header polyglots and concatenations; then, sometimes, a few bytes of the
    result overwritten, inserted, deleted or duplicated (header fields around the payload)."""
    data = _build(ch, depth)
    if depth == 0:
        for _ in range(ch.pick(4) if ch.pick(3) == 0 else 0):
            data = _edit(ch, data)
    return data


def _edit(ch: Choices, data: bytes) -> bytes:
    if not data:
        return data
    at = ch.pick(min(len(data), 65536))
    how = ch.pick(4)
    if how == 0:  # overwrite 1-4 bytes
        new = ch.blob(4) or b"\x00"
        return data[:at] + new + data[at + len(new):]
    if how == 1:
        return data[:at] + ch.blob(16) + data[at:]
    if how == 2:
        return data[:at] + data[at + 1 + ch.pick(16):]
    return data[:at] + data[at:at + 1 + ch.pick(64)] + data[at:]


def _build(ch: Choices, depth: int) -> bytes:
    if depth >= 3:
        return _payload(ch)
    kind = ch.pick(8)
    if kind == 0:
        return _pickle_stream(ch)
    if kind == 1:
        return _zip(ch, depth)
    if kind == 2:
        return _tar(ch, depth)
    if kind == 3:
        return _compressed(ch, depth)
    if kind == 4:
        return _joblib(ch)
    if kind == 5:
        return _npy(ch)
    if kind == 6:
        return _polyglot(ch, depth)
    return build_mutant(ch, depth + 1) + build_mutant(ch, depth + 1)


def _props(ch: Choices) -> int:
    """An lzma properties byte liblzma's encoder takes (lc + lp <= 4)."""
    lc = ch.pick(5)
    return ch.pick(5) * 45 + ch.pick(5 - lc) * 9 + lc


def _polyglot(ch: Choices, depth: int) -> bytes:
    """Files that are two formats at once: a pickle with a tar header, safetensors that is a pickle, an lzma-alone
    stream that spells a font's magic, a payload (or an lzma stream of one) in an HDF5 user block."""
    how = ch.pick(4)
    if how == 0:
        return pickle_with_tar_header()
    if how == 1:
        return safetensors_pickle()
    inner = build_mutant(ch, depth + 1)
    if how == 2:
        return lzma_alone(inner, 0x00, 1)
    block = lzma_alone(inner, _props(ch), 1 << 16) if ch.pick(2) else inner
    return in_hdf5_user_block(block) if len(block) <= 2048 else block


def loaders_for(data: bytes) -> tuple[str, ...]:
    """Every native loader that could read ``data`` as what it starts like (run only when safeload accepts)."""
    head = data[:4]
    out = ["pickle", "pickle_py", "joblib", "decompress"]
    if b"PK" in data:
        out += ["zipfile", "unzip", "numpy", "torch"]
    elif head.startswith(b"\x93NUM"):
        out += ["numpy"]
    if len(data) > 262 and data[257:262] == b"ustar":
        out += ["tarfile", "torch"]
    elif head[:1] == b"\x80":
        out += ["torch", "numpy"]
    return tuple(dict.fromkeys(out))


#: per kind of accepted file (the format scan reports, the load verdict): [native runs so far, the violation found
#: or ""]. A kind already found is reported again without running the natives; one judged MAX_JUDGED times without
#: a finding is not run again. This bounds a long run's time and keeps the answer for one kind the same.
_JUDGED: dict[tuple[str, bool], list] = {}
MAX_JUDGED = 40
KNOWN = "(same kind as an earlier finding) "


def verdict(data: bytes) -> tuple[int, bool]:
    """(scan exit code, load accepted) for bytes; a skipped file counts as exit 0, as it does in a folder scan.
    Anything but a SafeLoadError propagates (a contract breach)."""
    code, accepted, _kind = _verdict(data)
    return code, accepted


def _verdict(data: bytes) -> tuple[int, bool, str]:
    import safeload

    report = safeload.scan(data)
    code, kind = report.exit_code, str(report.files[0].format if report.files else None)
    if code == 3:  # nothing scanned (a skipped file): in a folder scan it leaves the exit status at 0
        code = 0
    try:
        safeload.load(data, tensors="numpy")
    except safeload.SafeLoadError:
        return code, False, kind
    return code, True, kind


def judge(data: bytes, folder: Path, stats: dict[str, int] | None = None) -> list[str]:
    """The oracle's property for one mutant: safeload's verdict first (cheap), the native loaders only when safeload
    accepts (scan exit 0 or load returns). Returns the violations."""
    stats = {} if stats is None else stats
    stats["files"] = stats.get("files", 0) + 1
    code, accepted, kind = _verdict(data)
    if code != 0 and not accepted:
        return []
    stats["accepted"] = stats.get("accepted", 0) + 1
    seen = _JUDGED.setdefault((kind, accepted), [0, ""])
    if seen[1]:  # not rerun: this file itself was not shown live (KNOWN marks it; keep only the first as evidence)
        stats["known_findings"] = stats.get("known_findings", 0) + 1
        return [KNOWN + seen[1]]
    if seen[0] >= MAX_JUDGED:
        stats["not_judged"] = stats.get("not_judged", 0) + 1
        return []
    seen[0] += 1
    path = folder / "mutant.bin"
    path.write_bytes(data)
    loaders = loaders_for(data)
    stats["native_runs"] = stats.get("native_runs", 0) + sum(oracle.available(n) for n in loaders)
    hits = oracle.live(path, loaders)
    if not hits:
        return []
    seen[1] = f"{kind}: scan exit {code}, load accepts={accepted}, but {', '.join(hits)} run(s) the payload"
    stats["findings"] = stats.get("findings", 0) + 1
    return [seen[1]]
