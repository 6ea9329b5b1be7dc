"""Structured fuzzing with hypothesis: valid pickles split into opcodes (``safeload._opcodes.iter_ops``), mutated
at the opcode level and re-emitted; plus differential tests against CPython's ``pickle``.

Contract: only SafeLoadError may leave ``safeload.loads``; ``scan`` and ``load`` agree on
every stream; benign data round-trips through ``pickle.dumps`` and ``safeload.loads`` on every protocol.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

safeload = pytest.importorskip("safeload")
from safeload._opcodes import iter_ops  # noqa: E402
from safeload._scan import scan  # noqa: E402

from corpus import CORPUS, GLOBAL, MARK, REDUCE, STRING, TUPLE  # noqa: E402

# SAFELOAD_HYPOTHESIS_EXAMPLES=20000 for a long run outside CI
SETTINGS = settings(max_examples=int(os.environ.get("SAFELOAD_HYPOTHESIS_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20)
           | st.complex_numbers(allow_nan=False, allow_infinity=False))
hashable = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
                        lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6)
benign = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=5) | st.tuples(inner, inner)
                   | st.dictionaries(hashable, inner, max_size=5) | st.sets(hashable, max_size=5)
                   | st.frozensets(hashable, max_size=5) | st.builds(bytearray, st.binary(max_size=10))
                   | st.dictionaries(st.text(max_size=5), inner, max_size=4).map(OrderedDict)),
    max_leaves=25,
)


def split_ops(data: bytes) -> list[bytes]:
    """The stream as one bytes slice per opcode (STOP included)."""
    offsets = [off for _spec, _arg, off in iter_ops(data)]
    offsets.append(offsets[-1] + 1)
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


# opcodes an attacker would splice in: globals (allowed and not), calls, memo, marks, frames, garbage
PALETTE = [
    GLOBAL("os", "system"), GLOBAL("collections", "OrderedDict"), GLOBAL("builtins", "set"),
    GLOBAL("torch._utils", "_rebuild_tensor_v2"), GLOBAL("numpy.core.multiarray", "_reconstruct"),
    b"\x8c\x02os\x8c\x06system\x93", REDUCE, b"\x81", b"\x92", b"b", MARK, b"t", b"0", b"2", b"1",
    b"h\x00", b"q\x00", b"r\xff\xff\xff\x00", b"\x94", b"j\x01\x00\x00\x00", b"\x95\x05\x00\x00\x00\x00\x00\x00\x00",
    b"\x80\x04", b"N", b"]", b"}", b")", b"s", b"u", b"a", b"e", b"\x90", b"\x91", b"\x85", b"\x86", b"\x87",
    STRING("touch MARKER"), b"\x82\x01", b"Q", b"P0\n", b"\xff", b".", b"(" * 50, b"\x8a\x00",
]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    ops = split_ops(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace", "bytes", "truncate"]))
        i = draw(st.integers(0, len(ops) - 1))
        if kind == "delete" and len(ops) > 1:
            del ops[i]
        elif kind == "duplicate":
            ops.insert(i, ops[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(ops) - 1))
            ops[i], ops[j] = ops[j], ops[i]
        elif kind == "insert":
            ops.insert(i, draw(st.sampled_from(PALETTE)))
        elif kind == "replace":
            ops[i] = draw(st.sampled_from(PALETTE))
        elif kind == "bytes":
            ops.insert(i, draw(st.binary(min_size=1, max_size=6)))
        elif kind == "truncate":
            ops = ops[: max(1, i)]
    return b"".join(ops)


valid_pickles = st.builds(lambda obj, proto: pickle.dumps(obj, protocol=proto), benign,
                          st.integers(0, pickle.HIGHEST_PROTOCOL))
hostile_bases = st.sampled_from([c.data for c in CORPUS if c.wellformed])


def load_outcome(data: bytes) -> tuple[bool, object]:
    """(accepted, result or error); anything but SafeLoadError fails the test."""
    try:
        return True, safeload.loads(data, tensors="numpy")
    except safeload.SafeLoadError as err:
        assert "while reading the file" not in err.what, f"internal error: {err}"
        return False, err


def assert_agree(data: bytes) -> None:
    accepted, result = load_outcome(data)
    report = scan(data)
    status = report.files[0].status
    if status == "skipped":  # text with no global: nothing a pickle reader would run
        return
    assert (report.exit_code == 0) == accepted, (data, result, [f.message for f in report.findings])


@SETTINGS
@given(benign, st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_differential_benign_equals_cpython(obj: object, proto: int) -> None:
    data = pickle.dumps(obj, protocol=proto)
    assert safeload.loads(data) == pickle.loads(data)
    assert scan(data).exit_code == 0


@SETTINGS
@given(mutated(valid_pickles))
def test_mutated_valid_pickles_only_safeloaderror(data: bytes) -> None:
    assert_agree(data)


@SETTINGS
@given(mutated(hostile_bases))
def test_mutated_hostile_streams_scan_and_load_agree(data: bytes) -> None:
    assert_agree(data)
    accepted, result = load_outcome(data)
    if accepted:  # whatever survived the mutation, nothing live came back
        assert not callable(result) or isinstance(result, type), result


@SETTINGS
@given(mutated(valid_pickles))
def test_stub_mode_contract(data: bytes) -> None:
    try:
        safeload.loads(data, unknown="stub", tensors="numpy")
    except safeload.SafeLoadError:
        pass


def test_evil_splice_is_always_refused() -> None:
    """The os.system call spliced after any opcode boundary of a valid pickle is refused (never run)."""
    call = GLOBAL("os", "system") + MARK + STRING("touch MARKER") + TUPLE + REDUCE
    data = pickle.dumps({"a": [1, 2, (3, b"x")], "b": OrderedDict(c=1.5)}, protocol=2)
    ops = split_ops(data)
    for i in range(1, len(ops)):
        spliced = b"".join(ops[:i]) + call + b"0" + b"".join(ops[i:])  # ..., os.system(...), POP, ...
        with pytest.raises(safeload.SafeLoadError):
            safeload.loads(spliced)
        assert scan(spliced).exit_code in (1, 2)
