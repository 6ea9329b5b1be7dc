"""torch checkpoints open without torch: run in a child interpreter where `import torch` fails, so this runs (and
cannot silently skip) both where torch is installed and where it is not. Values are checked against what torch.load
returned for the same files (tests/data/torch_samples.json, made by tests/data/make_torch_expectations.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from samples_path import SAMPLES as SHARED_SAMPLES

SAMPLES = SHARED_SAMPLES / "pytorch"
EXPECTED = json.loads((Path(__file__).parent / "data" / "torch_samples.json").read_text())

CHILD = r"""
import hashlib, json, sys
sys.modules["torch"] = None          # `import torch` now raises ImportError, as on a machine without torch
import numpy as np, safeload
obj = safeload.load(sys.argv[1], map_location="cuda:0")   # any location maps to host memory without torch
out = {}
def flatten(o, prefix):
    if isinstance(o, np.ndarray) and o.dtype != object:
        raw = np.ascontiguousarray(o).reshape(-1).view(np.uint8).tobytes()
        out[prefix] = [o.dtype.name, list(o.shape), hashlib.sha256(raw).hexdigest()]
    elif isinstance(o, dict):
        for k, v in o.items():
            flatten(v, f"{prefix}/{k}")
    elif isinstance(o, (list, tuple)):
        for i, v in enumerate(o):
            flatten(v, f"{prefix}/{i}")
flatten(obj, "")
print(json.dumps({"torch_imported": "torch" in sys.modules and sys.modules["torch"] is not None, "tensors": out}))
"""

NUMPY_NAMES = {"float32": "float32", "float64": "float64", "float16": "float16", "int64": "int64", "int8": "int8",
               "uint8": "uint8", "bool": "bool", "complex64": "complex64", "bfloat16": "bfloat16",
               "float8_e4m3fn": "float8_e4m3fn"}


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_sample_without_torch_matches_torch_load(sample):
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    expected = EXPECTED[sample]
    if any(v[0] in ("bfloat16", "float8_e4m3fn") for v in expected.values()):
        pytest.importorskip("ml_dtypes", reason="bfloat16/float8 arrays need ml_dtypes without torch")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["torch_imported"]
    got = result["tensors"]
    # numpy arrays that were numpy in the checkpoint too (full_checkpoint's np_array) are extra; every torch
    # tensor must be there with the same dtype, shape and bytes
    for key, (dtype, shape, digest) in expected.items():
        assert key in got, key
        assert got[key] == [NUMPY_NAMES[dtype], shape, digest], key
