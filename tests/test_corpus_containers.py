"""The container-trick corpus (tests/corpus_containers.py): every case is refused by ``safeload.load`` with the
expected error and without running anything, ``safeload scan`` never calls it clean, and where a naive reader
runs the payload, a subprocess proves it (the marker appears)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corpus import MARKER
from corpus_containers import CONTAINER_CORPUS, ContainerCase

safeload = pytest.importorskip("safeload")
from safeload._scan import scan  # noqa: E402

IDS = [c.name for c in CONTAINER_CORPUS]


def _write(case: ContainerCase, folder: Path) -> Path:
    path = folder / case.filename
    path.write_bytes(case.data)
    return path


def test_corpus_shape() -> None:
    assert len(set(IDS)) == len(IDS)
    assert len(CONTAINER_CORPUS) >= 30
    assert sum(c.proof is not None for c in CONTAINER_CORPUS) >= 8


@pytest.mark.parametrize("case", CONTAINER_CORPUS, ids=IDS)
def test_load_refuses(case: ContainerCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    expected = getattr(safeload, case.error)
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.load(path, tensors="numpy")
    assert isinstance(info.value, expected), f"{type(info.value).__name__}: {info.value}"
    assert "Unexpected" not in str(info.value), str(info.value)  # never an internal error
    try:  # stub mode may return inert stubs for the refused global; the container checks still hold
        safeload.load(path, tensors="numpy", unknown="stub")
    except safeload.SafeLoadError as err:
        assert not isinstance(err, safeload.UnsafeGlobalError), err
    else:
        assert case.error == "UnsafeGlobalError", "a container trick was accepted in stub mode"
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("case", CONTAINER_CORPUS, ids=IDS)
def test_scan_never_clean(case: ContainerCase, tmp_path: Path) -> None:
    report = scan(_write(case, tmp_path))
    assert report.exit_code in (1, 2), report.to_dict()
    if case.error == "UnsafeGlobalError":
        assert report.exit_code == 1, report.to_dict()


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("safeload")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "safeload"]


@pytest.mark.parametrize("index", [0, 2, 13, -5])
def test_console_script_exit_code(index: int, tmp_path: Path) -> None:
    """A few cases through the installed console script, as a CI job would run it."""
    case = CONTAINER_CORPUS[index]
    path = _write(case, tmp_path)
    proc = subprocess.run([*_cli(), "scan", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr


_NAIVE = textwrap.dedent(
    """
    import io, os, pickle, sys, zipfile, zlib
    kind, path = sys.argv[1], sys.argv[2]
    data = open(path, 'rb').read()
    try:
        if kind == 'pickle':
            pickle.loads(data)
        elif kind == 'pickles':            # torch's legacy reader: one pickle after another
            f = io.BytesIO(data)
            while f.tell() < len(data):
                pickle.load(f)
        elif kind == 'zip':                # a reader that trusts the central directory and skips the CRC
            zf = zipfile.ZipFile(io.BytesIO(data))
            name = [n for n in zf.namelist() if n.endswith('data.pkl')][-1]
            info = zf.getinfo(name)
            off = info.header_offset
            nlen, elen = int.from_bytes(data[off + 26:off + 28], 'little'), int.from_bytes(data[off + 28:off + 30], 'little')
            start = off + 30 + nlen + elen
            pickle.loads(data[start:start + info.compress_size])
    except Exception as e:
        print('naive reader raised', type(e).__name__, e)
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        pass
    """
)


@pytest.mark.parametrize("case", [c for c in CONTAINER_CORPUS if c.proof], ids=[c.name for c in CONTAINER_CORPUS if c.proof])
def test_naive_reader_runs_payload(case: ContainerCase, tmp_path: Path) -> None:
    path = _write(case, tmp_path)
    proc = subprocess.run([sys.executable, "-c", _NAIVE, case.proof, str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert (tmp_path / MARKER).exists(), proc.stdout + proc.stderr



def test_console_script_on_the_whole_corpus(tmp_path: Path) -> None:
    """Every case of both corpora as a file in one folder, one run of the console script: none is clean."""
    import json

    from corpus import CORPUS

    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, case in enumerate(CORPUS):
        (folder / f"p{i:03d}.bin").write_bytes(case.data)
    for i, ccase in enumerate(CONTAINER_CORPUS):
        (folder / f"c{i:03d}_{ccase.filename}").write_bytes(ccase.data)
    proc = subprocess.run([*_cli(), "scan", "--format", "json", str(folder)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode in (1, 2), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    files = report["files"]
    assert len(files) == len(CORPUS) + len(CONTAINER_CORPUS), len(files)
    clean = [f["path"] for f in files if f["status"] not in ("unsafe", "error")]
    assert not clean, clean
    assert not (tmp_path / MARKER).exists()
