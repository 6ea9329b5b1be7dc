"""The malicious corpus: safeload refuses every payload, runs none of them, and imports nothing they name.

Each payload's only effect is to create ``MARKER`` in the current directory. For the payloads marked ``real``,
CPython's own ``pickle.loads`` (in a subprocess, cwd = a scratch dir) is shown to create the marker, so the
refusals below are refusals of live exploits, not of typos.
"""

from __future__ import annotations

import copyreg
import os
import pickletools
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import corpus
from corpus import CORPUS, MARKER, Case

safeload = pytest.importorskip("safeload")

IDS = [c.name for c in CORPUS]

_REAL_RUNNER = textwrap.dedent(
    """
    import copyreg, pickle, sys
    data = open(sys.argv[1], 'rb').read()
    for i in range(2, len(sys.argv), 3):
        copyreg.add_extension(sys.argv[i], sys.argv[i + 1], int(sys.argv[i + 2]))
    try:
        pickle.loads(data)
    except BaseException as e:
        print('pickle raised', type(e).__name__, e)
    import os
    try:
        os.waitpid(-1, 0)  # a payload that spawned a process (asyncio, shell=True): wait for it to finish
    except ChildProcessError:
        pass
    """
)


def _run_real_pickle(case: Case, workdir: Path) -> subprocess.CompletedProcess[str]:
    payload = workdir / "payload.bin"
    payload.write_bytes(case.data)
    argv = [sys.executable, "-c", _REAL_RUNNER, str(payload)]
    for module, name, code in case.extensions:
        argv += [module, name, str(code)]
    return subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=120)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch):
    added: list[tuple[str, str, int]] = []

    def register(case: Case) -> None:
        for module, name, code in case.extensions:
            copyreg.add_extension(module, name, code)
            added.append((module, name, code))

    yield register
    for module, name, code in added:
        copyreg.remove_extension(module, name, code)


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    """Load benign data once, so that safeload's own lazy imports (numpy rebuilders...) are not counted below."""
    import pickle
    from collections import OrderedDict

    import numpy as np

    benign = {"a": np.arange(3.0), "o": OrderedDict(x=1), "s": {1, 2}, "b": b"x", "c": 1j}
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        safeload.loads(pickle.dumps(benign, protocol=proto))
    for case in CORPUS[:3]:
        try:
            safeload.loads(case.data, unknown="stub")
        except safeload.SafeLoadError:
            pass


def _assert_inert(obj: object, _seen: set[int] | None = None) -> None:
    """Nothing live (functions, modules, classes other than plain ones, file objects) may come back."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    assert not isinstance(
        obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)
    ), f"live object returned: {obj!r}"
    assert not hasattr(obj, "fileno") or isinstance(obj, (bytes, bytearray)), f"file-like returned: {obj!r}"
    if isinstance(obj, dict):
        for k, v in obj.items():
            _assert_inert(k, seen)
            _assert_inert(v, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _assert_inert(v, seen)
    elif isinstance(obj, safeload.Stub):
        for attr in ("args", "state", "items", "dictitems"):
            _assert_inert(getattr(obj, attr, None), seen)


def _contains_stub(obj: object, _depth: int = 0) -> bool:
    if isinstance(obj, safeload.Stub):
        return True
    if _depth > 20:
        return False
    if isinstance(obj, dict):
        return any(_contains_stub(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_contains_stub(v, _depth + 1) for v in obj)
    return False


# ------------------------------------------------------------------------------------------------------------


def test_corpus_is_wellformed_where_claimed():
    for case in CORPUS:
        if case.wellformed:
            ops = list(pickletools.genops(case.data))
            assert ops[-1][0].name == "STOP", case.name
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    groups = {c.group for c in CORPUS}
    for g in ("unknown-callable", "dotted", "compat", "memo", "inst-obj", "ext", "newobj", "build-injection",
              "abuse-helper", "proto0", "parser", "allowed-attr"):
        assert g in groups, g


@pytest.mark.parametrize("case", [c for c in CORPUS if c.real], ids=[c.name for c in CORPUS if c.real])
def test_payload_is_live_in_cpython(case: Case, tmp_path: Path):
    """Proof that the payload is real: CPython's pickle, run in a subprocess, creates the marker."""
    for module in case.imports:
        if module == "torch":
            pytest.importorskip("torch")
    proc = _run_real_pickle(case, tmp_path)
    assert (tmp_path / MARKER).exists(), f"payload did not fire in CPython: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_refused(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered):
    registered(case)
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.loads(case.data)
    new_modules = set(sys.modules) - before
    err = info.value
    assert not (tmp_path / MARKER).exists(), "the payload ran"
    assert not [m for m in new_modules if not m.startswith(("safeload", "numpy"))], new_modules
    for module in case.imports:
        if module not in before:
            assert module not in sys.modules, f"{module} imported because of the file"
    if case.error == "global":
        assert isinstance(err, safeload.UnsafeGlobalError), f"{type(err).__name__}: {err}"
        assert err.qualname in case.refs, err.qualname
        assert err.qualname == f"{err.module}.{err.name}"
        assert f"Refused global {err.qualname}" in str(err)
        assert "unknown='stub'" in str(err)
        # a known-dangerous name is never offered as something to allow; anything else is
        dangerous = safeload.policy.danger_of(err.qualname) is not None
        assert ("allow=" in str(err)) is not dangerous, str(err)
    # Every refusal says where it happened.
    assert err.offset is not None and 0 <= err.offset <= len(case.data), err.offset
    assert f"byte {err.offset}" in str(err)
    assert isinstance(err, __import__("pickle").UnpicklingError)


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_stub_mode_is_inert(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered):
    registered(case)
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    try:
        result = safeload.loads(case.data, unknown="stub")
    except safeload.SafeLoadError:
        if case.group in ("unknown-callable", "inst-obj", "proto0") and case.error == "global":
            pytest.fail("a plain call of an unknown global must come back as a Stub in stub mode")
    else:
        # Accepting is only possible where an unknown global can be stubbed: a trick that uses allowed
        # names only (BUILD injection, bytes names, STOP confusion...) has nothing to stub and must be refused.
        assert case.refs, f"structural trick accepted in stub mode: {result!r}"
        _assert_inert(result)
        assert _contains_stub(result), f"no Stub recorded for the unknown global: {result!r}"
    assert not (tmp_path / MARKER).exists(), "the payload ran"
    new_modules = set(sys.modules) - before
    assert not [m for m in new_modules if not m.startswith(("safeload", "numpy"))], new_modules


def test_stub_records_call():
    result = safeload.loads(corpus.CORPUS[1].data, unknown="stub")  # posix.system('touch MARKER')
    assert isinstance(result, safeload.Stub)
    assert (result.module, result.name, result.qualname) == ("posix", "system", "posix.system")
    assert tuple(result.args) == ("touch " + MARKER,)


def test_stub_build_state_recorded_not_applied():
    # unknown class, NEWOBJ, then BUILD with a state that tries to set __class__ and __setstate__
    data = (
        b"\x80\x02"
        b"cmypkg.mod\nThing\n"        # GLOBAL mypkg.mod.Thing (unknown; never imported)
        b")\x81"                      # EMPTY_TUPLE, NEWOBJ
        b"}(X\t\x00\x00\x00__class__cbuiltins\nset\n"  # {'__class__': set,
        b"X\x0c\x00\x00\x00__setstate__cbuiltins\nset\n"  # '__setstate__': set,
        b"X\x01\x00\x00\x00wK\x07u"   # 'w': 7}
        b"b"                          # BUILD
        b"."
    )
    assert "mypkg" not in sys.modules
    stub = safeload.loads(data, unknown="stub")
    assert type(stub) is safeload.Stub
    assert stub.qualname == "mypkg.mod.Thing"
    assert stub.state["w"] == 7
    assert "mypkg" not in sys.modules
    with pytest.raises(safeload.UnsafeGlobalError) as info:
        safeload.loads(data)
    assert info.value.qualname == "mypkg.mod.Thing"
    assert info.value.opcode in ("GLOBAL", "NEWOBJ")


def test_codec_lookup_imports_nothing():
    # _codecs.encode is allowed only as encode(str, 'latin1'). Any other codec name would make the codec
    # registry import encodings.<name>: a module import chosen by the file.
    victim = "encodings.uu_codec"
    if victim in sys.modules:
        pytest.skip("codec already imported")
    data = (
        b"\x80\x02c_codecs\nencode\n"  # GLOBAL _codecs.encode
        b"X\x01\x00\x00\x00x"          # BINUNICODE 'x'
        b"X\x08\x00\x00\x00uu_codec"   # BINUNICODE 'uu_codec'
        b"\x86R."                      # TUPLE2 REDUCE STOP
    )
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(data)
    assert victim not in sys.modules


def test_ext_codes_without_registration_are_refused():
    data = b"\x80\x02\x82\x01."  # EXT1 1, STOP: no extension registered
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(data)


def test_allow_does_not_make_dotted_names_resolvable():
    # allowing argparse.Namespace must not open argparse._os.system
    case = next(c for c in CORPUS if c.name.startswith("argparse _os.system"))
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(case.data, allow=["argparse.Namespace"])
