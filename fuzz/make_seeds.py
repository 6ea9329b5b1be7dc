"""Write the seed inputs of every harness to fuzz/.seeds/<stage>/: the adversarial corpus (tests/corpus.py and
tests/corpus_containers.py), benign pickles of every protocol, hand-built torch checkpoints and the shared real
samples (../shared/samples, when present). Generated, never stored: ``python fuzz/make_seeds.py``."""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import common  # noqa: F401  (sets sys.path)

SEEDS = common.HERE / ".seeds"
SAMPLES = common.REPO.parent / "shared" / "samples"
MAX_SEED = 256 << 10


def _benign() -> list[bytes]:
    import numpy as np

    values = [None, True, 1, -(2**70), 1.5, 1j, "s\u00e9", b"b", bytearray(b"ba"), [1, [2]], (1, (2,)), {"a": {1: 2}},
              {1, 2}, frozenset({3}), OrderedDict(a=1), np.arange(6, dtype=np.float32).reshape(2, 3),
              np.array(["x", None], dtype=object), np.float64(2.5), slice(1, 2), range(3)]
    out = []
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        out.append(pickle.dumps(values, protocol=proto))
        out += [pickle.dumps(v, protocol=proto) for v in values[::3]]
    return out


def _samples(*suffixes: str) -> list[bytes]:
    if not SAMPLES.is_dir():
        return []
    out = []
    for p in sorted(SAMPLES.rglob("*")):
        if p.is_file() and p.stat().st_size <= MAX_SEED and (not suffixes or p.name.endswith(suffixes)):
            out.append(p.read_bytes())
    return out


def _data_pkls(zips: list[bytes]) -> list[bytes]:
    out = []
    for z in zips:
        try:
            with zipfile.ZipFile(io.BytesIO(z)) as zf:
                out += [zf.read(n) for n in zf.namelist() if n.endswith("data.pkl")]
        except zipfile.BadZipFile:
            pass
    return out


def build() -> dict[str, list[bytes]]:
    import corpus
    import torch_pickles

    pickles = [c.data for c in corpus.CORPUS] + _benign()
    try:
        import corpus_containers

        containers = [c.data for c in corpus_containers.CONTAINER_CORPUS]
    except ImportError:
        containers = []
    samples = _samples()
    torch_zips = [s for s in samples if s[:2] == b"PK"]
    tp = [torch_pickles.checkpoint({"w": torch_pickles.tensor_ops("0", "FloatStorage", 6, 0, (2, 3), (3, 1))},
                                   {"0": bytes(24)}),
          torch_pickles.checkpoint({"w": torch_pickles.tensor_ops("0", "HalfStorage", 4, 1, (3,), (1,)),
                                    "v": torch_pickles.tensor_ops("0", "HalfStorage", 4, 0, (2, 2), (1, 2))},
                                   {"0": bytes(8)})]
    torch_zips += tp
    legacy = [s for s in samples if s.startswith(b"\x80\x02\x8a\x0al\xfc")]
    pkls = _data_pkls(torch_zips)
    other = [s for s in samples if s[:2] != b"PK"]
    return {
        "detect": pickles[:40] + samples + containers,
        "zip": torch_zips + [s for s in samples if s[:2] == b"PK"],
        "torch": [b"\x00" + z for z in torch_zips] + [b"\x01" + s for s in legacy] + [b"\x02" + c for c in containers
                                                                                       if c[257:262] == b"ustar"],
        "formats": [bytes([sel]) + s for s in other for sel in range(8)
                    if _fits(sel, s)],
        "vm": pickles + pkls + [s for s in other if s[:1] == b"\x80"],
        "rebuild": [b"\x00" + p for p in pkls] + [b"\x01" + p for p in pkls[:3]],
        "scan": pickles[:60] + samples + containers,
    }


def _fits(sel: int, data: bytes) -> bool:
    from safeload._containers import compressed
    from safeload._detect import detect

    kind = detect(data)
    return {0: kind == "npy", 1: kind == "safetensors", 2: kind == "mxnet", 3: kind == "mindspore",
            4: kind == "paddle-tensor"}.get(sel, compressed.sniff(data) is not None and sel == 5)


def main() -> None:
    for stage, seeds in build().items():
        folder = SEEDS / stage
        folder.mkdir(parents=True, exist_ok=True)
        for s in seeds:
            if len(s) <= MAX_SEED + 1:
                (folder / hashlib.sha1(s).hexdigest()).write_bytes(s)
        print(f"{stage}: {len(list(folder.iterdir()))} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
