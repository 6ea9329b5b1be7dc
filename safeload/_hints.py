"""The names of :mod:`typing` that safeload's annotations use, without importing ``typing`` when safeload runs.

``typing`` (with the ``contextlib`` it imports) is about 3 ms of every start, a twentieth of a ``safeload scan`` of
one small pickle, and safeload needs none of it at run time: every module has ``from __future__ import
annotations``, so annotations are never evaluated. Every module imports these names from here. The type checker
treats the name ``TYPE_CHECKING`` as true and sees typing's own names; at run time each name only has to exist
(``Any`` and the like are ``object``, ``cast`` returns its value, as typing's does). ``TypeVar`` and
``NamedTuple`` make objects at run time, so a module that uses them does so under ``if TYPE_CHECKING:``.
tests/test_startup.py checks that a scan does not import ``typing``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO as IO
    from typing import Any as Any
    from typing import Literal as Literal
    from typing import NamedTuple as NamedTuple
    from typing import NoReturn as NoReturn
    from typing import TypeVar as TypeVar
    from typing import cast as cast
else:
    Any = IO = Literal = NoReturn = object

    def cast(kind, value):
        return value

__all__ = ["IO", "TYPE_CHECKING", "Any", "Literal", "NoReturn", "cast"]
