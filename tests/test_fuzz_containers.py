"""Container-level mutation fuzzing judged by the differential oracle (a short smoke; fuzz/fuzz_containers.py is the
long, coverage-guided run of the same builder).

Each example is a file ``corpus_attacks.build_mutant`` builds from real torch/numpy/joblib files and a live payload
with the container tricks of issue 10. Property: safeload's scan exiting 0 or its load accepting the file => no
native loader creates the marker; and nothing but a SafeLoadError leaves safeload. The native loaders run only when
safeload accepts a mutant.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# every mutant is built around files torch.save writes here (the no-torch CI lanes run the rest of the suite)
pytest.importorskip("torch", reason="the mutants are built around real torch.save files")

import corpus_attacks  # noqa: E402
import oracle  # noqa: E402

STATS: dict[str, int] = {}
#: SAFELOAD_HYPOTHESIS_EXAMPLES=50000 for a long run outside CI (random, not derandomized); with
#: SAFELOAD_ORACLE_STATS=path the totals (files, accepted, native loader runs, findings) are written there as the
#: run goes; with SAFELOAD_ORACLE_COLLECT=1 a violation is kept (its file next to the stats) and the run goes on
_LONG = os.environ.get("SAFELOAD_HYPOTHESIS_EXAMPLES")
_STATS_PATH = os.environ.get("SAFELOAD_ORACLE_STATS")
_COLLECT = os.environ.get("SAFELOAD_ORACLE_COLLECT") == "1"


def _write_stats() -> None:
    if _STATS_PATH:
        Path(_STATS_PATH).write_text(json.dumps(STATS) + "\n")


class DrawnChoices(corpus_attacks.Choices):
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def pick(self, n: int) -> int:
        return self.data.draw(st.integers(0, n - 1)) if n > 1 else 0

    def blob(self, limit: int) -> bytes:
        return self.data.draw(st.binary(max_size=limit))


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    corpus_attacks.materials()
    yield Path(tempfile.mkdtemp(prefix="safeload-fuzz-containers-"))
    _write_stats()


@settings(max_examples=int(_LONG or 400), deadline=None, derandomize=not _LONG,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: each step could run the natives
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutants_obey_the_oracle(folder: Path, data: st.DataObject) -> None:
    mutant = corpus_attacks.build_mutant(DrawnChoices(data))
    problems = corpus_attacks.judge(mutant, folder, STATS)
    if STATS["files"] % 500 == 0 or problems:
        _write_stats()
    if problems and _COLLECT and _STATS_PATH and not problems[0].startswith(corpus_attacks.KNOWN):
        import hashlib

        keep = Path(_STATS_PATH).with_suffix(".findings")
        keep.mkdir(exist_ok=True)
        (keep / hashlib.sha1(mutant).hexdigest()[:16]).write_bytes(mutant)
        (keep / "violations.txt").open("a").write(problems[0] + "\n")
    if problems and _COLLECT:
        return
    assert problems == []


def test_the_judge_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With safeload's verdict forced to "accept", a live mutant is reported: the property above can fail."""
    mutant = corpus_attacks.build_mutant(corpus_attacks.ByteChoices(b"\x00\x00\x00\x02"))  # a protocol-2 payload
    assert corpus_attacks.verdict(mutant)[0] != 0
    monkeypatch.setattr(corpus_attacks, "_verdict", lambda data: (0, True, "forced-accept"))
    stats: dict[str, int] = {}
    problems = corpus_attacks.judge(mutant, tmp_path, stats)
    assert problems and "pickle" in problems[0], problems
    assert stats["findings"] == 1 and stats["native_runs"] >= 1
    assert corpus_attacks.judge(mutant, tmp_path, stats) == [corpus_attacks.KNOWN + problems[0]]  # not rerun
    assert stats["known_findings"] == 1 and stats["findings"] == 1


def test_every_builder_branch_carries_a_payload() -> None:
    """64 fixed choice streams, covering every top-level kind of mutant: ``safeload.load`` refuses each one (every
    mutant carries the payload; whether the scan flags it is the oracle's question, above)."""
    for first in range(8):
        for rest in range(8):
            mutant = corpus_attacks.build_mutant(corpus_attacks.ByteChoices(bytes([first, rest, rest * 37 % 256,
                                                                                   5, 3, 1, 2, 0] * 8)))
            _code, accepted = corpus_attacks.verdict(mutant)
            assert not accepted, (first, rest, mutant[:40])
