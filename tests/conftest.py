from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside the tests (corpus, torch_pickles, ...)

from samples_path import FOUND, SAMPLES  # noqa: E402


def pytest_report_header(config: pytest.Config) -> str:
    return f"framework samples: {SAMPLES if FOUND else 'not found (set SAFELOAD_SAMPLES)'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FOUND:
        return
    skip = pytest.mark.skip(reason="the shared framework samples are not on this machine (set SAFELOAD_SAMPLES)")
    for item in items:
        if getattr(item.module, "SAMPLES", None) is not None:
            item.add_marker(skip)
