"""PyTorch checkpoints written by real torch: safeload.load equals torch.load in values, dtypes, strides,
sharing and Parameter-ness, for the shared samples and a grid written here."""

from __future__ import annotations

import argparse
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import safeload
from samples_path import SAMPLES as SHARED_SAMPLES

torch = pytest.importorskip("torch")

SAMPLES = SHARED_SAMPLES / "pytorch"


def assert_same(ours, theirs, path="root", storages=None):
    """Deep equality that also checks tensor layout, Parameter-ness and storage sharing."""
    storages = {} if storages is None else storages
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor), path
        assert type(ours) is type(theirs), (path, type(ours), type(theirs))
        assert ours.dtype == theirs.dtype, path
        assert ours.shape == theirs.shape, path
        assert ours.stride() == theirs.stride(), path
        assert ours.storage_offset() == theirs.storage_offset(), path
        assert ours.requires_grad == theirs.requires_grad, path
        if theirs.dtype.is_floating_point and theirs.element_size() == 1:
            assert torch.equal(ours.view(torch.uint8), theirs.view(torch.uint8)), path
        else:
            assert torch.equal(ours, theirs) or torch.allclose(ours, theirs, equal_nan=True), path
        # sharing: tensors that share a storage in torch share one in ours, and only those
        key = theirs.untyped_storage().data_ptr()
        mine = ours.untyped_storage().data_ptr()
        if key in storages:
            assert storages[key] == mine, f"{path}: storage sharing differs from torch.load"
        else:
            assert mine not in storages.values(), f"{path}: shares a storage that torch keeps separate"
            storages[key] = mine
        return
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype, path
        np.testing.assert_array_equal(ours, theirs, err_msg=path)
        return
    assert type(ours) is type(theirs), (path, type(ours), type(theirs))
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), path
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{path}[{k!r}]", storages)
        assert getattr(ours, "_metadata", None) == getattr(theirs, "_metadata", None), path
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{path}[{i}]", storages)
    elif isinstance(theirs, argparse.Namespace):
        assert_same(vars(ours), vars(theirs), path, storages)
    elif isinstance(theirs, float) and theirs != theirs:
        assert ours != ours, path
    else:
        assert ours == theirs, path


def make_grid():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3)
    bn = torch.nn.BatchNorm2d(8)
    lin = torch.nn.Linear(8, 4)
    emb = torch.nn.Embedding(10, 4)
    tr = torch.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16)
    model = torch.nn.Sequential(conv, bn, torch.nn.Flatten(), torch.nn.LazyLinear(4) if False else lin)
    grid = {}
    for name, m in {"conv": conv, "bn": bn, "linear": lin, "embedding": emb, "transformer": tr}.items():
        grid[f"{name}_sd"] = m.state_dict()
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8, torch.int32, torch.bool,
                  torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16):
        grid[f"dtype_{dtype}"] = {"t": torch.arange(12).reshape(3, 4).to(dtype)}
    params = list(lin.parameters())
    adam = torch.optim.Adam(params, lr=1e-3)
    lin(torch.randn(2, 8)).sum().backward()
    adam.step()
    grid["adam"] = adam.state_dict()
    sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sgd.step()
    grid["sgd"] = sgd.state_dict()
    base = torch.randn(6, 6)
    grid["views"] = {"base": base, "row": base[1], "col": base[:, 2], "t": base.t(), "narrow": base[2:4, 1:5],
                     "expand": torch.zeros(1).expand(1000)}
    w = torch.nn.Parameter(torch.randn(4, 4))
    grid["tied"] = {"a": w, "b": w, "c": torch.nn.Parameter(torch.randn(2), requires_grad=False)}
    grid["full"] = {"epoch": 3, "model": model.state_dict(), "optimizer": adam.state_dict(),
                    "loss": np.float64(0.25), "args": argparse.Namespace(lr=0.1, layers=[1, 2]),
                    "torch_rng": torch.get_rng_state(), "np_array": np.arange(5.0), "meta": {"note": "é", 1: (2, 3)}}
    return grid


GRID = make_grid()


@pytest.mark.parametrize("name", sorted(GRID))
@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("mmap", [False, True])
def test_grid_matches_torch_load(tmp_path, name, legacy, mmap):
    path = tmp_path / f"{name}.pt"
    torch.save(GRID[name], path, _use_new_zipfile_serialization=not legacy)
    try:
        theirs = torch.load(path, map_location="cpu", weights_only=False)
    except AttributeError:
        # torch cannot read its own legacy format for dtypes without a storage class (float8, uint16);
        # compare with what was saved instead
        assert legacy
        theirs = GRID[name]
    if mmap and legacy:
        with pytest.raises(safeload.SafeLoadError):
            safeload.load(path, map_location="cpu", mmap=True)
        return
    ours = safeload.load(path, map_location="cpu", mmap=mmap)
    assert_same(ours, theirs)


@pytest.mark.parametrize("name", sorted(GRID))
def test_grid_as_numpy(tmp_path, name):
    """tensors='numpy' gives arrays with the same values; views share memory where torch shares storage."""
    pytest.importorskip("ml_dtypes")
    path = tmp_path / f"{name}.pt"
    torch.save(GRID[name], path)
    theirs = torch.load(path, map_location="cpu", weights_only=False)
    ours = safeload.load(path, tensors="numpy")

    def walk(a, b, p):
        if isinstance(b, torch.Tensor):
            assert isinstance(a, np.ndarray), p
            assert a.shape == tuple(b.shape), p
            assert a.strides == tuple(s * b.element_size() for s in b.stride()), p
            raw = b.detach().reshape(-1).contiguous().view(torch.uint8).numpy()
            assert np.ascontiguousarray(a).view(np.uint8).tobytes() == raw.tobytes(), p
        elif isinstance(b, dict):
            assert list(a) == list(b), p
            for k in b:
                walk(a[k], b[k], f"{p}[{k!r}]")
        elif isinstance(b, (list, tuple)):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{p}[{i}]")

    walk(ours, theirs, "root")
    if name == "views":
        assert np.shares_memory(ours["base"], ours["row"])
        ours["base"][1, 0] = 42.0
        assert ours["row"][0] == 42.0


@pytest.mark.parametrize("sample", ["state_dict.pt", "optimizer_state_dict.pt", "dtypes_views.pt",
                                    "full_checkpoint.pt", "state_dict_legacy_format.pt"])
def test_shared_samples_match_torch_load(sample):
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    theirs = torch.load(path, map_location="cpu", weights_only=False)
    assert_same(safeload.load(path, map_location="cpu"), theirs)


def test_whole_module_refused_then_stubbed():
    path = SAMPLES / "whole_module.pt"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    with pytest.raises(safeload.UnsafeGlobalError, match=r"__main__\.Net.*member 'whole_module/data.pkl'"):
        safeload.load(path)
    stub = safeload.load(path, unknown="stub")
    assert isinstance(stub, safeload.Stub) and stub.qualname == "__main__.Net"
    params = stub.state["_modules"]["conv"].state["_parameters"]
    assert isinstance(params["weight"], torch.nn.Parameter)


def test_map_location_forms(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(2)}, path)
    for ml in (None, "cpu", torch.device("cpu"), {"cpu": "cpu"}, lambda storage, loc: storage):
        out = safeload.load(path, map_location=ml)
        assert out["w"].device.type == "cpu" and torch.equal(out["w"], torch.ones(2))


def test_cuda_checkpoint_opens_on_cpu(tmp_path):
    """A checkpoint saved on cuda:0 (location string rewritten, as torch writes it) opens with map_location='cpu'."""
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(3)}, path)
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info.filename, data)
    raw = buf.getvalue()
    assert b"cuda:0" in raw
    out = safeload.loads(raw, map_location="cpu")
    assert out["w"].device.type == "cpu" and torch.equal(out["w"], torch.ones(3))
    if not torch.cuda.is_available():
        with pytest.raises(safeload.SafeLoadError, match="map_location='cpu'"):
            safeload.loads(raw)


def test_weights_only_false_refused(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(safeload.SafeLoadError, match="weights_only=False refused"):
        safeload.load(path, weights_only=False)
    assert torch.equal(safeload.load(path, pickle_module=pickle, weights_only=True)["w"], torch.ones(1))


def test_backward_hooks_refused(tmp_path):
    t = torch.ones(2)
    hooks = OrderedDict()
    hooks[0] = print  # what a file can inject: torch keeps and calls it
    path = tmp_path / "hooks.pt"
    torch.save({"t": t}, path)
    # rewrite: _rebuild_tensor_v2(..., False, OrderedDict()) -> hooks holding builtins.print
    with zipfile.ZipFile(path) as src:
        names = src.namelist()
        blobs = {n: src.read(n) for n in names}
    pkl_name = next(n for n in names if n.endswith("data.pkl"))
    pkl = blobs[pkl_name]
    needle = b"\x89ccollections\nOrderedDict\nq\n)Rq\x0b"
    assert needle in pkl, pkl
    # the hooks dict gets an entry: {0: collections.OrderedDict} (any allowed callable a hook could be)
    blobs[pkl_name] = pkl.replace(needle, needle + b"K\x00ccollections\nOrderedDict\ns")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for n in names:
            dst.writestr(n, blobs[n])
    with pytest.raises(safeload.SafeLoadError, match="backward_hooks"):
        safeload.loads(buf.getvalue())


def write_tar_checkpoint(path, obj_tensors, extra=None):
    """A checkpoint in the tar format of torch < 0.4, written the way torch's own reader expects it
    (torch/serialization.py legacy_load): sys_info, storages (+ views), tensors and the main pickle."""
    import struct
    import tarfile

    storages, tensors = io.BytesIO(), io.BytesIO()
    pickle.dump(1, storages, protocol=2)
    base = torch.arange(12, dtype=torch.float32)
    pickle.dump((0, "cpu", torch.FloatStorage), storages, protocol=2)
    storages.write(struct.pack("<q", 12) + base.numpy().tobytes())
    pickle.dump([(1, 0, 4, 8)], storages, protocol=2)  # storage 1: a view of elements 4..11 of storage 0
    layouts = {10: (0, (3, 4), (4, 1), 0), 11: (0, (4, 3), (1, 4), 0), 12: (1, (2, 2), (2, 1), 2)}
    pickle.dump(len(layouts), tensors, protocol=2)
    for key, (sid, size, stride, offset) in layouts.items():
        pickle.dump((key, sid, torch.FloatTensor), tensors, protocol=2)
        tensors.write(struct.pack("<i", len(size)) + b"\0\0\0\0" + struct.pack(f"<{len(size)}q", *size)
                      + struct.pack(f"<{len(size)}q", *stride) + struct.pack("<q", offset))

    class MainPickler(pickle.Pickler):
        def persistent_id(self, obj):
            return str(obj.key) if isinstance(obj, TensorRef) else None

    class TensorRef:
        def __init__(self, key):
            self.key = key

    main = io.BytesIO()
    MainPickler(main, protocol=2).dump({"w": TensorRef(10), "wt": TensorRef(11), "view": TensorRef(12),
                                        "epoch": 7, **(extra or {})})
    sys_info = io.BytesIO()
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, sys_info, protocol=2)
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name, buf in (("sys_info", sys_info), ("storages", storages), ("tensors", tensors), ("pickle", main)):
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))


def test_tar_format_matches_torch_load(tmp_path):
    path = tmp_path / "old.pt"
    write_tar_checkpoint(path, None)
    theirs = torch.load(path, weights_only=False)  # torch itself reads this format only with weights_only=False
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    ours = safeload.load(path)
    assert_same(ours, theirs)
    assert torch.equal(ours["view"], torch.tensor([[6.0, 7.0], [8.0, 9.0]]))
    arrays = safeload.load(path, tensors="numpy")
    assert arrays["wt"].tolist() == theirs["wt"].tolist()


def test_tar_format_refuses_unsafe_globals_and_bad_views(tmp_path):
    path = tmp_path / "old.pt"
    write_tar_checkpoint(path, None, extra={"cb": print})
    with pytest.raises(safeload.UnsafeGlobalError, match="builtins.print"):
        safeload.load(path)


def test_torchscript_archive_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(safeload.FormatError, match="TorchScript") as info:
        safeload.load(path)
    assert "state_dict" in str(info.value)


def test_quantized_and_sparse_tensors_refused_without_torch_with_a_reason(tmp_path):
    q = torch.quantize_per_tensor(torch.rand(4), 0.1, 0, torch.quint8)
    sparse = torch.eye(3).to_sparse()
    for name, obj in (("quantized", q), ("sparse", sparse)):  # with torch: tests/test_torch_parity.py
        path = tmp_path / f"{name}.pt"
        torch.save({"t": obj}, path)
        with pytest.raises(safeload.SafeLoadError, match="(?i)" + name):
            safeload.load(path, tensors="numpy")
