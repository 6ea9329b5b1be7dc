"""Open the bundled examples with safeload: a benign checkpoint loads, a malicious one is refused without running.

    python examples/demo.py

Exit status 0 when both behave as expected, 1 otherwise. Run make_examples.py to regenerate the files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import safeload

HERE = Path(__file__).resolve().parent
MARKER = Path("/tmp/safeload-demo-marker")  # what malicious.pkl would create if its code ran


def summarize(obj: object) -> None:
    print(f"  type: {type(obj).__name__}, keys: {sorted(obj)}")  # type: ignore[call-overload]
    for name, value in obj["state_dict"].items():  # type: ignore[index]
        print(f"    state_dict[{name!r}]: {type(value).__name__} {value.dtype} shape={tuple(value.shape)}")
    print(f"  epoch: {obj['epoch']}")  # type: ignore[index]
    print(f"  hparams: {obj['hparams']}")  # type: ignore[index]
    losses = obj["losses"]  # type: ignore[index]
    print(f"  losses: {len(losses)} values, last {losses[-1]}")


def main() -> int:
    ok = True

    print(f"safeload.load({'benign.pkl'!r}):")
    try:
        checkpoint = safeload.load(HERE / "benign.pkl")
    except safeload.SafeLoadError as err:
        print(f"  UNEXPECTED refusal: {err}")
        ok = False
    else:
        summarize(checkpoint)

    print(f"\nsafeload.load({'malicious.pkl'!r}):")
    if MARKER.exists():
        os.remove(MARKER)
    try:
        safeload.load(HERE / "malicious.pkl")
    except safeload.SafeLoadError as err:
        print(f"  refused: {type(err).__name__}")
        print(f"  message: {err}")
    else:
        print("  UNEXPECTED: the malicious file loaded")
        ok = False
    if MARKER.exists():
        print(f"  FAIL: {MARKER} was created, so the payload ran")
        ok = False
    else:
        print(f"  {MARKER} was not created: nothing from the file ran")

    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
