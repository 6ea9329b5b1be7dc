"""Everything CPython's pickle writes for plain data and numpy comes back equal, with the same types."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import pickle
import types
from collections import Counter, OrderedDict, defaultdict, deque
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

safeload = pytest.importorskip("safeload")

PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: object, b: object) -> bool:
    """Equality that also requires equal types, and treats nan as equal to nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return a == b
    if isinstance(a, np.ndarray):
        return _dtype_ok(a.dtype, b.dtype) and a.shape == b.shape and _values_equal(a, b)
    return bool(a == b)


def _nan_ok(dtype: np.dtype) -> bool:
    return dtype.kind in "fcMm"


def _dtype_ok(got: np.dtype, want: np.dtype) -> bool:
    """Equal dtypes; numpy itself turns a non-native simple dtype native when unpickling protocol <= 4."""
    return got == want or (want.names is None and want.subdtype is None and got == want.newbyteorder("="))


def _values_equal(out: np.ndarray, arr: np.ndarray) -> bool:
    if arr.dtype.names is None and arr.dtype.kind not in "OV":
        return np.array_equal(out, arr, equal_nan=_nan_ok(arr.dtype))
    if arr.dtype.kind == "O":
        return out.tolist() == arr.tolist()
    return out.tobytes() == arr.tobytes()


# --------------------------------------------------------------------------------------------------------------
# plain data

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
ints = st.one_of(st.integers(), st.integers(min_value=-(2**2000), max_value=2**2000))
floats = st.floats(allow_nan=True, allow_infinity=True)
hashable = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=False), text, st.binary(max_size=20)),
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=4)),
    max_leaves=8,
)
leaves = st.one_of(
    st.none(), st.booleans(), ints, floats, st.complex_numbers(allow_nan=True, allow_infinity=True), text,
    st.binary(max_size=40), st.binary(max_size=40).map(bytearray),
)
plain = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashable, inner, max_size=5),
        st.sets(hashable, max_size=5),
        st.frozensets(hashable, max_size=5),
    ),
    max_leaves=25,
)


@pytest.mark.parametrize("proto", PROTOCOLS)
@SETTINGS
@given(x=plain)
def test_plain_roundtrip(proto: int, x: object):
    out = safeload.loads(pickle.dumps(x, protocol=proto))
    assert same(out, x), (out, x)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_plain_edge_values(proto: int):
    values = [
        None, True, False, 0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, 2**63, -(2**63) - 1,
        2**64 + 1, 10**400, -(10**400), 0.0, -0.0, 1e308, 5e-324, float("inf"), float("-inf"), float("nan"),
        complex(1, -2), complex(float("nan"), float("inf")), "", "é\u20ac\U0001f600\x00\n\\", "a" * 300,
        b"", b"\x00\xff" * 200, bytearray(b"\x00abc\xff"), bytearray(), (), [], {}, set(), frozenset(),
        (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), {"k": [1, {2: (3,)}]}, {frozenset({1}): {None: b"x"}},
    ]
    out = safeload.loads(pickle.dumps(values, protocol=proto))
    assert same(out, values)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_shared_and_recursive_references(proto: int):
    a = [1, 2]
    d = {"x": a, "y": a, "t": (a, a)}
    out = safeload.loads(pickle.dumps(d, protocol=proto))
    assert out == d
    assert out["x"] is out["y"] is out["t"][0] is out["t"][1]
    rec: list = [1]
    rec.append(rec)
    out = safeload.loads(pickle.dumps(rec, protocol=proto))
    assert out[0] == 1 and out[1] is out
    rd: dict = {}
    rd["self"] = rd
    out = safeload.loads(pickle.dumps(rd, protocol=proto))
    assert out["self"] is out


# --------------------------------------------------------------------------------------------------------------
# stdlib values on the default allowlist


class _Obj:
    pass


def _od_with_metadata() -> OrderedDict:
    od = OrderedDict([("layer.weight", 1.0), ("layer.bias", [2, 3])])
    od._metadata = OrderedDict([("", {"version": 1}), ("layer", {"version": 2})])  # type: ignore[attr-defined]
    return od


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_ordered_dict_with_metadata(proto: int):
    od = _od_with_metadata()
    out = safeload.loads(pickle.dumps(od, protocol=proto))
    assert type(out) is OrderedDict
    assert list(out.items()) == list(od.items())
    assert out._metadata == od._metadata and type(out._metadata) is OrderedDict


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_collections(proto: int):
    c = Counter("abracadabra")
    out = safeload.loads(pickle.dumps(c, protocol=proto))
    assert type(out) is Counter and out == c
    dd = defaultdict(list, {"a": [1], "b": []})
    out = safeload.loads(pickle.dumps(dd, protocol=proto))
    assert type(out) is defaultdict and out.default_factory is list and dict(out) == dict(dd)
    out["new"].append(1)
    dd0 = defaultdict(None, {1: 2})
    out = safeload.loads(pickle.dumps(dd0, protocol=proto))
    assert type(out) is defaultdict and out.default_factory is None and dict(out) == {1: 2}
    ddi = defaultdict(int, {"x": 3})
    out = safeload.loads(pickle.dumps(ddi, protocol=proto))
    assert out.default_factory is int and out["missing"] == 0


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_deque_if_supported(proto: int):
    q = deque([1, "a", None], maxlen=5)
    try:
        out = safeload.loads(pickle.dumps(q, protocol=proto))
    except safeload.UnsafeGlobalError as err:
        assert err.qualname == "collections.deque"
        return
    assert type(out) is deque and list(out) == list(q) and out.maxlen == 5


def test_defaultdict_with_dangerous_factory_refused():
    # defaultdict(os.system): a factory that is not a safe builtin type
    data = (
        b"\x80\x02ccollections\ndefaultdict\n"  # GLOBAL collections.defaultdict
        b"cos\nsystem\n\x85R."                   # GLOBAL os.system, TUPLE1, REDUCE, STOP
    )
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(data)
    # and with an allowed non-type callable as factory (_codecs.encode)
    data2 = b"\x80\x02ccollections\ndefaultdict\nc_codecs\nencode\n\x85R."
    with pytest.raises(safeload.SafeLoadError):
        safeload.loads(data2)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_namespaces(proto: int):
    ns = argparse.Namespace(lr=0.1, layers=[1, 2], name="x")
    out = safeload.loads(pickle.dumps(ns, protocol=proto))
    assert type(out) is argparse.Namespace and vars(out) == vars(ns)
    sn = types.SimpleNamespace(a=1, b={"c": (2,)})
    out = safeload.loads(pickle.dumps(sn, protocol=proto))
    assert type(out) is types.SimpleNamespace and out == sn


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_datetime_values(proto: int):
    values = [
        dt.date(2024, 2, 29),
        dt.time(23, 59, 58, 999999),
        dt.time(1, 2, 3, tzinfo=dt.timezone.utc),
        dt.datetime(2020, 1, 2, 3, 4, 5, 6),
        dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        dt.datetime(1999, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(2021, 6, 1, tzinfo=dt.timezone(dt.timedelta(hours=-7), "PDT")),
        dt.datetime(2021, 11, 7, 1, 30, fold=1),
        dt.timedelta(days=-3, seconds=7, microseconds=11),
        dt.timezone.utc,
        dt.timezone(dt.timedelta(minutes=-90), "odd"),
        dt.datetime.min,
        dt.datetime.max,
    ]
    out = safeload.loads(pickle.dumps(values, protocol=proto))
    assert len(out) == len(values)
    for got, want in zip(out, values):
        assert type(got) is type(want)
        assert got == want
        if isinstance(want, (dt.datetime, dt.time)):
            assert got.tzinfo == want.tzinfo
            if proto >= 4:  # CPython itself records fold only from protocol 4 on
                assert got.fold == want.fold
            if want.tzinfo is not None:
                assert got.tzname() == want.tzname()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_numbers_and_ranges(proto: int):
    values = [
        Decimal("3.14159265358979323846264338327950288"), Decimal("-0"), Decimal("NaN"), Decimal("-Infinity"),
        Fraction(1, 3), Fraction(-10**30, 7), range(0, 10, 3), range(-5), range(10**30), slice(1, None, 2),
        slice(None), slice(-3, 10**20, None),
    ]
    out = safeload.loads(pickle.dumps(values, protocol=proto))
    for got, want in zip(out, values):
        assert type(got) is type(want)
        if isinstance(want, Decimal) and want.is_nan():
            assert got.is_nan()
        else:
            assert got == want
        if isinstance(want, Decimal):
            assert str(got) == str(want)


# --------------------------------------------------------------------------------------------------------------
# numpy

DTYPES = [
    "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16",
    ">i2", ">i4", ">i8", ">u4", ">f4", ">f8", ">c16", "<f8",
    "M8[ns]", "M8[us]", "M8[s]", "M8[D]", "M8[Y]", ">M8[ms]", "m8[ns]", "m8[s]", "m8[h]", "<m8[D]",
    "U1", "U7", ">U3", "S1", "S9", "V6",
    [("x", "<i4"), ("y", ">f8"), ("s", "S3")],
    [("pos", "<f4", (3,)), ("id", "<u8"), ("name", "<U4")],
    [("outer", [("a", "i2"), ("b", "f4", (2, 2))]), ("flag", "?")],
    np.dtype({"names": ["a", "b"], "formats": ["u1", "<i4"], "offsets": [0, 4], "itemsize": 12}),
    np.dtype([("a", "u1"), ("b", "<i8")], align=True),
]


def _dtype_id(d: object) -> str:
    return str(np.dtype(d))


def _sample(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    raw = (np.arange(n * dtype.itemsize, dtype=np.uint64) * 2654435761 % 251).astype(np.uint8).tobytes()
    arr = np.frombuffer(raw, dtype=dtype.newbyteorder("=") if dtype.kind in "fc" else dtype).copy()
    if dtype.kind in "fc":
        arr = np.linspace(-3, 3, n).astype(dtype)
        if n > 2:
            arr[1] = np.nan
            arr[2] = -np.inf
    elif dtype.kind == "b":
        arr = (np.arange(n) % 3 == 0).astype(dtype)
    elif dtype.kind == "U":
        arr = np.array([("é\u20ac" * 4)[i % 5:] for i in range(n)], dtype=dtype)
    elif dtype.kind in "Mm":
        little = dtype.newbyteorder("<")
        arr = (np.arange(n, dtype="<i8") * 37 - 5).view(little).astype(dtype)
    return arr.reshape(shape)


def _check_array(out: object, arr: np.ndarray) -> None:
    assert type(out) is np.ndarray, type(out)
    assert _dtype_ok(out.dtype, arr.dtype), (out.dtype, arr.dtype)
    assert out.shape == arr.shape
    assert _values_equal(out, arr)
    assert out.flags.writeable, "arrays must be writeable"
    out.reshape(-1)[:1] = out.reshape(-1)[:1]  # really writeable


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
def test_numpy_dtypes(dtype: object, proto: int):
    d = np.dtype(dtype)
    arr = _sample(d, (2, 3))
    _check_array(safeload.loads(pickle.dumps(arr, protocol=proto)), arr)
    # the dtype object itself as a value
    out = safeload.loads(pickle.dumps(d, protocol=proto))
    assert isinstance(out, np.dtype) and out == d


LAYOUTS = {
    "C": lambda: np.arange(24, dtype="<f8").reshape(2, 3, 4),
    "F": lambda: np.asfortranarray(np.arange(12, dtype="<i4").reshape(3, 4)),
    "F-bigendian": lambda: np.asfortranarray(np.arange(12, dtype=">f4").reshape(4, 3)),
    "slice": lambda: np.arange(60, dtype="<i2").reshape(6, 10)[::2, 1::3],
    "transposed": lambda: np.arange(24, dtype="u1").reshape(2, 3, 4).transpose(1, 2, 0),
    "negative-stride": lambda: np.arange(10.0)[::-1],
    "0d": lambda: np.array(3.5),
    "0d-int": lambda: np.array(7, dtype=">i8"),
    "empty": lambda: np.zeros((0,), dtype="f4"),
    "empty-2d": lambda: np.zeros((3, 0), dtype="c8"),
    "broadcast": lambda: np.broadcast_to(np.arange(3), (4, 3)),
    "structured-slice": lambda: np.zeros(6, dtype=[("a", "i4"), ("b", "f8")])[::2],
}


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_numpy_layouts(layout: str, proto: int):
    arr = LAYOUTS[layout]()
    data = pickle.dumps(arr, protocol=proto)
    out = safeload.loads(data)
    _check_array(out, arr)
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:
        assert out.flags.f_contiguous, "Fortran order is recorded in the pickle and must be kept"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_numpy_object_arrays(proto: int):
    arr = np.empty(6, dtype=object)
    arr[:] = [1, "two", None, [3, 4], {"k": (5, b"x")}, 2**100]
    out = safeload.loads(pickle.dumps(arr, protocol=proto))
    assert type(out) is np.ndarray and out.dtype == object and out.shape == (6,)
    assert out.tolist() == arr.tolist()
    assert out.flags.writeable
    arr2 = np.empty((2, 2), dtype=object)
    arr2[0, 0], arr2[0, 1], arr2[1, 0], arr2[1, 1] = 1.5, "x", (1,), np.float32(2)
    out2 = safeload.loads(pickle.dumps(arr2, protocol=proto))
    assert out2.shape == (2, 2) and out2.tolist() == arr2.tolist()
    assert type(out2[1, 1]) is np.float32
    zero_d = np.array({"w": np.ones(2, np.float32), "step": 7}, dtype=object)
    out3 = safeload.loads(pickle.dumps(zero_d, protocol=proto))
    assert out3.shape == () and out3.dtype == object
    assert out3[()]["step"] == 7 and np.array_equal(out3[()]["w"], np.ones(2, np.float32))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_numpy_arrays_in_containers_share_memo(proto: int):
    a = np.arange(5, dtype=np.float32)
    obj = {"a": a, "b": a, "list": [a, np.int64(3)]}
    out = safeload.loads(pickle.dumps(obj, protocol=proto))
    assert out["a"] is out["b"] is out["list"][0]
    assert np.array_equal(out["a"], a) and out["list"][1] == 3 and type(out["list"][1]) is np.int64


SCALARS = [
    np.bool_(True), np.int8(-5), np.uint8(250), np.int16(-300), np.uint16(60000), np.int32(-(2**31)),
    np.uint32(2**32 - 1), np.int64(-(2**63)), np.uint64(2**64 - 1), np.float16(1.5), np.float32(-2.25),
    np.float64(np.nan), np.float64(-np.inf), np.complex64(1 - 2j), np.complex128(complex(np.nan, 1)),
    np.datetime64("2020-01-02", "D"), np.datetime64("2020-01-02T03:04:05.123456789", "ns"),
    np.timedelta64(5, "s"), np.timedelta64("NaT"), np.str_("héllo"), np.bytes_(b"by\x00tes"),
    np.void(b"\x01\x02\x03"),
]


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: f"{type(s).__name__}-{s!r}"[:40])
def test_numpy_scalars(scalar: np.generic, proto: int):
    out = safeload.loads(pickle.dumps(scalar, protocol=proto))
    assert type(out) is type(scalar)
    assert out.dtype == scalar.dtype
    if scalar.dtype.kind in "Mm" and np.isnat(scalar):
        assert np.isnat(out)
    else:
        assert out.tobytes() == scalar.tobytes()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_numpy_types_as_values(proto: int):
    values = [np.float64, np.float32, np.int64, np.bool_, np.complex128, np.uint8]
    out = safeload.loads(pickle.dumps(values, protocol=proto))
    assert out == values and all(a is b for a, b in zip(out, values))


@SETTINGS
@given(
    arr=hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes(),
                        hnp.array_dtypes(max_size=3)),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    ),
    proto=st.sampled_from(PROTOCOLS),
    fortran=st.booleans(),
)
def test_numpy_arrays_property(arr: np.ndarray, proto: int, fortran: bool):
    if fortran:
        arr = np.asfortranarray(arr)
    out = safeload.loads(pickle.dumps(arr, protocol=proto))
    assert type(out) is np.ndarray
    assert _dtype_ok(out.dtype, arr.dtype) and out.shape == arr.shape
    assert _values_equal(out, arr)
    assert out.flags.writeable


@pytest.mark.parametrize("proto", PROTOCOLS)
@SETTINGS
@given(x=plain)
def test_plain_inside_object_array(proto: int, x: object):
    arr = np.empty(2, dtype=object)
    arr[0] = x
    arr[1] = "tail"
    out = safeload.loads(pickle.dumps(arr, protocol=proto))
    assert same(out[0], x) and out[1] == "tail"


def test_unknown_stub_does_not_change_plain_results():
    obj = {"a": [1, 2.5, "x", b"y"], "n": np.arange(3), "od": _od_with_metadata()}
    for proto in PROTOCOLS:
        data = pickle.dumps(obj, protocol=proto)
        out = safeload.loads(data, unknown="stub")
        assert out["a"] == obj["a"] and np.array_equal(out["n"], obj["n"]) and out["od"] == obj["od"]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_lone_surrogates_like_cpython(proto: int):
    # CPython pickles str with 'surrogatepass' (and raw-unicode-escape at protocol 0), so these do round-trip.
    values = ["\ud800", "a\udfffb", "\udc80\ud83d"]
    assert safeload.loads(pickle.dumps(values, protocol=proto)) == values


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_object_array_items_are_stored_as_the_objects_they_are(proto: int, tmp_path) -> None:
    """An object array whose items are sequences (equal-length lists, tuples, arrays, empty lists) keeps each item
    as one element, as np.load does: nothing is broadcast into extra dimensions (safeload/_rebuild/numpy.py)."""
    import safeload

    items = [[1, 2], [3, 4], (5, 6), np.arange(3), [], (), [[1], [2]], {"k": [1]}, None, "s", np.float64(2.5)]
    arr = np.empty((len(items),), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    grid = arr[:10].reshape(2, 5, order="F")
    for value in (arr, grid):
        path = tmp_path / "objects.npy"
        np.save(path, value, allow_pickle=True)
        ours, theirs = safeload.load(path), np.load(path, allow_pickle=True)
        assert ours.dtype == object and ours.shape == theirs.shape and ours.flags.writeable
        for a, b in zip(ours.ravel(), theirs.ravel()):  # element by element, in logical order
            assert type(a) is type(b)
            assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b)
        loaded = safeload.loads(pickle.dumps(value, protocol=proto))
        assert loaded.shape == value.shape and all(type(a) is type(b) for a, b in zip(loaded.ravel(), value.ravel()))
