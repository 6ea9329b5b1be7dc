"""Regenerate torch_samples.json: what torch.load returns for each shared torch sample, as dtype, shape, strides
and a SHA-256 of the values' bytes, so that tests without torch can check safeload's numpy arrays exactly.

    python tests/data/make_torch_expectations.py     # needs torch
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "pytorch"


def flatten(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        out[prefix] = [str(t.dtype).replace("torch.", ""), list(t.shape), hashlib.sha256(raw).hexdigest()]
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}/{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}/{i}", out)


def main() -> None:
    result = {}
    for name in ("state_dict.pt", "optimizer_state_dict.pt", "dtypes_views.pt", "full_checkpoint.pt",
                 "state_dict_legacy_format.pt"):
        out: dict[str, list] = {}
        flatten(torch.load(SAMPLES / name, map_location="cpu", weights_only=False), "", out)
        result[name] = out
    target = Path(__file__).with_name("torch_samples.json")
    target.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}: {sum(len(v) for v in result.values())} tensors")


if __name__ == "__main__":
    main()
