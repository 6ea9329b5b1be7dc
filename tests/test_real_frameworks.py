"""safeload against the real Paddle and MindSpore, on files they write in the test.

These run in their own lane of .ci/run (a venv with the paddlepaddle 3.3.1 and mindspore 2.10.0 CPU wheels and
without torch); in the main lanes, where neither is installed, every test here is skipped with that reason. For
each framework: safeload's result equals the framework's own load of the same file; ``safeload.patch("paddle")``
keeps ``paddle.load``'s return types and refuses a .pdparams whose pickle runs code under the real paddle.load
(shown in a child process first).

mindspore is imported before paddle: both wheels ship their own oneDNN, and importing paddle first makes
mindspore's CPU kernels fail to load (undefined symbol ``dnnl_threadpool_interop_stream_create``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import safeload
from safeload._containers.paddle import paddle_result

try:  # first: see the module docstring
    import mindspore as ms
except ImportError:
    ms = None
try:
    import paddle
except ImportError:
    paddle = None

needs_paddle = pytest.mark.skipif(paddle is None, reason="paddlepaddle is not installed (it runs in the "
                                                          "real-frameworks lane of .ci/run)")
needs_mindspore = pytest.mark.skipif(ms is None, reason="mindspore is not installed (it runs in the "
                                                         "real-frameworks lane of .ci/run)")

MARKER = "safeload-real-frameworks-marker"


class _Payload:
    def __reduce__(self):
        return (open, (MARKER, "w"))


@pytest.fixture(autouse=True)
def _restore():
    yield
    safeload.unpatch()


# ---- Paddle --------------------------------------------------------------------------------------------------------

def _paddle_files(tmp_path: Path) -> dict[str, Path]:
    """What paddle.save writes for the usual objects: a layer's state dict, an optimizer's (with an LR scheduler),
    a lone tensor, a nested checkpoint of several dtypes, and protocol 2."""
    paddle.seed(0)
    net = paddle.nn.Linear(3, 4)
    sched = paddle.optimizer.lr.StepDecay(learning_rate=0.1, step_size=2)
    opt = paddle.optimizer.Adam(learning_rate=sched, parameters=net.parameters())
    loss = net(paddle.randn([2, 3])).sum()
    loss.backward()
    opt.step()
    sched.step()
    files = {name: tmp_path / name for name in ("linear.pdparams", "adam.pdopt", "weight.pdtensor",
                                                 "nested.pdparams", "proto2.pdparams")}
    paddle.save(net.state_dict(), str(files["linear.pdparams"]))
    paddle.save(opt.state_dict(), str(files["adam.pdopt"]))
    paddle.save(net.weight, str(files["weight.pdtensor"]))
    paddle.save({"model": net.state_dict(), "epoch": 3, "cfg": {"lr": 0.1, "names": ["a", "b"], "t": (1, None)},
                 "f16": paddle.to_tensor(np.arange(4, dtype=np.float16)),
                 "i64": paddle.to_tensor(np.array([[1, -2]], dtype=np.int64)),
                 "mask": paddle.to_tensor(np.array([True, False]))}, str(files["nested.pdparams"]))
    paddle.save(net.state_dict(), str(files["proto2.pdparams"]), protocol=2)
    return files


def _same_paddle(got, want, where="") -> None:
    if isinstance(want, paddle.Tensor):
        assert isinstance(got, paddle.Tensor), where
        assert got.dtype == want.dtype and got.shape == want.shape and got.name == want.name, where
        assert got.stop_gradient == want.stop_gradient, where
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=where)
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, where
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, dict):
        assert type(got) is type(want) and list(got) == list(want), where
        for key in want:
            _same_paddle(got[key], want[key], f"{where}/{key}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            _same_paddle(a, b, f"{where}[{i}]")
    else:
        assert type(got) is type(want) and got == want, where


@needs_paddle
def test_patched_paddle_load_equals_paddle_load(tmp_path):
    files = _paddle_files(tmp_path)
    original = paddle.load
    for name, path in files.items():
        want = original(str(path))
        want_numpy = original(str(path), return_numpy=True)
        with safeload.patched("paddle"):
            assert paddle.load is not original
            _same_paddle(paddle.load(str(path)), want, name)
            _same_paddle(paddle.load(str(path), return_numpy=True), want_numpy, name)
        assert paddle.load is original
        # safeload.load returns the pickle's content; Paddle's post-processing (name table, tensors) on top of it
        # gives what paddle.load(return_numpy=True) gives
        _same_paddle(paddle_result(safeload.load(path), return_numpy=True), want_numpy, name)


@needs_paddle
def test_patched_paddle_load_refuses_a_payload_the_real_one_runs(tmp_path):
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"weight": np.ones((2, 2), np.float32), "x": _Payload()}, protocol=4))
    native = tmp_path / "native"
    native.mkdir()
    proc = subprocess.run([sys.executable, "-c", "import sys, paddle; paddle.load(sys.argv[1])", str(evil)],
                          cwd=native, capture_output=True, text=True, timeout=300)
    assert (native / MARKER).exists(), f"the payload is not live under paddle.load: {proc.stderr[-2000:]}"
    work = tmp_path / "work"
    work.mkdir()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        safeload.patch("paddle")
        with pytest.raises(safeload.UnsafeGlobalError):
            paddle.load(str(evil))
        with pytest.raises(safeload.UnsafeGlobalError):
            paddle.load(str(evil), return_numpy=True)
    finally:
        os.chdir(cwd)
    assert not (work / MARKER).exists()


@needs_paddle
def test_patched_paddle_save_pins_the_protocol_and_checks(tmp_path):
    safeload.patch("paddle")
    state = OrderedDict(w=paddle.to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3)))
    paddle.save(state, str(tmp_path / "out.pdparams"))
    raw = (tmp_path / "out.pdparams").read_bytes()
    assert raw[:2] == b"\x80\x04"
    np.testing.assert_array_equal(paddle.load(str(tmp_path / "out.pdparams"))["w"].numpy(), state["w"].numpy())
    paddle.save(state, str(tmp_path / "out2.pdparams"), protocol=2)
    assert (tmp_path / "out2.pdparams").read_bytes()[:2] == b"\x80\x02"


# ---- MindSpore -----------------------------------------------------------------------------------------------------

def _mindspore_files(tmp_path: Path) -> dict[str, Path]:
    """What mindspore.save_checkpoint writes: a network, a network with its optimizer and appended values, a CRC
    trailer, the list form with several dtypes (bfloat16 included), and a tensor split into slices."""
    import mindspore.train.serialization as serialization
    from mindspore import Tensor, nn

    ms.set_seed(0)
    net = nn.Dense(3, 4)
    train = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()),
                                nn.Adam(net.trainable_params(), learning_rate=1e-3))
    files = {name: tmp_path / name for name in ("dense.ckpt", "adam.ckpt", "crc.ckpt", "dtypes.ckpt",
                                                 "sliced.ckpt")}
    ms.save_checkpoint(net, str(files["dense.ckpt"]))
    ms.save_checkpoint(train, str(files["adam.ckpt"]), append_dict={"epoch_num": 3, "lr": 0.5, "tag": "hello",
                                                                    "flag": True})
    ms.save_checkpoint(net, str(files["crc.ckpt"]), crc_check=True)
    ms.save_checkpoint([
        {"name": "f16", "data": Tensor(np.arange(6, dtype=np.float16).reshape(2, 3))},
        {"name": "f64", "data": Tensor(np.arange(3, dtype=np.float64))},
        {"name": "i8", "data": Tensor(np.arange(-2, 2, dtype=np.int8))},
        {"name": "i64", "data": Tensor(np.arange(4, dtype=np.int64))},
        {"name": "u8", "data": Tensor(np.arange(4, dtype=np.uint8))},
        {"name": "b", "data": Tensor(np.array([True, False]))},
        {"name": "bf16", "data": Tensor(np.array([1.0, 2.5, -3.0], np.float32), ms.bfloat16)},
        {"name": "scalar", "data": Tensor(1.5, ms.float32)},
    ], str(files["dtypes.ckpt"]))
    slice_kb = serialization.SLICE_SIZE
    serialization.SLICE_SIZE = 1  # kilobytes per slice: the 12 KB tensor is written as several values
    try:
        ms.save_checkpoint([{"name": "big", "data": Tensor(np.arange(3000, dtype=np.float32).reshape(30, 100))}],
                           str(files["sliced.ckpt"]))
    finally:
        serialization.SLICE_SIZE = slice_kb
    return files


def _mindspore_arrays(loaded: dict) -> dict:
    out = {}
    for key, value in loaded.items():
        if isinstance(value, ms.Tensor):
            out[key] = (value.float().asnumpy().astype(np.float32) if value.dtype == ms.bfloat16
                        else value.asnumpy())
        else:
            out[key] = value
    return out


@needs_mindspore
def test_safeload_mindspore_checkpoints_equal_load_checkpoint(tmp_path):
    for name, path in _mindspore_files(tmp_path).items():
        want = _mindspore_arrays(ms.load_checkpoint(str(path)))
        got = safeload.load(path)
        assert list(got) == list(want), name
        for key, value in want.items():
            mine = got[key]
            if isinstance(value, np.ndarray):
                assert isinstance(mine, np.ndarray), (name, key)
                if str(mine.dtype) == "bfloat16":
                    mine = mine.astype(np.float32)
                assert mine.dtype == value.dtype and mine.shape == value.shape, (name, key)
                np.testing.assert_array_equal(mine, value, err_msg=f"{name}/{key}")
            else:
                assert mine == value, (name, key)


@needs_mindspore
def test_mindspore_encrypted_and_damaged_checkpoints_refused(tmp_path):
    from mindspore import nn

    net = nn.Dense(3, 4)
    enc = tmp_path / "enc.ckpt"
    ms.save_checkpoint(net, str(enc), enc_key=b"0123456789abcdef", enc_mode="AES-GCM")
    assert set(ms.load_checkpoint(str(enc), dec_key=b"0123456789abcdef", dec_mode="AES-GCM")) == {"weight", "bias"}
    with pytest.raises(safeload.FormatError) as info:
        safeload.load(enc)
    assert "dec_key" in info.value.fix
    crc = tmp_path / "crc.ckpt"
    ms.save_checkpoint(net, str(crc), crc_check=True)
    raw = bytearray(crc.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte inside the tensor data
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(Exception):  # mindspore's own CRC check refuses it
        ms.load_checkpoint(str(bad), crc_check=True)
    with pytest.raises(safeload.FormatError):
        safeload.load(bad)
