"""``safeload.scan`` against ``safeload.load``: the same walker and policy, so the same verdict, on every file.

The agreement test runs the whole adversarial corpus, malformed streams and the real samples through both. Then
each container trick of SECURITY.md's threat model gets a generated file: the payload hidden in tar, zip, nested zips,
gzip, bz2, xz, lzma, zstd and 7z streams, under innocent names, next to bombs and ambiguous archives.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import safeload
from samples_path import SAMPLES as SHARED_SAMPLES

from corpus import CORPUS, GLOBAL, MARK, PROTO, REDUCE, STOP, STRING, TUPLE

safeload = pytest.importorskip("safeload")
from safeload import _scan  # noqa: E402
from safeload._scan import scan, scan_file, sniff  # noqa: E402

SAMPLES = SHARED_SAMPLES

# os.system('touch MARKER'), protocol 0: also plain ASCII text
EVIL = GLOBAL("os", "system") + MARK + STRING("touch MARKER") + TUPLE + REDUCE + STOP
BENIGN = PROTO(2) + b"}q\x00X\x01\x00\x00\x00aK\x01s."  # {'a': 1}


def load_refuses(data: bytes) -> bool:
    try:
        safeload.loads(data, tensors="numpy")
    except safeload.SafeLoadError:
        return True
    return False


def scan_flags(data: bytes) -> bool:
    return not scan(data).ok


def torch_zip(pkl: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return buf.getvalue()


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# ---- scan and load agree ----------------------------------------------------------------------------------------

# Malformed streams (as in CPython's pickletester), each a byte literal with its opcodes named.
MALFORMED = {
    "empty-ish unknown opcode": b"\xff",                                 # not an opcode
    "truncated BINUNICODE": b"\x80\x02X\xff\x00\x00\x00ab",             # PROTO 2, BINUNICODE claims 255 bytes
    "no STOP": b"\x80\x02K\x01",                                        # PROTO 2, BININT1 1, then nothing
    "data after STOP": b"\x80\x02N." + b"\x80\x02N.",                   # two pickles where one is expected
    "BINGET of empty memo": b"\x80\x02h\x05.",                          # BINGET 5 with nothing memoised
    "LONG_BINPUT memo bomb": b"\x80\x02Nr\xff\xff\xff\x7f.",            # LONG_BINPUT 2**31-1
    "stack underflow": b"\x80\x02\x85.",                                # TUPLE1 on an empty stack
    "MARK never closed": b"(K\x01.",                                    # MARK, BININT1, STOP
    "BINBYTES8 beyond file": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"x.",  # length claim 1 TiB
    "benign": BENIGN,
    "benign torch zip": torch_zip(BENIGN),
    "evil torch zip": torch_zip(EVIL),
    "torch zip with trailing bytes": torch_zip(BENIGN) + b"junk",
}


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_scan_agrees_with_load(case) -> None:
    assert load_refuses(case.data), case.name
    report = scan(case.data)
    assert scan_flags(case.data) is True
    if case.error == "global":
        unsafe = {f.qualname for f in report.findings if f.severity == "unsafe"}
        assert unsafe & set(case.refs), (case.name, unsafe)
        assert report.exit_code == 1


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_scan_agrees_with_load(name: str) -> None:
    data = MALFORMED[name]
    assert scan_flags(data) == load_refuses(data)
    report = scan(data)
    assert report.exit_code in ((0,) if name.startswith("benign") else (1, 2))


def _sample_files() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file())


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples not found")
def test_real_samples_scan_agrees_with_load() -> None:
    policy = _scan.policy_for()
    disagreements = []
    for path in _sample_files():
        data = path.read_bytes()
        kind = sniff(data)
        if kind in ("gzip", "bz2", "xz", "zstd", "lz4", "tar", "7z"):
            continue  # generic containers: the members are what load would read (test_compressed_* below)
        report = scan_file(path, policy)
        if (report.format or "").endswith("-bundle"):
            continue  # a .keras zip: load opens no bundle, the scanner reads its members
        try:
            safeload.load(path, tensors="numpy")
            refused = False
        except safeload.SafeLoadError:
            refused = True
        if refused == (report.status == "clean"):
            disagreements.append((path.name, report.status, refused))
    assert not disagreements


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples not found")
def test_sample_verdicts() -> None:
    assert scan(SAMPLES / "pytorch" / "state_dict.pt").ok
    whole = scan(SAMPLES / "pytorch" / "whole_module.pt")
    assert whole.exit_code == 1
    assert {f.qualname for f in whole.findings} >= {"__main__.Net", "torch.nn.modules.conv.Conv2d"}
    assert all(f.member == "whole_module/data.pkl" for f in whole.findings)
    legacy = scan(SAMPLES / "pytorch" / "state_dict_legacy_format.pt").files[0]
    assert legacy.status == "clean" and legacy.format == "torch-legacy" and legacy.pickles == 5
    assert scan(SAMPLES / "README.md").exit_code == 3  # text: skipped, nothing scanned


def test_every_global_reported_with_verdict_and_location() -> None:
    data = (PROTO(2) + GLOBAL("collections", "OrderedDict") + b")R"          # allowed
            + GLOBAL("mypkg.models", "Net") + b")R"                          # unknown
            + GLOBAL("subprocess", "Popen") + b")R" + b"\x87.")              # dangerous; TUPLE3, STOP
    report = scan(data)
    refs = {(g.qualname, g.verdict) for g in report.files[0].globals}
    assert refs == {("collections.OrderedDict", "allowed"), ("mypkg.models.Net", "unknown"),
                    ("subprocess.Popen", "dangerous")}
    by_name = {f.qualname: f for f in report.findings}
    assert by_name["subprocess.Popen"].verdict == "dangerous" and by_name["subprocess.Popen"].rule == "dangerous-global"
    assert "runs programs" in by_name["subprocess.Popen"].why
    assert by_name["mypkg.models.Net"].offset == data.index(b"cmypkg") and by_name["mypkg.models.Net"].opcode == "GLOBAL"
    assert by_name["mypkg.models.Net"].pickle == 0
    assert report.to_dict()["summary"]["unsafe"] == 1


def test_allow_by_name_without_import() -> None:
    data = PROTO(2) + GLOBAL("notinstalled_pkg.mod", "Config") + b")\x81}b."  # NEWOBJ, BUILD {}
    assert scan(data).exit_code == 1
    assert scan(data, allow=["notinstalled_pkg.mod.Config"]).ok


# ---- container tricks (SECURITY.md), each with a generated file ---------------------------------------------

def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


HIDDEN = {
    "gzip": (lambda d: gzip.compress(d), "[gzip]"),
    "bz2": (lambda d: bz2.compress(d), "[bz2]"),
    "xz": (lambda d: lzma.compress(d), "[xz]"),
    "lzma-alone": (lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), "[lzma]"),
    "zstd": (_zstd, "[zstd]"),
    "gzip twice": (lambda d: gzip.compress(gzip.compress(d)), "[gzip]![gzip]"),
    "tar": (lambda d: tar_of({"weights/readme.txt": d}), "weights/readme.txt"),
    "tar.gz": (lambda d: gzip.compress(tar_of({"model.bin": d})), "[gzip]!model.bin"),
    "tar.xz of torch zip": (lambda d: tar_of({"m.pt": torch_zip(d)}, "w:xz"), "[xz]!m.pt!archive/data.pkl"),
    "zip": (lambda d: zip_of({"docs/notes.md": d}), "docs/notes.md"),
    "nested zip": (lambda d: zip_of({"inner.zip": zip_of({"x.png": d})}), "inner.zip!x.png"),
    "torch zip in zip": (lambda d: zip_of({"model.pt": torch_zip(d)}, zipfile.ZIP_STORED),
                         "model.pt!archive/data.pkl"),
}


@pytest.mark.parametrize("trick", list(HIDDEN))
def test_payload_found_in_container(trick: str, tmp_path: Path) -> None:
    wrap, member = HIDDEN[trick]
    path = tmp_path / "config.json"  # an innocent name: detection is by content
    path.write_bytes(wrap(EVIL))
    report = scan(path)
    assert report.exit_code == 1, report.to_dict()
    finding = next(f for f in report.findings if f.severity == "unsafe")
    assert finding.qualname in ("os.system", "posix.system")
    assert finding.member == member
    clean = tmp_path / "clean.bin"
    clean.write_bytes(wrap(BENIGN))
    assert scan(clean).exit_code == 0, scan(clean).to_dict()


def test_concatenated_gzip_is_never_clean(tmp_path: Path) -> None:
    """A second gzip member after the first hides a payload from readers that stop at the first: the loader and
    the scanner both refuse the file (exit 2), whatever the second member holds."""
    for second in (EVIL, BENIGN):
        path = tmp_path / "weights.bin"
        path.write_bytes(gzip.compress(BENIGN) + gzip.compress(second))
        report = scan(path)
        assert report.exit_code == 2, report.to_dict()
        with pytest.raises(safeload.SafeLoadError):
            safeload.load(path)


def test_seven_zip(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "weights.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(EVIL, "sub/evil.txt")
        archive.writestr(BENIGN, "ok.pkl")
    report = scan(path)
    assert report.exit_code == 1
    assert [f.member for f in report.findings] == ["sub/evil.txt"]


def test_seven_zip_without_py7zr_is_never_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24)
    monkeypatch.setitem(sys.modules, "py7zr", None)
    report = scan(path)
    assert report.exit_code == 2
    assert report.findings[0].rule == "unsupported-format"


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bz2"])
def test_decompression_bomb(kind: str) -> None:
    zeros = b"\x00" * (8 << 20)
    data = {"gzip": gzip.compress, "bz2": bz2.compress, "zstd": _zstd}[kind](zeros)
    report = scan(data, max_decompressed=1 << 20)
    assert report.exit_code == 2
    assert report.findings[0].rule == "limit-exceeded"


def test_zip_bomb_member_counts_against_budget() -> None:
    data = zip_of({"a.bin": b"\x00" * (4 << 20)})
    assert scan(data, max_decompressed=1 << 20).findings[0].rule == "limit-exceeded"


def _patch(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new)


AMBIGUOUS = {
    # a torch zip whose data.pkl no longer matches its CRC-32
    "bad CRC": lambda: _patch(torch_zip(BENIGN), b"\x01\x00\x00\x00aK\x01", b"\x01\x00\x00\x00bK\x01"),
    # the same member name twice
    "duplicate member": lambda: _dup_zip(),
    # the encrypted flag bit set in every header
    "encrypted flag": lambda: _flag_zip(0x1),
    # a zip appended after another
    "appended archive": lambda: torch_zip(BENIGN) + zip_of({"x": EVIL}),
    # a pickle before a zip
    "pickle prepended to zip": lambda: EVIL + zip_of({"a.txt": b"hello"}),
    # gzip with trailing garbage
    "gzip trailing data": lambda: gzip.compress(BENIGN) + b"MZ\x90\x00",
    # truncated streams
    "truncated xz": lambda: lzma.compress(BENIGN * 50)[:-10],
    "truncated tar member": lambda: tar_of({"m.pkl": BENIGN * 200})[:700],
    # a tar with one member name twice
    "duplicate tar member": lambda: _dup_tar(),
    # the legacy torch format with one more pickle after the storages
    "legacy torch + extra pickle": lambda: (SAMPLES / "pytorch" / "state_dict_legacy_format.pt").read_bytes() + EVIL,
    # safetensors-like bytes and other formats nobody opens are never clean
    "unknown binary": lambda: b"\x00\x01\x02\x03GGUF" + bytes(100),
}


def _dup_zip() -> bytes:
    data = zip_of({"archive/data.pkl": BENIGN, "archive/data.pkX": EVIL}, zipfile.ZIP_STORED)
    return data.replace(b"archive/data.pkX", b"archive/data.pkl")


def _dup_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for content in (BENIGN, EVIL[:-1] + b"."):
            info = tarfile.TarInfo("model.pkl")
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _flag_zip(bit: int) -> bytes:
    data = bytearray(torch_zip(BENIGN))
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        while pos >= 0:
            data[pos + at] |= bit
            pos = data.find(sig, pos + 4)
    return bytes(data)


@pytest.mark.parametrize("trick", list(AMBIGUOUS))
def test_ambiguous_or_broken_is_never_clean(trick: str) -> None:
    if "legacy" in trick and not SAMPLES.is_dir():
        pytest.skip("samples not found")
    data = AMBIGUOUS[trick]()
    report = scan(data)
    assert report.exit_code in (1, 2), (trick, report.to_dict())
    if sniff(data) not in ("gzip", "xz", "tar"):
        assert load_refuses(data)


def test_text_named_anything_is_checked_as_a_pickle(tmp_path: Path) -> None:
    """Protocol-0 pickles are text; a README that is one is flagged, a real README is skipped."""
    (tmp_path / "README.md").write_bytes(EVIL)
    (tmp_path / "notes.md").write_text("# Notes\n\nNothing to see.\n")
    report = scan(tmp_path)
    status = {Path(f.path).name: f.status for f in report.files}
    assert status == {"README.md": "unsafe", "notes.md": "skipped"}


def test_explain_decompiles_with_fickling() -> None:
    pytest.importorskip("fickling")
    report = scan(EVIL, explain=True)
    text = report.findings[0].explanation or ""
    assert "system" in text and "touch MARKER" in text
    assert scan(torch_zip(EVIL), explain=True).findings[0].explanation


def test_hf_cache_layout_scans_each_blob_once(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--name"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "aaa").write_bytes(torch_zip(BENIGN))
    (blobs / "bbb").write_bytes(EVIL)
    (blobs / "ccc").write_text('{"model_type": "x"}')
    for rev in ("rev1", "rev2"):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "pytorch_model.bin").symlink_to("../../blobs/aaa")
        (snap / "config.json").symlink_to("../../blobs/ccc")
    (repo / "snapshots" / "rev2" / "extra.bin").symlink_to("../../blobs/bbb")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("rev2")
    for root in (tmp_path / "hub", repo / "snapshots" / "rev2"):
        report = scan(root)
        names = sorted(f.path for f in report.files)
        assert len(names) == len(set(names))
        assert sum(Path(n).name == "pytorch_model.bin" for n in names) == 1, names
        assert report.exit_code == 1
        assert any("snapshots" in f.path and f.path.endswith("extra.bin") for f in report.files if f.status == "unsafe")


def test_symlink_outside_root_is_followed(tmp_path: Path) -> None:
    """A link that leads outside the scanned folder is scanned (a skipped model file never yields exit 0)."""
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(EVIL)
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "link.pkl").symlink_to(outside)
    (folder / "ok.pkl").write_bytes(BENIGN)
    report = scan(folder)
    status = {Path(f.path).name: f.status for f in report.files}
    assert status == {"link.pkl": "unsafe", "ok.pkl": "clean"}
    assert report.exit_code == 1


def test_scan_reads_no_tensor_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch zip whose storage bytes are all wrong still scans clean: sizes are checked, data never read."""
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.arange(64, dtype=torch.float32), "b": torch.ones(3, dtype=torch.int64)}, buf)
    wrong = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(wrong, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            dst.writestr(name, bytes(reversed(content)) if "/data/" in name else content)
    counts = _counting(monkeypatch)
    report = scan(wrong.getvalue())
    assert report.ok and report.files[0].format == "torch-zip"
    assert not [name for name in counts["read"] if "/data/" in name]  # no storage record was read
    assert counts["read"]["archive/data.pkl"] == 1


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, int]]:
    """Count what a scan or a load does: registry runs (``_detect.matches``, once per ``detect``) and readings of
    a zip's central directory, walks of CPython's unpickler (``_reach._walk``, once or twice per
    ``cpython_reach``) and zip member reads, by name."""
    from safeload import _detect, _reach
    from safeload._containers.zip import ZipArchive

    counts: dict[str, dict[str, int]] = {"detect": {}, "walk": {}, "read": {}}

    def wrap(owner: object, attr: str, kind: str, key=lambda *a: "") -> None:  # noqa: ANN001
        original = getattr(owner, attr)

        def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            name = key(*args)
            counts[kind][name] = counts[kind].get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attr, counted)

    wrap(_detect, "matches", "detect")
    wrap(_reach, "_walk", "walk")
    wrap(ZipArchive, "read", "read", key=lambda _self, name, *a: name)
    wrap(ZipArchive, "_parse", "detect", key=lambda *a: "zip directory")
    return counts


def test_scan_detects_each_blob_once_and_reads_no_member_more_than_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scanner passes its detection down to load, and load hands the members it judged to the scanner: no
    blob is detected twice and no member of a checkpoint zip is read more often by scan than by load."""
    import collections
    import pickle

    torch = pytest.importorskip("torch")
    text_pickle = pickle.dumps(collections.OrderedDict(a=[1, 2.5, "x"]), protocol=0)
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3), "step": 7}, buf)
    extended = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(extended, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("archive/notes.txt", b"trained for 7 steps\n")
    payload = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(extended.getvalue())) as src, zipfile.ZipFile(payload, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("archive/extra.pkl", EVIL)
    cases = {"protocol 0": text_pickle, "protocol 4": pickle.dumps([1, {"a": 2}], protocol=4),
             "torch zip": buf.getvalue(), "torch zip with a text member": extended.getvalue(),
             "torch zip with a pickle member": payload.getvalue()}
    counts = _counting(monkeypatch)
    for label, data in cases.items():
        for done in counts.values():
            done.clear()
        refused = load_refuses(data)
        loaded = {kind: dict(done) for kind, done in counts.items()}
        for done in counts.values():
            done.clear()
        assert scan(data).exit_code == (1 if refused else 0), label
        assert refused == (label == "torch zip with a pickle member")
        members = [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist()
                   if not n.endswith("data.pkl") and "/data/" not in n] if data[:2] == b"PK" else []
        # the file once, and each member load never runs (the scanner opens it by content) once
        assert counts["detect"].get("", 0) == 1 + len(members), label
        assert loaded["detect"].get("", 0) == 1, label
        assert counts["detect"].get("zip directory", 0) == loaded["detect"].get("zip directory", 0), label
        for name, times in counts["read"].items():
            assert times <= loaded["read"].get(name, 0), (label, name)
        # the walks of CPython's unpickler: load's, the scanner's text test of a protocol-0 file, and the registry's
        # walk of each member load judged (detect does not take load's verdict)
        extra = 1 if label == "protocol 0" else 0
        if refused:  # load refused the member after data.pkl ran to its end: neither is read again
            assert counts["read"]["archive/extra.pkl"] == 1 and counts["read"]["archive/data.pkl"] == 1
        assert counts["walk"].get("", 0) <= loaded["walk"].get("", 0) + extra + len(members), label
