"""The few names of Cython's pure-Python mode that the compiled modules use, for the pure-Python build.

safeload/_vm.py is compiled by Cython (setup.py) and also runs as plain Python. Compiled, its ``import cython``
is Cython's compile-time module: ``cython.locals`` gives locals C types and ``cython.compiled`` is true, so the
branches under ``if cython.compiled:`` are the ones compiled. As a ``.py`` file it imports this module instead
(never Cython's own, which costs milliseconds of start-up and may be absent): the decorator does nothing and
``compiled`` is false, so the plain-Python branches run.
"""

from __future__ import annotations

from collections.abc import Callable

from ._hints import TYPE_CHECKING, Any

__all__ = ["NULL", "Py_ssize_t", "address", "bint", "cast", "cfunc", "compiled", "declare", "double", "inline",
           "int", "locals", "longlong", "p_char", "returns", "ulonglong"]

compiled = False

# C types named in the cython.locals declarations; as Python they are only names.
Py_ssize_t = int
int = int  # noqa: A001 - Cython's name for the C int
ulonglong = int
longlong = int
bint = bool
double = float

if TYPE_CHECKING:  # a type variable is an object typing makes: the type checker's only (safeload/_hints.py)
    from typing import TypeVar

    _F = TypeVar("_F", bound=Callable[..., Any])


def locals(**types: Any) -> Callable[[_F], _F]:  # noqa: A001 - Cython's name
    """``@cython.locals(name=type, ...)``: C types for locals in the compiled build; nothing here."""

    def keep(fn: _F) -> _F:
        return fn

    return keep


def cfunc(fn: _F) -> _F:
    """``@cython.cfunc``: a C function (called without Python's call protocol) in the compiled build."""
    return fn


def inline(fn: _F) -> _F:
    """``@cython.inline``: a C function the compiler may inline."""
    return fn


def returns(kind: Any) -> Callable[[_F], _F]:
    """``@cython.returns(type)``: the C return type of a ``cfunc``."""
    return locals()


def declare(kind: Any, value: Any) -> Any:
    """``name = cython.declare(type, value)``: a C variable in the compiled build; here the value."""
    return value


# Pointer helpers of the compiled branches; the pure-Python build never reaches them.
p_char = bytes
NULL = None


def cast(kind: Any, value: Any) -> Any:
    """``cython.cast``: a C cast in the compiled build."""
    return value


def address(value: Any) -> Any:
    """``cython.address``: a C ``&value`` in the compiled build."""
    return value
