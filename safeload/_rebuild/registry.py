"""The default allowlist, assembled from each rebuilder family's ``ENTRIES``: safeload's own rebuilders and the
standard library's plain data types. ``safeload.policy.DEFAULT_POLICY`` is this table with the default limits.
A name listed twice is an error here, at import, rather than a silent override."""

from __future__ import annotations

from .._types import Entry
from . import builtins as b
from . import joblib as j
from . import megengine as m
from . import mxnet as x
from . import numpy as n
from . import torch as t


def default_entries() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for entry in (*b.ENTRIES, *n.ENTRIES, *t.ENTRIES, *j.ENTRIES, *m.ENTRIES, *x.ENTRIES):
        if entry.qualname in entries:
            raise RuntimeError(f"duplicate policy entry {entry.qualname}")
        entries[entry.qualname] = entry
    return entries
