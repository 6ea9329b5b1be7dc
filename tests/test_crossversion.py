"""Cross-version proof with the interpreters pyenv provides (each test skips, with the reason, where one is missing):

* files safeload.save writes at protocol 4 with plain data load with the stdlib ``pickle`` of Python 3.6 and 3.7;
* safeload itself (from this source tree) loads them, and the numpy checkpoint, on Python 3.10 to 3.13;
* protocol 0 and 2 pickles written by Python 2.7 load in safeload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import safeload
from safeload._save import save

REPO = Path(__file__).resolve().parents[1]

# Built by the same source text here and in the other interpreter, so both sides compare real objects.
PLAIN = r'''
import argparse, datetime, decimal, fractions
from collections import OrderedDict
shared = [1, 2]
EXPECTED = {
    "epoch": 12, "big": 2 ** 80, "neg": -7, "lr": 0.001, "inf": float("inf"), "ok": True, "none": None,
    "name": "r\u00e9sum\u00e9 \u2603", "bytes": b"\x00\xff", "ba": bytearray(b"xy"), "c": 1.5 - 2j,
    "tuple": (1, (2, 3), "x"), "set": {1, 2, 3}, "fs": frozenset(["a"]), "od": OrderedDict([("b", 1), ("a", 2)]),
    "args": argparse.Namespace(lr=0.1, arch="resnet18", layers=[1, 2]),
    "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 10), "day": datetime.date(2020, 2, 29),
    "dt": datetime.timedelta(days=1, seconds=2), "dec": decimal.Decimal("3.14"), "frac": fractions.Fraction(2, 3),
    "a": shared, "b": shared, "history": [{"loss": 0.5 / (i + 1), "step": i} for i in range(50)],
}
'''

READ_STDLIB = PLAIN + r'''
import pickle, sys
with open(sys.argv[1], "rb") as f:
    got = pickle.load(f)
assert got == EXPECTED, (got, EXPECTED)
assert got["a"] is got["b"]
print("ok", sys.version_info[:2])
'''

READ_SAFELOAD = PLAIN + r'''
import sys
import safeload
got = safeload.load(sys.argv[1])
assert got == EXPECTED, (got, EXPECTED)
assert got["a"] is got["b"]
if len(sys.argv) > 2:
    import numpy as np
    arrays = safeload.load(sys.argv[2], tensors="numpy")
    assert arrays["epoch"] == 3 and arrays["loss"] == np.float64(0.25), arrays
    assert arrays["w"].dtype == np.float32 and arrays["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert arrays["fortran"].tolist() == [[0, 1, 2], [3, 4, 5]] and arrays["mask"].tolist() == [True, False]
print("ok", sys.version_info[:2])
'''

# Python 2.7: the objects it pickles, and what they are in Python 3 (str decoded as latin-1, long as int).
PY2_WRITE = r'''
import pickle, sys
from collections import OrderedDict
obj = {"ascii": "abc", "latin": "caf\xe9", "text": u"r\xe9sum\xe9 \u2603", "int": 5, "long": 2L ** 70,
       "float": 0.25, "list": [1, 2.5, None, True], "tuple": (1, ("x",)), "set": set([1, 2]),
       "od": OrderedDict([("b", 1), ("a", 2)]), "unicode_key": {u"k\xe9y": 1}, "neg": -3, "big_neg": -2L ** 40}
for proto in (0, 2):
    with open(sys.argv[1] + "/py2_p%d.pkl" % proto, "wb") as f:
        pickle.dump(obj, f, proto)
'''


def _pyenv_python(version: str) -> str | None:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip()
    candidates = sorted(Path(root).glob(f"versions/{version}.*/bin/python")) if root else []
    return str(candidates[-1]) if candidates else None


def _python(version: str) -> str:
    exe = _pyenv_python(version)
    if exe is None:
        pytest.skip(f"Python {version} is not installed through pyenv on this machine")
    return exe


def _run(exe: str, script: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([exe, "-c", script, *args], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _has_numpy(exe: str) -> bool:
    return subprocess.run([exe, "-c", "import numpy"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crossversion")
    scope: dict[str, object] = {}
    exec(PLAIN, scope)
    plain = folder / "plain.pkl"
    save(scope["EXPECTED"], plain, pickle_protocol=4)
    assert plain.read_bytes()[:2] == b"\x80\x04"
    np = pytest.importorskip("numpy")
    arrays = folder / "arrays.pt"
    save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "fortran": np.asfortranarray(np.arange(6).reshape(2, 3)),
          "mask": np.array([True, False]), "epoch": 3, "loss": np.float64(0.25)}, arrays)
    return plain, arrays


@pytest.mark.parametrize("version", ["3.6", "3.7"])
def test_old_pythons_read_plain_data_with_stdlib_pickle(files, version):
    plain, _arrays = files
    assert _run(_python(version), READ_STDLIB, str(plain)).startswith("ok")


SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


@pytest.mark.parametrize("version", SUPPORTED)
def test_safeload_reads_plain_data_on_supported_pythons(files, version):
    plain, _arrays = files
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert _run(_python(version), READ_SAFELOAD, str(plain), env=env).startswith("ok")


@pytest.mark.parametrize("version", SUPPORTED)
def test_safeload_reads_the_numpy_checkpoint_on_supported_pythons(files, version):
    plain, arrays = files
    exe = _python(version)
    if not _has_numpy(exe):
        pytest.skip(f"Python {version} has no numpy on this machine (its plain-data test still ran)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert _run(exe, READ_SAFELOAD, str(plain), str(arrays), env=env).startswith("ok")


def test_python2_pickles_load_in_safeload(tmp_path):
    exe = _python("2.7")
    _run(exe, PY2_WRITE, str(tmp_path))
    expected = {"ascii": "abc", "latin": "caf\xe9", "text": "r\xe9sum\xe9 \u2603", "int": 5, "long": 2 ** 70,
                "float": 0.25, "list": [1, 2.5, None, True], "tuple": (1, ("x",)), "set": {1, 2},
                "od": {"b": 1, "a": 2}, "unicode_key": {"k\xe9y": 1}, "neg": -3, "big_neg": -(2 ** 40)}
    for proto in (0, 2):
        got = safeload.load(tmp_path / f"py2_p{proto}.pkl")
        assert got == expected
        assert list(got["od"]) == ["b", "a"] and type(got["od"]).__name__ == "OrderedDict"
        assert safeload.load(tmp_path / f"py2_p{proto}.pkl", encoding="bytes")[b"latin"] == b"caf\xe9"


def test_this_python_is_in_range():
    assert (3, 10) <= sys.version_info[:2] < (3, 14)
