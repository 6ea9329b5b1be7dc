"""Names as data: the known-dangerous names (for verdicts and messages) and the canonical spelling of a global
(the Python 2 renames of ``_compat_pickle`` and the NumPy 1 / 2 module names), so every spelling meets the same
policy entry. Nothing here imports anything a name names."""

from __future__ import annotations

import _compat_pickle
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DANGEROUS", "canonical_name", "canonical_qualname", "danger_of"]


#: Known-dangerous names, each with the reason. Used for the scanner's verdicts; everything outside the
#: policy is refused whether or not it is listed here. Keys are a module (every name in it) or module.name.
DANGEROUS: Mapping[str, str] = MappingProxyType(
    {
        "os": "runs shell commands and touches the file system",
        "posix": "runs shell commands and touches the file system",
        "nt": "runs shell commands and touches the file system",
        "subprocess": "runs programs",
        "pty": "spawns a shell",
        "commands": "runs shell commands (Python 2)",
        "popen2": "runs shell commands (Python 2)",
        "shutil": "copies and deletes files",
        "socket": "opens network connections",
        "ssl": "opens network connections",
        "http": "opens network connections",
        "urllib": "opens network connections",
        "requests": "opens network connections",
        "webbrowser": "opens URLs in a browser",
        "runpy": "runs Python modules",
        "importlib": "imports arbitrary modules",
        "pickle": "unpickles nested data without safeload's checks",
        "_pickle": "unpickles nested data without safeload's checks",
        "dill": "unpickles code objects",
        "marshal": "loads code objects",
        "types": "builds functions and code objects",
        "ctypes": "calls native code",
        "code": "runs Python source",
        "codeop": "compiles Python source",
        "sys": "changes the interpreter",
        "asyncio": "runs processes and network code",
        "multiprocessing": "runs processes",
        "pdb": "runs Python source",
        "timeit": "runs Python source",
        "operator": "calls attributes and items by name (attrgetter, methodcaller)",
        "functools": "builds callables (partial, reduce)",
        "builtins.eval": "runs Python source",
        "builtins.exec": "runs Python source",
        "builtins.compile": "compiles Python source",
        "builtins.open": "opens files",
        "builtins.getattr": "reaches any attribute, and through it any callable",
        "builtins.setattr": "changes any attribute",
        "builtins.delattr": "deletes any attribute",
        "builtins.__import__": "imports arbitrary modules",
        "builtins.globals": "exposes the interpreter's globals",
        "builtins.vars": "exposes object internals",
        "builtins.breakpoint": "starts a debugger",
        "builtins.input": "reads from the terminal",
        "builtins.print": "writes to the terminal",
        "builtins.memoryview": "exposes raw memory",
        "builtins.type": "builds new classes",
        "copyreg._reconstructor": "calls the class it is given",
        "torch.load": "unpickles nested data",
        "torch.serialization.load": "unpickles nested data",
        "torch._utils._rebuild_from_type_v2": "calls the function it is given",
        "torch.hub": "downloads and runs code",
        "numpy.load": "unpickles nested data",
        "numpy.testing._private.utils.runstring": "runs Python source",
        "joblib.load": "unpickles nested data",
    }
)


_NUMPY_CORE_RENAMES = ("numpy.core.", "numpy.core")


def canonical_name(module: str, name: str) -> tuple[str, str]:
    """Apply the Python 2 renames and the NumPy 1/2 spelling, so every spelling meets the same entry.

    The renames are data from the standard library (``_compat_pickle``); nothing is imported.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core") :]
    return module, name


def danger_of(qualname: str) -> str | None:
    """The reason a name is known to be dangerous, or None. Checks the name and every enclosing module."""
    if qualname in DANGEROUS:
        return DANGEROUS[qualname]
    module = qualname
    while "." in module:
        module = module.rsplit(".", 1)[0]
        if module in DANGEROUS:
            return DANGEROUS[module]
    return None


def canonical_qualname(qualname: str) -> str:
    """``pkg.mod.Name`` or ``pkg.mod:Name`` in its canonical spelling (see canonical_name)."""
    module, _, name = qualname.partition(":") if ":" in qualname else qualname.rpartition(".")
    module, name = canonical_name(module, name)
    return f"{module}.{name}"
