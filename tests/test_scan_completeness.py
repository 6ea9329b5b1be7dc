"""The scanner reads everything a native loader could: members load never reads, text that CPython would run,
what a stream names after the VM stopped, every file a folder links to, and third-party parsers that fail.

Each attack is first proven live under its native loader by the differential oracle (tests/oracle.py), then
safeload must flag it (scan exit status not 0) and refuse it (load).
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import random
import sys
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import oracle
import safeload
from safeload._scan import collect_files, scan

sys.path.insert(0, str(Path(__file__).parent))

BENIGN = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s."  # {'a': 1}


def _object_npy(pickled: bytes) -> bytes:
    """A version 1.0 .npy of one object element whose data is ``pickled`` (what np.load unpickles)."""
    text = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = text + b" " * (117 - len(text)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + pickled


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _torch_zip_with(name: str, content: bytes) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(name, content)
    return buf.getvalue()


# ---- every member of a checkpoint is scanned (issue 10, class 3) -------------------------------------------------

UNREAD = {
    "config.txt holding a pickle": ("archive/config.txt", lambda: oracle.payload(2), ("zipfile",)),
    "x.npy that np.load(file)['x'] opens": ("x.npy", lambda: _object_npy(oracle.payload(2)), ("numpy", "zipfile")),
}


@pytest.mark.parametrize("case", list(UNREAD))
def test_member_load_never_reads_is_scanned(case: str, tmp_path: Path) -> None:
    name, content, loaders = UNREAD[case]
    path = tmp_path / "model.pt"
    path.write_bytes(_torch_zip_with(name, content()))
    assert oracle.live(path, loaders) == list(loaders)
    report = scan(path)
    assert report.exit_code == 1, report.to_dict()
    assert any(f.member == name and f.qualname == "builtins.open" for f in report.findings)
    assert any(f.rule == "unexpected-member" for f in report.findings)
    with pytest.raises(safeload.FormatError, match="torch.load never reads"):
        safeload.load(path)
    assert oracle.check(path, loaders) == []


def test_benign_pickle_member_is_still_a_finding_and_text_is_not(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(_torch_zip_with("archive/extra.pkl", BENIGN))
    report = scan(path)
    assert report.exit_code == 2 and [f.rule for f in report.findings][-1] == "unexpected-member"
    path.write_bytes(_torch_zip_with("archive/notes.txt", b"trained for 3 epochs\n"))
    assert scan(path).exit_code == 0
    assert safeload.load(path)["w"].tolist() == [1.0, 1.0, 1.0]


def test_npz_members_after_a_refusal_are_scanned(tmp_path: Path) -> None:
    """load stops at the first malformed member; the scanner still reads the others."""
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("b.npy", b"\x93NUMPY\x01\x00\x02\x00{\n")  # a header that is not a dict
        zf.writestr("c.npy", _object_npy(oracle.payload(2)))
    path = tmp_path / "arrays.npz"
    path.write_bytes(buf.getvalue())
    assert oracle.live(path, ("numpy",)) == ["numpy"]
    report = scan(path)
    assert report.exit_code == 1, report.to_dict()
    assert any(f.member == "c.npy" and f.qualname == "builtins.open" for f in report.findings)


# ---- text that CPython would run is never "skipped (text)" (class 6) ---------------------------------------------

LIVE_TEXT = {
    "INT in base 0": b"I0x1\n",
    "line over 64 KiB": b"S'" + b"a" * 70000 + b"'\n0",
    "2000 MARKs": b"(" * 2000,
}


@pytest.mark.parametrize("case", list(LIVE_TEXT))
@pytest.mark.parametrize("wrap", ["plain", "pkl.gz", "in a tar"])
def test_text_cpython_would_run_is_flagged(case: str, wrap: str, tmp_path: Path) -> None:
    data = LIVE_TEXT[case] + oracle.payload(0)
    raw = tmp_path / "raw.txt"
    raw.write_bytes(data)
    if wrap == "plain":
        assert oracle.live(raw, ("pickle", "pickle_py")) == ["pickle", "pickle_py"]
    if wrap == "pkl.gz":
        data = gzip.compress(data)
    elif wrap == "in a tar":
        data = _tar({"notes.txt": data})
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(data)
    (folder / "README.md").write_text("# A model\n")
    report = scan(folder)
    assert report.exit_code == 1, report.to_dict()
    # the plain walk after the VM's refusal names the global the native reader imports
    assert any(f.qualname == "builtins.open" and f.verdict == "dangerous" for f in report.findings)


def test_python_source_is_text(tmp_path: Path) -> None:
    for name, text in {"net.py": "class Net:\n    pass\n", "ops.pxd": "cimport numpy as np\n"}.items():
        path = tmp_path / name
        path.write_text(text)
        assert oracle.live(path, ("pickle",)) == []
        report = scan(path)
        assert report.exit_code == 3 and report.files[0].status == "skipped", report.to_dict()


def test_every_global_named_after_the_vm_stops() -> None:
    """The VM refuses INT ``0x1``; the walk goes on and names each global of the rest, with its verdict."""
    data = (b"I0x1\n0ccollections\nOrderedDict\n)R0cos\nsystem\n0\x8c\x08builtins\x8c\x04exec\x93"
            b"(csubprocess\nPopen\nS'x'\ni0N.")
    report = scan(data)
    refs = {g.qualname: g.verdict for g in report.files[0].globals}
    assert refs == {"collections.OrderedDict": "allowed", "os.system": "dangerous", "builtins.exec": "dangerous",
                    "subprocess.Popen": "dangerous"}, refs
    assert report.exit_code == 1


def test_names_after_a_refusal_inside_a_torch_zip() -> None:
    """The walk reads the data.pkl member the VM refused, and names the globals after the refusal."""
    pkl = b"\x80\x02I0x1\n0cos\nsystem\n0ccollections\nOrderedDict\n)R."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
    report = scan(buf.getvalue())
    assert report.exit_code == 1
    refs = {(g.qualname, g.verdict, g.member) for g in report.files[0].globals}
    assert refs == {("os.system", "dangerous", "archive/data.pkl"),
                    ("collections.OrderedDict", "allowed", "archive/data.pkl")}, refs


# ---- symlinks (class 7) ----------------------------------------------------------------------------------------

def _hf_repo(hub: Path, blob_dir: Path, link_prefix: str) -> Path:
    repo = hub / "models--org--name"
    snap = repo / "snapshots" / "rev1"
    snap.mkdir(parents=True)
    blob_dir.mkdir(parents=True, exist_ok=True)
    (blob_dir / "aaa").write_bytes(BENIGN)
    (blob_dir / "bbb").write_bytes(oracle.payload(2))
    (snap / "config.json").write_text('{"model_type": "x"}')
    (snap / "pytorch_model.bin").symlink_to(link_prefix + "aaa")
    (snap / "extra.bin").symlink_to(link_prefix + "bbb")
    return repo


@pytest.mark.parametrize("layout", ["classic", "shared blob store"])
def test_hugging_face_cache_links_are_followed(layout: str, tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    if layout == "classic":
        repo = _hf_repo(hub, hub / "models--org--name" / "blobs", "../../blobs/")
    else:  # the repo's files link to <cache>/blobs/<prefix>/<hash>, outside the repository folder
        store = tmp_path / "xet" / "blobs" / "ab"
        repo = _hf_repo(hub, store, str(store) + "/")
    for root in (repo, repo / "snapshots" / "rev1", hub):
        report = scan(root)
        names = sorted(Path(f.path).name for f in report.files)
        assert names.count("extra.bin") == 1 and "bbb" not in names, names
        assert report.exit_code == 1, (root, report.to_dict())
        assert any(f.path.endswith("extra.bin") for f in report.files if f.status == "unsafe")


def test_broken_link_and_link_cycle_are_not_clean(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "ok.pkl").write_bytes(BENIGN)
    (folder / "loop").symlink_to(folder)  # a folder link back to itself: listed once
    assert scan(folder).exit_code == 0
    (folder / "model.bin").symlink_to(tmp_path / "missing")
    report = scan(folder)
    assert report.exit_code == 2
    assert any("broken symlink" in f.message for f in report.findings)
    files, _ = collect_files([folder])
    assert [Path(display).name for _, display in files] == ["ok.pkl"]


# ---- bundles (class 8, scan vs load) ----------------------------------------------------------------------------

def test_bundle_is_reported_as_a_bundle() -> None:
    tar = _tar({"model.pkl": BENIGN})
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("model.pkl", BENIGN)
    cases = {"tar-bundle": tar, "gzip-bundle": gzip.compress(tar), "zip-bundle": zipped.getvalue(),
             "bz2-bundle": bz2.compress(gzip.compress(BENIGN)), "gzip": gzip.compress(BENIGN)}
    for name, data in cases.items():
        report = scan(data)
        assert report.exit_code == 0 and report.files[0].format == name, (name, report.to_dict())
        if name.endswith("-bundle"):  # load opens checkpoints, not bundles
            with pytest.raises(safeload.SafeLoadError):
                safeload.loads(data)
        else:
            assert safeload.loads(data) == {"a": 1}


# ---- third-party parsers: one boundary ---------------------------------------------------------------------------

def test_corrupted_7z_never_escapes(tmp_path: Path) -> None:
    """Mutations of a real py7zr archive (fixed seeds): every one is reported, none raises out of scan."""
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "w.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(BENIGN, "a.pkl")
        archive.writestr(b"hello " * 20, "b.txt")
    original = path.read_bytes()
    assert scan(original).exit_code == 0
    codes = set()
    for seed in range(150):
        rng = random.Random(seed)
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        report = scan(bytes(data))  # must not raise
        codes.add(report.exit_code)
        if report.exit_code == 2:
            assert report.findings and all(f.rule in ("malformed", "limit-exceeded", "unsupported-format")
                                           for f in report.findings), report.to_dict()
    assert 2 in codes


@pytest.mark.parametrize("exc", [AssertionError, TypeError, KeyError])
def test_any_py7zr_exception_is_a_format_error(exc: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "w.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(BENIGN, "a.pkl")

    def boom(*args: object, **kwargs: object) -> None:
        raise exc("inside py7zr")

    monkeypatch.setattr(py7zr.SevenZipFile, "list", boom)
    report = scan(path)
    assert report.exit_code == 2
    assert report.findings[0].rule == "malformed" and exc.__name__ in report.findings[0].why


# ---- scan memory (issue 11) --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gzip", "bz2", "zstd"])
def test_scan_memory_stays_near_max_decompressed(kind: str) -> None:
    """A bomb stopped at max_decompressed: the scan holds the inflated bytes once (no compressed + inflated +
    bytes() copies), plus one read chunk of at most an eighth of the limit."""
    import zstandard

    limit = 8 << 20
    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "zstd": zstandard.ZstdCompressor().compress}[kind]
    data = compress(b"\0" * (64 << 20))
    tracemalloc.start()
    try:
        report = scan(data, max_decompressed=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.findings[0].rule == "limit-exceeded"
    assert peak <= limit * 1.3 + len(data), f"peak {peak} for a limit of {limit}"


def test_hidden_folder_entries_walk_in_order(tmp_path: Path) -> None:
    """collect_files lists each real file once, in display order, skipping .git."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "obj").write_bytes(oracle.payload(2))
    (tmp_path / "b").write_bytes(BENIGN)
    (tmp_path / "a").write_bytes(BENIGN)
    files, skipped = collect_files([tmp_path])
    assert [os.path.basename(d) for _, d in files] == ["a", "b"] and skipped == []
