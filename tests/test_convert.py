"""convert: any checkpoint safeload opens, rewritten as safetensors (read back by safetensors itself), as a torch
checkpoint at a pinned protocol, or as a plain pickle; refusals for what cannot be represented faithfully."""

from __future__ import annotations

import argparse
import json
import pickle
import pickletools

import numpy as np
import pytest

import safeload
from safeload._convert import convert
from safeload._save import SaveRefused, save

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")
st_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402


def _checkpoint():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 4,
            "args": argparse.Namespace(lr=0.001, name="run"), "best": np.float64(0.5),
            "extra": {"half": torch.ones(2, dtype=torch.float16), "bf16": torch.ones(3, dtype=torch.bfloat16),
                      "flags": torch.tensor([True, False]), "scalar": torch.tensor(7)}}


def _flat_tensors(obj, prefix=""):
    out = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, torch.Tensor):
            out[name] = v
        else:
            out.update(_flat_tensors(v, name))
    return out


@pytest.mark.parametrize("source", ["torch.save", "safeload.save", "safeload.save+zstd"])
def test_to_safetensors_round_trips(tmp_path, source):
    ckpt = _checkpoint()
    src = tmp_path / "in.pt"
    if source == "torch.save":
        torch.save(ckpt, src)
    else:
        save(ckpt, src, compress="zstd" if source.endswith("zstd") else None)
    dst = tmp_path / "out.safetensors"
    convert(str(src), str(dst), to="safetensors")
    expected = _flat_tensors(ckpt)
    got = st_torch.load_file(str(dst))
    assert sorted(got) == sorted(expected)
    for name, t in expected.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape, name
        assert torch.equal(got[name], t.detach()), name
    arrays = st_numpy.load_file(str(dst)) if "extra.bf16" not in expected else None
    if arrays is None:  # safetensors.numpy has no bfloat16: check the others through it
        del ckpt["extra"]["bf16"]
        save(ckpt, src)
        convert(src, dst)
        arrays = st_numpy.load_file(str(dst))
    for name, arr in arrays.items():
        np.testing.assert_array_equal(arr, _flat_tensors(ckpt)[name].detach().numpy())
    with safe_open(str(dst), "np") as f:
        meta = f.metadata()
    assert meta["format"] == "pt"
    assert json.loads(meta["epoch"]) == 4 and json.loads(meta["best"]) == 0.5
    assert json.loads(meta["args"]) == {"lr": 0.001, "name": "run"}
    groups = json.loads(meta["optimizer.param_groups"])
    assert groups[0]["betas"] == [0.9, 0.999] and groups[0]["params"] == [0, 1, 2, 3]


def test_to_safetensors_copies_shared_tensors(tmp_path):
    w = torch.randn(4, 3)
    src, dst = tmp_path / "tied.pt", tmp_path / "tied.safetensors"
    torch.save({"embed": w, "head": w, "row": w[1]}, src)
    convert(src, dst)
    got = st_torch.load_file(str(dst))
    assert torch.equal(got["embed"], w) and torch.equal(got["head"], w) and torch.equal(got["row"], w[1])


@pytest.mark.parametrize("obj, pattern", [
    ({"names": np.array(["a", "b"])}, r"checkpoint tensor 'names': an array of dtype <U1 has no safetensors dtype"),
    ({"z": torch.ones(2, dtype=torch.complex128)}, r"dtype complex128 has no safetensors dtype"),
    ({"w": torch.ones(1), "blob": b"\x00"}, r"checkpoint\['blob'\]: builtins\.bytes cannot be kept in safetensors"),
    ({"w": torch.ones(1), "s": {1, 2}}, r"builtins\.set cannot be kept"),
    ({"a.b": torch.ones(1), "a": {"b": torch.ones(1)}}, r"two entries flatten to the name 'a\.b'"),
    ({(1, 2): torch.ones(1)}, r"a dict key of type tuple holds tensors"),
    ({"w": torch.ones(1), "format": "mine"}, r"the metadata name 'format' is taken"),
])
def test_to_safetensors_refuses_what_it_cannot_hold(tmp_path, obj, pattern):
    src, dst = tmp_path / "in.pt", tmp_path / "out.safetensors"
    save(obj, src)
    with pytest.raises(SaveRefused, match=pattern):
        convert(src, dst)
    assert not dst.exists()


def test_to_torch_pins_the_protocol(tmp_path):
    ckpt = _checkpoint()
    src, dst = tmp_path / "legacy.pt", tmp_path / "out.pt"
    torch.save(ckpt, src, _use_new_zipfile_serialization=False)  # the legacy format, re-saved as a zip
    convert(src, dst, to="torch", protocol=2)
    back = safeload.load(dst)
    for name, t in _flat_tensors(ckpt).items():
        assert torch.equal(_flat_tensors(back)[name], t.detach()), name
    assert back["epoch"] == 4 and back["args"] == ckpt["args"]
    with pytest.raises(ValueError, match="pickle_protocol=2"):
        convert(src, tmp_path / "p1.pt", to="torch", protocol=1)


def test_to_pickle_is_plain_and_old_python_friendly(tmp_path):
    src, dst = tmp_path / "in.pt", tmp_path / "out.pkl"
    save({"w": np.arange(4.0), "epoch": 2, "t": torch.ones(2, dtype=torch.int64)}, src)
    convert(src, dst, to="pickle", protocol=2)
    data = dst.read_bytes()
    assert data[:2] == b"\x80\x02" and max(op.proto for op, _a, _p in pickletools.genops(data)) <= 2
    back = pickle.loads(data)  # numpy's own pickle form: no torch, no safeload needed to read it
    assert back["epoch"] == 2 and back["w"].tolist() == [0.0, 1.0, 2.0, 3.0] and back["t"].dtype == np.int64
    np.testing.assert_array_equal(safeload.load(dst)["w"], np.arange(4.0))


def test_bad_target_and_cli_defaults(tmp_path):
    save({"a": 1}, tmp_path / "a.pkl")
    with pytest.raises(ValueError, match="to must be one of"):
        convert(tmp_path / "a.pkl", tmp_path / "b", to="onnx")
    convert(tmp_path / "a.pkl", tmp_path / "b.pt", to="torch", protocol=None)  # the CLI passes None for "unset"
    assert safeload.load(tmp_path / "b.pt") == {"a": 1}


# ---- safetensors back to torch, and the command line -------------------------------------------------------------

def _cli(*args):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("safeload")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "safeload"]
    return subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_safetensors_to_torch_keeps_epoch_args_and_param_groups(tmp_path):
    ckpt = _checkpoint()
    src, mid, back = tmp_path / "in.pt", tmp_path / "mid.safetensors", tmp_path / "back.pt"
    torch.save(ckpt, src)
    convert(src, mid)
    r = _cli("convert", mid, back)  # no --to: the name says torch
    assert r.returncode == 0, r.stderr
    assert back.read_bytes()[:2] == b"PK"
    got = torch.load(back, weights_only=True)
    assert got["epoch"] == 4 and got["best"] == 0.5 and got["args"] == {"lr": 0.001, "name": "run"}
    assert got["optimizer"]["param_groups"] == json.loads(json.dumps(ckpt["optimizer"]["param_groups"]))
    assert sorted(got["optimizer"]["state"]) == sorted(ckpt["optimizer"]["state"])  # int keys, as torch wrote them
    for name, t in _flat_tensors(ckpt).items():
        assert torch.equal(_flat_tensors(got)[name], t.detach()), name
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model.load_state_dict(got["model"])
    torch.optim.Adam(model.parameters()).load_state_dict(got["optimizer"])


def test_foreign_safetensors_to_torch_keeps_flat_names_and_metadata(tmp_path):
    src, dst = tmp_path / "hf.safetensors", tmp_path / "out.pt"
    st_torch.save_file({"layer.0.weight": torch.ones(2, 2), "bias": torch.zeros(2)}, str(src),
                       metadata={"format": "pt", "epoch": "3", "note": "not json"})
    convert(src, dst, to="torch")
    got = torch.load(dst, weights_only=True)
    assert sorted(got) == ["bias", "epoch", "layer.0.weight", "note"]
    assert got["epoch"] == 3 and got["note"] == "not json" and torch.equal(got["layer.0.weight"], torch.ones(2, 2))


def test_cli_output_name_chooses_the_format_or_refuses(tmp_path):
    src = tmp_path / "in.pt"
    torch.save({"w": torch.ones(3), "epoch": 1}, src)
    for name, magic in (("o.safetensors", None), ("o.pt", b"PK"), ("o.pkl", b"\x80")):
        r = _cli("convert", src, tmp_path / name)
        assert r.returncode == 0, r.stderr
        data = (tmp_path / name).read_bytes()
        assert data.startswith(magic) if magic else st_numpy.load(data)["w"].tolist() == [1.0, 1.0, 1.0]
    r = _cli("convert", src, tmp_path / "o.weird")
    assert r.returncode == 4 and "--to" in r.stderr and not (tmp_path / "o.weird").exists()
    assert _cli("convert", "--to", "torch", src, tmp_path / "o.weird").returncode == 0


def test_cli_missing_output_folder_is_a_clean_error(tmp_path):
    src = tmp_path / "in.pt"
    torch.save({"w": torch.ones(3)}, src)
    r = _cli("convert", src, tmp_path / "no" / "such" / "out.safetensors")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "does not exist" in r.stderr
    r = _cli("convert", src, tmp_path)  # a folder, not a file
    assert r.returncode in (2, 4) and "Traceback" not in r.stderr
