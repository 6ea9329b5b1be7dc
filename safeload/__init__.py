"""safeload: open machine-learning checkpoints that nobody can trust, without ever running code from them.

    >>> import safeload
    >>> obj = safeload.load("checkpoint.pt", map_location="cpu")

See README.md for the guarantees and SECURITY.md for the threat model.
"""

from __future__ import annotations

from ._hints import TYPE_CHECKING, Any
from . import _build

_build.prepare()  # SAFELOAD_PURE_PYTHON=1 or the compiled modules, before anything imports them

from ._load import load, loads  # noqa: E402
from ._stub import Stub
from .errors import (
    DangerousGlobalError,
    FormatError,
    InternalError,
    LimitExceededError,
    SafeLoadError,
    TrailingDataError,
    UnsafeCallError,
    UnsafeGlobalError,
    UnsupportedFormatError,
)
from .policy import DEFAULT_LIMITS, DEFAULT_POLICY, Limits, Policy, safe_globals

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_POLICY",
    "DangerousGlobalError",
    "FormatError",
    "InternalError",
    "LimitExceededError",
    "Limits",
    "Policy",
    "SafeLoadError",
    "Stub",
    "TrailingDataError",
    "Unpickler",
    "UnsafeCallError",
    "UnsafeGlobalError",
    "UnsupportedFormatError",
    "info",
    "load",
    "loads",
    "patch",
    "patched",
    "safe_globals",
    "save",
    "scan",
    "state_dict",
    "unpatch",
]

__version__ = "0.1.0"

# Imported on first use, so that ``import safeload`` (and the ``safeload scan`` command) stays quick.
_LAZY = {
    "Unpickler": "._patch",
    "info": "._info",
    "patch": "._patch",
    "patched": "._patch",
    "unpatch": "._patch",
    "save": "._save",
    "scan": "._scan",
    "state_dict": "._state_dict",
}

if TYPE_CHECKING:
    from ._info import info
    from ._patch import Unpickler, patch, patched, unpatch
    from ._save import save
    from ._scan import scan
    from ._state_dict import state_dict


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safeload' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
