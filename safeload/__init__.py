"""safeload: open machine-learning checkpoints that nobody can trust, without ever running code from them.

    >>> import safeload
    >>> obj = safeload.load("checkpoint.pt", map_location="cpu")

See README.md for the guarantees and SECURITY.md for the threat model.
"""

from __future__ import annotations

from ._load import load, loads
from ._patch import Unpickler, patch, patched, unpatch
from ._save import save
from ._scan import scan
from ._state_dict import state_dict
from ._stub import Stub
from .errors import FormatError, LimitExceededError, SafeLoadError, UnsafeGlobalError
from .policy import DEFAULT_LIMITS, DEFAULT_POLICY, Limits, Policy, safe_globals

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_POLICY",
    "FormatError",
    "LimitExceededError",
    "Limits",
    "Policy",
    "SafeLoadError",
    "Stub",
    "Unpickler",
    "UnsafeGlobalError",
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
