"""The format registry (safeload/_detect.py): one format per file, polyglots refused, load and scan alike.

Each polyglot below is built around a live payload, and the differential oracle (tests/oracle.py) first proves
that a native loader runs it; then safeload must refuse it (load) and flag it (scan, exit status not 0). The tar
signature is CPython ``tarfile``'s own test of a first header block: a tar header placed in a zip extra field, a
gzip FEXTRA field, an npy header or a pickle string is what ``tarfile.open`` reads, while the other reader reads
the host format.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import oracle
import safeload
from safeload._detect import cpython_reach, detect, is_tar, matches
from safeload._scan import scan

sys.path.insert(0, str(Path(__file__).parent))


def with_tar_header(host: bytes) -> bytes:
    """``host`` with bytes 100..511 replaced by the fields of a tar header for one empty regular member, and a
    checksum that makes ``tarfile`` accept bytes 0..511 as that header. The fields hold no NUL byte (octal fields
    end in a space), so they fit in a Python comment or a pickle string too. Bytes 0..99 (the member name) are
    the host's."""
    assert len(host) >= 512
    block = bytearray(host[:512])
    # mode, uid, gid, size, mtime, checksum (set below), type "0" (regular file), link name
    block[100:257] = b"0000644 " + b"0000000 " * 2 + b"00000000000 " * 2 + b" " * 8 + b"0" + b" " * 100
    block[257:512] = b"ustar" + b" " * 250
    chksum = 256 + sum(block[:148]) + sum(block[156:])
    block[148:156] = b"%06o  " % chksum
    out = bytes(block) + host[512:]
    assert is_tar(out)
    with tarfile.open(fileobj=io.BytesIO(out)) as tf:  # what tarfile reads: one empty member
        members = tf.getmembers()
    assert len(members) == 1 and members[0].size == 0
    return out


def _zip_host() -> bytes:
    """A zip whose one member is a live pickle, with a 600-byte unknown extra field in its local header."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("x.pkl")
        info.extra = struct.pack("<HH", 0xCAFE, 596) + b" " * 596
        zf.writestr(info, oracle.payload(2))
    return buf.getvalue()


def _gzip_host() -> bytes:
    """A gzip of a live pickle, with an FEXTRA field covering bytes 12..611."""
    body = gzip.compress(oracle.payload(2), mtime=0)
    flags = body[3] | 0x04
    extra = b" " * 600
    return body[:3] + bytes([flags]) + body[4:10] + struct.pack("<H", len(extra)) + extra + body[10:]


def _npy_host() -> bytes:
    """An object-dtype .npy whose array data is a live pickle; its header text ends in a Python comment."""
    text = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }  #"
    header = (text + " " * (600 - len(text) - 1) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + oracle.payload(2)


def _pickle2_host() -> bytes:
    """A protocol-2 pickle: a 600-byte string, POP, then a live payload."""
    return b"\x80\x02X" + struct.pack("<I", 600) + b" " * 600 + b"0" + oracle.payload(2)[2:]


def _pickle0_host() -> bytes:
    """A protocol-0 pickle: a quoted STRING line of 600 characters, POP, then a live payload."""
    return b"S'" + b" " * 600 + b"'\n0" + oracle.payload(0)


POLYGLOTS = {
    "tar in zip extra field": (_zip_host, ("zipfile", "unzip")),
    "tar in gzip FEXTRA": (_gzip_host, ("decompress",)),
    "tar in npy header": (_npy_host, ("numpy",)),
    "tar in protocol-2 pickle": (_pickle2_host, ("pickle",)),
    "tar in protocol-0 pickle": (_pickle0_host, ("pickle", "pickle_py")),
}


@pytest.mark.parametrize("name", list(POLYGLOTS))
def test_tar_polyglot_is_live_and_refused(name: str, tmp_path: Path) -> None:
    build, loaders = POLYGLOTS[name]
    data = with_tar_header(build())
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    assert oracle.live(path, loaders), f"{name}: the native loader does not run the payload"
    assert "tar" in matches(data) and len(matches(data)) >= 2
    with pytest.raises(safeload.FormatError, match="Polyglot"):
        detect(data)
    with pytest.raises(safeload.SafeLoadError):
        safeload.load(path, tensors="numpy")
    report = scan(path)
    assert report.exit_code in (1, 2), report.to_dict()
    assert any("Polyglot" in f.message for f in report.findings)
    assert oracle.check(path, loaders) == []


def test_plain_host_without_tar_header_is_not_a_polyglot() -> None:
    """The same hosts without the tar header are one format each (the test above can fail)."""
    assert [detect(build()) for build, _ in POLYGLOTS.values()] == ["zip", "gzip", "npy", "pickle", "pickle"]


def test_torch_tar_checkpoint_still_loads(tmp_path: Path) -> None:
    """torch < 0.4 tar checkpoints: the first member name ``sys_info`` spells SETITEM on an empty stack, which
    CPython fails on, so the file is a tar and nothing else."""
    torch = pytest.importorskip("torch")
    from test_torch import write_tar_checkpoint

    path = tmp_path / "old.pt"
    write_tar_checkpoint(path, None)
    data = path.read_bytes()
    assert detect(data) == "tar" and cpython_reach(data) == []
    assert torch.equal(safeload.load(path)["view"], torch.tensor([[6.0, 7.0], [8.0, 9.0]]))
    report = scan(path)
    assert report.exit_code == 0, report.to_dict()


def test_tar_whose_first_name_spells_a_live_pickle_is_refused(tmp_path: Path) -> None:
    """A tar whose first member name is a live protocol-0 pickle (``c`` + module + newline ...): pickle.load runs
    it, so the file is both, and refused."""
    name = "cos\nsystem\n(Vtouch x\ntR."
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size = 4
        tf.addfile(info, io.BytesIO(b"abcd"))
    data = buf.getvalue()
    assert data.startswith(b"cos\nsystem\n") and is_tar(data)
    assert cpython_reach(data)[0].qualname == "os.system"
    with pytest.raises(safeload.FormatError, match="Polyglot"):
        detect(data)
    assert scan(data).exit_code in (1, 2)
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(data)


def test_v7_tar_without_ustar_magic_is_a_tar() -> None:
    """tarfile does not need the ``ustar`` magic: neither does the registry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("weights.bin")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    data = bytearray(buf.getvalue())
    data[257:265] = b"\0" * 8
    data[148:156] = b"%06o\0 " % (256 + sum(data[:148]) + sum(data[156:512]))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        assert tf.getnames() == ["weights.bin"]
    assert detect(bytes(data)) == "tar"


# ---- what CPython's unpickler could do: the walk -------------------------------------------------------------

LIVE_TEXT = {
    "INT in base 0": b"I0x1\n",
    "INT with C octal": b"I010\n",
    "line over 64 KiB": b"S'" + b"a" * 70000 + b"'\n0",
    "2000 MARKs": b"(" * 2000,
    "FRAME without PROTO": b"\x95" + struct.pack("<Q", 3) + b"N0N0",
}


@pytest.mark.parametrize("name", list(LIVE_TEXT))
def test_cpython_reach_matches_the_native_unpickler(name: str, tmp_path: Path) -> None:
    data = LIVE_TEXT[name] + oracle.payload(0)
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    assert oracle.live(path, ("pickle", "pickle_py")), name
    reach = cpython_reach(data)
    assert reach and reach[0].qualname == "__builtin__.open", reach


INERT_TEXT = {
    "python source": b"class Net:\n    pass\n",
    "cython": b"cimport numpy as np\n",
    "markdown": b"# Title\n\nText.\n",
    "bad INT": b"I12abc\n" + oracle.payload(0),
    "underflow": b"tR" + oracle.payload(0),
    "GLOBAL of no module": b"c\nopen\n" + oracle.payload(0),
}


@pytest.mark.parametrize("name", list(INERT_TEXT))
def test_inert_text_reaches_nothing(name: str, tmp_path: Path) -> None:
    data = INERT_TEXT[name]
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    assert cpython_reach(data) == []
    assert oracle.live(path, ("pickle", "pickle_py")) == [], name


def test_walk_names_every_global_after_a_failure() -> None:
    data = b"I0x1\ncos\nsystem\n0\x8c\x08builtins\x8c\x04exec\x93(csubprocess\nPopen\nS'x'\ni" + b"."
    names = [r.qualname for r in cpython_reach(data, every=True)]
    assert names == ["os.system", "builtins.exec", "subprocess.Popen"]
    assert pickle.loads(b"I0x1\n.") == 1  # CPython reads INT in base 0


def test_files_that_hold_no_pickle_are_named_by_the_registry(tmp_path: Path) -> None:
    """safeload/_kinds.py, called from the registry: GGUF, images and LFS pointers are skipped with a reason by
    scan and refused as unsupported by load; a Keras Lambda layer (marshalled bytecode) is never clean."""
    files = {
        "model.gguf": b"GGUF\x03\x00\x00\x00" + bytes(40),
        "logo.png": b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(17),
        "weights.bin": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        kind = detect(data)
        assert kind in ("gguf", "png", "lfs-pointer"), kind
        with pytest.raises(safeload.FormatError, match="Unsupported format"):
            safeload.loads(data)
    report = scan(tmp_path)
    assert {f.status for f in report.files} == {"skipped"} and all(f.reason for f in report.files)
    samples = Path(__file__).resolve().parents[2] / "shared" / "samples" / "tensorflow_keras"
    for name in ("model_with_lambda.keras", "model_with_lambda_legacy.h5"):
        if (samples / name).is_file():
            assert scan(samples / name).exit_code == 2


def test_crlf_module_name_is_not_text(tmp_path: Path) -> None:
    """``cos\\r\\n``: Python 3 cannot import ``os\\r`` (the oracle finds it inert), but a reader that opens the file
    in text mode reads ``\\r\\n`` as ``\\n``; surrounding whitespace is ignored, to be safe, so it is no text."""
    data = b"cos\r\nsystem\r\n(S'touch x'\ntR."
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    assert oracle.live(path, ("pickle",)) == []
    assert cpython_reach(data) and scan(path).exit_code == 1


def _lzma_alone(data: bytes, props: int, dict_size: int) -> bytes:
    from corpus_attacks import lzma_alone  # header bytes chosen within liblzma's rules (no magic number)

    return lzma_alone(data, props, dict_size)


HEADERLESS = {
    # 00 01 00 00 00 is a TrueType font's magic, and an lzma-alone header (lc=0, dictionary size 1)
    "lzma-alone spelling a font": (lambda: _lzma_alone(oracle.payload(2), 0x00, 1), "lzma", ("decompress",)),
    # joblib detects lzma by 5d 00 and reads the ZF length with int(text, 16)
    "lzma-alone in an HDF5 user block": (
        lambda: _lzma_alone(oracle.payload(2), 0x5D, 256).ljust(512, b"\0") + b"\x89HDF\r\n\x1a\n" + bytes(504),
        "lzma", ("joblib", "decompress")),
    "lenient joblib zfile": (
        lambda: b"ZF" + ("\t0x0_%x" % len(oracle.payload(2))).ljust(19).encode() + __import__("zlib").compress(
            oracle.payload(2)), "zfile", ("joblib",)),
}


@pytest.mark.parametrize("name", list(HEADERLESS))
def test_streams_without_magic_are_streams(name: str, tmp_path: Path) -> None:
    build, kind, loaders = HEADERLESS[name]
    data = build()
    path = tmp_path / "font.ttf"
    path.write_bytes(data)
    assert oracle.live(path, loaders), name
    assert detect(data) == kind
    assert scan(path).exit_code in (1, 2)
    with pytest.raises(safeload.SafeLoadError):
        safeload.load(path)


class _Reached(Exception):
    pass


def _unpickler_reaches(data: bytes, cls: type) -> bool:
    """Whether CPython's unpickler (C or Python) would import a module for ``data``: find_class raises before
    any import (so nothing runs), and a module name that is no dotted identifier fails as ``__import__`` does."""
    from safeload._detect import importable

    class Probe(cls):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> None:
            if importable(module):
                raise _Reached
            raise ModuleNotFoundError(module)

    f = io.BytesIO(data)
    for _ in range(8):  # as readers that call load() until end of file
        try:
            Probe(f).load()
        except _Reached:
            return True
        except Exception:
            return False
    return False


_TOKENS = [b"(", b"0", b"1", b"2", b"N", b")", b"]", b"}", b"t", b"l", b"d", b"a", b"e", b"s", b"u", b".",
           b"I1\n", b"I0x1\n", b"I010\n", b"I1_0\n", b"L5L\n", b"F1.5\n", b"F1\r\n", b"S'a'\n", b"S\"b\"\n",
           b"Vx\n", b"K\x01", b"M\x01\x00", b"J\x01\x00\x00\x00", b"U\x01x", b"\x8c\x02os", b"\x8c\x06system",
           b"X\x01\x00\x00\x00y", b"q\x00", b"h\x00", b"p0\n", b"g0\n", b"\x94", b"\x85", b"\x86", b"\x87",
           b"\x80\x02", b"\x80\x07", b"\x88", b"\x95\x02\x00\x00\x00\x00\x00\x00\x00", b"\x8f", b"\x90", b"\x91",
           b"c", b"os\n", b"lass Net:\n", b"\n", b"\x00", b"\x93", b"Psid\n", b"Q"]


def test_walk_never_misses_what_cpython_imports() -> None:
    """Differential, against CPython itself: whenever the C or the Python unpickler would call find_class on a
    random token stream, cpython_reach finds something to report (it may report more: it is conservative)."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=int(os.environ.get("SAFELOAD_WALK_EXAMPLES", "3000")), deadline=None,
                         derandomize=True)
    @hypothesis.given(st.lists(st.sampled_from(_TOKENS), max_size=24))
    def check(tokens: list[bytes]) -> None:
        data = b"".join(tokens) + b"cos\nsystem\n"
        reached = _unpickler_reaches(data, pickle.Unpickler) or _unpickler_reaches(data, pickle._Unpickler)
        if reached:
            assert cpython_reach(data), data

    check()


def test_frame_crossing_argument_as_the_c_unpickler_reads_a_file() -> None:
    """Found by the property above: FRAME of 2 bytes, then BININT2 whose second byte lies past the frame. On a
    file without peek (io.BytesIO) the C unpickler drops the rest of the frame and reads the argument from the
    bytes after it, so the GLOBAL that pickle.loads never reaches is imported; the walk reads it both ways."""
    data = b"\x95\x02\x00\x00\x00\x00\x00\x00\x00M\x01\x00\ncos\nsystem\n"
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)
    assert _unpickler_reaches(data, pickle.Unpickler)
    assert [r.qualname for r in cpython_reach(data)] == ["os.system"]
