"""Drop-in parity with ``torch.load(weights_only=True)``.

A port of the weights_only cases of torch's serialization tests, written for safeload: each case saves a real
object with ``torch.save`` (zip format and, where torch's tests do, the legacy format), loads it with
``torch.load(path, weights_only=True)`` and with ``safeload.load(path)``, and compares values, dtype, shape,
stride, storage offset and sharing, conj/neg bits, ``requires_grad``, Python attributes and type. Cases safeload
deliberately treats differently are listed in the README ("Differences from torch.load") and tested as such.
"""

from __future__ import annotations

import pickle
import warnings
from collections import OrderedDict
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import safeload  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning, message=".*TypedStorage.*")

FORMATS = [pytest.param(False, id="zip"), pytest.param(True, id="legacy")]


def _save(obj: Any, path: Any, legacy: bool) -> Any:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def same(a: Any, b: Any, where: str = "obj") -> None:
    """Assert ``a`` (safeload's) equals ``b`` (torch's) in everything a user can observe."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(b, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, where
        assert a.layout == b.layout, where
        assert a.requires_grad == b.requires_grad, where
        if b.is_quantized:  # README: a quantized tensor is a contiguous copy of its representation
            assert a.qscheme() == b.qscheme() and torch.equal(a.int_repr(), b.int_repr()), where
            if b.qscheme() == torch.per_tensor_affine:
                assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point()), where
            else:
                assert torch.equal(a.q_per_channel_scales(), b.q_per_channel_scales()), where
                assert torch.equal(a.q_per_channel_zero_points(), b.q_per_channel_zero_points()), where
                assert a.q_per_channel_axis() == b.q_per_channel_axis(), where
            return
        if b.layout == torch.strided:
            assert a.stride() == b.stride() and a.storage_offset() == b.storage_offset(), where
            assert a.is_conj() == b.is_conj() and a.is_neg() == b.is_neg(), where
        if b.layout != torch.strided:
            assert torch.equal(a.to_dense(), b.to_dense()), where
            if b.layout == torch.sparse_coo:
                assert a.is_coalesced() == b.is_coalesced(), where
        elif b.device.type != "meta":
            assert torch.equal(a.detach().resolve_conj().resolve_neg(), b.detach().resolve_conj().resolve_neg()), where
        assert set(vars(a)) == set(vars(b)), where
        for k in vars(b):
            same(vars(a)[k], vars(b)[k], f"{where}.{k}")
    elif isinstance(b, torch.storage.TypedStorage):
        assert a.dtype == b.dtype and a.device == b.device and a.tolist() == b.tolist(), where
    elif isinstance(b, (dict, OrderedDict)):
        assert list(a) == list(b), where
        for k in b:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _tensors(obj: Any) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def same_sharing(a: Any, b: Any) -> None:
    """Tensors that share storage in torch's result share it in safeload's, and no others."""
    ta, tb = _tensors(a), _tensors(b)
    assert len(ta) == len(tb)

    def groups(ts: list[Any]) -> list[list[int]]:
        ptrs = [t.untyped_storage().data_ptr() if t.device.type != "meta" else -i - 1 for i, t in enumerate(ts)]
        return [[j for j, q in enumerate(ptrs) if q == p] for p in ptrs]

    assert groups(ta) == groups(tb)


def check(obj: Any, tmp_path: Any, legacy: bool, name: str = "ckpt.pt") -> Any:
    path = _save(obj, tmp_path / name, legacy)
    ref = torch.load(path, weights_only=True)
    got = safeload.load(path)
    same(got, ref)
    same_sharing(got, ref)
    return got


# ---- torch objects that are not tensors ------------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("obj", [
    torch.Size([2, 3]), torch.Size([]), torch.device("cpu"), torch.device("cuda:0"), torch.device("cuda", 3),
    torch.device("meta"), torch.strided, torch.sparse_coo, torch.sparse_csr, torch.per_tensor_affine,
    torch.per_channel_symmetric, torch.float16, torch.bfloat16, torch.complex64,
], ids=repr)
def test_torch_values(obj: Any, legacy: bool, tmp_path: Any) -> None:
    got = check(obj, tmp_path, legacy)
    assert type(got) is type(obj)


@pytest.mark.parametrize("legacy", FORMATS)
def test_training_checkpoint(legacy: bool, tmp_path: Any) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "input_shape": torch.Size([5, 4]), "dtype": torch.float32, "device": torch.device("cpu"),
            "layout": torch.strided}
    check(ckpt, tmp_path, legacy)


@pytest.mark.parametrize("legacy", FORMATS)
def test_torch_values_as_dict_keys(legacy: bool, tmp_path: Any) -> None:
    """torch allows devices, dtypes, layouts and qschemes as dict keys (``{torch.device("cpu"): ...}``); so does
    safeload in every mode: without torch they are its own value classes, hashed from checked strings and ints."""
    obj = {torch.device("cpu"): 1, torch.device("cuda", 1): 2, torch.float16: 3, torch.strided: 4,
           torch.per_channel_affine: 5, (torch.device("meta"), torch.sparse_csr): 6}
    got = check(obj, tmp_path, legacy)
    assert list(got) == list(obj)
    path = tmp_path / "ckpt.pt"
    plain = safeload.load(path, tensors="numpy")
    assert [repr(k) for k in plain] == [repr(k) for k in obj]
    assert list(plain.values()) == list(obj.values())
    assert safeload.scan(path).ok


def test_value_classes_hash_only_checked_fields() -> None:
    """Should a user allow safeload's own TorchDevice class by name, a file could set its fields to anything; the
    value-based hash and equality then apply only to the str/int fields the rebuilder makes, anything else falls
    back to identity (no other object's __hash__ or __eq__ runs)."""
    key = b"csafeload._tensors\nTorchDevice\n)\x81N}X\x04\x00\x00\x00type(K\x01tsX\x05\x00\x00\x00indexK\x01s\x86b"
    crafted = b"\x80\x02}(" + key + b"K\x01" + key + b"K\x02u."
    got = safeload.loads(crafted, allow=["safeload._tensors.TorchDevice"])
    assert sorted(got.values()) == [1, 2]  # two keys: equal fields that are not plain do not make equal keys
    plain = crafted.replace(b"type(K\x01t", b"typeX\x03\x00\x00\x00cpu")
    assert list(safeload.loads(plain, allow=["safeload._tensors.TorchDevice"]).values()) == [2]


@pytest.mark.parametrize("args", [("cuda", 128), ("cuda", -1), ("cuda:01",), ("cuda:1000",), ("disk",), ("cuda", True)],
                         ids=repr)
def test_device_refuses_what_torch_would_misread(args: tuple[Any, ...]) -> None:
    """torch.device("cuda", 128) is cuda:-128 in torch (an 8-bit index); safeload refuses indices it would wrap,
    spellings with leading zeros and unknown device types, instead of passing them to torch."""
    import pickle

    crafted = b"\x80\x02ctorch\ndevice\n" + pickle.dumps(args, protocol=2)[2:-1] + b"R."
    with pytest.raises(safeload.SafeLoadError, match="device"):
        safeload.loads(crafted)
    if args == ("cuda", 128):  # what torch's own constructor makes of it
        assert str(torch.device(*args)) == "cuda:-128"


def _rewrite(src: Any, out: Any, edit: Any) -> Any:
    """Re-write a torch zip checkpoint with torch's own archive writer, ``edit(relative_name, bytes)`` changing
    records on the way (a real archive layout, so only the edited content differs)."""
    import zipfile

    with zipfile.ZipFile(src) as zf:
        records = {n: zf.read(n) for n in zf.namelist()}
    prefix = next(n for n in records if n.endswith("data.pkl"))[: -len("data.pkl")]
    writer = torch._C.PyTorchFileWriter(str(out))
    for name, raw in records.items():
        rel = name[len(prefix):]
        raw = edit(rel, raw)
        if raw is not None and rel not in (".data/serialization_id",):
            writer.write_record(rel, raw, len(raw))
    writer.write_end_of_file()
    return out


# ---- zip records: alignment, byteorder, format version -------------------------------------------------------------

def _record_obj() -> Any:
    w = torch.arange(12.0).view(3, 4)
    return {"w": w, "t": w.t(), "h": torch.ones(5, dtype=torch.float16), "c": torch.randn(3, dtype=torch.complex64),
            "i": torch.arange(3)}


@pytest.mark.parametrize("alignment", [1, 8, 4096])
def test_storage_alignment(alignment: int, tmp_path: Any) -> None:
    """torch 2.13 writes ``.format_version``, ``.storage_alignment``, ``byteorder`` and ``.data/serialization_id``
    records and aligns each data record to ``config.save.storage_alignment``; every alignment loads equal."""
    from torch.utils.serialization import config

    with config.patch({"save.storage_alignment": alignment}):
        check(_record_obj(), tmp_path, False)
    import zipfile

    with zipfile.ZipFile(tmp_path / "ckpt.pt") as zf:
        assert zf.read("ckpt/.storage_alignment") == str(alignment).encode()


@pytest.mark.parametrize("dropped", ["byteorder", ".format_version", ".storage_alignment"])
def test_metadata_record_missing(dropped: str, tmp_path: Any) -> None:
    """Older torch wrote no byteorder, format version or alignment record: torch reads the host's byte order and
    finds records by their offsets, and so does safeload."""
    import zipfile

    src = _save(_record_obj(), tmp_path / "src.pt", False)
    path = tmp_path / "ckpt.pt"
    if dropped == "byteorder":  # torch's archive writer adds it itself: Python's zipfile writes this one
        with zipfile.ZipFile(src) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as new:
            for info in old.infolist():
                if info.filename.split("/", 1)[1] != dropped:
                    new.writestr(info.filename, old.read(info))
    else:
        _rewrite(src, path, lambda rel, raw: None if rel == dropped else raw)
    with zipfile.ZipFile(path) as zf:
        assert dropped not in [n.split("/", 1)[1] for n in zf.namelist()]
    same(safeload.load(path), torch.load(path, weights_only=True))


def _with_record(src: Any, path: Any, rel: str, raw: bytes | None) -> Any:
    """``src`` re-written by Python's zipfile with record ``rel`` replaced (or dropped, for None)."""
    import zipfile

    with zipfile.ZipFile(src) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            name = info.filename.split("/", 1)[1]
            if name != rel:
                new.writestr(info.filename, old.read(info))
            elif raw is not None:
                new.writestr(info.filename, raw)
    return path


@pytest.mark.parametrize("version", [b"1\n", b"3", b"10\n", b" +3 \n", b"0\n", b"11\n", b"x\n", b"", b"-1\n",
                                     b"99999999999999999999999\n"])
def test_version_record(version: bytes, tmp_path: Any) -> None:
    """The archive's ``version`` record: torch reads a decimal from 1 to 10 and refuses other values; safeload
    loads and refuses the same ones."""
    src = _save(_record_obj(), tmp_path / "src.pt", False)
    path = _with_record(src, tmp_path / "ckpt.pt", "version", version)
    try:
        ref = torch.load(path, weights_only=True)
    except (RuntimeError, IndexError):  # IndexError: torch's stoull overflows
        with pytest.raises(safeload.FormatError, match="version"):
            safeload.load(path)
        assert not safeload.scan(path).ok
    else:
        same(safeload.load(path), ref)


def test_version_record_missing_is_a_deliberate_difference(tmp_path: Any) -> None:
    """torch's archive reader requires a version record; safeload reads such an archive (the records need no
    version to be read one way), as listed in the README."""
    src = _save(_record_obj(), tmp_path / "src.pt", False)
    path = _with_record(src, tmp_path / "ckpt.pt", "version", None)
    with pytest.raises(RuntimeError, match="version"):
        torch.load(path, weights_only=True)
    same(safeload.load(path), torch.load(src, weights_only=True))


@pytest.mark.parametrize("order", [b"little\n", b"LITTLE", b" big", b"middle"])
def test_byteorder_record_read_exactly(order: bytes, tmp_path: Any) -> None:
    """torch.load accepts exactly ``little`` or ``big``; a record with whitespace or another spelling fails there,
    and safeload refuses it too rather than guess."""
    src = _save(_record_obj(), tmp_path / "src.pt", False)
    path = _rewrite(src, tmp_path / "ckpt.pt", lambda rel, raw: order if rel == "byteorder" else raw)
    with pytest.raises(ValueError, match="endianness"):
        torch.load(path, weights_only=True)
    with pytest.raises(safeload.FormatError, match="byteorder"):
        safeload.load(path)


# ---- tensors ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", FORMATS)
def test_python_attributes(legacy: bool, tmp_path: Any) -> None:
    t = torch.randn(3)
    t.foo = 1
    t.tag = {"name": "w", "shape": torch.Size([3])}
    p = torch.nn.Parameter(torch.randn(2, 2))
    p.bar = "x"
    got = check({"t": t, "p": p}, tmp_path, legacy)
    assert got["t"].foo == 1 and got["p"].bar == "x"


@pytest.mark.parametrize("attr", ["data", "grad", "requires_grad", "__class__", "_backward_hooks"])
def test_attributes_that_are_tensor_properties_refused(attr: str, tmp_path: Any) -> None:
    """torch calls setattr for each saved attribute (a property setter runs); safeload refuses such names."""
    t = torch.randn(3)
    t.zzzzzzzzzzzz = torch.zeros(3)
    src = _save(t, tmp_path / "a.pt", False)

    def edit(rel: str, raw: bytes) -> bytes:
        if rel == "data.pkl":
            raw = raw.replace(b"\x0c\x00\x00\x00zzzzzzzzzzzz", len(attr).to_bytes(4, "little") + attr.encode())
        return raw

    out = _rewrite(src, tmp_path / "b.pt", edit)
    with pytest.raises(safeload.SafeLoadError, match="attribute"):
        safeload.load(out)
    with pytest.raises(safeload.SafeLoadError, match="attribute"):
        safeload.load(out, tensors="numpy")


@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_conj_and_neg_views(dtype: Any, legacy: bool, tmp_path: Any) -> None:
    z = torch.randn(4, 3, dtype=dtype)
    got = check({"z": z, "conj": z.conj(), "row": z.conj()[1]}, tmp_path, legacy, "conj.pt")
    assert got["conj"].is_conj()
    got = check({"neg": z.conj().imag}, tmp_path, legacy, "neg.pt")  # torch saves a view of another dtype alone
    assert got["neg"].is_neg()


@pytest.mark.parametrize("legacy", FORMATS)
def test_meta_tensors(legacy: bool, tmp_path: Any) -> None:
    check({"m": torch.empty(3, 4, device="meta"), "s": torch.empty_strided((2, 3), (1, 2), device="meta"),
           "g": torch.empty(2, device="meta", requires_grad=True)}, tmp_path, legacy)


@pytest.mark.parametrize("legacy", FORMATS)
def test_saved_storages_are_typed_storages(legacy: bool, tmp_path: Any) -> None:
    """torch's test_serialization_save_load_storage family: a storage saved on its own comes back as a
    torch.storage.TypedStorage sharing memory with the tensors over it."""
    x = torch.arange(6, dtype=torch.float64)
    y = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = {"s": x.storage(), "t": x[1:], "l": [y.storage(), (y,)], "u": torch.zeros(3, dtype=torch.int16).storage()}
        path = _save(obj, tmp_path / "s.pt", legacy)
        ref = torch.load(path, weights_only=True)
        got = safeload.load(path)
        same(got, ref)
        assert got["s"].data_ptr() == got["t"].untyped_storage().data_ptr()
        assert got["l"][0].data_ptr() == got["l"][1][0].untyped_storage().data_ptr()


def _sparse_cases() -> dict[str, Any]:
    d = torch.tensor([[0.0, 2, 0, 1], [3, 0, 4, 0], [0, 0, 5, 0], [1, 0, 0, 7]])
    return {"coo": d.to_sparse(), "coo_uncoalesced": torch.sparse_coo_tensor([[0, 0], [1, 1]], [1.0, 2.0], (2, 2)),
            "coo_hybrid": torch.randn(3, 2, 2).to_sparse(1), "csr": d.to_sparse_csr(), "csc": d.to_sparse_csc(),
            "bsr": d.to_sparse_bsr((2, 2)), "bsc": d.to_sparse_bsc((2, 2)), "csr_int32": torch.sparse_csr_tensor(
                torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([1, 0], dtype=torch.int32), [1.0, 2.0], (2, 2))}


@pytest.mark.parametrize("legacy", FORMATS)
def test_sparse_tensors(legacy: bool, tmp_path: Any) -> None:
    path = _save(_sparse_cases(), tmp_path / "sparse.pt", legacy)
    same(safeload.load(path), torch.load(path, weights_only=True))
    assert safeload.scan(path).ok
    with pytest.raises(safeload.FormatError, match="Sparse tensors need torch"):
        safeload.load(path, tensors="numpy")


@pytest.mark.parametrize("case", ["coo", "csr"])
def test_sparse_index_out_of_range_refused(case: str, tmp_path: Any) -> None:
    """An index past the size, written into a real checkpoint's index record: torch.load(weights_only=True)
    refuses it in _validate_loaded_sparse_tensors when invariant checks are on (they are off by default, and
    torch then returns the broken tensor); safeload always refuses it, before returning anything."""
    t = {"coo": torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2)),
         "csr": torch.sparse_csr_tensor([0, 1, 2], [1, 0], [1.0, 2.0], (2, 2))}[case]
    src = _save(t, tmp_path / "ok.pt", False)
    plain = (t._indices() if case == "coo" else t.col_indices()).contiguous()
    old = plain.numpy().tobytes()
    bad = plain.clone()
    bad.view(-1)[0] = 99
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: bad.numpy().tobytes() if raw == old else raw)
    with pytest.raises(RuntimeError), torch.sparse.check_sparse_tensor_invariants():
        torch.load(out, weights_only=True)
    with pytest.raises(safeload.FormatError, match="inconsistent"):
        safeload.load(out)


def _quantized_cases() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch.rand(4, 3)
        q = torch.quantize_per_tensor(x, 0.1, 2, torch.quint8)
        return {"quint8": q, "qint8": torch.quantize_per_tensor(x - 0.5, 0.05, -3, torch.qint8),
                "qint32": torch.quantize_per_tensor(x, 0.01, 7, torch.qint32), "transposed": q.t(),
                "per_channel": torch.quantize_per_channel(x, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64),
                                                          torch.tensor([1, 2, 3]), 1, torch.qint8)}


@pytest.mark.parametrize("legacy", FORMATS)
def test_quantized_tensors(legacy: bool, tmp_path: Any) -> None:
    path = _save(_quantized_cases(), tmp_path / "q.pt", legacy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.load(path, weights_only=True)
        got = safeload.load(path)
    same(got, ref)
    assert torch.equal(got["transposed"].dequantize(), ref["transposed"].dequantize())
    assert safeload.scan(path).ok
    with pytest.raises(safeload.FormatError, match="Quantized tensors need torch"):
        safeload.load(path, tensors="numpy")


def _packed_cases() -> dict[str, Any]:
    """Float-qparams and packed sub-byte quantized tensors as torch's quantizers make them (all on CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: dict[str, Any] = {"float_qparams": torch.quantize_per_channel(
            torch.randn(4, 6), torch.rand(4) + 0.1, torch.randn(4), 0, torch.quint8)}
        for shape in [(4, 6), (3, 5), (5,), (2, 3, 3), ()]:
            x = torch.randn(shape)
            for dt in (torch.quint4x2, torch.quint2x4):
                name = f"{str(dt)[6:]}{list(shape)}"
                out[name] = torch.quantize_per_tensor(x, 0.1, 3, dt)
                if shape:
                    out[name + "_channel"] = torch.quantize_per_channel(
                        x, torch.rand(shape[0]) + 0.1, torch.randn(shape[0]), 0, dt)
        return out


@pytest.mark.parametrize("legacy", FORMATS)
def test_float_qparams_and_packed_quantized(legacy: bool, tmp_path: Any) -> None:
    """``per_channel_affine_float_qparams`` (saved by torch under the ``per_channel_affine`` name, with float32
    zero points) and packed quint4x2/quint2x4 tensors load equal: scheme, dtype, shape, stride, packed bytes,
    scales, zero points and dequantized values."""
    cases = _packed_cases()
    path = _save(cases, tmp_path / "q.pt", legacy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.load(path, weights_only=True)
        got = safeload.load(path)
    same(got, ref)
    for name in cases:
        assert got[name].stride() == ref[name].stride(), name
        assert torch.equal(got[name].dequantize(), ref[name].dequantize()), name
    assert got["float_qparams"].qscheme() == torch.per_channel_affine_float_qparams
    assert safeload.scan(path).ok
    with pytest.raises(safeload.FormatError, match="Quantized tensors need torch"):
        safeload.load(path, tensors="numpy")


def _quiet_save(obj: Any, path: Any) -> Any:
    """torch.save of quantized tensors, without the TypedStorage warnings torch gives on them (zip format)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _save(obj, path, False)


def _refused(path: Any, match: str) -> None:
    """Refused by load and flagged by scan alike."""
    with pytest.raises(safeload.FormatError, match=match):
        safeload.load(path)
    assert not safeload.scan(path).ok


def test_packed_quantized_view_is_a_deliberate_difference(tmp_path: Any) -> None:
    """A slice of a packed tensor saves an offset torch counts in values over a storage counted in bytes; torch
    loads it (its int_repr then reads other bytes than the saved view's), safeload refuses it (README)."""
    q = torch.quantize_per_tensor(torch.randn(8), 0.1, 3, torch.quint4x2)
    path = _quiet_save({"q": q[2:]}, tmp_path / "q.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.load(path, weights_only=True)["q"].storage_offset() == 2
    _refused(path, "Packed torch.quint4x2")


def test_packed_quantized_size_past_its_record_refused(tmp_path: Any) -> None:
    """A real packed checkpoint whose size is made larger than its record holds."""
    src = _quiet_save({"q": torch.quantize_per_tensor(torch.randn(4, 6), 0.1, 3, torch.quint2x4)}, tmp_path / "q.pt")
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: raw.replace(b"K\x04K\x06\x86", b"K\x28K\x06\x86", 1)
                   if rel == "data.pkl" else raw)
    assert b"K\x28K\x06\x86" in _zip_member(out, "data.pkl")
    _refused(out, "Packed torch.quint2x4")


def test_float_zero_point_not_finite_refused(tmp_path: Any) -> None:
    """Float-qparams zero points replaced by NaN in the record: torch loads them; safeload refuses."""
    import struct

    src = _quiet_save({"q": _packed_cases()["float_qparams"]}, tmp_path / "q.pt")
    nan = struct.pack("<4f", *[float("nan")] * 4)
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: nan if rel == "data/2" else raw)
    assert _zip_member(out, "data/2") == nan
    with pytest.raises(safeload.FormatError, match="zero point"):
        safeload.load(out)


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan")])
def test_quantized_bad_scale_refused(bad: float, tmp_path: Any) -> None:
    """A real quantized checkpoint with its scale replaced (torch's _rebuild_qtensor does not check it)."""
    import struct

    src = _quiet_save({"q": torch.quantize_per_tensor(torch.rand(3), 0.1, 2, torch.quint8)}, tmp_path / "q.pt")
    old, new = b"G" + struct.pack(">d", 0.1), b"G" + struct.pack(">d", bad)
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: raw.replace(old, new) if rel == "data.pkl" else raw)
    assert new in _zip_member(out, "data.pkl")
    _refused(out, "scale")


def test_plain_tensor_over_quantized_storage_refused(tmp_path: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = _save({"q": torch.quantize_per_tensor(torch.rand(3), 0.1, 2, torch.quint8), "f": torch.zeros(3)},
                    tmp_path / "q.pt", False)
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: raw.replace(b"ctorch\nFloatStorage\n",
                   b"ctorch\nQUInt8Storage\n") if rel == "data.pkl" else raw)
    assert b"FloatStorage" not in _zip_member(out, "data.pkl")
    with pytest.raises(safeload.SafeLoadError):
        safeload.load(out)


@pytest.mark.parametrize("legacy", FORMATS)
def test_nested_tensors(legacy: bool, tmp_path: Any) -> None:
    """Compared with the saved objects: torch's own legacy reader returns nested tensors over memory it has freed
    (sizes like 140141444144528), so for the legacy format torch.load is no reference."""
    nt = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3), torch.randn(0, 3)])
    ref = {"nt": nt, "ints": torch.nested.nested_tensor([torch.arange(3), torch.arange(5)])}
    path = _save(ref, tmp_path / "n.pt", legacy)
    if not legacy:
        ref = torch.load(path, weights_only=True)
    got = safeload.load(path)
    for key in ("nt", "ints"):
        assert got[key].is_nested and got[key].dtype == ref[key].dtype
        assert len(got[key].unbind()) == len(ref[key].unbind())
        assert all(torch.equal(a, b) for a, b in zip(got[key].unbind(), ref[key].unbind()))
    assert safeload.scan(path).ok
    with pytest.raises(safeload.FormatError, match="Nested tensors need torch"):
        safeload.load(path, tensors="numpy")


def test_nested_component_past_its_buffer_refused(tmp_path: Any) -> None:
    """A real nested checkpoint whose offsets record is changed to reach past the buffer:
    torch._nested_view_from_buffer trusts it; safeload refuses before calling it."""
    nt = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)])
    src = _save(nt, tmp_path / "n.pt", False)
    offsets = nt._nested_tensor_storage_offsets()
    old = offsets.numpy().tobytes()
    new = torch.tensor([0, 100], dtype=torch.int64).numpy().tobytes()
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: new if raw == old else raw)
    with pytest.raises(safeload.FormatError, match="past its buffer"):
        safeload.load(out)


def _jagged_cases() -> dict[str, Any]:
    return {"components": torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)], layout=torch.jagged),
            "from_jagged": torch.nested.nested_tensor_from_jagged(torch.randn(6, 3), torch.tensor([0, 2, 6])),
            "lengths": torch.nested.nested_tensor_from_jagged(torch.randn(8, 3), torch.tensor([0, 2, 6]),
                                                             torch.tensor([1, 2])),
            "grad": torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(1, 3)], layout=torch.jagged,
                                               requires_grad=True),
            "ints": torch.nested.nested_tensor([torch.arange(3), torch.arange(5)], layout=torch.jagged)}


@pytest.mark.parametrize("legacy", FORMATS)
def test_jagged_nested_tensors(legacy: bool, tmp_path: Any) -> None:
    """Jagged nested tensors (``_rebuild_njt``) load equal: type, ragged dimension, values, offsets, lengths,
    requires_grad, components and cached sequence lengths (the file's torch.compile marks on them are checked and
    dropped; torch.nested.nested_tensor_from_jagged marks the lengths it caches itself)."""
    cases = _jagged_cases()
    path = _save(cases, tmp_path / "j.pt", legacy)
    ref = torch.load(path, weights_only=True)
    got = safeload.load(path)
    for name in cases:
        a, b = got[name], ref[name]
        assert type(a) is type(b) and a._ragged_idx == b._ragged_idx and a.dtype == b.dtype, name
        assert torch.equal(a.values(), b.values()) and torch.equal(a.offsets(), b.offsets()), name
        assert (a.lengths() is None and b.lengths() is None) or torch.equal(a.lengths(), b.lengths()), name
        assert a.requires_grad == b.requires_grad, name
        assert (a._maybe_min_seqlen, a._maybe_max_seqlen) == (b._maybe_min_seqlen, b._maybe_max_seqlen), name
        assert all(torch.equal(x, y) for x, y in zip(a.unbind(), b.unbind())), name
        assert len(a.unbind()) == len(b.unbind()), name
        assert sorted(vars(a)) == sorted(vars(b)), name
        for key in b._metadata_cache:  # torch's constructor marks its cached lengths itself, as torch.load restores
            assert sorted(vars(a._metadata_cache[key])) == sorted(vars(b._metadata_cache[key])), name
    assert safeload.scan(path).ok
    with pytest.raises(safeload.FormatError, match="Jagged nested tensors need torch"):
        safeload.load(path, tensors="numpy")


@pytest.mark.parametrize("offsets,match", [([0, 2, 60], "offsets"), ([0, 3, 6], "cached min_seqlen"),
                                           ([2, 1, 6], "offsets")])
def test_jagged_offsets_checked(offsets: list[int], match: str, tmp_path: Any) -> None:
    """A real jagged checkpoint with its offsets record rewritten: past the packed values, not rising, or
    disagreeing with the cached sequence lengths torch's kernels trust."""
    import struct

    src = _save({"nt": torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)], layout=torch.jagged)},
                tmp_path / "j.pt", False)
    assert _zip_member(src, "data/1") == struct.pack("<3q", 0, 2, 6)
    out = _rewrite(src, tmp_path / "bad.pt", lambda rel, raw: struct.pack("<3q", *offsets) if rel == "data/1" else raw)
    with pytest.raises(safeload.FormatError, match=match):
        safeload.load(out)


def test_dynamic_shape_marks_are_dropped(tmp_path: Any) -> None:
    """A tensor marked with torch._dynamo.mark_dynamic: torch.load rebuilds the marks (``_DimRange`` dataclasses);
    safeload checks their (dim, min, max) ints and drops them (compile hints, not data; rebuilding them would import
    torch._dynamo because the file names it). The values load equal."""
    t = torch.randn(3, 4)
    torch._dynamo.mark_dynamic(t, 0)
    path = _save({"t": t}, tmp_path / "d.pt", False)
    ref = torch.load(path, weights_only=True)["t"]
    got = safeload.load(path)["t"]
    assert "_dynamo_dynamic_range" in vars(ref) and not vars(got)
    assert torch.equal(got, ref) and got.stride() == ref.stride()
    assert safeload.scan(path).ok


# ---- torch 0.3.1 storage slices (legacy view metadata) ---------------------------------------------------------------

class _Slice:
    """A storage slice as torch 0.3.1 saved one (``a.storage()[1:4]``): torch's legacy writer with a persistent id
    that carries view metadata ``(view_key, offset, size)``, which torch 2.13's legacy reader still reads."""

    def __init__(self, base: Any, offset: int, size: int, key: str) -> None:
        self.base, self.offset, self.size, self.key = base, offset, size, key


class _SliceTensor:
    """A tensor over a storage slice, as 0.3.1 pickled one (``_rebuild_tensor_v2`` over the slice)."""

    def __init__(self, sl: _Slice) -> None:
        self.sl = sl

    def __reduce__(self) -> Any:
        return (torch._utils._rebuild_tensor_v2, (self.sl, 0, (self.sl.size,), (1,), False, OrderedDict()))


class _SlicePickler(pickle.Pickler):
    """Wraps the persistent_id of the pickler class torch.save derives from it: a _Slice gets the view id."""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        torch_pid = cls.persistent_id

        def persistent_id(self: Any, obj: Any) -> Any:
            if isinstance(obj, _Slice):
                st = obj.base.untyped_storage()
                numel = st.nbytes() // 4
                key = str(st._cdata) if obj.key == "ROOT" else obj.key  # ROOT: the storage's own key
                return ("storage", torch.FloatStorage, str(st._cdata), "cpu", numel, (key, obj.offset, obj.size))
            return torch_pid(self, obj)

        cls.persistent_id = persistent_id  # type: ignore[method-assign]


class _SliceModule:
    Pickler = _SlicePickler
    Unpickler = pickle.Unpickler
    load = pickle.load
    dump = pickle.dump


def _save_slices(objs: list[Any], path: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(objs, path, pickle_module=_SliceModule, _use_new_zipfile_serialization=False)
    return path


def test_storage_slices_of_torch_0_3_1(tmp_path: Any) -> None:
    """torch's own backwards-compatibility fixture holds ``a[0].storage()[1:4]`` saved by torch 0.3.1; the same
    persistent ids written here load equal: the slice as a TypedStorage and tensors over slices as views of the
    root's memory."""
    a = torch.arange(1, 26, dtype=torch.float32).view(5, 5)
    first = _Slice(a, 1, 3, "view-1")
    path = _save_slices([a, first, _SliceTensor(first), _SliceTensor(_Slice(a, 20, 5, "view-2"))], tmp_path / "s.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.load(path, weights_only=True)
        got = safeload.load(path)
    same(got, ref)
    same_sharing(got, ref)
    assert got[1].tolist() == [2.0, 3.0, 4.0] and got[3].tolist() == [21.0, 22.0, 23.0, 24.0, 25.0]
    got[0][0, 1] = 100.0  # the slice shares the root's memory, as in torch
    assert got[2][0] == 100.0
    assert safeload.scan(path).ok
    plain = safeload.load(path, tensors="numpy")
    assert plain[2].tolist() == [2.0, 3.0, 4.0]


@pytest.mark.parametrize("case", ["past_the_end", "negative", "root_key", "redefined"])
def test_storage_slice_ambiguities_refused(case: str, tmp_path: Any) -> None:
    """A slice past its storage, a negative offset, a view key equal to a storage key (torch returns whichever
    it made first), or one view key with two definitions (torch keeps the first) is refused."""
    a = torch.arange(10, dtype=torch.float32)
    slices = {"past_the_end": [_Slice(a, 8, 5, "v")], "negative": [_Slice(a, -1, 2, "v")],
              "root_key": [_Slice(a, 1, 2, "ROOT")], "redefined": [_Slice(a, 1, 2, "v"), _Slice(a, 3, 2, "v")]}[case]
    path = _save_slices([a, *slices], tmp_path / "s.pt")
    _refused(path, "view")


@pytest.mark.parametrize("legacy", FORMATS)
def test_tied_weights_and_views(legacy: bool, tmp_path: Any) -> None:
    w = torch.randn(6, 4)
    check({"a": w, "b": w, "t": w.t(), "row": w[2], "col": w[:, 1], "p": torch.nn.Parameter(w)}, tmp_path, legacy)


def test_crc32_off_is_a_deliberate_difference(tmp_path: Any) -> None:
    """README, Differences from torch.load: torch's reader skips the CRC-32 check, Python's zipfile reports every
    record corrupt; where native readers disagree safeload refuses."""
    import zipfile

    torch.serialization.set_crc32_options(False)
    try:
        path = _save({"w": torch.randn(100, 10)}, tmp_path / "nocrc.pt", False)
    finally:
        torch.serialization.set_crc32_options(True)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.load(path, weights_only=True)["w"])
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is not None  # a record zipfile reads as corrupt
    with pytest.raises(safeload.FormatError, match="CRC-32"):
        safeload.load(path)


def test_big_endian_complex(tmp_path: Any) -> None:
    """A big-endian archive (byteorder 'big', each value stored big-endian) written with torch's own archive
    writer: complex values swap each part, so real and imaginary parts stay where they are."""
    z64 = torch.tensor([1 + 2j, -3.5 + 0.25j], dtype=torch.complex64)
    z128 = torch.tensor([1e300 + 2j, -3 - 4e-300j], dtype=torch.complex128)
    f = torch.tensor([1.5, -2.0], dtype=torch.float32)
    src = _save({"a": z64, "b": z128, "c": f}, tmp_path / "le.pt", False)
    import numpy as np

    swapped = {}
    for t, width in ((z64, 4), (z128, 8), (f, 4)):
        swapped[t.numpy().tobytes()] = np.frombuffer(t.numpy().tobytes(), f"<f{width}").astype(f">f{width}").tobytes()

    def edit(rel: str, raw: bytes) -> bytes:
        if rel == "byteorder":
            return b"big"
        return swapped.get(raw, raw) if rel.startswith("data/") else raw

    out = _rewrite(src, tmp_path / "be.pt", edit)
    ref = torch.load(out, weights_only=True)
    assert torch.equal(ref["a"], z64) and torch.equal(ref["b"], z128)
    same(safeload.load(out), ref)
    np_got = safeload.load(out, tensors="numpy")
    assert np.array_equal(np_got["a"], z64.numpy()) and np.array_equal(np_got["b"], z128.numpy())


# ---- without torch tensors: the documented data forms -----------------------------------------------------------------

@pytest.mark.parametrize("legacy", FORMATS)
def test_numpy_and_scan_forms(legacy: bool, tmp_path: Any) -> None:
    import numpy as np

    t = torch.randn(3, dtype=torch.complex64)
    t.foo = 7
    obj = {"size": torch.Size([2, 3]), "dev": torch.device("cuda", 1), "layout": torch.strided,
           "q": torch.per_tensor_affine, "t": t, "c": t.conj(), "m": torch.empty(2, device="meta")}
    path = _save(obj, tmp_path / "n.pt", legacy)
    got = safeload.load(path, tensors="numpy")
    assert got["size"] == (2, 3) and type(got["size"]) is tuple
    assert repr(got["dev"]) == "device(type='cuda', index=1)"
    assert repr(got["layout"]) == "torch.strided" and repr(got["q"]) == "torch.per_tensor_affine"
    assert got["t"].foo == 7 and np.array_equal(np.asarray(got["t"]), t.numpy())
    assert np.array_equal(got["c"], t.conj().resolve_conj().numpy())
    assert safeload.scan(path).ok


# ---- torch's allowlist, allow= by name, OSError family, pickle_module=safeload ------------------------------------------

def test_torch_safe_globals_are_honoured(tmp_path: Any) -> None:
    """An argparse checkpoint holding a path: torch loads it after add_safe_globals([PosixPath, Namespace]), so
    does safeload (under its own rules for allowed classes), and both refuse it without."""
    import argparse
    import pathlib

    ns = argparse.Namespace(out=pathlib.PosixPath("/data/run1"), lr=0.1, layers=[2, 3])
    path = _save({"args": ns, "w": torch.randn(2)}, tmp_path / "args.pt", False)
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.load(path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    with torch.serialization.safe_globals([pathlib.PosixPath, argparse.Namespace]):
        ref = torch.load(path, weights_only=True)
        got = safeload.load(path)
    assert vars(got["args"]) == vars(ref["args"]) and type(got["args"].out) is pathlib.PosixPath
    got = safeload.load(path, allow=[pathlib.PosixPath, argparse.Namespace])
    assert vars(got["args"]) == vars(ref["args"])
    torch.serialization.add_safe_globals([pathlib.PosixPath, argparse.Namespace])
    try:
        assert vars(safeload.load(path)["args"]) == vars(ref["args"])
    finally:
        torch.serialization.clear_safe_globals()
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.load(path)


def test_path_class_takes_strings_only() -> None:
    import pathlib

    crafted = b"\x80\x02cpathlib\nPosixPath\nK\x01\x85R."  # PosixPath(1)
    with pytest.raises(safeload.SafeLoadError, match="path strings"):
        safeload.loads(crafted, allow=[pathlib.PosixPath])


def test_allow_by_name_without_the_module() -> None:
    """allow= accepts a class whose module is not importable here: what the file builds is an inert Stub."""
    data = b"\x80\x02cmypkg_not_installed.config\nOptions\n)\x81}X\x02\x00\x00\x00lrG?\xb9\x99\x99\x99\x99\x99\x9asb."
    with pytest.raises(safeload.UnsafeGlobalError):
        safeload.loads(data)
    got = safeload.loads(data, allow=["mypkg_not_installed.config.Options"])
    assert isinstance(got, safeload.Stub) and got.qualname == "mypkg_not_installed.config.Options"
    assert got.state == {"lr": 0.1}
    with pytest.raises(ValueError, match="cannot be allowed"):
        safeload.loads(b"\x80\x02cnt\nsystem\n.", allow=["nt.system"])


def test_missing_and_unreadable_paths_are_oserrors(tmp_path: Any) -> None:
    import os
    import pickle

    for call in (lambda p: torch.load(p, weights_only=True), safeload.load):
        with pytest.raises(FileNotFoundError):
            call(tmp_path / "missing.pt")
        with pytest.raises(IsADirectoryError):
            call(tmp_path)
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.load(tmp_path / "missing.pt")
    err = info.value
    assert isinstance(err, FileNotFoundError) and isinstance(err, pickle.UnpicklingError)
    assert err.errno == 2 and err.filename == str(tmp_path / "missing.pt") and "missing.pt" in str(err)
    if os.geteuid() != 0:
        locked = _save({"w": torch.zeros(1)}, tmp_path / "locked.pt", False)
        locked.chmod(0)
        with pytest.raises(PermissionError):
            safeload.load(locked)
        with pytest.raises(safeload.SafeLoadError):
            safeload.load(locked)


def test_torch_load_with_safeload_as_pickle_module(tmp_path: Any) -> None:
    import io

    w = torch.randn(3, 4)
    obj = {"w": w, "t": w.t(), "p": torch.nn.Parameter(w), "size": torch.Size([3, 4]), "n": 3}
    path = _save(obj, tmp_path / "pm.pt", False)
    ref = torch.load(path, weights_only=True)
    for src in (path, io.BytesIO(path.read_bytes())):
        got = torch.load(src, pickle_module=safeload, weights_only=False)
        same(got, ref)
        same_sharing(got, ref)
    # the same checkpoint naming os.system where torch names its rebuild function: refused, torch runs nothing
    crafted = _rewrite(path, tmp_path / "evil.pt", lambda rel, raw: raw.replace(
        b"ctorch._utils\n_rebuild_tensor_v2\n", b"cos\nsystem\n") if rel == "data.pkl" else raw)
    assert b"cos\nsystem\n" in _zip_member(crafted, "data.pkl")
    with pytest.raises(safeload.UnsafeGlobalError, match="os.system"):
        torch.load(crafted, pickle_module=safeload, weights_only=False)


def _zip_member(path: Any, rel: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/" + rel)))


def test_pickle_module_path_runs_no_payload(tmp_path: Any, monkeypatch: Any) -> None:
    """A real checkpoint whose data.pkl is the oracle's payload: live under torch.load(weights_only=False); with
    pickle_module=safeload torch reads the same archive and nothing runs."""
    import os

    import oracle

    src = _save({"w": torch.randn(2)}, tmp_path / "ok.pt", False)
    path = _rewrite(src, tmp_path / "live.pt", lambda rel, raw: oracle.payload(2) if rel == "data.pkl" else raw)
    assert oracle.live(path, ("torch",)) == ["torch"]
    assert oracle.check(path, ("torch",)) == []
    monkeypatch.chdir(tmp_path)
    with pytest.raises(safeload.UnsafeGlobalError, match="builtins.open"):
        torch.load(path, pickle_module=safeload, weights_only=False)
    assert not any(oracle.MARKER in files for _r, _d, files in os.walk(tmp_path))


# ---- torch.Tensor subclasses the caller allowed ------------------------------------------------------------------------

_SUBCLASS_SOURCE = '''
import torch

class MyT(torch.Tensor):
    pass

class Wrap(torch.Tensor):
    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))

class Stateful(torch.Tensor):
    calls = 0

    def __setstate__(self, state):
        type(self).calls += 1

class Prop(torch.Tensor):
    @property
    def scale(self):
        return 1

    @scale.setter
    def scale(self, value):
        raise RuntimeError("setter ran")
'''


def _subclasses(tmp_path: Any, monkeypatch: Any) -> Any:
    """The subclass module ``safeload_test_tsub``, written to tmp_path and imported (torch.save pickles the class by
    its module and name, torch.load imports it)."""
    import importlib
    import sys

    (tmp_path / "safeload_test_tsub.py").write_text(_SUBCLASS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("safeload_test_tsub", None)
    return importlib.import_module("safeload_test_tsub")


@pytest.mark.parametrize("how", ["allow", "safe_globals"])
@pytest.mark.parametrize("legacy", FORMATS)
def test_allowed_tensor_subclass(how: str, legacy: bool, tmp_path: Any, monkeypatch: Any) -> None:
    """torch.load(weights_only=True) with the class in its safe globals: func(*args), as_subclass, then setattr of
    each saved attribute. safeload gives the same object, from allow= or from torch's own allowlist."""
    mod = _subclasses(tmp_path, monkeypatch)
    t = torch.randn(3, 4, requires_grad=True).as_subclass(mod.MyT)
    t.foo = 1
    t.tag = {"name": "w", "dtype": torch.float16}
    view = torch.arange(12.).reshape(3, 4).t().as_subclass(mod.MyT)  # a strided view, no attributes
    ints = torch.arange(5, dtype=torch.int16).as_subclass(mod.MyT)
    path = _save({"t": t, "view": view, "ints": ints}, tmp_path / "sub.pt", legacy)
    with torch.serialization.safe_globals([mod.MyT]):
        ref = torch.load(path, weights_only=True)
        got = safeload.load(path) if how == "safe_globals" else None
    if how == "allow":
        got = safeload.load(path, allow=[mod.MyT])
    assert type(ref["t"]) is mod.MyT and ref["t"].foo == 1
    same(got, ref)
    same_sharing(got, ref)
    import numpy as np

    arrays = safeload.load(path, allow=[mod.MyT], tensors="numpy")  # numpy's form: the array, attributes on it
    assert np.array_equal(arrays["ints"], ints.numpy()) and arrays["t"].foo == 1
    assert safeload.scan(path, allow=["safeload_test_tsub.MyT"]).ok


@pytest.mark.parametrize("legacy", FORMATS)
def test_tensor_subclass_not_allowed(legacy: bool, tmp_path: Any, monkeypatch: Any) -> None:
    mod = _subclasses(tmp_path, monkeypatch)
    path = _save({"t": torch.ones(2).as_subclass(mod.MyT)}, tmp_path / "sub.pt", legacy)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    for kw in ({}, {"unknown": "stub"}, {"unknown": "stub", "tensors": "numpy"}):
        with pytest.raises(safeload.UnsafeGlobalError, match="safeload_test_tsub.MyT") as err:
            safeload.load(path, **kw)
        assert "allow=['safeload_test_tsub.MyT']" in (err.value.fix or ""), kw
    report = safeload.scan(path)
    assert not report.ok
    assert any(f.qualname == "safeload_test_tsub.MyT" for f in report.findings)


@pytest.mark.parametrize("cls", ["Wrap", "Stateful"])
def test_tensor_subclass_with_its_own_code_refused(cls: str, tmp_path: Any, monkeypatch: Any) -> None:
    """A custom __torch_dispatch__ (a wrapper subclass) or __setstate__ (torch.load calls it with the file's state):
    refused even when allowed, naming the method, in every mode and in scan."""
    mod = _subclasses(tmp_path, monkeypatch)
    klass = getattr(mod, cls)
    path = _save({"t": torch.ones(2).as_subclass(klass)}, tmp_path / "sub.pt", False)
    with torch.serialization.safe_globals([klass]):
        assert type(torch.load(path, weights_only=True)["t"]) is klass
    method = "__torch_dispatch__" if cls == "Wrap" else "__setstate__"
    calls = getattr(klass, "calls", 0)
    for tensors in ("torch", "numpy"):
        with pytest.raises(safeload.UnsafeGlobalError, match=method):
            safeload.load(path, allow=[klass], tensors=tensors)
    assert getattr(klass, "calls", 0) == calls
    assert not safeload.scan(path, allow=[f"safeload_test_tsub.{cls}"]).ok


def test_tensor_subclass_attribute_it_defines_refused(tmp_path: Any, monkeypatch: Any) -> None:
    """torch would setattr a saved attribute named like the subclass's property, running its setter."""
    mod = _subclasses(tmp_path, monkeypatch)
    t = torch.ones(2).as_subclass(mod.Prop)
    vars(t)["scale"] = 2  # in the instance dict, as a crafted file would carry it
    path = _save({"t": t}, tmp_path / "sub.pt", False)
    with torch.serialization.safe_globals([mod.Prop]), pytest.raises(RuntimeError, match="setter ran"):
        torch.load(path, weights_only=True)
    with pytest.raises(safeload.FormatError, match="'scale' is a name Prop defines"):
        safeload.load(path, allow=[mod.Prop])
