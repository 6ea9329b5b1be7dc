"""File collection (safeload/_collect.py): folders are walked lazily, one ``os.scandir`` entry at a time, so the
first file of a huge folder is scanned before the folder is listed to its end; each real file is given once.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeload import _collect, _distributed
from safeload._collect import collect_files, iter_files


class _CountingScandir:
    """``os.scandir`` that counts the entries the walker has taken."""

    def __init__(self) -> None:
        self.taken = 0
        self.real = os.scandir

    def __call__(self, path: str) -> object:
        inner = self.real(path)
        counter = self

        class Listing:
            def __enter__(self) -> Listing:
                return self

            def __exit__(self, *exc: object) -> None:
                inner.close()

            def __iter__(self) -> Iterator[os.DirEntry[str]]:
                return self

            def __next__(self) -> os.DirEntry[str]:
                entry = next(inner)
                counter.taken += 1
                return entry

            def close(self) -> None:
                inner.close()

        return Listing()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big")
    for i in range(3000):
        (root / f"p{i:04}.pkl").write_bytes(pickle.dumps({"i": i}, protocol=i % 5 + 1))
    return root


def test_the_first_file_comes_before_the_folder_is_listed(big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scandir = _CountingScandir()
    monkeypatch.setattr(_collect.os, "scandir", scandir)
    skipped: list[object] = []
    files = iter_files([big], skipped)
    first = next(files)
    assert Path(first[1]).parent == big and scandir.taken == 1
    rest = list(files)
    assert scandir.taken == 3000 and len(rest) == 2999 and skipped == []
    assert sorted([first, *rest]) == sorted(collect_files([big])[0])


def test_a_pool_scan_starts_before_the_listing_ends(big: Path) -> None:
    """``--jobs 2`` on a folder being walked: the first report arrives when a few batches have been taken from the
    listing, not all 3,000 files; every file is reported once."""
    drawn = 0

    def listing() -> Iterator[tuple[str, str]]:
        nonlocal drawn
        for item in iter_files([big], []):
            drawn += 1
            yield item

    reports = _distributed.pool_scan(listing(), 2)
    first = next(reports)
    at_first = drawn
    paths = [first.path, *(r.path for r in reports)]
    in_flight = _distributed.FIRST_BATCH * 2 + 4 * 2 * _distributed.BATCH
    assert at_first <= in_flight < 3000 and drawn == 3000
    assert sorted(paths) == sorted(str(p) for p in big.iterdir()) and first.status == "clean"


def test_a_file_reached_directly_and_through_a_link_is_given_once(tmp_path: Path) -> None:
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "a.pkl").symlink_to(tmp_path / "b.pkl")  # a link before its target in name order
    (tmp_path / "c.pkl").symlink_to(tmp_path / "b.pkl")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "only-linked.pkl").symlink_to(tmp_path / "outside.pkl")
    (tmp_path / "outside.pkl").write_bytes(pickle.dumps(2))  # also reached directly, under the folder
    files, skipped = collect_files([tmp_path])
    assert [os.path.relpath(d, tmp_path) for _, d in files] == ["b.pkl", "outside.pkl"] and skipped == []
    (tmp_path / "outside.pkl").rename(tmp_path.parent / f"{tmp_path.name}-outside.pkl")
    (tmp_path / "sub" / "only-linked.pkl").unlink()
    (tmp_path / "sub" / "only-linked.pkl").symlink_to(tmp_path.parent / f"{tmp_path.name}-outside.pkl")
    (tmp_path / "sub" / "z-linked.pkl").symlink_to(tmp_path.parent / f"{tmp_path.name}-outside.pkl")
    files, _ = collect_files([tmp_path])
    assert [os.path.relpath(d, tmp_path) for _, d in files] == ["b.pkl", os.path.join("sub", "only-linked.pkl")]


def test_special_files_and_unlistable_folders_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(0))
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "x.pkl").write_bytes(pickle.dumps(0))
    real_scandir = os.scandir

    def scandir(path: str) -> object:  # a folder this user may not list (root may list any, so it is simulated)
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(_collect.os, "scandir", scandir)
    files, skipped = collect_files([tmp_path])
    reasons = sorted(f.findings[0].message.rpartition(": ")[2] for f in skipped)
    assert [Path(d).name for _, d in files] == ["ok.pkl"]
    assert reasons == ["broken symlink, not scanned", "folder cannot be listed (Permission denied), not scanned",
                       "not a regular file, not scanned"]
    assert all(f.status == "error" for f in skipped)


def test_a_missing_path_fails_before_any_file_is_given(tmp_path: Path) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(0))
    with pytest.raises(FileNotFoundError):
        iter_files([tmp_path, tmp_path / "missing"], [])
