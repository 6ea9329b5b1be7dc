"""File collection for :func:`safeload.scan` and ``safeload scan``: which files a list of paths (and URLs) names.

Folders are walked recursively, symlinks followed (Hugging Face cache layouts included), each file once, and
what cannot be read is reported, never silently left out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ._report import ERROR, FileReport, Finding

__all__ = ["collect_any", "collect_files"]


def collect_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[str, str]], list[FileReport]]:
    """Regular files under ``paths``, each once (by real path), as (real path, display name), and the reports of
    what could not be scanned.

    Every symlink is followed, to files and to folders, wherever it leads: a Hugging Face cache links
    ``snapshots/<rev>/<name>`` to ``../../blobs/<sha>`` (classic layout) or to a blob store shared by every
    repository, outside the repository folder (``<cache>/blobs/<prefix>/<hash>``). A file reached twice is
    scanned once. A broken symlink, a special file or a folder that cannot be listed is reported as an error (it
    could be a model that was not scanned): the scan does not exit 0. A path that does not exist raises
    FileNotFoundError.
    """
    files: dict[str, str] = {}
    skipped: list[FileReport] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(f"{raw}: no such file or folder")
        if path.is_dir():
            for entry, real_dir in _walk(path, skipped):
                _add(files, skipped, entry, real_dir)
        else:
            _add(files, skipped, path)
    ordered = sorted(files.items(), key=lambda kv: kv[1])
    return ordered, skipped


def _not_scanned(display: str, why: str) -> FileReport:
    report = FileReport(display, ERROR)
    report.findings.append(Finding(display, "unreadable", ERROR, f"{display}: {why}, not scanned",
                                   why="a file the scanner cannot read could be a model; it is never called clean",
                                   fix="Fix or remove the path, or scan the file it should name"))
    return report


def _walk(folder: Path, skipped: list[FileReport]) -> Iterator[tuple[Path, str]]:
    """Every file below ``folder``, following folder symlinks; each real folder is listed once (no cycles)."""
    seen: set[str] = set()

    def onerror(exc: OSError) -> None:
        skipped.append(_not_scanned(str(exc.filename or folder), f"folder cannot be listed ({exc.strerror})"))

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=onerror):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            yield Path(dirpath) / name, real


def _add(files: dict[str, str], skipped: list[FileReport], path: Path, real_dir: str | None = None) -> None:
    display = str(path)
    linked = os.path.islink(display)
    # below a resolved folder, a file that is not a link is its own real path
    real = os.path.join(real_dir, path.name) if real_dir is not None and not linked else os.path.realpath(display)
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        skipped.append(_not_scanned(display, "broken symlink" if linked else f"cannot be read ({exc.strerror})"))
        return
    if stat.S_ISDIR(mode):
        return  # a folder symlink: os.walk follows it
    if not stat.S_ISREG(mode):
        skipped.append(_not_scanned(display, "not a regular file"))
        return
    previous = files.get(real)
    # Hugging Face caches: prefer the snapshots/<rev>/name a user knows over blobs/<sha>
    if previous is None or ("/blobs/" in previous and "/blobs/" not in display):
        files[real] = display


def collect_any(paths: Iterable[Any]) -> tuple[list[tuple[str, str]], list[Any]]:
    """:func:`collect_files` for paths, :func:`iter_remote` for URLs; sorted by what is shown."""
    from ._remote import is_url, iter_remote

    paths = list(paths)
    urls = [p for p in paths if is_url(p)]
    files, skipped = collect_files([p for p in paths if not is_url(p)])
    if not urls:
        return files, skipped
    seen = {d for _, d in files}
    for url in urls:
        for target, display in iter_remote(url):
            if display not in seen:
                seen.add(display)
                files.append((target, display))
    files.sort(key=lambda kv: kv[1])
    return files, skipped
