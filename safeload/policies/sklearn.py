"""An opt-in policy that rebuilds common scikit-learn estimators without running their code on file data.

In the style of skops' trusted types: each listed class is created with ``object.__new__(cls)`` (never its
constructor, ``__reduce__`` or ``__setstate__``), and its BUILD state goes into ``__dict__`` only after every
attribute name is checked (strings, no dunders) and every value is plain data: None, numbers, strings, bytes,
lists, tuples, dicts and sets of those, numpy arrays (object arrays holding plain data), numpy scalars and
dtypes, numpy scalar types used as values, and instances of other listed estimators. Anything else in an
estimator's state (a stub, a Cython object, a function) is refused.

Estimators built on Cython objects whose state would have to be trusted by native code (trees and forests
with ``sklearn.tree._tree.Tree``, KD-trees, SGD loss objects, SVMs' libsvm state, gradient boosting) are **not**
listed: their native ``__setstate__`` does not check everything it indexes. Load those with ``unknown="stub"``.

Use: ``safeload.load(f, policy=safeload.policies.sklearn.POLICY)``. Accessing ``POLICY`` imports scikit-learn.
"""

from __future__ import annotations

import importlib

from .._hints import Any
from .._types import Entry
from ..policy import DEFAULT_POLICY, Policy, _with_entries
from .._rebuild.builtins import check_attr_names
from .._rebuild.context import RebuildContext

__all__ = ["ESTIMATORS", "POLICY", "policy"]

#: public import path -> class name, for the estimators this policy rebuilds
ESTIMATORS: tuple[tuple[str, str], ...] = (
    ("sklearn.linear_model", "LinearRegression"), ("sklearn.linear_model", "Ridge"),
    ("sklearn.linear_model", "RidgeClassifier"), ("sklearn.linear_model", "Lasso"),
    ("sklearn.linear_model", "ElasticNet"), ("sklearn.linear_model", "LogisticRegression"),
    ("sklearn.preprocessing", "StandardScaler"), ("sklearn.preprocessing", "MinMaxScaler"),
    ("sklearn.preprocessing", "MaxAbsScaler"), ("sklearn.preprocessing", "RobustScaler"),
    ("sklearn.preprocessing", "Normalizer"), ("sklearn.preprocessing", "LabelEncoder"),
    ("sklearn.preprocessing", "LabelBinarizer"), ("sklearn.preprocessing", "OneHotEncoder"),
    ("sklearn.preprocessing", "OrdinalEncoder"), ("sklearn.preprocessing", "PolynomialFeatures"),
    ("sklearn.decomposition", "PCA"), ("sklearn.decomposition", "TruncatedSVD"),
    ("sklearn.naive_bayes", "GaussianNB"), ("sklearn.naive_bayes", "MultinomialNB"),
    ("sklearn.naive_bayes", "BernoulliNB"), ("sklearn.dummy", "DummyClassifier"),
    ("sklearn.dummy", "DummyRegressor"), ("sklearn.feature_extraction.text", "TfidfTransformer"),
    ("sklearn.feature_extraction.text", "TfidfVectorizer"), ("sklearn.feature_extraction.text", "CountVectorizer"),
    ("sklearn.pipeline", "Pipeline"), ("sklearn.impute", "SimpleImputer"),
)

_MAX_DEPTH = 100


def _check_value(vm: RebuildContext, value: Any, classes: frozenset[type], owner: str, depth: int = 0) -> None:
    import numpy as np

    if depth > _MAX_DEPTH:
        raise vm.fail(f"{owner} state nested deeper than {_MAX_DEPTH}")
    kind = type(value)
    if value is None or kind in (bool, int, float, complex, str, bytes):
        return
    if kind in (list, tuple, set, frozenset):
        for item in value:
            _check_value(vm, item, classes, owner, depth + 1)
        return
    if isinstance(value, dict) and kind.__module__ in ("builtins", "collections"):
        for k, v in value.items():
            _check_value(vm, k, classes, owner, depth + 1)
            _check_value(vm, v, classes, owner, depth + 1)
        return
    if kind is np.ndarray:
        if value.dtype.hasobject:
            for item in value.reshape(-1).tolist():
                _check_value(vm, item, classes, owner, depth + 1)
        return
    if isinstance(value, (np.generic, np.dtype)) and kind.__module__.startswith("numpy"):
        return
    if kind in classes:
        return
    if isinstance(value, type) and (value in classes or (issubclass(value, np.generic) and value.__module__ == "numpy")):
        return
    what = getattr(value, "qualname", None) or f"{kind.__module__}.{kind.__qualname__}"
    raise vm.fail(f"{owner} state holds a {what}",
                  "the sklearn policy sets only plain data and listed estimators as attributes",
                  fix="Load the file with unknown='stub' to inspect it, or allow the class if you trust it")


def _entry(cls: type, classes: frozenset[type]) -> Entry:
    qualname = f"{cls.__module__}.{cls.__qualname__}"

    def newobj(vm: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args or kwargs:
            raise vm.fail(f"{qualname} created with arguments", "estimators are pickled as NEWOBJ(cls) + state")
        return object.__new__(cls)

    def call(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
        return newobj(vm, args, {})

    def build(vm: RebuildContext, inst: Any, state: Any) -> Any:
        if type(state) is not dict:
            raise vm.fail(f"{qualname} state is a {type(state).__name__}", "estimators pickle a dict of attributes")
        check_attr_names(vm, state, qualname)
        for key, value in state.items():
            _check_value(vm, value, classes, f"{qualname}.{key}")
        inst.__dict__.update(state)  # never __setstate__
        return inst

    return Entry(qualname, value=cls, call=call, newobj=newobj, build=build,
                 reason="a scikit-learn estimator: object.__new__ plus checked plain-data attributes")


def policy(base: Policy = DEFAULT_POLICY) -> Policy:
    """``base`` plus the estimators in :data:`ESTIMATORS` (imports scikit-learn)."""
    found = []
    for module, name in ESTIMATORS:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue  # an estimator this scikit-learn version does not have
    classes = frozenset(found)
    return _with_entries(base, (_entry(cls, classes) for cls in found))


_POLICY: Policy | None = None


def __getattr__(name: str) -> Any:
    global _POLICY
    if name == "POLICY":
        if _POLICY is None:
            _POLICY = policy()
        return _POLICY
    raise AttributeError(name)
