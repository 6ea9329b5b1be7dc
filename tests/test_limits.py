"""Malformed streams are FormatErrors, and resource attacks stop at a limit, quickly and without running out of memory.

Streams are commented byte literals. The denial-of-service cases run in a subprocess with an address-space limit
and a timeout, so a regression fails the test instead of hanging or killing the suite; the time is measured
inside the child around the ``loads`` call.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

safeload = pytest.importorskip("safeload")

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------------------
# malformed streams: each must be a FormatError (never IndexError, KeyError, EOFError, struct.error, ...)

MALFORMED = {
    # truncated
    "empty": b"",
    "proto only": b"\x80\x02",                                      # PROTO 2, no STOP
    "no STOP": b"\x80\x02N",                                        # PROTO 2, NONE
    "BININT1 missing arg": b"\x80\x02K",                            # BININT1 without its byte
    "BININT short": b"\x80\x02J\x01\x02.",                          # BININT needs 4 bytes
    "BINUNICODE short": b"\x80\x02X\x05\x00\x00\x00ab.",            # claims 5 bytes, 3 left
    "SHORT_BINBYTES short": b"\x80\x03C\x09abc",                    # claims 9
    "LONG4 short": b"\x80\x02\x8b\x10\x00\x00\x00\x01.",            # LONG4 claims 16 bytes
    "GLOBAL no newline": b"\x80\x02ccollections\nOrderedDict",      # second line unterminated
    "INT no newline": b"I12",                                       # protocol 0 INT without newline
    "open MARK": b"(",                                              # MARK then end of data
    # stack underflow
    "STOP on empty stack": b"\x80\x02.",
    "POP on empty stack": b"\x80\x020.",
    "TUPLE1 on empty stack": b"\x80\x02\x85.",
    "TUPLE2 with one item": b"\x80\x02N\x86.",
    "TUPLE3 with two items": b"\x80\x02NN\x87.",
    "TUPLE without MARK": b"\x80\x02Nt.",
    "LIST without MARK": b"\x80\x02Nl.",
    "DICT without MARK": b"\x80\x02Nd.",
    "POP_MARK without MARK": b"\x80\x02N1.",
    "APPENDS without MARK": b"\x80\x02]Ne.",
    "SETITEMS without MARK": b"\x80\x02}NNu.",
    "REDUCE on empty stack": b"\x80\x02R.",
    "BUILD on empty stack": b"\x80\x02b.",
    "SETITEM underflow": b"\x80\x02}Ns.",
    "APPEND underflow": b"\x80\x02a.",
    "DUP on empty stack": b"\x80\x022.",
    "MEMOIZE on empty stack": b"\x80\x04\x94.",
    "BINPUT on empty stack": b"\x80\x02q\x00.",
    "PUT on empty stack": b"p0\n.",
    "MARK then STOP": b"\x80\x02(.",                                # STOP pops the mark?: underflow
    # bad memo index
    "BINGET missing": b"\x80\x02h\x05.",
    "LONG_BINGET missing": b"\x80\x02j\x00\x01\x00\x00.",
    "GET missing": b"g3\n.",
    "GET not a number": b"gabc\n.",
    "BINGET after POP": b"\x80\x02Nq\x01h\x02.",                   # memo[1] exists, memo[2] does not
    # garbage after STOP
    "data after STOP": b"\x80\x02N.junk",
    "second STOP": b"\x80\x02N..",
    "second pickle after STOP": b"\x80\x02N.\x80\x02N.",
    "NUL after STOP": b"N.\x00",
    # unknown opcodes / protocol
    "unknown opcode 0xff": b"\x80\x02\xff.",
    "unknown opcode 0xa0": b"\x80\x02\xa0.",
    "unknown opcode NUL": b"\x00.",
    "unsupported protocol": b"\x80\x09N.",                           # PROTO 9
    # out-of-band buffers never occur in files
    "NEXT_BUFFER": b"\x80\x05\x97.",                                 # NEXT_BUFFER
    "READONLY_BUFFER": b"\x80\x05C\x01x\x98.",                       # SHORT_BINBYTES, READONLY_BUFFER
    # type confusion
    "APPEND on an int": b"\x80\x02K\x01K\x02a.",                     # 1.append(2)
    "APPEND on a tuple": b"\x80\x02)K\x02a.",
    "APPENDS on a dict": b"\x80\x02}(K\x01e.",
    "APPENDS on a str": b"\x80\x02X\x01\x00\x00\x00a(K\x01e.",
    "SETITEM on a list": b"\x80\x02]K\x00K\x01s.",                   # [][0] = 1
    "SETITEM on an int": b"\x80\x02K\x00K\x01K\x02s.",
    "SETITEMS on a tuple": b"\x80\x02)(K\x01K\x02u.",
    "SETITEM unhashable key": b"\x80\x02}]K\x01s.",                  # {[]: 1}
    "DICT unhashable key": b"\x80\x02(]K\x01d.",
    "ADDITEMS on a list": b"\x80\x04](K\x01\x90.",
    "ADDITEMS unhashable": b"\x80\x04\x8f(]\x90.",                   # EMPTY_SET, MARK, [], ADDITEMS
    "FROZENSET unhashable": b"\x80\x04(]\x91.",
    "BUILD on an int": b"\x80\x02K\x01}b.",                          # BUILD {} on 1
    "BUILD on a str": b"\x80\x02X\x01\x00\x00\x00a}X\x01\x00\x00\x00xK\x01sb.",
    "BUILD on None": b"\x80\x02N}b.",
    "REDUCE of an int": b"\x80\x02K\x01)R.",                         # 1()
    "REDUCE with non-tuple args": b"\x80\x02c__builtin__\nset\nK\x01R.",
    "NEWOBJ of a str": b"\x80\x02X\x01\x00\x00\x00a)\x81.",
    "STACK_GLOBAL of ints": b"\x80\x04K\x01K\x02\x93.",
    # bad literals
    "INT garbage": b"Iabc\n.",
    "LONG garbage": b"L12x\n.",
    "FLOAT garbage": b"Fnot-a-float\n.",
    "STRING unquoted": b"Sabc\n.",
    "STRING mismatched quotes": b"S'abc\"\n.",
    "BINUNICODE bad utf8": b"\x80\x02X\x01\x00\x00\x00\xff.",
    "BINSTRING negative length": b"\x80\x02T\xff\xff\xff\xffabc.",
    "FRAME beyond end": b"\x80\x04\x95\x00\x01\x00\x00\x00\x00\x00\x00N.",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_is_format_error(data: bytes):
    t0 = time.perf_counter()
    with pytest.raises(safeload.FormatError) as info:
        safeload.loads(data)
    assert time.perf_counter() - t0 < 0.5
    err = info.value
    assert err.offset is None or 0 <= err.offset <= len(data)
    assert type(err.__cause__) is not MemoryError


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_in_stub_mode_too(data: bytes):
    with pytest.raises(safeload.FormatError):
        safeload.loads(data, unknown="stub")


BAD_ARGS = {
    # allowed constructors with arguments they refuse: a SafeLoadError, never ValueError/TypeError/OverflowError
    "date month 13": b"\x80\x02cdatetime\ndate\nM\xe4\x07K\rK\x01\x87R.",           # date(2020, 13, 1)
    "timedelta overflow": b"\x80\x02cdatetime\ntimedelta\n\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x01\x85R.",
    "complex from junk": b"\x80\x02c__builtin__\ncomplex\nX\x04\x00\x00\x00junk\x85R.",
    "Decimal from junk": b"\x80\x02cdecimal\nDecimal\nX\x04\x00\x00\x00junk\x85R.",
    "Fraction zero denominator": b"\x80\x02cfractions\nFraction\nK\x01K\x00\x86R.",
    "slice four args": b"\x80\x02c__builtin__\nslice\n(K\x01K\x02K\x03K\x04tR.",
    "set of unhashable": b"\x80\x02c__builtin__\nset\n]]a\x85R.",                   # set([[]])
    "codecs encode bad codec": b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.",
    "codecs encode non-latin1": b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1\x86R.",
    "OrderedDict from int": b"\x80\x02ccollections\nOrderedDict\nK\x05\x85R.",
    "dtype from junk": b"\x80\x02cnumpy\ndtype\nX\x04\x00\x00\x00junk\x89\x88\x87R.",
}


@pytest.mark.parametrize("data", BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_bad_constructor_arguments(data: bytes):
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.loads(data)
    assert not isinstance(info.value, safeload.InternalError), info.value  # a refusal, not a safeload bug


# ------------------------------------------------------------------------------------------------------------
# resource attacks, each in a child process with an address-space limit

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    sys.setrecursionlimit(10000)
    import safeload
    data = open(sys.argv[1], "rb").read()
    opts = json.loads(sys.argv[2])
    policy = None
    if "limits" in opts:
        policy = safeload.DEFAULT_POLICY.with_limits(**opts.pop("limits"))
    t0 = time.perf_counter()
    out = {"ok": False}
    try:
        result = safeload.loads(data, policy=policy, **opts)
        out["ok"] = True
        out["type"] = type(result).__name__
    except BaseException as e:
        out["exc"] = type(e).__name__
        out["mro"] = [c.__name__ for c in type(e).__mro__]
        out["limit"] = getattr(e, "limit", None)
        out["msg"] = str(e)[:300]
    out["elapsed"] = time.perf_counter() - t0
    print(json.dumps(out))
    """
)


def run_child(data: bytes, tmp_path: Path, **opts: object) -> dict:
    p = tmp_path / "input.bin"
    p.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(p), json.dumps(opts)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_refused_fast(res: dict, *, limit: str | None = None, seconds: float = 0.5,
                        kinds: tuple[str, ...] = ("LimitExceededError", "FormatError")) -> None:
    assert not res["ok"], f"accepted: {res}"
    assert res["exc"] in kinds, res
    if limit is not None:
        assert res["limit"] == limit, res
    assert res["elapsed"] < seconds, res


def test_memo_index_bomb(tmp_path: Path):
    data = (
        b"\x80\x04"            # PROTO 4
        b"N"                   # NONE
        b"r\xff\xff\xff\x0f"   # LONG_BINPUT 0x0FFFFFFF
        b"."                   # STOP
    )
    assert len(data) == 9
    res = run_child(data, tmp_path)
    assert_refused_fast(res)
    if res["exc"] == "LimitExceededError":
        assert res["limit"] == "max_memo"


@pytest.mark.parametrize("index", [0xFFFFFFFF, (1 << 24) + 1, 0x7FFFFFFF])
def test_memo_index_bomb_variants(index: int, tmp_path: Path):
    data = b"\x80\x04N" + b"r" + struct.pack("<I", index) + b"."  # LONG_BINPUT index
    assert_refused_fast(run_child(data, tmp_path))
    data = b"\x80\x04N" + b"p" + str(index).encode() + b"\n."     # PUT index (text)
    assert_refused_fast(run_child(data, tmp_path))


def test_large_memo_index_within_limit_is_cheap(tmp_path: Path):
    data = b"\x80\x04N" + b"r" + struct.pack("<I", (1 << 24) - 1) + b"j" + struct.pack("<I", (1 << 24) - 1) + b"\x86."
    res = run_child(data, tmp_path)
    assert res["ok"] or res.get("exc") in ("LimitExceededError", "FormatError"), res
    assert res["elapsed"] < 0.5, res


@pytest.mark.parametrize("name,data", [
    ("BINBYTES8 2**40", b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"."),
    ("BINUNICODE8 2**40", b"\x80\x04\x8d" + struct.pack("<Q", 2**40) + b"."),
    ("BYTEARRAY8 2**40", b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b"."),
    ("BINBYTES 4G", b"\x80\x03B\xff\xff\xff\xff."),
    ("BINUNICODE 4G", b"\x80\x03X\xff\xff\xff\xff."),
    ("LONG4 2G", b"\x80\x02\x8b\xff\xff\xff\x7f."),
    ("FRAME 2**60", b"\x80\x04\x95" + struct.pack("<Q", 2**60) + b"N."),
    ("BINBYTES8 2**64-1", b"\x80\x04\x8e" + b"\xff" * 8 + b"."),
])
def test_length_claims_beyond_file(name: str, data: bytes, tmp_path: Path):
    assert_refused_fast(run_child(data, tmp_path))


def test_deep_mark_nesting(tmp_path: Path):
    data = b"(" * 100_000 + b"."  # 100k nested MARKs
    assert_refused_fast(run_child(data, tmp_path), limit="max_depth", kinds=("LimitExceededError",))


def test_deep_nested_tuples_via_marks(tmp_path: Path):
    data = b"\x80\x02" + b"(" * 5000 + b"t" * 5000 + b"."  # ((((...)))) 5000 deep
    assert_refused_fast(run_child(data, tmp_path), limit="max_depth", kinds=("LimitExceededError",))


def test_deep_nesting_without_marks_does_not_crash(tmp_path: Path):
    # 100k nested lists built with EMPTY_LIST/APPEND and 100k nested tuples with TUPLE1: no MARKs at all.
    for data in (b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".", b"\x80\x02N" + b"\x85" * 100_000 + b"."):
        res = run_child(data, tmp_path)
        assert res["ok"] or res["exc"] == "LimitExceededError", res
        assert res["elapsed"] < 2.0, res


def test_exponential_shared_references_load_fast():
    # level 0 = [], level i = [level i-1, level i-1]: 2**60 paths, 61 objects
    parts = [b"\x80\x02", b"]", b"q\x00", b"0"]              # EMPTY_LIST, BINPUT 0, POP
    for i in range(1, 61):
        parts += [b"(", b"h" + bytes([i - 1]), b"h" + bytes([i - 1]), b"l", b"q" + bytes([i])]  # MARK GET GET LIST PUT
        if i < 60:
            parts.append(b"0")                                # POP (it lives on in the memo)
    parts.append(b".")
    data = b"".join(parts)
    t0 = time.perf_counter()
    out = safeload.loads(data)
    assert time.perf_counter() - t0 < 0.5
    node = out
    for _ in range(60):
        assert len(node) == 2 and node[0] is node[1]
        node = node[0]
    assert node == []


def test_exponential_shared_references_in_scan_like_paths():
    # the same graph, but each level is a tuple (TUPLE2), a dict and a set-free mix
    parts = [b"\x80\x02", b")", b"q\x00", b"0"]               # EMPTY_TUPLE, BINPUT 0, POP
    for i in range(1, 61):
        parts += [b"h" + bytes([i - 1]), b"h" + bytes([i - 1]), b"\x86", b"q" + bytes([i])]  # GET GET TUPLE2 PUT
        if i < 60:
            parts.append(b"0")
    parts.append(b".")
    t0 = time.perf_counter()
    out = safeload.loads(b"".join(parts))
    assert time.perf_counter() - t0 < 0.5
    assert out[0] is out[1]


def _collision_dict(n: int) -> bytes:
    # keys k * (2**61 - 1) all hash to 0 in CPython; built opcode by opcode (making the dict would take minutes)
    m = 2**61 - 1
    parts = [b"\x80\x04", b"}", b"("]                        # PROTO 4, EMPTY_DICT, MARK
    for k in range(1, n + 1):
        enc = pickle.encode_long(k * m)  # type: ignore[attr-defined]
        parts += [b"\x8a" + bytes([len(enc)]) + enc, b"N"]   # LONG1 key, NONE value
    parts += [b"u", b"."]                                    # SETITEMS, STOP
    return b"".join(parts)


def _collision_set(n: int) -> bytes:
    m = 2**61 - 1
    parts = [b"\x80\x04", b"\x8f", b"("]                     # PROTO 4, EMPTY_SET, MARK
    for k in range(1, n + 1):
        enc = pickle.encode_long(k * m)  # type: ignore[attr-defined]
        parts.append(b"\x8a" + bytes([len(enc)]) + enc)      # LONG1
    parts += [b"\x90", b"."]                                 # ADDITEMS, STOP
    return b"".join(parts)


def test_hash_collision_dict(tmp_path: Path):
    assert all(hash(k * (2**61 - 1)) == 0 for k in range(1, 100))
    res = run_child(_collision_dict(20_000), tmp_path)
    assert_refused_fast(res, limit="max_hash_collisions", seconds=2.0, kinds=("LimitExceededError",))


def test_hash_collision_set(tmp_path: Path):
    res = run_child(_collision_set(20_000), tmp_path)
    assert_refused_fast(res, limit="max_hash_collisions", seconds=2.0, kinds=("LimitExceededError",))


def test_few_collisions_are_fine():
    out = safeload.loads(_collision_dict(50))
    assert len(out) == 50


def test_big_plain_dict_is_fine():
    d = {f"key{i}": i for i in range(50_000)}
    t0 = time.perf_counter()
    assert safeload.loads(pickle.dumps(d, protocol=4)) == d
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("name,data", [
    # allowed constructors whose argument would make them allocate or iterate without bound
    ("bytearray(2**40)", b"\x80\x02c__builtin__\nbytearray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R."),
    ("bytes(2**40)", b"\x80\x02c__builtin__\nbytes\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R."),
    ("list(range(2**40))", b"\x80\x02c__builtin__\nlist\nc__builtin__\nxrange\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R\x85R."),
    ("set(range(2**40))", b"\x80\x02c__builtin__\nset\nc__builtin__\nxrange\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R\x85R."),
    ("tuple(range(2**40))", b"\x80\x02c__builtin__\ntuple\ncbuiltins\nrange\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R\x85R."),
    ("frozenset(range(2**40))", b"\x80\x02c__builtin__\nfrozenset\ncbuiltins\nrange\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R\x85R."),
    ("Counter(range(2**40))", b"\x80\x02ccollections\nCounter\ncbuiltins\nrange\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R\x85R."),
    ("OrderedDict(zip-like range)", b"\x80\x02ccollections\nOrderedDict\ncbuiltins\nrange\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R\x85R."),
    ("Fraction('1e1000000000')", b"\x80\x02cfractions\nFraction\nX\x0b\x00\x00\x001e1000000000\x85R."),
    ("Decimal huge exponent to int-ish", b"\x80\x02cdecimal\nDecimal\nX\x0b\x00\x00\x001e999999999\x85R."),
    ("bytearray(int, int)", b"\x80\x02c__builtin__\nbytearray\nK\x01J\xff\xff\xff\x7f\x86R."),
    ("ndarray shape 2**40 tiny data", (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"  # placeholder
        b"(K\x01\x8a\x06\x00\x00\x00\x00\x00\x01\x85"           # state: 1, (2**40,)
        b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R"       # dtype('f8')
        b"\x89C\x08\x00\x00\x00\x00\x00\x00\x00\x00tb.")),     # False, 8 bytes; BUILD
    ("ndarray object shape 2**40", (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
        b"(K\x01\x8a\x06\x00\x00\x00\x00\x00\x01\x85"
        b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R"
        b"\x89]tb.")),
    ("np.dtype huge void", b"\x80\x02cnumpy\ndtype\nX\x0e\x00\x00\x00V1099511627776\x89\x88\x87R."),
])
def test_allocating_constructors(name: str, data: bytes, tmp_path: Path):
    res = run_child(data, tmp_path)
    if res["ok"]:
        # only acceptable if nothing big was made (a lazy range, a Decimal kept as digits)
        assert name.startswith("Decimal"), res
        return
    assert "SafeLoadError" in res["mro"], res
    assert res["elapsed"] < 0.5, res


# ------------------------------------------------------------------------------------------------------------
# Limits change behaviour


def _nested_tuples(n: int) -> bytes:
    return b"\x80\x02" + b"(" * n + b"t" * n + b"."  # MARK x n, TUPLE x n


def test_max_depth_policy():
    assert safeload.loads(_nested_tuples(50)) is not None
    tight = safeload.DEFAULT_POLICY.with_limits(max_depth=10)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(_nested_tuples(50), policy=tight)
    err = info.value
    assert err.limit == "max_depth" and err.maximum == 10 and err.value > 10
    assert "max_depth" in str(err) and "with_limits" in err.fix
    assert safeload.loads(_nested_tuples(10), policy=tight) is not None
    with pytest.raises(safeload.LimitExceededError):
        safeload.loads(_nested_tuples(1500))
    loose = safeload.DEFAULT_POLICY.with_limits(max_depth=3000)
    assert safeload.loads(_nested_tuples(1500), policy=loose) is not None


@pytest.mark.parametrize("data", [
    b"\x80\x02Nq\x0b.",                  # NONE, BINPUT 11
    b"\x80\x02Nr\x0b\x00\x00\x00.",      # NONE, LONG_BINPUT 11
    b"Np11\n.",                         # NONE, PUT 11
    b"\x80\x04N" + b"\x94" * 12 + b".",  # NONE, MEMOIZE x 12 (indexes 0..11)
], ids=["BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"])
def test_max_memo_policy(data: bytes):
    assert safeload.loads(data) is None
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(data, policy=safeload.DEFAULT_POLICY.with_limits(max_memo=10))
    assert info.value.limit == "max_memo"


def test_max_container_policy():
    data = pickle.dumps(set(range(100)), protocol=2)  # builtins.set(list of 100): a set built from a list
    assert safeload.loads(data) == set(range(100))
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(data, policy=safeload.DEFAULT_POLICY.with_limits(max_container=10))
    assert info.value.limit == "max_container"


def test_max_opcodes_policy():
    data = pickle.dumps(list(range(1000)), protocol=2)
    assert safeload.loads(data) == list(range(1000))
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(data, policy=safeload.DEFAULT_POLICY.with_limits(max_opcodes=100))
    assert info.value.limit == "max_opcodes"


def test_max_alloc_policy():
    import numpy as np

    data = pickle.dumps(np.zeros(100_000, np.uint8), protocol=4)  # the array copy is an allocation
    assert safeload.loads(data).shape == (100_000,)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(data, policy=safeload.DEFAULT_POLICY.with_limits(max_alloc=1000))
    assert info.value.limit == "max_alloc"


def test_max_hash_collisions_policy():
    data = _collision_dict(50)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(data, policy=safeload.DEFAULT_POLICY.with_limits(max_hash_collisions=10))
    assert info.value.limit == "max_hash_collisions"


def test_limits_apply_in_safe_globals_and_allow():
    tight = safeload.DEFAULT_POLICY.with_limits(max_depth=10)
    with pytest.raises(safeload.LimitExceededError):
        safeload.loads(_nested_tuples(50), policy=tight, allow=["collections.OrderedDict"])
