"""Start-up: ``safeload scan`` of a small file imports only what the scan needs.

Each case runs the command line in a fresh interpreter (``python -c``: ``safeload._cli.main``, then a look at
``sys.modules``), as ``python -X importtime -m safeload scan FILE`` would show it. A plain pickle and a torch zip
checkpoint are read by safeload's own readers, so neither numpy nor torch (nor ml_dtypes, nor the optional remote
and cluster packages) may be imported to scan them.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

import oracle

#: packages a scan of a plain pickle or a torch zip never needs
HEAVY = ("numpy", "torch", "ml_dtypes", "fsspec", "dask", "distributed", "joblib", "py7zr", "zstandard", "scipy",
         "h5py", "s3fs", "aiohttp")

_CHILD = """
import json, sys
from safeload._cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _scan_in_fresh_interpreter(*args: str) -> tuple[int, dict[str, object], set[str]]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, "scan", "--format", "json", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    report_text, _, tail = proc.stdout.rpartition("\n@@")
    assert tail, proc.stderr
    child = json.loads(tail)
    return child["code"], json.loads(report_text), {m.partition(".")[0] for m in child["modules"]}


def _statuses(report: dict[str, object]) -> dict[str, str]:
    files = report["files"]
    assert isinstance(files, list)
    return {Path(f["path"]).name: f["status"] for f in files}


def test_scan_of_a_small_pickle_imports_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "small.pkl").write_bytes(pickle.dumps({"lr": 0.1, "od": OrderedDict(a=[1, 2])}, protocol=4))
    code, report, modules = _scan_in_fresh_interpreter(str(tmp_path / "small.pkl"))
    assert code == 0 and _statuses(report) == {"small.pkl": "clean"}
    assert sorted(modules & set(HEAVY)) == []


def test_scan_of_a_torch_zip_checkpoint_needs_no_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "step": 3}, tmp_path / "small.pt")
    code, report, modules = _scan_in_fresh_interpreter(str(tmp_path / "small.pt"))
    assert code == 0 and _statuses(report) == {"small.pt": "clean"}
    assert sorted(modules & set(HEAVY)) == []


def test_an_unsafe_pickle_is_still_found_without_heavy_imports(tmp_path: Path) -> None:
    """The lazy imports do not cost a finding: a live payload is reported unsafe in the same lean interpreter."""
    (tmp_path / "evil.pkl").write_bytes(oracle.payload(4))
    assert oracle.live(tmp_path / "evil.pkl", ("pickle",)) == ["pickle"]
    code, report, modules = _scan_in_fresh_interpreter(str(tmp_path / "evil.pkl"))
    assert code == 1 and _statuses(report) == {"evil.pkl": "unsafe"}
    assert sorted(modules & set(HEAVY)) == []


def test_a_pool_scan_parent_imports_nothing_heavy(tmp_path: Path) -> None:
    """``--jobs 2``: the parent (and so each forked worker) stays lean as well."""
    for i in range(6):
        (tmp_path / f"p{i}.pkl").write_bytes(pickle.dumps({"i": i, "names": ["a"] * i}, protocol=i % 5 + 1))
    code, report, modules = _scan_in_fresh_interpreter("--jobs", "2", str(tmp_path))
    assert code == 0 and set(_statuses(report).values()) == {"clean"} and len(_statuses(report)) == 6
    assert sorted(modules & set(HEAVY)) == []


#: standard-library modules a quiet text scan of a small pickle does without (each costs 1-4 ms of every start):
#: shutil (argparse's help width), pathlib and urllib (file collection), json (only for JSON and policy files),
#: textwrap (only to print findings), safeload._remote (only for URLs), datetime, decimal and fractions (only when a
#: file names one of their classes: safeload/_rebuild/builtins.py), and the zip and torch readers (a plain pickle
#: needs neither; ``--version`` finds which build runs only when asked for), and dataclasses with the inspect it
#: imports (the report, the limits and the opcode table are records: safeload/_record.py), and typing (the
#: annotations take their names from safeload/_hints.py)
LEAN = ("shutil", "pathlib", "urllib", "json", "textwrap", "safeload._remote", "datetime", "decimal", "fractions",
        "safeload._containers.zip", "safeload._containers.torch", "dataclasses", "inspect", "typing")

_BARE_CHILD = """
import sys
from safeload._cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\n@@%d %s" % (code, " ".join(sorted(sys.modules))))
"""


def test_a_quiet_scan_imports_only_what_it_uses(tmp_path: Path) -> None:
    """Run without site-packages (``-S``, safeload found through PYTHONPATH): what safeload itself imports, not what a
    development install's import hooks bring in."""
    import os

    (tmp_path / "small.pkl").write_bytes(pickle.dumps({"lr": 0.1, "od": OrderedDict(a=[1, 2])}, protocol=4))
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-S", "-c", _BARE_CHILD, "scan", "-q", str(tmp_path / "small.pkl")],
                          capture_output=True, text=True, timeout=120, check=False, env=env)
    _, _, tail = proc.stdout.rpartition("\n@@")
    assert tail, proc.stderr
    code, _, names = tail.strip().partition(" ")
    modules = set(names.split())
    assert code == "0" and "safeload._vm" in modules
    assert sorted(m for m in modules if m in LEAN or m.partition(".")[0] in LEAN) == []
    assert "safeload._detect" in modules and "safeload._report" in modules  # the scan did run
    assert sorted(modules & set(HEAVY)) == []
