"""Write the two example files that demo.py opens: a benign training checkpoint and a malicious pickle.

    python examples/make_examples.py

benign.pkl    a small training checkpoint: {"state_dict": OrderedDict of numpy arrays, "epoch": int,
              "hparams": argparse.Namespace, "losses": [float, ...]}
malicious.pkl a pickle whose REDUCE would call os.system("echo pwned > /tmp/safeload-demo-marker") if opened
              with pickle.load or torch.load(weights_only=False). Its only effect would be that harmless marker file.
              This script writes it and never loads it.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MARKER = "/tmp/safeload-demo-marker"


class Payload:
    """Pickles as os.system(<command>): the classic malicious checkpoint, with a harmless command."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"echo pwned > {MARKER}",))


def benign_checkpoint() -> dict[str, object]:
    rng = np.random.default_rng(1234)
    state_dict = OrderedDict(
        [
            ("encoder.weight", rng.standard_normal((64, 32)).astype(np.float32)),
            ("encoder.bias", np.zeros(64, dtype=np.float32)),
            ("decoder.weight", rng.standard_normal((10, 64)).astype(np.float32)),
            ("decoder.bias", np.zeros(10, dtype=np.float32)),
            ("step", np.array(1500, dtype=np.int64)),
        ]
    )
    hparams = argparse.Namespace(lr=3e-4, batch_size=32, optimizer="adam", betas=(0.9, 0.999), dropout=0.1)
    return {
        "state_dict": state_dict,
        "epoch": 12,
        "hparams": hparams,
        "losses": [round(2.0 / (1 + 0.3 * i), 4) for i in range(12)],
    }


def main() -> None:
    (HERE / "benign.pkl").write_bytes(pickle.dumps(benign_checkpoint(), protocol=4))
    (HERE / "malicious.pkl").write_bytes(pickle.dumps(Payload(), protocol=4))
    print(f"wrote {HERE / 'benign.pkl'} and {HERE / 'malicious.pkl'}")


if __name__ == "__main__":
    main()
