"""``safeload.scan``: the loader's own walker and policy, run without building tensors, as a report.

The scanner does not parse pickles itself. Every checkpoint format goes through ``_load.load_buffer``, the
function :func:`safeload.load` runs, with ``tensors="none"`` (storages are size-checked, never read) and an
*observer* that the VM tells about every global it resolves and every one it refuses. A refused global is
replaced by an inert stub so the walk goes on and every name is reported. So, by construction:

    the scan of a file is clean  <=>  ``safeload.load`` of that file returns

Around that, the scanner opens the generic containers a checkpoint can arrive in, by content and never by name:
zip archives that are not checkpoints, tar, gzip, bz2, xz/lzma and zstd streams (with a cap on what they may
inflate to), and 7z when ``py7zr`` is installed. Each member is scanned in turn, wherever it sits. A file the
scanner cannot read completely is never clean: it is an ``error`` (exit status 2).

Verdicts for each global: ``allowed`` (in the policy), ``dangerous`` (outside it, and in the DANGEROUS table,
with the reason) or ``unknown`` (outside it). A file's status is one of ``clean``, ``unsafe`` (a refused
global), ``error`` (malformed, ambiguous, over a limit, unsupported or unreadable) or ``skipped`` (not a
checkpoint: an empty or a text file; the reason is kept).

Three modules do the work, one job each: the report model (safeload/_report.py), the container traversal and
the observer (safeload/_traverse.py), and file collection: paths, folders, the Hugging Face cache layout,
symlinks (safeload/_collect.py). This module holds the entry points.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable

from ._hints import TYPE_CHECKING, Any
from ._budget import budget_for
from ._collect import collect_any, collect_files
from ._report import (
    ALLOWED,
    CLEAN,
    DANGEROUS,
    ERROR,
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_NOTHING,
    EXIT_UNSAFE,
    SKIPPED,
    UNKNOWN,
    UNSAFE,
    FileReport,
    Finding,
    GlobalRef,
    Report,
    finding_from_error,
)
from ._traverse import MAX_NESTING, Scanner, sniff
from .errors import SafeLoadError
from ._types import Entry
from .policy import Policy, _with_entries, effective_policy

if TYPE_CHECKING:
    from ._rebuild.context import RebuildContext

__all__ = [
    "ALLOWED", "CLEAN", "DANGEROUS", "ERROR", "EXIT_CLEAN", "EXIT_ERROR", "EXIT_NOTHING", "EXIT_UNSAFE",
    "MAX_NESTING", "SKIPPED", "UNKNOWN", "UNSAFE", "FileReport", "Finding", "GlobalRef", "Report",
    "collect_any", "collect_files", "policy_for", "scan", "scan_file", "scan_url", "sniff",
]


def policy_for(policy: Policy | None = None, allow: Iterable[str] = ()) -> Policy:
    """The scan policy: ``policy`` (default: DEFAULT_POLICY) plus ``allow``.

    A name in ``allow`` is resolved as load resolves it (importing the module the *caller* named). If that module
    is not installed where the scan runs, the name is still allowed: GLOBAL pushes an inert stand-in, so the
    scan reports the name as allowed without importing or running it.
    """
    names = list(allow)
    importable: list[str] = []
    scan_only: list[Entry] = []
    for name in names:
        try:
            effective_policy(policy, [name])
        except (ValueError, ImportError):  # not installed here; a TypeError (not a class) is the caller's error
            scan_only.append(_stand_in(name))
        else:
            importable.append(name)
    base = effective_policy(policy, importable)
    return _with_entries(base, scan_only) if scan_only else base


def _stand_in(qualname: str) -> Entry:
    from ._stub import Stub

    module, _, name = qualname.replace(":", ".").rpartition(".")

    def call(ctx: RebuildContext, args: tuple[Any, ...]) -> Any:
        return Stub(module, name, args)

    def newobj(ctx: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return Stub(module, name, args, kwargs or None)

    return Entry(f"{module}.{name}", call=call, newobj=newobj,
                 reason="allowed by the caller (not importable here: checked by name only)")


#: files up to this size are read whole; larger ones are mapped (safeload/_scan.py:scan_file)
READ_WHOLE = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def scan_file(path: str | os.PathLike[str], policy: Policy | None = None, *, max_decompressed: int | None = None,
              explain: bool = False, display: str | None = None, stream_hook: Any = None) -> FileReport:
    """Scan one file. A file over :data:`READ_WHOLE` bytes is mapped, not read, so a large torch checkpoint costs
    only its pickle; a smaller one is read in one call (mapping and unmapping cost more than reading it, and every
    reader but the zip reader would copy a mapped file into bytes anyway). Either way the scan sees the file's
    bytes as they are on disk, once."""
    pol = policy if policy is not None else policy_for()
    name = display if display is not None else os.fspath(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return FileReport(name, SKIPPED, "empty", reason="empty file")
            # one read of the size plus one byte; anything but exactly the size (a short read, a file that changed
            # since fstat) and the file is mapped whole, as a large one is
            data: Any = os.read(fd, size + 1) if size <= READ_WHOLE else None
            if data is None or len(data) != size:
                data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:  # ValueError: mmap of a file emptied since fstat
        report = FileReport(name, ERROR)
        why = getattr(exc, "strerror", None) or exc
        report.findings.append(Finding(name, "unreadable", ERROR, f"Cannot read {name}: {why}",
                                       fix="Check the path and its permissions"))
        return report
    try:
        return _scan_data(data, name, pol, max_decompressed, explain, stream_hook)
    finally:
        if not isinstance(data, bytes):
            data.close()  # the mapping


def _scan_data(data: Any, name: str, policy: Policy, max_decompressed: int | None, explain: bool,
               stream_hook: Any = None) -> FileReport:
    cap = policy.limits.max_decompressed if max_decompressed is None else max_decompressed
    scanner = Scanner(name, policy, cap, explain)
    scanner.stream_hook = stream_hook
    if len(data) == 0:
        return FileReport(name, SKIPPED, "empty", reason="empty file")
    with budget_for(len(data), policy.limits):  # one work budget per scanned file, by its size on disk
        kind = scanner.blob(data, ())
    report = FileReport(name, format=kind, findings=scanner.findings, globals=scanner.globals,
                        pickles=scanner.pickles, notes=scanner.notes)
    if any(f.severity == UNSAFE for f in scanner.findings):
        report.status = UNSAFE
    elif scanner.findings:
        report.status = ERROR
    elif kind == "text":
        report.status, report.reason = SKIPPED, "text, not a checkpoint"
    elif scanner.skip_reason:
        report.status, report.reason = SKIPPED, scanner.skip_reason
    return report


def scan(path_or_bytes: Any, policy: Policy | None = None, *, allow: Iterable[str] = (),
         max_decompressed: int | None = None, explain: bool = False) -> Report:
    """Scan a file, a folder (recursively, Hugging Face caches included), or bytes. Nothing is run or imported.

    Returns a :class:`Report`: ``report.ok``, ``report.findings``, ``report.exit_code``, ``report.to_dict()``.
    """
    pol = policy_for(policy, allow)
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return Report([_scan_data(bytes(path_or_bytes), "<bytes>", pol, max_decompressed, explain)])
    if not isinstance(path_or_bytes, (str, os.PathLike)):
        raise TypeError(f"safeload.scan expects a path or bytes, not {type(path_or_bytes).__name__}")
    if isinstance(path_or_bytes, str) and "://" in path_or_bytes:  # an fsspec URL: safeload/_remote.py
        from ._remote import iter_remote

        return Report([scan_url(url, pol, max_decompressed=max_decompressed, explain=explain, display=shown)
                       for url, shown in sorted(iter_remote(path_or_bytes), key=lambda item: item[1])])
    report = Report()
    files, skipped = collect_files([path_or_bytes])
    report.files.extend(skipped)
    for path, display in files:
        report.files.append(scan_file(path, pol, max_decompressed=max_decompressed, explain=explain, display=display))
    return report


# ---- remote sources (fetched by safeload/_remote.py, scanned here) ------------------------------------------

def scan_url(url: str, policy: Any = None, *, max_decompressed: int | None = None, explain: bool = False,
             display: str | None = None, max_download: int | None = None) -> Any:
    """:func:`safeload._scan.scan_file` for a URL; the report's path is the URL without credentials."""
    import tempfile

    from ._remote import fetch_to, redact

    pol = policy if policy is not None else policy_for()
    name = display if display is not None else redact(url)
    cap = max_download if max_download is not None else (
        max_decompressed if max_decompressed is not None else pol.limits.max_decompressed)
    with tempfile.NamedTemporaryFile(prefix="safeload-") as out:
        try:
            size = fetch_to(url, out, max_download=cap)
        except SafeLoadError as err:
            report = FileReport(name, ERROR)
            report.findings.append(finding_from_error(name, err, None, None))
            return report
        except Exception as exc:  # noqa: BLE001 - any backend's error: the file was not read, so it is not clean
            report = FileReport(name, ERROR)
            # the exception's text is not shown: a backend's message can quote a signed URL or a key
            why = getattr(exc, "strerror", None) or type(exc).__name__
            report.findings.append(Finding(name, "unreadable", ERROR, f"Cannot read {name}: {why}",
                                           fix="Check the URL and the credentials fsspec is configured with"))
            return report
        return scan_file(out.name, pol, max_decompressed=max_decompressed, explain=explain, display=name)
