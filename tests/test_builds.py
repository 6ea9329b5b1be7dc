"""The compiled build (setup.py: Cython from the unchanged .py source) against the pure-Python build.

The differential tests run the same bytes through this process's safeload and through a worker process started
with ``SAFELOAD_PURE_PYTHON=1`` (which imports the ``.py`` modules, safeload/_build.py), and require the same
result (``repr``, set members sorted) or the same error (type and message, offsets included). They run only where this process has
the compiled build; the tests of the switch itself run in both builds.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload import _build

ROOT = Path(__file__).resolve().parent.parent
COMPILED_HERE = _build.compiled_modules()
needs_compiled = pytest.mark.skipif(
    not COMPILED_HERE,
    reason="this process runs the pure-Python build (no compiled modules: pip install -e . with Cython and a "
           "C compiler builds them)",
)

# A result as text, the same in every process: set members sorted (their order follows the string hash, which
# differs between processes), containers that contain themselves cut short as repr does.
def canon(x: Any, active: set[int] | None = None) -> str:
    active = set() if active is None else active
    t = type(x)
    if t not in (set, frozenset, list, tuple, dict):
        return repr(x)
    if id(x) in active:
        return "..."
    active.add(id(x))
    try:
        if t is dict:
            return "{" + ", ".join(canon(k, active) + ": " + canon(v, active) for k, v in x.items()) + "}"
        parts = [canon(v, active) for v in x]
        if t in (set, frozenset):
            return t.__name__ + "{" + ", ".join(sorted(parts)) + "}"
        return ("[%s]" if t is list else "(%s,)") % ", ".join(parts)
    finally:
        active.discard(id(x))


# The worker: reads length-prefixed pickles on stdin, answers one JSON line each.
WORKER = "from __future__ import annotations\nfrom typing import Any\n" + inspect.getsource(canon) + r"""
import json, struct, sys
import safeload
from safeload import _build
print(json.dumps(_build.compiled_modules()), flush=True)
inp = sys.stdin.buffer
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    data = inp.read(struct.unpack("<I", head)[0])
    try:
        out = {"ok": True, "value": canon(safeload.loads(data))}
    except Exception as exc:
        out = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out), flush=True)
"""


def outcome(data: bytes) -> dict[str, Any]:
    try:
        return {"ok": True, "value": canon(safeload.loads(data))}
    except Exception as exc:
        return {"ok": False, "type": type(exc).__name__, "message": str(exc)}


class PureWorker:
    def __init__(self) -> None:
        env = dict(os.environ, SAFELOAD_PURE_PYTHON="1")
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, cwd=str(ROOT))
        assert self.proc.stdout is not None
        self.compiled = json.loads(self.proc.stdout.readline())

    def run(self, data: bytes) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the pure-Python worker died (exit {self.proc.poll()})"
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def pure() -> Any:
    worker = PureWorker()
    yield worker
    worker.close()


def same(pure: PureWorker, data: bytes) -> dict[str, Any]:
    here = outcome(data)
    there = pure.run(data)
    assert here == there, f"compiled and pure-Python builds differ on {data[:80]!r}...: {here} != {there}"
    return here


# ---- the switch and the build description (both builds) ------------------------------------------------------

def test_setup_py_compiles_the_modules_build_reports() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = [ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED" for t in node.targets)]
    assert listed == [_build.COMPILED]
    for name in _build.COMPILED:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


def test_pure_python_switch_loads_the_py_files() -> None:
    env = dict(os.environ, SAFELOAD_PURE_PYTHON="1")
    code = ("import safeload, sys; from safeload import _build; "
            "print([sys.modules[m].__file__ for m in _build.COMPILED]); print(_build.compiled_modules())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    files, compiled = (ast.literal_eval(line) for line in out.splitlines())
    assert all(f.endswith(".py") for f in files), files
    assert compiled == []


def test_version_says_which_build_runs() -> None:
    for pure_flag, expect in (("1", "pure-Python build"), ("", "compiled build" if COMPILED_HERE else "pure-Python")):
        env = dict(os.environ, SAFELOAD_PURE_PYTHON=pure_flag)
        out = subprocess.run([sys.executable, "-m", "safeload", "--version"], env=env, capture_output=True,
                             text=True, check=True).stdout
        assert out.startswith(f"safeload {safeload.__version__}, ") and expect in out, out


def test_ci_main_lane_runs_the_compiled_build() -> None:
    """.ci/run sets SAFELOAD_EXPECT_COMPILED=1 in the lane that must run the compiled build."""
    if os.environ.get("SAFELOAD_EXPECT_COMPILED", "") not in ("", "0"):
        assert COMPILED_HERE == list(_build.COMPILED), _build.build_description()


@needs_compiled
def test_the_vm_errors_are_format_errors_in_the_compiled_build(pure: PureWorker) -> None:
    # The VM tells its own errors (FormatError) from a rebuilder's (InternalError) by the traceback's file name;
    # in the compiled module that name is the .py source, not the extension (safeload/_build.py, prepare).
    assert pure.compiled == []
    for data in (b"\x80\x02J\x01\x00", b"\x80\x02\x86.", b"\x80\x02h\x05.", b"\x80\x02X\x01\x00\x00\x00\xff."):
        got = same(pure, data)
        assert got["type"] == "FormatError", got


# ---- differential: generated pickles through both builds ---------------------------------------------------------

def _floats() -> st.SearchStrategy[float]:
    return st.floats(allow_nan=False) | st.just(math.inf) | st.just(-0.0)


_leaves = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
           | _floats() | st.text(max_size=20) | st.binary(max_size=20))
_keys = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.binary(max_size=10) \
    | st.tuples(st.integers(), st.text(max_size=5))
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=6) | st.tuples(inner, inner) | st.tuples(inner, inner, inner, inner)
    | st.dictionaries(_keys, inner, max_size=6) | st.frozensets(_keys, max_size=4) | st.sets(_keys, max_size=4)
    | st.tuples(),
    max_leaves=25,
)
_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_compiled
@_settings
@given(obj=_values, proto=st.integers(min_value=0, max_value=5))
def test_generated_pickles_agree(pure: PureWorker, obj: Any, proto: int) -> None:
    data = pickle.dumps(obj, protocol=proto)
    got = same(pure, data)
    if got["ok"]:  # where safeload accepts the plain data, it rebuilds it exactly
        assert got["value"] == canon(obj)


@needs_compiled
@_settings
@given(obj=_values, proto=st.integers(min_value=0, max_value=5), cut=st.integers(min_value=0),
       flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=3))
def test_truncated_and_mutated_pickles_agree(pure: PureWorker, obj: Any, proto: int, cut: int,
                                             flips: list[tuple[int, int]]) -> None:
    data = bytearray(pickle.dumps(obj, protocol=proto))
    for where, byte in flips:
        data[where % len(data)] = byte
    same(pure, bytes(data[: cut % (len(data) + 1)]))


@needs_compiled
def test_malicious_corpus_agrees(pure: PureWorker) -> None:
    import corpus

    refused = 0
    for case in corpus.CORPUS:
        got = same(pure, case.data)
        refused += not got["ok"]
    assert refused == len(corpus.CORPUS)


def test_a_compiled_module_runs_only_while_its_source_is_unchanged(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # setup.py records the SHA-256 of each .py file next to its extension module; prepare() runs the pure-Python
    # build when a .py file was edited after the compile (an editable install), so old code never runs.
    assert _build._stale_compiled() == []
    edited = tmp_path / "edited.py"
    edited.write_text("# another version\n")
    monkeypatch.setattr(_build, "_source", lambda name: str(edited))
    expected = [name.rpartition(".")[2] for name in _build.COMPILED if name.rpartition(".")[2]
                in {m.rpartition(".")[2] for m in COMPILED_HERE}] if COMPILED_HERE else []
    assert _build._stale_compiled() == expected
