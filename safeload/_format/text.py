"""The human report: one line per file, then its findings with where, why and the safe fix."""

from __future__ import annotations

from .._hints import TYPE_CHECKING
from .escape import escaped
from .interface import Formatter

if TYPE_CHECKING:
    from .._scan import FileReport, Report

__all__ = ["TextFormatter"]

_STATUS = {"clean": "clean", "unsafe": "UNSAFE", "error": "COULD NOT BE SCANNED", "skipped": "skipped"}


class TextFormatter(Formatter):
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def format(self, report: Report) -> str:
        lines: list[str] = []
        for file in report.files:
            if self.quiet and file.status in ("clean", "skipped"):
                continue  # not shown: not escaped either
            lines.extend(self._file(escaped(file)))
        return "".join(line + "\n" for line in lines)

    def _file(self, file: FileReport) -> list[str]:
        head = f"{file.path}: {_STATUS[file.status]}"
        if file.status == "skipped":
            return [f"{head} ({file.reason})"]
        if file.format:
            head += f" [{file.format}]"
        if file.status == "clean":
            n = len(file.globals)
            head += f" ({n} global{'s' * (n != 1)}, all allowed)" if n else ""
            return [head]
        import textwrap  # only a file with findings needs it

        lines = [head]
        for f in file.findings:
            where = f.location[len(f.path):].strip(" !") or "file"
            lines.append(f"  {f.rule}: {f.message} (at {where})")
            for part in (f.why, f"Fix: {f.fix}" if f.fix else ""):
                if part:
                    # options, paths and names are never cut in the middle (they are meant to be copied)
                    lines.extend(textwrap.wrap(part, 110, initial_indent="    ", subsequent_indent="    ",
                                               break_long_words=False, break_on_hyphens=False))
            if f.explanation:
                lines.append("    what unpickling would do (decompiled by fickling, nothing was run):")
                lines.extend("      " + line for line in f.explanation.splitlines())
        for note in file.notes:
            lines.append(f"  note: {note}")
        return lines
