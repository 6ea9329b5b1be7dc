"""SARIF 2.1.0 for GitHub code scanning: one rule per finding kind, with its level and the safe fix as help.

Checkpoints are binary, so each result points at the file (``startLine`` 1, which code scanning needs to show
an alert) and, where the scanner knows it, at the byte (``byteOffset``); the archive member, pickle index,
opcode and global name are in the message and in ``properties``.

What GitHub needs, and how it is met (limits from GitHub's code scanning documentation, listed in
``../shared/schemas/README.md`` beside the official schema the tests validate against):

* **Locations** are relative to ``%SRCROOT%``, declared in ``originalUriBaseIds``: the git top level of the
  working directory (the nearest parent holding ``.git``), or ``--root``. A file outside that root gets an
  absolute ``file:`` URI, never ``../``. URIs are percent-encoded from the file name's bytes, so a name that is not
  UTF-8 still names the file.
* **Fingerprints** (``partialFingerprints``) hash the rule, the repository-relative path, the member, pickle,
  offset, opcode, global and message (with the path taken out): the same finding gets the same fingerprint
  however its path was typed (``./m.pt``, ``m.pt``, ``/abs/repo/m.pt``, from a subfolder).
* **Caps**: at most :data:`MAX_RESULTS_PER_FILE` results per file and :data:`MAX_RESULTS` per run (GitHub keeps
  25,000 and shows 5,000), the most severe first, each flagged file listed at least once before any file gets a
  second result, so one file naming thousands of globals cannot push the others out. What is left out is said in
  a tool execution notification. Text chosen by the file is escaped (``escape.py``) and cut at
  :data:`MAX_TEXT` characters.
* **Files not scanned** (skipped, or in a format safeload does not read) are listed as notifications, at most
  :data:`MAX_NOTIFICATIONS` of them, then one that counts the rest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

from .._hints import TYPE_CHECKING, Any
from .escape import escape, escaped
from .interface import Formatter

if TYPE_CHECKING:
    from .._scan import FileReport, Finding, Report

__all__ = ["MAX_RESULTS", "MAX_RESULTS_PER_FILE", "RULES", "SarifFormatter", "repo_root"]

#: results per run: GitHub accepts 25,000 and shows 5,000
MAX_RESULTS = 5_000
#: results per file, so that one file cannot crowd the others out
MAX_RESULTS_PER_FILE = 100
#: notifications for files not scanned, then one that counts the rest
MAX_NOTIFICATIONS = 1_000
#: characters of text from the file (a global name, a member name) in one message or property
MAX_TEXT = 1_000

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/safeload/safeload"

_ALLOW_FIX = ("If the class is yours and you trust the file, allow that exact name: `safeload scan --allow "
              "module.Class PATH` (or list it in a `--policy` file). To see what unpickling would do without "
              "running it: `safeload scan --explain PATH`. Better: have the code that wrote the file save a "
              "state_dict (tensors only) or safetensors instead of whole objects.")

#: rule id -> (name, level, security-severity, short description, help)
RULES: dict[str, tuple[str, str, str, str, str]] = {
    "dangerous-global": (
        "DangerousGlobal", "error", "9.8",
        "The pickle names a callable known to run code, touch files or the network",
        "Loading this file with pickle, torch.load(weights_only=False) or joblib runs that callable with "
        "arguments the file chose. Do not load it with a loader that runs code; `safeload load` refuses it. To "
        "see what it would do without running it: `safeload scan --explain PATH`, or "
        "`safeload load --unknown stub PATH` (inert stubs, nothing imported).",
    ),
    "unknown-global": (
        "UnknownGlobal", "error", "7.5",
        "The pickle names a global outside the allowlist",
        "A pickle that names a class or function can make an unpickler import and call it. " + _ALLOW_FIX,
    ),
    "unsafe-call": (
        "UnsafeCall", "error", "7.5",
        "The pickle calls an allowed name in a way that would run code",
        "The name is allowed as a value, but calling or instantiating it with arguments the file chose is how "
        "'call what is on the stack' exploits work. Do not load the file with a loader that runs code.",
    ),
    "malformed": (
        "Malformed", "error", "5.0",
        "The file is corrupt, truncated or ambiguous",
        "Two readers could read this file differently (data after STOP, lying frame lengths, duplicate or "
        "mismatched archive members, a bad CRC), so it is not clean. Get a fresh copy from its source.",
    ),
    "limit-exceeded": (
        "LimitExceeded", "error", "5.0",
        "The file asks for more memory, depth or members than the limits allow",
        "Decompression bombs, memo bombs and deep nesting are refused. If the file is trusted and really this "
        "large, raise the limit: `safeload scan --max-decompressed BYTES PATH`.",
    ),
    "unsupported-format": (
        "UnsupportedFormat", "error", "5.0",
        "The file could not be scanned: its format is not supported",
        "A file that cannot be read fully is never reported clean. Install the optional reader the message names "
        "(for example py7zr for 7z archives), or keep the file out of the repository.",
    ),
    "unreadable": (
        "Unreadable", "error", "5.0",
        "The file could not be read",
        "Check the path and its permissions.",
    ),
}
_INDEX = {rule: i for i, rule in enumerate(RULES)}


def repo_root(start: str | None = None) -> str:
    """The git top level above ``start`` (default: the working directory): the nearest folder holding ``.git``;
    ``start`` itself when there is none."""
    here = Path(os.path.abspath(start or os.getcwd()))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return str(folder)
    return str(here)


class _Locator:
    """Artifact locations relative to the root, and the path text fingerprints are made from."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)

    def base(self) -> dict[str, Any]:
        return {"%SRCROOT%": {"uri": Path(self.root).as_uri().rstrip("/") + "/",
                              "description": {"text": "The repository root (git top level, or --root)."}}}

    def locate(self, path: str) -> tuple[dict[str, Any], str]:
        if path in ("<stdin>", "<bytes>"):  # `safeload scan -`: no file to point at
            return {"uri": "stdin", "description": {"text": "standard input"}}, path
        absolute = os.path.abspath(path)
        for base, target in ((self.root, absolute), (self.real_root, os.path.realpath(absolute))):
            rel = os.path.relpath(target, base)
            if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                posix = Path(rel).as_posix()
                return {"uri": quote(os.fsencode(posix)), "uriBaseId": "%SRCROOT%"}, posix
        uri = Path(absolute).as_uri()  # percent-encodes the name's bytes, lone surrogates included
        return {"uri": uri}, uri


_RANK = {rule: i for i, rule in enumerate(("dangerous-global", "unsafe-call", "unknown-global", "limit-exceeded",
                                           "malformed", "unsupported-format", "unreadable"))}


def _cut(text: str) -> str:
    return escape(text, MAX_TEXT)


def _result(f: Finding, raw_path: str, locator: _Locator) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": 1}
    if f.offset is not None and not f.member:
        region["byteOffset"] = f.offset
    text = _cut(f.message.rstrip(".")) + f" (at {_cut(f.location)})."
    if f.why:
        text += f" {_cut(f.why.rstrip('.'))}."
    if f.fix:
        text += f" Fix: {_cut(f.fix.rstrip('.'))}."
    if f.explanation:
        text += "\nWhat unpickling would do (decompiled, nothing was run):\n" + f.explanation
    props = {k: (_cut(v) if isinstance(v, str) else v)
             for k, v in (("member", f.member), ("pickle", f.pickle), ("offset", f.offset), ("opcode", f.opcode),
                          ("global", f.qualname), ("verdict", f.verdict)) if v is not None}
    artifact, where = locator.locate(raw_path)
    message = f.message.replace(f.path, "") if f.path else f.message
    key = "\0".join(str(x) for x in (f.rule, where, f.member, f.pickle, f.offset, f.opcode, f.qualname, message))
    return {
        "ruleId": f.rule,
        "ruleIndex": _INDEX[f.rule],
        "level": RULES[f.rule][1],
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": artifact, "region": region}}],
        "partialFingerprints": {"safeloadFinding/v1": hashlib.sha256(key.encode("utf-8", "backslashreplace"))
                                .hexdigest()[:32]},
        "properties": props,
    }


def _select(files: list[tuple[FileReport, FileReport]]) -> list[tuple[int, list[Finding]]]:
    """Which findings of which file go into the log: every flagged file once, then more up to the caps."""
    ranked = [sorted(esc.findings, key=lambda f: _RANK.get(f.rule, len(_RANK))) for _raw, esc in files]
    taken = [0] * len(files)
    total = 0
    for want in (1, MAX_RESULTS_PER_FILE):
        for i, findings in enumerate(ranked):
            add = min(min(len(findings), want) - taken[i], MAX_RESULTS - total)
            if add > 0:
                taken[i] += add
                total += add
    return [(i, ranked[i][:taken[i]]) for i in range(len(files))]


def _note(descriptor: str, level: str, text: str, artifact: dict[str, Any] | None = None) -> dict[str, Any]:
    note: dict[str, Any] = {"descriptor": {"id": descriptor}, "level": level, "message": {"text": text}}
    if artifact is not None:
        note["locations"] = [{"physicalLocation": {"artifactLocation": artifact}}]
    return note


def _notifications(files: list[tuple[FileReport, FileReport]], selected: list[tuple[int, list[Finding]]],
                   locator: _Locator) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    left_out = 0
    for (raw, esc), (_i, chosen) in zip(files, selected):
        artifact, _where = locator.locate(raw.path)
        missing = len(esc.findings) - len(chosen)
        if missing:
            left_out += missing
            notes.append(_note("results-left-out", "warning",
                               f"{missing} of {len(esc.findings)} findings in {_cut(esc.path)} are not listed in "
                               f"this log (at most {MAX_RESULTS_PER_FILE} per file and {MAX_RESULTS} in all, below "
                               f"GitHub code scanning's limits). See them all with `safeload scan "
                               f"{_cut(esc.path)}`.", artifact))
        if esc.status in ("clean", "unsafe"):
            continue
        if esc.status == "error":
            if any(f.rule == "unsupported-format" for f in esc.findings):
                notes.append(_note("unsupported", "warning",
                                   f"Not scanned: {_cut(esc.path)} is in a format safeload does not read"
                                   f"{' (' + _cut(esc.format) + ')' if esc.format else ''}.", artifact))
            continue
        reason = _cut(esc.reason) if esc.reason else esc.status
        notes.append(_note(esc.status if esc.status == "skipped" else "not-scanned", "note",
                           f"Not scanned: {_cut(esc.path)}: {reason}.", artifact))
    if left_out:
        notes.insert(0, _note("results-left-out", "warning",
                              f"{left_out} findings are not listed in this log, to stay below GitHub code scanning's "
                              f"limits; every flagged file has at least one result. Run `safeload scan` (text or "
                              f"JSON) for the complete list."))
    if len(notes) > MAX_NOTIFICATIONS:
        rest = len(notes) - MAX_NOTIFICATIONS + 1
        notes = notes[:MAX_NOTIFICATIONS - 1]
        notes.append(_note("notifications-left-out", "note",
                           f"{rest} more notifications (files not scanned) are not listed; run `safeload scan` for "
                           f"all of them."))
    return notes


class SarifFormatter(Formatter):
    def __init__(self, root: str | None = None, exit_code: int | None = None) -> None:
        self.root = root
        self.exit_code = exit_code  # the command's own exit status (``--fail-on``), else the report's

    def format(self, report: Report) -> str:
        import json

        from .. import __version__

        locator = _Locator(self.root if self.root is not None else repo_root())
        files = list(zip(report.files, escaped(report).files))
        selected = _select(files)
        results = [_result(f, files[i][0].path, locator) for i, chosen in selected for f in chosen]
        rules = [
            {
                "id": rule,
                "name": name,
                "shortDescription": {"text": short},
                "fullDescription": {"text": short + "."},
                "help": {"text": help_text, "markdown": help_text},
                "defaultConfiguration": {"level": level},
                "properties": {"tags": ["security", "pickle", "supply-chain"], "security-severity": severity},
            }
            for rule, (name, level, severity, short, help_text) in RULES.items()
        ]
        log = {
            "$schema": SCHEMA,
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "safeload", "version": __version__, "semanticVersion": __version__,
                                    "informationUri": INFO_URI, "rules": rules}},
                "originalUriBaseIds": locator.base(),
                "results": results,
                "invocations": [{"executionSuccessful": True,
                                 "exitCode": report.exit_code if self.exit_code is None else self.exit_code,
                                 "toolExecutionNotifications": _notifications(files, selected, locator)}],
            }],
        }
        return json.dumps(log, indent=2) + "\n"
