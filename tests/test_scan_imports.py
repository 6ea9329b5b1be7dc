"""A scan checks MXNet NDArray files as a load does but builds no dense array, so it imports neither numpy nor
ml_dtypes (safeload/_containers/mxnet.py, ``build=False``). The MindSpore and Paddle readers do the same; their
tests are in tests/test_protobuf.py.

Real files: /work/shared/samples/mxnet (written by MXNet's own ``mx.nd.save`` and Gluon; see make_samples.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from test_protobuf import _only_good_loads, _scan_fresh  # load, and scan in a fresh interpreter

import safeload

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "mxnet"

def _dense(shape: tuple[int, ...], flag: int, content: bytes) -> bytes:
    """A V2 dense NDArray record as ``mx.nd.save`` writes it: magic, storage type 0, shape, context, type flag, data."""
    return (struct.pack("<Ii", 0xF993FAC9, 0) + struct.pack(f"<i{len(shape)}q", len(shape), *shape)
            + struct.pack("<iii", 1, 0, flag) + content)


def _list_file(records: list[bytes], names: list[str]) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records) + struct.pack("<Q", len(names))
    return out + b"".join(struct.pack("<Q", len(n.encode())) + n.encode() for n in names)


@pytest.mark.parametrize("name", ["gluon_net.params", "ndlist.params", "nddict.params", "npx_v3.params"])
def test_real_dense_files_scan_without_numpy(name: str) -> None:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip("MXNet samples not present")
    assert safeload.load(path) is not None
    assert _scan_fresh(path) == ("clean", "-")


def test_scan_refuses_what_load_refuses_without_building(tmp_path: Path) -> None:
    bf16 = bytes.fromhex("803f204040c0")  # 1.0, 2.5, -3.0 as bfloat16
    files = {
        "good": _list_file([_dense((3,), 12, bf16), _dense((2,), 0, bytes(8))], ["w", "b"]),
        "bad_shape": _list_file([_dense((4,), 12, bf16)], ["w"]),  # 4 values need 8 bytes: the record overruns
        "bad_flag": _list_file([_dense((3,), 99, bf16)], ["w"]),
    }
    loaded = _only_good_loads(tmp_path, files, ".params")
    assert [float(x) for x in loaded["w"]] == [1.0, 2.5, -3.0] and loaded["b"].tolist() == [0.0, 0.0]
