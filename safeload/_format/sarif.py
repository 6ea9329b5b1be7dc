"""SARIF 2.1.0 for GitHub code scanning: one rule per finding kind, with its level and the safe fix as help.

Checkpoints are binary, so each result points at the file (``startLine`` 1, which code scanning needs to show
an alert) and, where the scanner knows it, at the byte (``byteOffset``); the archive member, pickle index,
opcode and global name are in the message and in ``properties``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .interface import Formatter

if TYPE_CHECKING:
    from .._scan import Finding, Report

__all__ = ["RULES", "SarifFormatter"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/safeload/safeload"

_ALLOW_FIX = ("If the class is yours and you trust the file, allow that exact name: `safeload scan --allow "
              "module.Class` (or `safeload.load(..., allow=[...])`). Better: save a state_dict (tensors only) "
              "or convert the file with `safeload convert IN OUT --to safetensors` in a trusted environment.")

#: rule id -> (name, level, security-severity, short description, help)
RULES: dict[str, tuple[str, str, str, str, str]] = {
    "dangerous-global": (
        "DangerousGlobal", "error", "9.8",
        "The pickle names a callable known to run code, touch files or the network",
        "Loading this file with pickle, torch.load(weights_only=False) or joblib runs that callable with "
        "arguments the file chose. Do not load it with a loader that runs code; safeload.load refuses it. To "
        "see what it would do without running it, use `safeload scan --explain` or "
        "`safeload.load(path, unknown='stub')`.",
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
        "large, raise the limit (safeload.DEFAULT_POLICY.with_limits(...), or --max-decompressed).",
    ),
    "unsupported-format": (
        "UnsupportedFormat", "error", "5.0",
        "The file could not be scanned: its format is not supported",
        "A file that cannot be read fully is never reported clean. Convert it with the framework that wrote it, "
        "in a trusted environment, or install the optional reader the message names.",
    ),
    "unreadable": (
        "Unreadable", "error", "5.0",
        "The file could not be read",
        "Check the path and its permissions.",
    ),
}
_INDEX = {rule: i for i, rule in enumerate(RULES)}


def _uri(path: str) -> str:
    p = Path(path)
    try:
        rel = Path(os.path.relpath(p.absolute(), Path.cwd()))
        if not rel.as_posix().startswith("../"):
            return quote(rel.as_posix())
    except ValueError:  # another drive on Windows
        pass
    return p.absolute().as_uri()


def _result(f: Finding) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": 1}
    if f.offset is not None and not f.member:
        region["byteOffset"] = f.offset
    text = f.message.rstrip(".") + f" (at {f.location})."
    if f.why:
        text += f" {f.why.rstrip('.')}."
    if f.fix:
        text += f" Fix: {f.fix.rstrip('.')}."
    if f.explanation:
        text += "\nWhat unpickling would do (decompiled, nothing was run):\n" + f.explanation
    props = {k: v for k, v in (("member", f.member), ("pickle", f.pickle), ("offset", f.offset),
                                ("opcode", f.opcode), ("global", f.qualname), ("verdict", f.verdict)) if v is not None}
    key = "|".join(str(x) for x in (f.rule, f.path, f.member, f.pickle, f.offset, f.qualname, f.message))
    return {
        "ruleId": f.rule,
        "ruleIndex": _INDEX[f.rule],
        "level": RULES[f.rule][1],
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.path)}, "region": region}}],
        "partialFingerprints": {"safeloadFinding/v1": hashlib.sha256(key.encode()).hexdigest()[:32]},
        "properties": props,
    }


class SarifFormatter(Formatter):
    def format(self, report: Report) -> str:
        import json

        from .. import __version__

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
                "results": [_result(f) for f in report.findings],
                "invocations": [{"executionSuccessful": True, "exitCode": report.exit_code}],
            }],
        }
        return json.dumps(log, indent=2) + "\n"
