"""The JSON report: ``Report.to_dict()``, stable keys, described by the JSON Schema shipped beside this module
(``importlib.resources.files("safeload._format") / "report.schema.json"``). Strings from the file are escaped
(``escape.py``), so the text is valid UTF-8 JSON without control characters or lone surrogates."""

from __future__ import annotations

import json

from .._hints import TYPE_CHECKING
from .escape import escaped
from .interface import Formatter

if TYPE_CHECKING:
    from .._scan import Report

__all__ = ["JsonFormatter"]


class JsonFormatter(Formatter):
    def __init__(self, quiet: bool = False, exit_code: int | None = None) -> None:
        self.quiet = quiet
        self.exit_code = exit_code  # the command's own exit status (``--fail-on``), else the report's

    def format(self, report: Report) -> str:
        doc = escaped(report).to_dict()
        if self.exit_code is not None and "exit_code" in doc:
            doc["exit_code"] = self.exit_code
        if self.quiet:  # --quiet: the summary counts every file, the list only those with findings
            doc["files"] = [f for f in doc["files"] if f.get("status") not in ("clean", "skipped")]
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"
