"""Container tricks from published scanner bypasses, generated (never stored): the payload hidden by the way a
file is packed rather than by its pickle opcodes.

Each :class:`ContainerCase` carries the bytes, the file name it is written under (the extension is the
attacker's choice: detection is by content), the SafeLoadError subclass ``safeload.load`` must raise, and
``proof``: how a naive reader runs the payload ("pickle": ``pickle.loads`` of the bytes; "pickles": repeated
``pickle.load`` over the stream, as torch's legacy reader does; "zip": ``pickle.loads`` of the first
``*/data.pkl`` that Python's ``zipfile`` returns, ignoring the CRC; None: no proof here).
"""

from __future__ import annotations

import bz2
import gzip
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

from corpus import BINUNICODE, GLOBAL, MARK, PROTO, REDUCE, STOP, STRING, TUPLE, TUPLE1

#: os.system('touch MARKER'): protocol 0 (so it is also text) and protocol 2
EVIL0 = GLOBAL("os", "system") + MARK + STRING("touch MARKER") + TUPLE + REDUCE + STOP
EVIL2 = PROTO(2) + GLOBAL("os", "system") + BINUNICODE("touch MARKER") + TUPLE1 + REDUCE + STOP
BENIGN = PROTO(2) + b"}q\x00X\x01\x00\x00\x00aK\x01s."  # {'a': 1}


@dataclass(frozen=True)
class ContainerCase:
    name: str
    data: bytes
    filename: str = "model.pt"
    error: str = "SafeLoadError"  # the class safeload.load must raise (or a subclass of it)
    proof: str | None = None


def zip_of(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return buf.getvalue()


def torch_zip(pkl: bytes, prefix: str = "archive", method: int = zipfile.ZIP_STORED) -> bytes:
    return zip_of([(f"{prefix}/data.pkl", pkl), (f"{prefix}/byteorder", b"little"), (f"{prefix}/version", b"3\n")],
                  method)


def tar_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def set_flags(data: bytes, bit: int) -> bytes:
    """OR ``bit`` into the general-purpose flags of every local (offset 6) and central (offset 8) header."""
    out = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(sig)
        while pos >= 0:
            flags = struct.unpack_from("<H", out, pos + at)[0] | bit
            struct.pack_into("<H", out, pos + at, flags)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def legacy_torch(*pickles: bytes) -> bytes:
    """Torch's legacy stream: magic, protocol version and sys_info pickles, then whatever follows."""
    head = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
    return head + b"".join(pickles)


def build() -> list[ContainerCase]:
    c: list[ContainerCase] = []
    add = c.append
    good = torch_zip(BENIGN)

    # ---- zip flag bits, CRC and header disagreements ------------------------------------------------------
    add(ContainerCase("CVE-2025-10156 zip bad CRC on data.pkl (picklescan)",
                      torch_zip(EVIL2).replace(b"touch MARKER", b"touch MARKER"[:-1] + b"S"), error="FormatError"))
    crc_evil = bytearray(torch_zip(EVIL2))
    pos = crc_evil.find(b"PK\x03\x04")
    crc_evil[pos + 14] ^= 0xFF  # local header CRC-32, first byte
    cpos = crc_evil.find(b"PK\x01\x02")
    crc_evil[cpos + 16] ^= 0xFF  # central directory CRC-32, first byte
    add(ContainerCase("CVE-2025-10156 zip CRC wrong in both headers, payload intact", bytes(crc_evil),
                      error="FormatError", proof="zip"))
    add(ContainerCase("JFrog zip encrypted flag bit (0x1) on a plain member", set_flags(torch_zip(EVIL2), 0x1),
                      error="FormatError"))
    add(ContainerCase("zip strong-encryption flag bit (0x40)", set_flags(torch_zip(EVIL2), 0x40),
                      error="FormatError"))
    add(ContainerCase("zip data-descriptor flag (0x8) without a descriptor", set_flags(torch_zip(EVIL2), 0x8),
                      error="FormatError"))
    dup = zip_of([("archive/data.pkl", BENIGN), ("archive/data.pkX", EVIL2), ("archive/version", b"3\n")])
    add(ContainerCase("zip duplicate member names (first benign, last evil)",
                      dup.replace(b"archive/data.pkX", b"archive/data.pkl"), error="FormatError", proof="zip"))
    mism = bytearray(torch_zip(EVIL2))
    lpos = mism.find(b"archive/data.pkl")  # the first occurrence is the local header's name
    mism[lpos:lpos + 16] = b"archive/data.pkX"
    add(ContainerCase("zip local header name differs from the central directory", bytes(mism), error="FormatError"))
    size_mism = bytearray(torch_zip(BENIGN + EVIL2))
    lpos = size_mism.find(b"PK\x03\x04")
    struct.pack_into("<I", size_mism, lpos + 18, len(BENIGN))  # local compressed size: only the benign pickle
    struct.pack_into("<I", size_mism, lpos + 22, len(BENIGN))
    add(ContainerCase("zip local sizes differ from the central directory", bytes(size_mism), error="FormatError"))
    add(ContainerCase("zip member name with path traversal", zip_of([("../archive/data.pkl", EVIL2)]),
                      error="FormatError"))
    add(ContainerCase("zip member compressed with bzip2 (method 12)",
                      zip_of([("archive/data.pkl", EVIL2)], zipfile.ZIP_BZIP2), error="FormatError"))
    add(ContainerCase("two checkpoints in one zip (two archive prefixes)",
                      zip_of([("a/data.pkl", BENIGN), ("b/data.pkl", EVIL2), ("a/version", b"3\n"),
                              ("b/version", b"3\n")]), error="SafeLoadError"))

    # ---- nested, appended and prepended archives ---------------------------------------------------------
    add(ContainerCase("nested zip: torch checkpoint inside a zip", zip_of([("inner/model.pt", torch_zip(EVIL2))]),
                      error="FormatError"))
    add(ContainerCase("appended archive: evil zip after a benign checkpoint", good + torch_zip(EVIL2),
                      error="FormatError"))
    add(ContainerCase("data before the archive: pickle prepended to a zip (polyglot)", EVIL0 + good,
                      error="SafeLoadError", proof="pickle"))
    add(ContainerCase("pickle that is also a zip: zip after STOP", EVIL2 + good, error="SafeLoadError",
                      proof="pickle"))
    add(ContainerCase("zip with a pickle hidden between members",
                      good.replace(b"PK\x03\x04", EVIL2 + b"PK\x03\x04", 2).replace(EVIL2 + b"PK\x03\x04", b"PK\x03\x04", 1),
                      error="FormatError"))
    inner = torch_zip(EVIL2)  # (a comment holding only pickle bytes is inert for every zip reader, and accepted)
    add(ContainerCase("zip comment holding a second archive", good[:-2] + struct.pack("<H", len(inner)) + inner,
                      error="FormatError"))

    # ---- tar, 7z and compression layers --------------------------------------------------------------------
    add(ContainerCase("torch < 0.4 tar checkpoint with a payload pickle",
                      tar_of([("sys_info", pickle.dumps({"protocol_version": 1001}, protocol=2)),
                              ("pickle", EVIL2), ("storages", pickle.dumps(0, protocol=2)),
                              ("tensors", pickle.dumps(0, protocol=2))]), error="SafeLoadError"))
    add(ContainerCase("tar of a payload named like a config", tar_of([("config.json", EVIL2)]), filename="model.tar",
                      error="SafeLoadError"))
    add(ContainerCase("gzip-wrapped pickle", gzip.compress(EVIL2), filename="model.pkl.gz",
                      error="UnsafeGlobalError"))
    add(ContainerCase("zstd-wrapped pickle", zstd(EVIL2), filename="model.zst", error="UnsafeGlobalError"))
    add(ContainerCase("zlib-wrapped pickle (joblib compress)", zlib.compress(EVIL2), filename="model.joblib",
                      error="UnsafeGlobalError"))
    add(ContainerCase("bz2-wrapped torch zip", bz2.compress(torch_zip(EVIL2)), filename="model.pt.bz2",
                      error="UnsafeGlobalError"))
    add(ContainerCase("gzip inside gzip", gzip.compress(gzip.compress(EVIL2)), filename="x.gz", error="FormatError"))
    add(ContainerCase("gzip with a second member (concatenated streams)", gzip.compress(BENIGN) + gzip.compress(EVIL2),
                      filename="model.gz", error="FormatError"))
    try:
        import py7zr

        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w") as archive:
            archive.writestr(EVIL2, "model.pkl")
        add(ContainerCase("7z archive with a payload pickle", buf.getvalue(), filename="model.7z",
                          error="FormatError"))
    except ImportError:
        pass

    # ---- odd extensions (detection is by content) -----------------------------------------------------------
    for ext in ("bin", "txt", "json", "safetensors", "npy", "h5"):
        add(ContainerCase(f"CVE-2025-10155 extension routing: pickle named .{ext}", EVIL2, filename=f"model.{ext}",
                          error="UnsafeGlobalError", proof="pickle"))
    add(ContainerCase("CVE-2025-10155 torch zip named .txt", torch_zip(EVIL2), filename="notes.txt",
                        error="UnsafeGlobalError"))

    # ---- legacy torch stream with several pickles (CVE-2025-32434 class: the weights_only reader) -------------
    add(ContainerCase("legacy torch: payload in the object pickle", legacy_torch(EVIL2, pickle.dumps([], protocol=2)),
                      error="UnsafeGlobalError", proof="pickles"))
    add(ContainerCase("legacy torch: payload in the storage-keys pickle (a later one)",
                      legacy_torch(pickle.dumps({}, protocol=2), EVIL2), error="UnsafeGlobalError", proof="pickles"))
    add(ContainerCase("legacy torch: payload after the storages",
                      legacy_torch(pickle.dumps({}, protocol=2), pickle.dumps([], protocol=2), EVIL2),
                      error="SafeLoadError", proof="pickles"))
    evil_sysinfo = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2) + EVIL2)
    add(ContainerCase("legacy torch: payload as sys_info", evil_sysinfo, error="UnsafeGlobalError", proof="pickles"))

    # ---- numpy containers ----------------------------------------------------------------------------------
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + EVIL2
    add(ContainerCase("npy object array with a payload pickle (np.load allow_pickle)", npy, filename="x.npy",
                      error="UnsafeGlobalError"))
    add(ContainerCase("npz member with a payload pickle", zip_of([("arr_0.npy", npy)]), filename="x.npz",
                      error="UnsafeGlobalError"))
    return c


CONTAINER_CORPUS = build()
