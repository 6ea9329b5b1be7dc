"""Shared by every harness in fuzz/: the contract, the memory cap and the findings log.

Contract: on any input, only ``safeload.SafeLoadError`` may leave a stage, and never its
``InternalError`` subclass (an unexpected exception inside safeload). Anything else is a crash. A ``LimitExceededError`` caused by a ``MemoryError`` is a crash too: it means safeload tried an
allocation larger than the address-space cap set here before checking a limit. A harness also fails if a module
the input names gets imported.

With ``SAFELOAD_FUZZ_COLLECT=1`` (what ``run_all.sh`` sets for long runs) a violation is written to
``fuzz/findings/<harness>/`` with its traceback and the run goes on, so that one bug does not end a 10-minute run;
without it (the CI smoke), a violation raises and libFuzzer stops with a crash file.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

#: address-space cap for the harness process (libFuzzer's -rss_limit_mb is the second line of defence)
MEMORY_CAP = int(os.environ.get("SAFELOAD_FUZZ_AS_MB", "3072")) << 20

_COLLECT = os.environ.get("SAFELOAD_FUZZ_COLLECT") == "1"
_seen: set[str] = set()


def cap_memory() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = MEMORY_CAP if hard == resource.RLIM_INFINITY else min(MEMORY_CAP, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


class ContractViolation(Exception):
    """Something other than a SafeLoadError left safeload, or a limit was hit only by running out of memory."""


def check_error(exc: BaseException) -> None:
    import safeload

    if isinstance(exc, safeload.SafeLoadError):
        cause = exc.__cause__
        if isinstance(cause, MemoryError):
            raise ContractViolation(f"limit hit only by running out of memory: {exc}") from exc
        if isinstance(exc, safeload.InternalError):  # a safeload bug, whatever layer converted it
            raise ContractViolation(f"internal error: {exc}") from exc
        return
    raise ContractViolation(f"{type(exc).__name__} escaped: {exc}") from exc


def report(harness: str, data: bytes, exc: BaseException) -> None:
    """Record a violation (collect mode) or re-raise it (crash mode)."""
    if not _COLLECT:
        raise exc
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    cause = exc.__cause__ or exc
    frames = traceback.extract_tb(cause.__traceback__)
    last = next((f for f in reversed(frames) if "safeload" in f.filename), frames[-1] if frames else None)
    key = f"{type(cause).__name__}:{last.filename if last else ''}:{last.lineno if last else 0}"
    if cause is exc:  # a violation the harness itself found (a disagreement): one per distinct message
        key += ":" + str(exc)[:80]
    if key in _seen:
        return
    _seen.add(key)
    out = HERE / "findings" / harness
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:16]
    (out / f"{digest}.bin").write_bytes(data)
    (out / f"{digest}.txt").write_text(key + "\n\n" + "".join(tb))
    print(f"[finding] {harness}: {key} -> {out / digest}", file=sys.stderr, flush=True)


def guarded(harness: str, stage):  # type: ignore[no-untyped-def]
    """Wrap ``stage(data)`` into a libFuzzer entry point that enforces the contract."""
    def one_input(data: bytes) -> None:
        try:
            stage(data)
        except ContractViolation as exc:
            report(harness, data, exc)
        except BaseException as exc:  # noqa: BLE001 - the contract is exactly "only SafeLoadError"
            if isinstance(exc, KeyboardInterrupt):
                raise
            try:
                check_error(exc)
            except ContractViolation as violation:
                report(harness, data, violation)
    return one_input


def main(harness: str, stage) -> None:  # type: ignore[no-untyped-def]
    import atheris

    cap_memory()
    atheris.Setup(sys.argv, guarded(harness, stage))
    atheris.Fuzz()


def instrumented_safeload():  # type: ignore[no-untyped-def]
    """Import safeload and every lazily imported submodule under atheris' coverage instrumentation."""
    import atheris

    with atheris.instrument_imports(include=["safeload"]):
        import safeload
        import safeload._containers.compressed
        import safeload._containers.mindspore
        import safeload._containers.mxnet
        import safeload._containers.npy
        import safeload._containers.paddle
        import safeload._containers.safetensors
        import safeload._containers.torch
        import safeload._containers.zip
        import safeload._detect
        import safeload._opcodes
        import safeload._scan
        import safeload._vm  # noqa: F401
        import pkgutil
        import importlib

        for info in pkgutil.walk_packages(safeload.__path__, "safeload."):
            if info.name.split(".")[-1] in ("_cli", "__main__", "_patch"):
                continue
            importlib.import_module(info.name)
    import numpy  # noqa: F401  (warm: the rebuilders import it lazily)
    return safeload
