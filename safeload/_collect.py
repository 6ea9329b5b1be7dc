"""File collection for :func:`safeload.scan` and ``safeload scan``: which files a list of paths (and URLs) names.

Folders are walked recursively, symlinks followed (Hugging Face cache layouts included), each file once, and
what cannot be read is reported, never silently left out.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Iterable, Iterator

from ._hints import Any
from ._report import ERROR, FileReport, Finding

__all__ = ["collect_any", "collect_files", "iter_any", "iter_files"]


def collect_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[str, str]], list[FileReport]]:
    """Regular files under ``paths``, each once (by real path), as (real path, display name) sorted by display name,
    and the reports of what could not be scanned: :func:`iter_files`, read to the end."""
    skipped: list[FileReport] = []
    files = sorted(iter_files(paths, skipped), key=lambda kv: kv[1])
    return files, skipped


def iter_files(paths: Iterable[str | os.PathLike[str]], skipped: list[FileReport]) -> Iterator[tuple[str, str]]:
    """Regular files under ``paths``, each once (by real path), as (real path, display name), lazily: folders are
    read one entry at a time (``os.scandir``), so the first file comes before a million-file folder is listed, and
    only the folders still to visit are kept. What cannot be scanned is appended to ``skipped`` as it is met. Every
    path is checked first: one that does not exist raises FileNotFoundError before any file is given.

    Every symlink is followed, to files and to folders, wherever it leads: a Hugging Face cache links
    ``snapshots/<rev>/<name>`` to ``../../blobs/<sha>`` (classic layout) or to a blob store shared by every
    repository, outside the repository folder (``<cache>/blobs/<prefix>/<hash>``). A file reached twice is
    scanned once: a file reached directly (no link on its way, not under a ``blobs`` folder) under its own path,
    given as soon as it is met; one reached only through links, or under ``blobs``, is given after the walk,
    under the first of its link paths in name order, a ``blobs/<sha>`` path only when no link names it. A broken
    symlink, a special file or a folder that cannot be listed is reported as an error (it could be a model that was
    not scanned): the scan does not exit 0.
    """
    roots = [shown_path(raw) for raw in paths]
    for path in roots:
        if _missing(path):
            raise FileNotFoundError(f"{path}: no such file or folder")
    return _iter_files(roots, skipped)


#: what pathlib's ``exists()`` and ``is_symlink()`` read as "not there" (any other error is raised)
_NOT_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _missing(path: str) -> bool:
    """``not Path(path).exists() and not Path(path).is_symlink()``: nothing there, not even a broken link."""
    for follow in (True, False):
        try:
            os.stat(path, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in _NOT_THERE:
                raise
        else:
            return False
    return True


def shown_path(raw: str | os.PathLike[str]) -> str:
    """A path as given, spelt as ``str(pathlib.Path(raw))`` spells it (the name reports show): empty and ``.``
    parts and trailing slashes dropped, ``..`` kept, a leading ``//`` kept (POSIX), ``.`` for an empty path.
    Written out so that a scan does not import pathlib (and urllib.parse with it) at every start."""
    text = os.fspath(raw)
    if os.sep != "/" or os.altsep is not None:  # Windows spelling rules: pathlib's own
        import pathlib

        return str(pathlib.Path(text))
    root = "//" if text.startswith("//") and not text.startswith("///") else "/" if text.startswith("/") else ""
    parts = [part for part in text.split("/") if part and part != "."]
    return root + "/".join(parts) if root or parts else "."


def _iter_files(roots: list[str], skipped: list[FileReport]) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    held: dict[str, str] = {}  # real path -> the display a file reached through links (or under blobs/) gets
    folders: set[str] = set()
    for display in roots:
        if os.path.isdir(display):
            found: Iterator[tuple[str, str, bool]] = _walk(display, folders, skipped)
        else:
            found = _single(display, skipped)
        for real, shown, direct in found:
            if real in seen:
                continue
            if direct and _BLOBS not in shown:
                seen.add(real)
                yield real, shown
            else:
                best = held.get(real)
                if best is None or (_BLOBS in best, best) > (_BLOBS in shown, shown):
                    held[real] = shown
    for real, shown in sorted(held.items(), key=lambda kv: kv[1]):
        if real not in seen:
            seen.add(real)
            yield real, shown


_BLOBS = f"{os.sep}blobs{os.sep}"


def _not_scanned(display: str, why: str) -> FileReport:
    report = FileReport(display, ERROR)
    report.findings.append(Finding(display, "unreadable", ERROR, f"{display}: {why}, not scanned",
                                   why="a file the scanner cannot read could be a model; it is never called clean",
                                   fix="Fix or remove the path, or scan the file it should name"))
    return report


def _single(display: str, skipped: list[FileReport]) -> Iterator[tuple[str, str, bool]]:
    """A path given by name: a regular file, else a report."""
    linked = os.path.islink(display)
    real = os.path.realpath(display)
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        skipped.append(_not_scanned(display, "broken symlink" if linked else f"cannot be read ({exc.strerror})"))
        return
    if not stat.S_ISREG(mode):
        skipped.append(_not_scanned(display, "not a regular file"))
        return
    yield real, display, not linked and os.path.abspath(display) == real


def _walk(root: str, folders: set[str], skipped: list[FileReport]) -> Iterator[tuple[str, str, bool]]:
    """(real path, display, reached directly) of every regular file below ``root``, following folder symlinks;
    each real folder is listed once (no cycles), ``.git`` never. Entries are read as ``os.scandir`` gives them;
    only the folders still to visit are kept."""
    top_real = os.path.realpath(root)
    todo: list[tuple[str, str, bool]] = [(root, top_real, os.path.abspath(root) == top_real)]
    while todo:
        folder, real_dir, direct_dir = todo.pop()
        if real_dir in folders:
            continue
        folders.add(real_dir)
        try:
            listing = os.scandir(folder)
        except OSError as exc:
            skipped.append(_not_scanned(folder, f"folder cannot be listed ({exc.strerror})"))
            continue
        subfolders: list[tuple[str, str, bool]] = []
        with listing:
            while True:
                try:
                    entry = next(listing, None)
                except OSError as exc:
                    skipped.append(_not_scanned(folder, f"folder cannot be read to its end ({exc.strerror})"))
                    break
                if entry is None:
                    break
                found = _entry(entry, real_dir, direct_dir, skipped)
                if found is None:
                    continue
                shown = entry.name if folder == "." else entry.path  # as pathlib joins: "x", not "./x"
                if found[0] == "dir":
                    if entry.name != ".git":
                        subfolders.append((shown, found[1], found[2]))
                else:
                    yield found[1], shown, found[2]
        todo.extend(sorted(subfolders, reverse=True))  # visited in name order


def _entry(entry: os.DirEntry[str], real_dir: str, direct_dir: bool,
           skipped: list[FileReport]) -> tuple[str, str, bool] | None:
    """("file" or "dir", real path, reached directly) for a folder entry, or None (reported, or nothing to scan)."""
    linked = False
    try:
        linked = entry.is_symlink()
        if not linked:
            real = os.path.join(real_dir, entry.name)  # below a resolved folder, a plain entry is its own real path
            if entry.is_dir(follow_symlinks=False):
                return "dir", real, direct_dir
            if entry.is_file(follow_symlinks=False):
                return "file", real, direct_dir
            skipped.append(_not_scanned(entry.path, "not a regular file"))
            return None
        real = os.path.realpath(entry.path)
        mode = os.stat(real).st_mode
    except OSError as exc:
        skipped.append(_not_scanned(entry.path, "broken symlink" if linked else
                                    f"cannot be read ({exc.strerror})"))
        return None
    if stat.S_ISDIR(mode):
        return "dir", real, False
    if stat.S_ISREG(mode):
        return "file", real, False
    skipped.append(_not_scanned(entry.path, "not a regular file"))
    return None


def collect_any(paths: Iterable[Any]) -> tuple[list[tuple[str, str]], list[Any]]:
    """:func:`iter_any`, read to the end and sorted by what is shown."""
    skipped: list[Any] = []
    files = sorted(iter_any(paths, skipped), key=lambda kv: kv[1])
    return files, skipped


def iter_any(paths: Iterable[Any], skipped: list[Any]) -> Iterator[tuple[str, str]]:
    """:func:`iter_files` for paths, then :func:`safeload._remote.iter_remote` for URLs (each file once), lazily.
    Every path and URL is checked before the first file is given: one that names nothing raises
    FileNotFoundError here, not in the middle of a scan."""
    paths = list(paths)
    local = iter_files([p for p in paths if not _is_url(p)], skipped)
    remote: list[Iterator[tuple[str, str]]] = []
    for url in (p for p in paths if _is_url(p)):
        from ._remote import iter_remote

        listing = iter_remote(url)
        first = next(listing, None)  # a URL that names nothing raises now
        remote.append(itertools.chain([first] if first is not None else [], listing))
    return _chained(local, remote)


def _is_url(path: Any) -> bool:
    """safeload._remote.is_url, imported only for a string that could be a URL (it holds "://")."""
    if not (isinstance(path, str) and "://" in path):
        return False
    from ._remote import is_url

    return is_url(path)


def _chained(local: Iterator[tuple[str, str]], remote: list[Iterator[tuple[str, str]]]) -> Iterator[tuple[str, str]]:
    yield from local
    seen: set[str] = set()
    for listing in remote:
        for target, display in listing:
            if display not in seen:
                seen.add(display)
                yield target, display
