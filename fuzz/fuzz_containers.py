"""atheris harness for container-level mutations judged by the differential oracle (issue 10). Run through
run_all.sh, or directly:

    .venv/bin/python fuzz/fuzz_containers.py fuzz/.corpus/containers -max_total_time=60 -max_len=4096

The input is a stream of choices: ``corpus_attacks.build_mutant`` turns it into a file built from real torch, numpy
and joblib files and a live payload (polyglots, hidden and duplicate end records, case-variant names, extra fields,
prepended/appended/nested archives, nested frames). Property: safeload's scan exiting 0 or its load accepting the
file => no native loader (tests/oracle.py) creates the marker. safeload's verdict comes first (cheap); the native
loaders run, in capped children, only when safeload accepts. Besides the oracle's property, the common contract
holds: only a SafeLoadError may leave safeload.

Totals (files, files safeload accepted, native loader runs, findings) are rewritten to
fuzz/logs/containers-stats.json as the run goes; a finding's file is kept next to its input in
fuzz/findings/containers/ (collect mode) and becomes a regression case in tests/corpus_attacks.py.
"""

import hashlib
import json
import tempfile
import time
from pathlib import Path

import common

common.instrumented_safeload()
import corpus_attacks  # noqa: E402  (tests/ is on sys.path through common)

STATS: dict[str, int] = {"files": 0, "accepted": 0, "native_runs": 0, "findings": 0, "builder_errors": 0}
_LOG = common.HERE / "logs" / "containers-stats.json"
_FOLDER = Path(tempfile.mkdtemp(prefix="safeload-fuzz-containers-"))
_started = time.time()


def _save_stats() -> None:
    _LOG.parent.mkdir(parents=True, exist_ok=True)
    _LOG.write_text(json.dumps(dict(STATS, seconds=round(time.time() - _started)), indent=1) + "\n")


def stage(data: bytes) -> None:
    try:
        mutant = corpus_attacks.build_mutant(corpus_attacks.ByteChoices(data))
    except (AssertionError, ValueError, OverflowError, struct_error()):
        STATS["builder_errors"] += 1  # the builder cannot make this combination (a frame it cannot find, ...)
        return
    before = STATS["accepted"]
    try:
        problems = corpus_attacks.judge(mutant, _FOLDER, STATS)
    finally:
        if STATS["files"] % 500 == 0 or STATS["accepted"] != before:
            _save_stats()
    if problems:
        if not problems[0].startswith(corpus_attacks.KNOWN):  # the file the natives really ran the payload from
            out = common.HERE / "findings" / "containers"
            out.mkdir(parents=True, exist_ok=True)
            (out / (hashlib.sha1(data).hexdigest()[:16] + ".mutant")).write_bytes(mutant)
        _save_stats()
        raise common.ContractViolation(problems[0])


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def _seed(folder: Path) -> None:
    """run_all.sh passes fuzz/.seeds/containers, which make_seeds.py leaves empty: a choice stream needs no seed
    file, but 64 long random ones let libFuzzer start from whole files instead of growing inputs from 4 bytes."""
    import random

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(64):
        (folder / f"random-{i:02d}").write_bytes(bytes(rng.getrandbits(8) for _ in range(64 + 16 * i)))


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        if arg.rstrip("/").endswith(".seeds/containers") and not any(Path(arg).glob("*")):
            _seed(Path(arg))
    corpus_attacks.materials()  # real files written once, before fuzzing starts
    common.main("containers", stage)
