"""The one method every output format implements."""

from __future__ import annotations

import abc

from .._hints import TYPE_CHECKING

if TYPE_CHECKING:
    from .._scan import Report

__all__ = ["Formatter"]


class Formatter(abc.ABC):
    @abc.abstractmethod
    def format(self, report: Report) -> str:
        """The whole report as text, ending with a newline."""
