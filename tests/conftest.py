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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "internal_error: the test provokes safeload.InternalError on purpose")


@pytest.fixture(autouse=True)
def _no_internal_errors(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every test fails if safeload created an InternalError (a safeload bug), even one a broad
    ``pytest.raises(SafeLoadError)`` caught, unless the test is marked ``internal_error``."""
    from safeload.errors import InternalError

    seen: list[InternalError] = []
    original = InternalError.__init__

    def record(self: InternalError, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(self)

    monkeypatch.setattr(InternalError, "__init__", record)
    yield
    if seen and request.node.get_closest_marker("internal_error") is None:
        pytest.fail(f"safeload raised InternalError (a safeload bug): {seen[0]}", pytrace=False)
