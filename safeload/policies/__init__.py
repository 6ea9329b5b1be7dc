"""Opt-in policies for framework objects that are not plain data.

``safeload.policies.sklearn.POLICY`` rebuilds common scikit-learn estimators (importing scikit-learn when it is
first used). Pass it as ``safeload.load(f, policy=...)`` or ``safeload.patch("joblib", policy=...)``.
"""

from __future__ import annotations

import importlib

from .._hints import Any

__all__ = ["sklearn"]


def __getattr__(name: str) -> Any:
    if name == "sklearn":
        return importlib.import_module(".sklearn", __name__)
    raise AttributeError(name)
