"""Where the real framework samples are: $SAFELOAD_SAMPLES, else ../shared/samples beside the checkout, else the
workplace's shared folder. Tests that need them are skipped, visibly, when none exists (see conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    os.environ.get("SAFELOAD_SAMPLES", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "samples"),
    "/work/shared/samples",
]

SAMPLES = next((Path(c) for c in _CANDIDATES if c and (Path(c) / "README.md").is_file()), Path(_CANDIDATES[1]))
FOUND = (SAMPLES / "README.md").is_file()
