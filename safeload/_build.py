"""Which build of safeload is running: the compiled hot modules (built by setup.py) or pure Python.

The compiled modules are compiled by Cython from the ``.py`` files listed in :data:`COMPILED` (the run loop in
safeload/_vm.py declares C types in Cython's pure-Python mode, see safeload/_cy.py); the ``.py`` files are the
only source and are always installed. ``SAFELOAD_PURE_PYTHON=1`` in the environment makes
``import safeload`` load those ``.py`` files even where compiled modules sit next to them
(:func:`force_pure`, called from safeload/__init__.py before anything imports them).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from ._hints import Any

__all__ = ["COMPILED", "build_description", "compiled_modules", "force_pure", "prepare", "pure_requested"]

# In import order (each may import the ones before it). Kept in step with setup.py's COMPILED.
COMPILED = ("safeload._budget", "safeload._opcodes", "safeload._vm", "safeload._views", "safeload._tensors",
            "safeload._containers.zip", "safeload._containers.torch", "safeload._rebuild.torch")

_HERE = os.path.dirname(os.path.abspath(__file__))


def pure_requested() -> bool:
    """True when ``SAFELOAD_PURE_PYTHON`` is set to anything but empty or ``0``."""
    return os.environ.get("SAFELOAD_PURE_PYTHON", "").strip() not in ("", "0")


def _source(name: str) -> str:
    """The ``.py`` file of a module of the package (``safeload._containers.zip`` -> ``_containers/zip.py``)."""
    return os.path.join(_HERE, *name.split(".")[1:]) + ".py"


class _PurePython:
    """A ``sys.meta_path`` finder that finds each module of :data:`COMPILED` as its ``.py`` file. It goes first,
    so the compiled module next to it is never found, whichever module imports it and in whatever order."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        if name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(name, _source(name))


def force_pure() -> None:
    """Import every module of :data:`COMPILED` from its ``.py`` file, whatever else sits next to it.

    Must run before anything imports those modules; a module already imported is left as it is. Each is
    imported when something first needs it, as in the compiled build (a scan of a pickle never imports the
    torch modules).
    """
    if _PurePython not in sys.meta_path:
        sys.meta_path.insert(0, _PurePython)


def prepare() -> None:
    """Called by safeload/__init__.py before anything else imports the modules of :data:`COMPILED`.

    With ``SAFELOAD_PURE_PYTHON`` set, loads the ``.py`` files (:func:`force_pure`); with a compiled module built
    from another version of its source, warns and does the same.
    """
    if pure_requested():
        force_pure()
        return
    stale = _stale_compiled()
    if stale:
        _STALE[:] = stale
        import warnings

        warnings.warn(f"safeload: the compiled {', '.join(stale)} was built from another version of its .py "
                      "source; running the pure-Python build (rebuild with `pip install -e .`, or set "
                      "SAFELOAD_PURE_PYTHON=1)", RuntimeWarning, stacklevel=3)
        force_pure()
        return


DIGEST_SUFFIX = ".crc32"  # setup.py writes it next to each extension module
_STALE: list[str] = []  # the compiled modules prepare() found out of date


def source_digest(data: bytes) -> str:
    """What setup.py records of the ``.py`` file a module was compiled from (``_write_digest``, the same text):
    its CRC-32 and its length. It tells an edited source from the one compiled, which is all it is for; it is no
    defence against tampering, since whoever can edit the installed files can replace the compiled module too.
    This runs at every ``import safeload``: CRC-32 over the 240 KB of compiled sources takes about 0.1 ms, where
    SHA-256 took 0.9 ms."""
    import zlib

    return f"crc32:{zlib.crc32(data):08x} size:{len(data)}"


def _stale_compiled() -> list[str]:
    """The compiled modules whose ``.py`` file no longer has the digest they were compiled from (or has none).

    An edited ``.py`` file next to an older extension module (an editable install) must not leave the old code
    running, which may lack a fix: such a module, and then the whole build, runs from the ``.py`` files.
    """
    stale = []
    for name in COMPILED:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if not origin or origin.endswith(".py"):
            continue
        try:
            with open(origin + DIGEST_SUFFIX, encoding="ascii") as fh:
                recorded = fh.read().strip()
            with open(_source(name), "rb") as fh:
                current = source_digest(fh.read())
        except OSError:
            recorded, current = "", "?"
        if recorded != current:
            stale.append(name.partition(".")[2])
    return stale


def _is_compiled(module: ModuleType) -> bool:
    return not (getattr(module, "__file__", None) or "").endswith(".py")


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED` that run as compiled extension modules in this process."""
    import importlib

    return [name for name in COMPILED if _is_compiled(importlib.import_module(name))]


def build_description() -> str:
    """One line for ``safeload --version``: which build runs, and which modules are compiled."""
    done = compiled_modules()
    if not done:
        why = " (SAFELOAD_PURE_PYTHON is set)" if pure_requested() else \
            f" (the compiled {', '.join(_STALE)} out of date: rebuild)" if _STALE else ""
        return f"pure-Python build{why}"
    short = ", ".join(name.partition(".")[2] for name in done)
    if len(done) == len(COMPILED):
        return f"compiled build (Cython: {short})"
    return f"partly compiled build (Cython: {short}; the rest pure Python)"
