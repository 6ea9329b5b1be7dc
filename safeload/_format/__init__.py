"""Output formats of ``safeload scan``: an enum of names, each mapped to one formatter class."""

from __future__ import annotations

import enum

from .._hints import NoReturn
from .interface import Formatter

__all__ = ["Formatter", "OutputFormat"]


def _assert_never(value: NoReturn) -> NoReturn:
    raise AssertionError(f"unhandled output format {value!r}")


class OutputFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"

    def to_formatter(self, *, quiet: bool = False, root: str | None = None,
                     exit_code: int | None = None) -> Formatter:
        if self is OutputFormat.TEXT:
            from .text import TextFormatter

            return TextFormatter(quiet=quiet)
        if self is OutputFormat.JSON:
            from .json import JsonFormatter

            return JsonFormatter(quiet=quiet, exit_code=exit_code)
        if self is OutputFormat.SARIF:
            from .sarif import SarifFormatter

            return SarifFormatter(root=root, exit_code=exit_code)
        _assert_never(self)
