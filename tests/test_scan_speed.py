"""The scan's fast paths read files and spell paths exactly as the slower ones did (safeload/_scan.py,
safeload/_collect.py, safeload/_cli.py).

* A file up to ``READ_WHOLE`` bytes is read with one ``os.read``; a larger one, or one whose read returns anything
  but its size (a short read, a file that changed since ``fstat``), is mapped whole. Both give the same report,
  and a short read never leaves a payload unseen.
* Paths given on the command line are shown as ``str(pathlib.Path(raw))`` spells them, without pathlib.
* argparse's help width is the one its own formatter would take (``shutil.get_terminal_size().columns - 2``).
"""

from __future__ import annotations

import os
import pathlib
import pickle
from pathlib import Path

import pytest

import oracle
import safeload
from safeload import _scan
from safeload._cli import _help_width, build_parser
from safeload._collect import collect_files, shown_path

PYTORCH = Path(__file__).resolve().parents[2] / "shared" / "samples" / "pytorch"


def _files(tmp_path: Path) -> list[Path]:
    """Real files: a torch.save zip, a live payload pickle (checked live by the oracle), a plain pickle."""
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.arange(12.0).reshape(3, 4), "step": 7}, tmp_path / "model.pt")
    (tmp_path / "evil.pkl").write_bytes(oracle.payload(4))
    assert oracle.live(tmp_path / "evil.pkl", ("pickle",)) == ["pickle"]
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"lr": 0.1, "names": ["a", "b"]}, protocol=2))
    return sorted(tmp_path.iterdir())


def _reports(paths: list[Path]) -> list[dict[str, object]]:
    return [_scan.scan_file(p, display=p.name).to_dict() for p in paths]


def test_read_and_mapped_files_scan_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _files(tmp_path)
    read = _reports(paths)
    monkeypatch.setattr(_scan, "READ_WHOLE", 0)  # every file mapped, as files over 1 MiB are
    mapped = _reports(paths)
    assert read == mapped
    assert {r["path"]: r["status"] for r in read} == {"evil.pkl": "unsafe", "model.pt": "clean", "plain.pkl": "clean"}


def test_a_short_read_maps_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that returns less than the file's size (as a network file system may) is not scanned as the file:
    the file is mapped whole, so the payload after the missing bytes is still found."""
    paths = _files(tmp_path)
    expected = _reports(paths)
    real_read = os.read
    short: list[int] = []

    def short_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        short.append(len(data))
        return data[: max(len(data) - 2, 1)]

    monkeypatch.setattr(os, "read", short_read)
    assert _reports(paths) == expected
    assert len(short) == len(paths)  # every file took the read path first


def test_a_file_over_the_read_limit_is_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.pkl"
    big.write_bytes(pickle.dumps(list(range(300_000)), protocol=4))
    assert big.stat().st_size > _scan.READ_WHOLE
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    report = _scan.scan_file(big)
    assert report.status == "clean" and reads == []


def test_a_directory_given_as_a_file_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    report = _scan.scan_file(tmp_path)
    assert report.status == "error" and report.findings[0].rule == "unreadable"


@pytest.mark.parametrize("raw", ["", ".", "./", "/", "//", "///", "////a", "//a//b/", "a", "a/", "a//b", "a/./b",
                                 "./a", "../a", "a/../b", ".//.", "/./a/.", "a/.", "..", "/..", "//./a", "x y/ z",
                                 "...", ".a/.b", "a/b/c/", "./../.", "é/ü"])
def test_shown_path_spells_paths_as_pathlib(raw: str) -> None:
    assert shown_path(raw) == str(pathlib.Path(raw))
    assert shown_path(pathlib.PurePosixPath(raw)) == str(pathlib.Path(raw))


def test_collected_names_are_the_pathlib_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pkl").write_bytes(pickle.dumps(1))
    monkeypatch.chdir(tmp_path)
    for given in ("./sub/", "sub//", "./sub/./a.pkl", str(tmp_path) + "//sub/"):
        files, skipped = collect_files([given])
        assert skipped == []
        assert [shown for _, shown in files] == [str(pathlib.Path(given) / "a.pkl") if not given.endswith(".pkl")
                                                 else str(pathlib.Path(given))]


@pytest.mark.parametrize("columns", ["50", "133", "", "junk", "0"])
def test_help_width_is_argparse_own(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setenv("COLUMNS", columns)
    assert _help_width() == shutil.get_terminal_size().columns - 2
    assert build_parser()._get_formatter()._width == shutil.get_terminal_size().columns - 2


def test_scan_of_the_real_torch_samples_is_unchanged_by_the_read_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real checkpoints (written by torch) scan alike read and mapped."""
    if not PYTORCH.is_dir():
        pytest.skip("samples not present")
    before = safeload.scan(PYTORCH).to_dict()
    monkeypatch.setattr(_scan, "READ_WHOLE", 0)
    assert safeload.scan(PYTORCH).to_dict() == before


def test_lazy_standard_library_entries_resolve_to_the_real_classes() -> None:
    """datetime, decimal and fractions are imported when a file first names them; the entries give the classes
    themselves, and a real pickle of them loads and scans as before."""
    import datetime
    import decimal
    import fractions

    for module, name, cls in (("datetime", "datetime", datetime.datetime), ("datetime", "date", datetime.date),
                              ("datetime", "time", datetime.time), ("datetime", "timedelta", datetime.timedelta),
                              ("datetime", "timezone", datetime.timezone), ("decimal", "Decimal", decimal.Decimal),
                              ("fractions", "Fraction", fractions.Fraction)):
        entry = safeload.DEFAULT_POLICY.lookup(module, name)
        assert entry is not None and entry.resolve() is cls and entry.call is not None
    values = [datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
              datetime.date(2020, 1, 2), datetime.time(3, 4), datetime.timedelta(days=1, seconds=2),
              decimal.Decimal("1.25"), fractions.Fraction(3, 7)]
    for proto in (0, 2, 4):
        data = pickle.dumps(values, protocol=proto)
        assert safeload.loads(data) == values
        report = safeload.scan(data)
        assert report.exit_code == 0 and report.files[0].status == "clean"


def _is_text_by_str(data: bytes) -> bool:
    """The text test as a decode and a regex over the str (the definition _is_text checks on bytes)."""
    import re

    raw = data[: 1 << 20]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if len(data) <= len(raw):
            return False
        try:
            text = raw[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return re.search("[\x00-\x08\x0b\x0e-\x1f\x80-\x9f]", text) is None


@pytest.mark.parametrize("seed", range(4))
def test_text_test_on_bytes_equals_the_str_definition(seed: int) -> None:
    import random

    from safeload._traverse import _is_text

    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(0x00, 0x180)] + ["\u2028", "\u202e", "\U0001f600", "\ud7ff", "\ufeff"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) if rng.random() < 0.05 else rng.choice("ab \n\t") for _ in range(
            rng.randrange(0, 40)))
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.2 and data:
            data = bytearray(data)
            data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        assert _is_text(data) == _is_text_by_str(data), data
    big = ("x" * ((1 << 20) - 1)).encode() + "é".encode() + b"tail"  # a character cut at the 1 MiB boundary
    for data in (big, big + b"\x01", big[:-5] + b"\xc2\x85" + big[-3:], b"plain\x0c\r\n\ttext\x7f"):
        assert _is_text(data) == _is_text_by_str(data)
    src = Path(__file__).read_bytes()
    assert _is_text(src) and _is_text_by_str(src)


def test_magic_lookup_by_first_byte_equals_the_ordered_table() -> None:
    """_kinds finds a magic number through an index by (offset, first byte); the answer is the first of the ordered
    table that matches, as a walk over the whole table gives, also where two magics match one head."""
    import random

    from safeload import _kinds

    def by_table(head: bytes) -> str | None:
        for offset, magic, kind in _kinds._MAGIC:
            if head[offset:offset + len(magic)] == magic:
                return kind
        return None

    rng = random.Random(7)
    magics = [(offset, magic) for offset, magic, _ in _kinds._MAGIC]
    heads = [b"", b"G", b"GGUFTFL3", b"\x00\x00\x00\x00ftyp", b"ID3\x00ftyp"]
    for _ in range(4000):
        head = bytearray(rng.randbytes(rng.randrange(0, 64)))
        for offset, magic in rng.sample(magics, rng.randrange(0, 3)):
            if rng.random() < 0.8:
                head[offset:offset + len(magic)] = magic
            else:
                head[offset:offset + len(magic) - 1] = magic[:-1]  # all but the last byte
        heads.append(bytes(head[:64]))
    table_kinds = {kind for _, _, kind in _kinds._MAGIC}  # the other tests (bmp, pe, hdf5, ...) name other kinds
    for head in heads:
        expected = by_table(head)
        if expected is not None:
            assert _kinds._kind(head) == expected, head
        else:
            assert _kinds._kind(head) not in table_kinds, head
