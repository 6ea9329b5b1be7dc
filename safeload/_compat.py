"""Pickle protocol shims for writing: which protocol a caller may ask for, and which module can write it.

The rule, as for every shim in safeload: a shim never makes the output weaker. It only picks *which* standard
pickler writes a protocol the caller asked for; what may be written is decided by :mod:`safeload._save`'s checks,
whatever module does the writing.

* ``pickle_protocol`` is an int from 0 to 5 (``bool`` is refused: ``True`` is not a protocol).
* Protocol 5 needs Python 3.8 or the ``pickle5`` backport. Where the interpreter lacks it, the backport is used if
  it is importable; otherwise a ``ValueError`` says to install it or to pin protocol 4, which every Python 3.4+
  reads.
* ``pickle_module=`` is accepted as the torch-era guides use it: ``pickle``, ``pickle5``, ``_pickle`` or safeload
  itself. A pickler that writes code (``dill``, ``cloudpickle``, ...) is refused: what it adds over pickle is
  exactly what safe loaders refuse.
"""

from __future__ import annotations

import importlib
import pickle
from types import ModuleType

from ._hints import Any

__all__ = ["HIGHEST_PROTOCOL", "check_protocol", "pickle_module_for"]

HIGHEST_PROTOCOL = 5
_ACCEPTED_MODULES = ("pickle", "_pickle", "pickle5", "pickle5.pickle", "safeload")


def check_protocol(protocol: Any) -> int:
    """``protocol`` as an int in 0..5, or a ValueError/TypeError that says what is accepted."""
    if type(protocol) is not int:
        raise TypeError(f"pickle_protocol must be an int from 0 to {HIGHEST_PROTOCOL}, not {type(protocol).__name__}")
    if protocol < 0:  # pickle's own -1 means "highest", which would make the file unreadable by older Pythons
        raise ValueError(f"pickle_protocol={protocol} is not a protocol: pin one from 0 to {HIGHEST_PROTOCOL} "
                         "(4 is read by every Python 3.4+)")
    if protocol > HIGHEST_PROTOCOL:
        raise ValueError(f"pickle_protocol={protocol} does not exist; the highest is {HIGHEST_PROTOCOL}")
    return protocol


def _backport(protocol: int) -> ModuleType | None:
    try:
        mod = importlib.import_module("pickle5")
    except ImportError:
        return None
    return mod if getattr(mod, "HIGHEST_PROTOCOL", 0) >= protocol else None


def pickle_module_for(protocol: int, pickle_module: Any = None, *, stdlib: Any = pickle) -> ModuleType:
    """The module whose ``Pickler`` writes ``protocol``: the caller's if it can, else the stdlib, else ``pickle5``.

    ``stdlib`` is the interpreter's own pickle module (a parameter so tests can play an old Python).
    """
    protocol = check_protocol(protocol)
    chosen = stdlib
    if pickle_module is not None:
        name = getattr(pickle_module, "__name__", None)
        if not isinstance(pickle_module, ModuleType) or name not in _ACCEPTED_MODULES:
            shown = name if isinstance(name, str) else type(pickle_module).__name__
            raise ValueError(
                f"pickle_module={shown} refused: safeload.save writes only what safe loaders read, and picklers "
                "beyond pickle (dill, cloudpickle, ...) exist to write code. Leave pickle_module unset, or pass "
                "pickle or pickle5")
        if name != "safeload":
            chosen = pickle_module
    if getattr(chosen, "HIGHEST_PROTOCOL", 0) >= protocol and hasattr(chosen, "Pickler"):
        return chosen  # type: ignore[no-any-return]
    backport = _backport(protocol)
    if backport is not None:
        return backport
    raise ValueError(
        f"pickle_protocol={protocol} needs Python 3.8+ or the pickle5 backport, and this interpreter has neither "
        f"(its highest is {getattr(chosen, 'HIGHEST_PROTOCOL', '?')}). Install it with 'pip install pickle5', or "
        "pass pickle_protocol=4, which every Python 3.4+ reads")
