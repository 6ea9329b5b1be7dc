"""The opcode table is checked against CPython's own (pickletools), and the walker against pickletools.genops, so
an argument width written wrong in safeload/_opcodes.py (or in the VM's inline copies of it) fails here."""

from __future__ import annotations

import pickle
import pickletools

import pytest

from safeload._opcodes import OPCODES, READERS, by_code, iter_ops
from safeload._vm import _DISPATCH

# pickletools' argument descriptors -> safeload's readers
ARG_READERS = {
    None: "none", "uint1": "u1", "uint2": "u2", "int4": "i4", "uint4": "u4", "uint8": "u8", "float8": "f8",
    "decimalnl_short": "line", "decimalnl_long": "line", "floatnl": "line", "stringnl": "line",
    "stringnl_noescape": "line", "unicodestringnl": "line", "stringnl_noescape_pair": "two_lines",
    "string1": "bytes1", "string4": "bytes4", "bytes1": "bytes1", "bytes4": "bytes4", "bytes8": "bytes8",
    "bytearray8": "bytes8", "unicodestring1": "bytes1", "unicodestring4": "bytes4", "unicodestring8": "bytes8",
    "long1": "long1", "long4": "long4",
}


def test_table_matches_pickletools():
    theirs = {op.name: op for op in pickletools.opcodes}
    ours = {spec.name: spec for spec in OPCODES}
    assert set(ours) == set(theirs)
    for name, spec in ours.items():
        op = theirs[name]
        assert spec.code == ord(op.code), name
        assert spec.proto == op.proto, name
        assert spec.arg == ARG_READERS[op.arg.name if op.arg else None], name
        assert spec.arg in READERS
    assert len({spec.code for spec in OPCODES}) == len(OPCODES)


def test_dispatch_is_default_deny():
    """Every byte that is not an opcode, and every forbidden opcode, has no handler: refused by construction."""
    for code in range(256):
        spec = by_code[code]
        if spec is None or spec.action == "forbidden":
            assert _DISPATCH[code] is None, hex(code)
        else:
            assert _DISPATCH[code] is not None, spec.name


SAMPLES = [
    {"a": [1, 2.5, None, True, False], "b": (1, 2, 3), "c": {1, 2}, "d": frozenset("xy"), "e": b"\x00" * 300},
    [2**100, -(2**70), "é" * 300, bytearray(b"ab"), 1 + 2j, list(range(300))],
    {"nested": [[[[]]]], "shared": [[1]] * 3},
]


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_walker_matches_genops(protocol, index):
    data = pickle.dumps(SAMPLES[index], protocol=protocol)
    theirs = [(op.name, pos) for op, _arg, pos in pickletools.genops(data)]
    ours = [(spec.name, pos) for spec, _arg, pos in iter_ops(data)]
    assert ours == theirs
