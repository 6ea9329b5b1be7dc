"""The scan report: what :func:`safeload.scan` returns and what every output format (text, JSON, SARIF) renders.

A :class:`Report` holds one :class:`FileReport` per file; each lists its :class:`Finding` objects (what makes it
unsafe or unscannable) and every :class:`GlobalRef` its pickles name, with the verdict. The exit codes are the
scanner's contract: 0 clean, 1 unsafe, 2 a file could not be scanned, 3 nothing was scanned.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._hints import Any
from ._record import field, record
from .errors import LimitExceededError, SafeLoadError, UnsafeCallError, UnsafeGlobalError, UnsupportedFormatError
from .policy import danger_of

__all__ = ["ALLOWED", "CLEAN", "DANGEROUS", "ERROR", "EXIT_CLEAN", "EXIT_ERROR", "EXIT_NOTHING", "EXIT_UNSAFE",
           "FileReport", "Finding", "GlobalRef", "Report", "SEP", "SKIPPED", "UNKNOWN", "UNSAFE",
           "finding_from_error", "join"]

SEP = "!"  # joins the chain of archive members: outer.zip!inner.tar!model.pt!archive/data.pkl

ALLOWED, UNKNOWN, DANGEROUS = "allowed", "unknown", "dangerous"
CLEAN, UNSAFE, ERROR, SKIPPED = "clean", "unsafe", "error", "skipped"
EXIT_CLEAN, EXIT_UNSAFE, EXIT_ERROR, EXIT_NOTHING = 0, 1, 2, 3


@record(frozen=True)
class GlobalRef:
    """One global the stream names, with its verdict and where it is."""

    qualname: str
    verdict: str  # allowed | unknown | dangerous
    reason: str  # the policy's reason (allowed) or the DANGEROUS table's (dangerous)
    member: str | None
    pickle: int
    offset: int
    opcode: str


@record(frozen=True)
class Finding:
    """Something that makes a file unsafe (``severity="unsafe"``) or unscannable (``severity="error"``).

    ``rule`` is a stable id (SARIF rule ids): ``unknown-global``, ``dangerous-global``, ``unsafe-call``,
    ``malformed``, ``limit-exceeded``, ``unsupported-format``, ``unreadable``.
    """

    path: str
    rule: str
    severity: str
    message: str
    why: str = ""
    fix: str = ""
    member: str | None = None
    pickle: int | None = None
    offset: int | None = None
    opcode: str | None = None
    qualname: str | None = None
    verdict: str | None = None
    explanation: str | None = None  # fickling's decompilation of the pickle, with --explain

    @property
    def location(self) -> str:
        parts = [self.path]
        if self.member:
            parts.append(self.member)
        where = SEP.join(parts)
        if self.pickle is not None:
            where += f" pickle {self.pickle}"
        if self.offset is not None:
            where += f" byte {self.offset}"
        if self.opcode:
            where += f" ({self.opcode})"
        return where


@record
class FileReport:
    """One file's result: its status (clean, unsafe, error, skipped), format, findings and the globals it names.
    """

    path: str
    status: str = CLEAN
    format: str | None = None
    findings: list[Finding] = field(default_factory=list)
    globals: list[GlobalRef] = field(default_factory=list)
    pickles: int = 0
    reason: str = ""  # why it was skipped
    notes: list[str] = field(default_factory=list)  # archive members set aside, and why

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, without its recursive deep copy: every field is a str, an int, None, or a
        list of those or of the flat, frozen Finding and GlobalRef (``asdict`` took about 27 µs a file, a fifth of
        the scan of a small pickle; this takes about 5 µs)."""
        d = dict(self.__dict__)
        d["findings"] = [dict(f.__dict__) for f in self.findings]
        d["globals"] = [dict(g.__dict__) for g in self.globals]
        d["notes"] = list(self.notes)
        return d


@record
class Report:
    """What ``scan`` found. ``ok`` is True when every scanned file is clean and at least one was scanned."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for report in self.files for f in report.findings]

    @property
    def scanned(self) -> list[FileReport]:
        return [f for f in self.files if f.status != SKIPPED]

    @property
    def skipped(self) -> list[FileReport]:
        return [f for f in self.files if f.status == SKIPPED]

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_CLEAN

    @property
    def exit_code(self) -> int:
        """0 nothing unsafe, 1 unsafe findings, 2 a file could not be scanned, 3 nothing was scanned."""
        statuses = {f.status for f in self.files}
        if UNSAFE in statuses:
            return EXIT_UNSAFE
        if ERROR in statuses:
            return EXIT_ERROR
        if CLEAN not in statuses:
            return EXIT_NOTHING
        return EXIT_CLEAN

    def summary(self) -> str:
        counts = {s: sum(f.status == s for f in self.files) for s in (CLEAN, UNSAFE, ERROR, SKIPPED)}
        scanned = counts[CLEAN] + counts[UNSAFE] + counts[ERROR]
        text = (f"{scanned} file{'s' * (scanned != 1)} scanned: {counts[CLEAN]} clean, {counts[UNSAFE]} unsafe, "
                f"{counts[ERROR]} could not be scanned; {counts[SKIPPED]} skipped; {len(self.findings)} finding"
                f"{'s' * (len(self.findings) != 1)}")
        return text

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {
            "tool": "safeload",
            "version": __version__,
            "exit_code": self.exit_code,
            "summary": {
                "scanned": len(self.scanned),
                "skipped": len(self.skipped),
                "unsafe": sum(f.status == UNSAFE for f in self.files),
                "errors": sum(f.status == ERROR for f in self.files),
                "findings": len(self.findings),
            },
            "files": [f.to_dict() for f in self.files],
        }


def join(chain: Iterable[str | None]) -> str | None:
    """A chain of archive members as one location: outer.zip!inner.tar!model.pt."""
    parts = [c for c in chain if c]
    return SEP.join(parts) if parts else None


def finding_from_error(path: str, err: SafeLoadError, member: str | None, pickle: int | None) -> Finding:
    """The finding for a refusal: its rule and severity come from the error's type."""
    if isinstance(err, UnsafeGlobalError):
        danger = danger_of(err.qualname)
        if isinstance(err, UnsafeCallError):
            rule, verdict = "unsafe-call", ALLOWED
        else:
            rule, verdict = ("dangerous-global", DANGEROUS) if danger else ("unknown-global", UNKNOWN)
        return Finding(path, rule, UNSAFE, err.what, err.why, err.fix, member, pickle, err.offset, err.opcode,
                       err.qualname, verdict)
    if isinstance(err, LimitExceededError):
        rule = "limit-exceeded"
    elif isinstance(err, UnsupportedFormatError):
        rule = "unsupported-format"
    else:
        rule = "malformed"
    if err.member and err.member not in (member or ""):
        member = join((member, err.member))
    return Finding(path, rule, ERROR, err.what, err.why, err.fix, member, pickle, err.offset, err.opcode)

