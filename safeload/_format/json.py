"""The JSON report: ``Report.to_dict()``, stable keys, validated by tests/data/report.schema.json."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .interface import Formatter

if TYPE_CHECKING:
    from .._scan import Report

__all__ = ["JsonFormatter"]


class JsonFormatter(Formatter):
    def format(self, report: Report) -> str:
        return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"
