"""The public names, the error family, and the frozen Policy / Limits values."""

from __future__ import annotations

import dataclasses
import enum
import io
import pickle
import threading
from collections import namedtuple
from pathlib import Path

import pytest

safeload = pytest.importorskip("safeload")


@dataclasses.dataclass
class Point:
    x: int
    y: float


@dataclasses.dataclass
class Config:
    name: str
    layers: list


class Color(enum.Enum):
    RED = 1
    BLUE = 2


Pair = namedtuple("Pair", "left right")


def _qual(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


POINT = pickle.dumps(Point(1, 2.5), protocol=4)
CONFIG = pickle.dumps(Config("c", [1, 2]), protocol=2)


def test_all_is_sorted_and_pinned():
    assert safeload.__all__ == sorted(safeload.__all__)
    assert safeload.__all__ == [
        "DEFAULT_LIMITS",
        "DEFAULT_POLICY",
        "DangerousGlobalError",
        "FormatError",
        "InternalError",
        "LimitExceededError",
        "Limits",
        "Policy",
        "SafeLoadError",
        "Stub",
        "TrailingDataError",
        "Unpickler",
        "UnsafeCallError",
        "UnsafeGlobalError",
        "UnsupportedFormatError",
        "info",
        "load",
        "loads",
        "patch",
        "patched",
        "safe_globals",
        "save",
        "scan",
        "state_dict",
        "unpatch",
    ]
    for name in safeload.__all__:
        assert hasattr(safeload, name), name


def test_error_hierarchy():
    assert issubclass(safeload.SafeLoadError, pickle.UnpicklingError)
    for cls in (safeload.UnsafeGlobalError, safeload.LimitExceededError, safeload.FormatError, safeload.InternalError):
        assert issubclass(cls, safeload.SafeLoadError)
    assert not issubclass(safeload.FormatError, safeload.UnsafeGlobalError)
    assert not issubclass(safeload.LimitExceededError, safeload.FormatError)
    for cls in (safeload.DangerousGlobalError, safeload.UnsafeCallError):
        assert issubclass(cls, safeload.UnsafeGlobalError) and not issubclass(cls, safeload.FormatError)
    for cls in (safeload.UnsupportedFormatError, safeload.TrailingDataError):
        assert issubclass(cls, safeload.FormatError) and not issubclass(cls, safeload.UnsafeGlobalError)
    assert not issubclass(safeload.DangerousGlobalError, safeload.UnsafeCallError)
    assert not issubclass(safeload.TrailingDataError, safeload.UnsupportedFormatError)


def test_unsafe_global_error_fields_and_text():
    data = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR."  # PROTO 2, GLOBAL at byte 2, ...
    with pytest.raises(safeload.UnsafeGlobalError) as info:
        safeload.loads(data)
    err = info.value
    assert (err.module, err.name, err.qualname) == ("posix", "system", "posix.system")
    text = str(err)
    assert "Refused global posix.system" in text
    assert f"byte {err.offset}" in text
    assert err.offset in (2, len(data) - 2)  # the GLOBAL, or the REDUCE that calls it
    assert err.opcode in ("GLOBAL", "REDUCE") and f"opcode {err.opcode}" in text
    assert "allow=[" not in err.fix and "unknown='stub'" in err.fix  # never suggest allowing a shell call
    assert err.fix.rstrip(".") in text
    benign = b"\x80\x02cmypkg.config\nTrainConfig\n)\x81."
    with pytest.raises(safeload.UnsafeGlobalError) as info:
        safeload.loads(benign)
    assert "allow=['mypkg.config.TrainConfig']" in info.value.fix and "unknown='stub'" in info.value.fix
    for attr in ("what", "why", "fix", "offset", "opcode", "member", "path"):
        assert hasattr(err, attr)
    assert err.member is None


def test_errors_are_catchable_as_unpickling_error():
    with pytest.raises(pickle.UnpicklingError):
        safeload.loads(b"\x80\x02cos\nsystem\n.")


def test_format_error_on_empty_input():
    with pytest.raises(safeload.FormatError):
        safeload.loads(b"")


def test_weights_only_false_is_refused():
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.load(io.BytesIO(pickle.dumps([1, 2])), weights_only=False)
    assert "unknown='stub'" in str(info.value) or "allow" in str(info.value)


# ------------------------------------------------------------------------------------------------------------
# Limits


def test_default_limits():
    lim = safeload.DEFAULT_LIMITS
    assert isinstance(lim, safeload.Limits)
    assert lim.max_depth == 1000
    assert lim.max_memo == 1 << 24
    assert lim.max_hash_collisions == 1000
    for f in ("max_opcodes", "max_container", "max_alloc"):
        assert isinstance(getattr(lim, f), int) and getattr(lim, f) > 0
    assert safeload.Limits() == lim


def test_limits_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        safeload.DEFAULT_LIMITS.max_depth = 5  # type: ignore[misc]
    assert safeload.DEFAULT_LIMITS.max_depth == 1000


@pytest.mark.parametrize("field", ["max_depth", "max_memo", "max_opcodes", "max_container", "max_alloc",
                                   "max_hash_collisions"])
@pytest.mark.parametrize("bad", [-1, True, False, 1.5, "10"])
def test_limits_range_checked(field: str, bad: object):
    with pytest.raises((ValueError, TypeError)):
        safeload.Limits(**{field: bad})


def test_limits_replace_keeps_others():
    lim = dataclasses.replace(safeload.DEFAULT_LIMITS, max_depth=7)
    assert lim.max_depth == 7
    assert lim.max_memo == safeload.DEFAULT_LIMITS.max_memo
    with pytest.raises((ValueError, TypeError)):
        dataclasses.replace(safeload.DEFAULT_LIMITS, max_depth=-3)


# ------------------------------------------------------------------------------------------------------------
# Policy


def test_policy_frozen():
    policy = safeload.DEFAULT_POLICY
    assert isinstance(policy, safeload.Policy)
    with pytest.raises((AttributeError, TypeError)):
        policy.limits = None  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        policy.anything_new = 1  # type: ignore[attr-defined]


def test_allowing_returns_new_policy_and_leaves_default_alone():
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)
    p1 = safeload.DEFAULT_POLICY.allowing(Point)
    p2 = safeload.DEFAULT_POLICY.allowing(_qual(Point))
    assert p1 is not safeload.DEFAULT_POLICY and p2 is not safeload.DEFAULT_POLICY
    assert isinstance(p1, safeload.Policy)
    for policy in (p1, p2):
        obj = safeload.loads(POINT, policy=policy)
        assert type(obj) is Point and obj == Point(1, 2.5)
    # the default is unchanged
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT, policy=safeload.DEFAULT_POLICY)
    # allowing is cumulative and does not change its receiver
    p3 = p1.allowing(Config)
    assert safeload.loads(CONFIG, policy=p3) == Config("c", [1, 2])
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(CONFIG, policy=p1)


def test_with_limits_returns_new_policy():
    p = safeload.DEFAULT_POLICY.with_limits(max_depth=3)
    assert p is not safeload.DEFAULT_POLICY
    assert isinstance(p, safeload.Policy)
    deep = pickle.dumps(((((1,),),),), protocol=0)  # protocol 0 tuples nest MARKs: 4 levels
    assert safeload.loads(deep) == ((((1,),),),)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(deep, policy=p)
    assert info.value.limit == "max_depth"
    assert safeload.loads(deep) == ((((1,),),),)  # default unchanged
    with pytest.raises((ValueError, TypeError)):
        safeload.DEFAULT_POLICY.with_limits(max_depth=-1)
    with pytest.raises((ValueError, TypeError)):
        safeload.DEFAULT_POLICY.with_limits(no_such_limit=1)


def test_allow_argument():
    assert safeload.loads(POINT, allow=[Point]) == Point(1, 2.5)
    assert safeload.loads(POINT, allow=[_qual(Point)]) == Point(1, 2.5)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)


def test_allowed_class_rebuilt_without_init_or_setstate():
    calls: list[str] = []

    class Spy:
        def __init__(self):  # pragma: no cover - must not run
            calls.append("init")

        def __setstate__(self, state):  # pragma: no cover - must not run
            calls.append("setstate")

    Spy.__module__ = __name__
    Spy.__qualname__ = "Spy"
    globals()["Spy"] = Spy
    try:
        obj = Spy.__new__(Spy)
        obj.__dict__.update(a=1)
        data = pickle.dumps(obj, protocol=2)  # NEWOBJ + BUILD {'a': 1}
        out = safeload.loads(data, allow=[Spy])
        assert type(out) is Spy and out.__dict__ == {"a": 1}
        assert calls == []
    finally:
        del globals()["Spy"]


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
def test_dataclass_namedtuple_enum(proto: int):
    policy = safeload.DEFAULT_POLICY.allowing(Point, Pair, Color)
    assert safeload.loads(pickle.dumps(Point(3, 0.5), protocol=proto), policy=policy) == Point(3, 0.5)
    pair = safeload.loads(pickle.dumps(Pair(1, "b"), protocol=proto), policy=policy)
    assert type(pair) is Pair and pair == Pair(1, "b") and pair.right == "b"
    assert safeload.loads(pickle.dumps(Color.BLUE, protocol=proto), policy=policy) is Color.BLUE
    assert safeload.loads(pickle.dumps([Color.RED, Color.RED], protocol=proto), policy=policy) == [Color.RED] * 2


# ------------------------------------------------------------------------------------------------------------
# safe_globals


def test_safe_globals_scoped():
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)
    with safeload.safe_globals([Point]):
        assert safeload.loads(POINT) == Point(1, 2.5)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)


def test_safe_globals_by_name():
    with safeload.safe_globals([_qual(Point)]):
        assert safeload.loads(POINT) == Point(1, 2.5)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)


def test_safe_globals_nested_and_preexisting():
    with safeload.safe_globals([Point]):
        with safeload.safe_globals([Config, Point]):  # Point already present in the outer scope
            assert safeload.loads(POINT) == Point(1, 2.5)
            assert safeload.loads(CONFIG) == Config("c", [1, 2])
        # inner exit removes Config but must keep the outer Point
        assert safeload.loads(POINT) == Point(1, 2.5)
        with pytest.raises(safeload.UnsafeGlobalError):
            safeload.loads(CONFIG)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(CONFIG)


def test_safe_globals_restored_on_exception():
    with pytest.raises(RuntimeError):
        with safeload.safe_globals([Point]):
            raise RuntimeError("boom")
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(POINT)


def test_safe_globals_not_process_global():
    """The scope is a contextvar: another thread does not see it."""
    seen: list[object] = []

    def other():
        try:
            seen.append(safeload.loads(POINT))
        except safeload.UnsafeGlobalError as err:
            seen.append(err)

    with safeload.safe_globals([Point]):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert safeload.loads(POINT) == Point(1, 2.5)
    assert isinstance(seen[0], safeload.UnsafeGlobalError)


def test_safe_globals_combines_with_policy():
    policy = safeload.DEFAULT_POLICY.allowing(Config)
    with safeload.safe_globals([Point]):
        assert safeload.loads(POINT, policy=policy) == Point(1, 2.5)
        assert safeload.loads(CONFIG, policy=policy) == Config("c", [1, 2])


# ------------------------------------------------------------------------------------------------------------
# load() inputs


def test_load_accepts_path_pathlike_fileobj_bytes(tmp_path: Path):
    obj = {"a": [1, 2.5, None], "b": (b"x", "y")}
    data = pickle.dumps(obj, protocol=4)
    p = tmp_path / "x.pkl"
    p.write_bytes(data)
    assert safeload.load(str(p)) == obj
    assert safeload.load(p) == obj
    with open(p, "rb") as f:
        assert safeload.load(f) == obj
    assert safeload.load(io.BytesIO(data)) == obj
    assert safeload.load(data) == obj
    assert safeload.loads(data) == obj


def test_stub_type():
    stub = safeload.loads(b"\x80\x02cmy.pkg\nThing\nK\x01K\x02\x86R.", unknown="stub")  # Thing(1, 2)
    assert isinstance(stub, safeload.Stub)
    assert stub.module == "my.pkg" and stub.name == "Thing" and stub.qualname == "my.pkg.Thing"
    assert tuple(stub.args) == (1, 2)
    assert "my" not in __import__("sys").modules


def test_import_and_scan_import_no_framework():
    """`import safeload` and a scan of a pickle holding numpy data import neither numpy nor torch."""
    import subprocess
    import sys

    code = (
        "import sys, pickle, safeload\n"
        "data = pickle.dumps({'a': [1, 2.5, 'x']}, protocol=4)\n"
        "report = safeload.scan(data)\n"
        "heavy = [m for m in ('numpy', 'torch', 'fickling', 'sklearn', 'joblib') if m in sys.modules]\n"
        "print(report.exit_code, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0" and out[1:] == ["[]"], out
