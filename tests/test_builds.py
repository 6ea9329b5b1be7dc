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
import pickletools
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload import _budget, _build
from safeload._vm import VM

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
    code = ("import importlib, safeload; from safeload import _build; "
            "print([importlib.import_module(m).__file__ for m in _build.COMPILED]); "
            "print(_build.compiled_modules())")
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
    # setup.py records the CRC-32 and length of each .py file next to its extension module; prepare() runs the pure-Python
    # build when a .py file was edited after the compile (an editable install), so old code never runs.
    assert _build._stale_compiled() == []
    edited = tmp_path / "edited.py"
    edited.write_text("# another version\n")
    monkeypatch.setattr(_build, "_source", lambda name: str(edited))
    expected = [name.partition(".")[2] for name in _build.COMPILED if name.partition(".")[2]
                in {m.partition(".")[2] for m in COMPILED_HERE}] if COMPILED_HERE else []
    assert _build._stale_compiled() == expected


# ---- protocol 0, floods and truncation: the run loop's inline paths against the table handlers ---------------

# Protocol-0 spellings the run loop reads inline when they are canonical and short, and otherwise leaves to the
# table handlers (which refuse what C pickle and pickle.py read differently, SECURITY.md).
_P0_ARGS = [b"0", b"1", b"00", b"01", b"-0", b"010", b"+1", b" 1", b"1 ", b"1_0", b"-", b"", b"-5", b"12L", b"5LL",
            b"123456789012345678", b"-12345678901234567", b"1234567890123456789", b"9" * 40, b"0x10", b"1\r"]


def _p0_cases() -> list[bytes]:
    cases = []
    for arg in _P0_ARGS:
        cases += [b"I" + arg + b"\n.", b"L" + arg + b"\n.", b"(lp" + arg + b"\nI7\na.",
                  b"(lp0\nI7\nag" + arg + b"\n0.", b"(lp0\ng" + arg + b"\n."]
    for text in (b"abc", b"", b"\\u00e9\\u20ac", b"\\u12", b"\\x41", b"\xff\xfe", b"\\U0010ffff", b"\\"):
        cases += [b"V" + text + b"\n.", b"(dV" + text + b"\nI1\ns.", b"V" + text]
    cases += [b"(dI1\nI2\ns.", b"(dV\nV\ns.", b"(dN(ls.", b"(lI1\nI2\nls.", b"N(lI1\na.", b"I1\nI2\na.",
              b"(lp0\nI1\naI2\nap1\n0g1\n.", b"(lp999999999\n.", b"(lp-1\n.", b"I1\np0\np0\ng0\n."]
    return cases


@needs_compiled
def test_protocol0_spellings_agree(pure: PureWorker) -> None:
    accepted = 0
    for data in _p0_cases():
        got = same(pure, data)
        if got["ok"]:
            accepted += 1
            assert got["value"] == canon(pickle.loads(data)), data  # what safeload reads, C pickle reads alike
    assert accepted > 20  # the canonical spellings load


@needs_compiled
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_values)
def test_truncated_at_every_offset_agree(pure: PureWorker, obj: Any) -> None:
    for proto in (0, 2, 4):
        data = pickle.dumps(obj, protocol=proto)
        for cut in range(len(data)):
            same(pure, data[:cut])


@needs_compiled
def test_floods_agree(pure: PureWorker) -> None:
    for body in (b"N0", b"N", b"K\x01", b"]0", b"N\x85", b"N2", b"(1", b"I1\n0", b"I1\np0\n0"):
        for n in (0, 1, 1000):
            for proto in (b"", b"\x80\x02"):
                same(pure, proto + body * n + b"N.")


# ---- zip archives: the compiled walk of the central directory and local headers (safeload/_containers/zip.py)
# reads the fixed fields from a typed view of the bytes, the pure-Python build with struct ------------------------

def _zip_bases() -> list[bytes]:
    """Archives as the native writers make them: torch.save (zip64 end records, data descriptors, padded local
    headers), np.savez, zipfile deflated with a data descriptor (an unseekable stream), zip64 extra fields, a
    UTF-8 name, an ASCII name that only miniz's case folding joins with another, a path spelled two ways."""
    import io
    import zipfile

    import numpy as np

    out = []
    try:
        import torch
    except ImportError:  # the pure-Python lanes have no torch; the archives below still cover the walk
        torch = None
    if torch is not None:
        buf = io.BytesIO()
        torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2, dtype=torch.int64)}, buf)
        out.append(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(5), b=np.ones((2, 2)))
    out.append(buf.getvalue())

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.chunks.append(bytes(b))
            return len(b)

    stream = Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as zf:  # sizes unknown up front: data descriptors
        zf.writestr("x.txt", b"text " * 30)
        with zf.open("big", "w", force_zip64=True) as f:
            f.write(b"payload" * 20)
    out.append(b"".join(stream.chunks))
    for names in (["caf\u00e9.txt", "plain.txt"], ["A.txt", "a.txt"], ["a/b", "a//b"], ["\u00c9", "\u00e9"]):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n in names:
                zf.writestr(n, b"data of " + n.encode())
        out.append(buf.getvalue())
    return out


_ZIP_BASES = _zip_bases()


def _header_offsets(data: bytes) -> list[int]:
    """Where each local header, central entry, data descriptor and end record starts."""
    found = []
    for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x07\x08", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"):
        at = data.find(sig)
        while at >= 0:
            found.append(at)
            at = data.find(sig, at + 1)
    return sorted(found)


@needs_compiled
def test_native_zip_archives_agree(pure: PureWorker) -> None:
    outcomes = [same(pure, data) for data in _ZIP_BASES]
    assert any(o["ok"] for o in outcomes)  # the archives the writers make load (torch's, np.savez's)
    assert any(not o["ok"] and "Duplicate zip member" in o["message"] for o in outcomes)


@needs_compiled
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.integers(min_value=0), edits=st.lists(
    st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=59), st.integers(min_value=0, max_value=255)),
    min_size=1, max_size=3), cut=st.integers(min_value=0, max_value=3))
def test_mutated_zip_headers_agree(pure: PureWorker, base: int, edits: list[tuple[int, int, int]], cut: int) -> None:
    # bytes changed inside the headers (signatures, flags, sizes, name lengths, offsets, extra fields), and
    # sometimes the archive cut short: the same members or the same refusal, message and offset, in both builds
    data = bytearray(_ZIP_BASES[base % len(_ZIP_BASES)])
    heads = _header_offsets(bytes(data))
    for which, delta, byte in edits:
        at = heads[which % len(heads)] + delta
        if at < len(data):
            data[at] = byte
    if cut:
        data = data[: len(data) - cut * 7]
    same(pure, bytes(data))


def _units(data: bytes) -> list[tuple[int, int]]:
    """(offset, work units up to and including that opcode): one per opcode, one more per protocol-0 number
    conversion (INT, LONG, GET, PUT; INT's 00 and 01 are booleans, not conversions)."""
    out, total = [], 0
    for op, arg, pos in pickletools.genops(data):
        total += 1
        if op.name in ("INT", "LONG", "GET", "PUT") and data[pos + 1:pos + 3] not in (b"00", b"01"):
            total += 1
        out.append((pos, total))
    return out


@pytest.mark.parametrize("data", [
    b"\x80\x02" + b"N0" * 40 + b"N.",
    pickle.dumps([None, 1, (2, 3), "x" * 3, {"k": 1.5}] * 4, protocol=4),
    pickle.dumps({f"k{i}": [i, -i, str(i)] for i in range(8)}, protocol=0),
    pickle.dumps([[i] * 3 for i in range(6)], protocol=1),
], ids=["flood", "proto4", "proto0", "proto1"])
def test_opcodes_and_work_are_counted_exactly(data: bytes) -> None:
    """Both builds: ``max_opcodes`` and the work budget refuse at the exact opcode that exceeds them."""
    units = _units(data)
    ops = len(units)
    policy = safeload.DEFAULT_POLICY
    assert safeload.loads(data, policy=policy.with_limits(max_opcodes=ops)) == pickle.loads(data)
    for cap in sorted({1, 2, 3, ops // 2, ops - 1}):
        with pytest.raises(safeload.LimitExceededError) as info:
            safeload.loads(data, policy=policy.with_limits(max_opcodes=cap))
        assert (info.value.limit, info.value.offset) == ("max_opcodes", units[cap][0]), cap

    def run(budget: int) -> Any:  # the VM under a budget of exactly ``budget`` units (an input of 0 bytes)
        limited = policy.with_limits(work_base=budget)
        with _budget.budget_for(0, limited.limits) as spent:
            return VM(data, policy=limited).run(), spent.spent

    total = units[-1][1]
    value, spent = run(total)
    assert value == pickle.loads(data)
    assert spent["opcodes"] + spent["digits"] == total and spent["opcodes"] == ops, spent
    for budget in sorted({1, 2, 5, total // 3, total - 1}):
        with pytest.raises(safeload.LimitExceededError) as info:
            run(budget)
        first_over = next(pos for pos, used in units if used > budget)
        assert (info.value.limit, info.value.offset) == ("work_per_byte", first_over), budget


# ---- the memo: a dense list plus sparse slots (safeload/_vm.py _memo_store) against C pickle and pickle.py ----

def _memo_cases() -> list[bytes]:
    """Streams whose memo indexes are sparse, out of order, overwritten and counted by MEMOIZE: MEMOIZE stores at
    the number of filled slots (C pickle's memo_len, pickle.py's len(memo)), not at the highest index + 1."""
    p4, i = b"\x80\x04", lambda n: b"K" + bytes([n])
    lb = lambda n: b"r" + struct.pack("<I", n)  # LONG_BINPUT  # noqa: E731
    lg = lambda n: b"j" + struct.pack("<I", n)  # LONG_BINGET  # noqa: E731
    return [
        p4 + b"(" + i(1) + b"q\x05" + i(2) + b"\x94" + i(3) + b"\x94" + b"h\x05h\x01h\x02t.",  # PUT 5, MEMOIZE 1, 2
        p4 + b"(" + i(1) + b"q\x02" + i(2) + b"q\x01" + i(3) + b"q\x00" + i(4) + b"\x94h\x00h\x01h\x02h\x03t.",
        p4 + b"(" + i(1) + b"q\x01" + i(2) + b"\x94" + i(3) + b"\x94h\x01t.",  # MEMOIZE overwrites slot 1 twice
        p4 + b"(" + i(1) + b"q\x01" + i(2) + b"\x94h\x00t.",  # slot 0 was never filled
        p4 + b"(" + i(1) + b"q\x00" + i(2) + b"q\x02h\x01t.",  # the gap at 1
        p4 + b"(" + i(7) + lb(1 << 24) + i(8) + b"\x94" + lg(1 << 24) + b"h\x01t.",  # the highest allowed index
        p4 + b"(" + i(1) + b"q\x03" + i(2) + b"q\x01" + i(3) + b"\x94" + i(4) + b"q\x00" + i(5) + b"\x94"
        + b"h\x00h\x01h\x02h\x03h\x04t.",  # 0 absorbs 1 and 2 (MEMOIZE filled 2), 3 was sparse: MEMOIZE at 4
        p4 + b"\x8c\x01a\x94\x8c\x01b" + b"q\x03" + b"\x8c\x01c\x94(h\x00h\x01h\x03t.",  # fused string + MEMOIZE
        b"(I1\np7\nI2\np0\nI3\np1\ng7\ng0\ng1\nt.",  # protocol 0: sparse PUTs and GETs
        b"(I1\np7\nI2\n\x94g7\ng1\nt.",  # PUT 7, then MEMOIZE counts one filled slot
        b"(I1\np1\ng0\nt.",
        b"\x80\x02(K\x01q\x00K\x02q\x00h\x00t.",  # PUT 0 twice: the second wins
    ]


@pytest.mark.parametrize("data", _memo_cases())
def test_sparse_memo_reads_as_c_pickle_and_pickle_py(data: bytes) -> None:
    try:
        want = canon(pickle.loads(data))
    except Exception:
        want = None
    try:
        py = canon(pickle._loads(data))  # type: ignore[attr-defined]
    except Exception:
        py = None
    assert want == py, "C pickle and pickle.py disagree: the case proves nothing"
    if want is None:
        with pytest.raises(safeload.SafeLoadError):
            safeload.loads(data)
    else:
        assert canon(safeload.loads(data)) == want


_MEMO_BEYOND = b"\x80\x04(K\x07r" + struct.pack("<I", (1 << 24) + 1) + b"t."  # one past max_memo


def test_memo_index_beyond_the_limit_is_refused() -> None:
    assert pickle.loads(_MEMO_BEYOND) == (7,)  # C pickle takes it (and allocates a 16M-slot array)
    with pytest.raises(safeload.LimitExceededError, match="max_memo"):
        safeload.loads(_MEMO_BEYOND)


@needs_compiled
def test_sparse_memo_agrees(pure: PureWorker) -> None:
    for data in _memo_cases() + [_MEMO_BEYOND]:
        same(pure, data)


@pytest.mark.parametrize("raw", [0, 1, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF, 0xFFFF0000, 0x00010000])
def test_binint_sign_as_c_pickle(raw: int) -> None:
    """BININT is a signed 4-byte integer: the compiled loop subtracts 2**32 when the top bit is set."""
    data = b"\x80\x02J" + struct.pack("<I", raw) + b"."
    assert safeload.loads(data) == pickle.loads(data) == struct.unpack("<i", struct.pack("<I", raw))[0]


def test_source_digest_tells_every_one_byte_edit_from_the_source() -> None:
    # the digest guard records a CRC-32 and the length (safeload/_build.py:source_digest, written by setup.py):
    # any edit of a byte, and any insertion or removal, gives another digest
    import zlib

    source = (ROOT / "safeload" / "_vm.py").read_bytes()
    digest = _build.source_digest(source)
    assert digest == f"crc32:{zlib.crc32(source):08x} size:{len(source)}"
    for at in (0, len(source) // 2, len(source) - 1):
        edited = source[:at] + bytes([source[at] ^ 0x20]) + source[at + 1:]
        assert _build.source_digest(edited) != digest
    assert _build.source_digest(source + b"\n") != digest and _build.source_digest(source[:-1]) != digest
    setup = (ROOT / "setup.py").read_text()
    assert 'f"crc32:{zlib.crc32(data):08x} size:{len(data)}' in setup and 'DIGEST_SUFFIX = ".crc32"' in setup
