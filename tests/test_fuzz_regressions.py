"""Every contract violation the fuzzers in fuzz/ found, kept as a regression test.

Each input is rebuilt here from a description (or a byte literal), run through the same stage function the
harness runs (fuzz/stages.py), and must now end in a SafeLoadError or a result, never anything else. The
fuzzing run that found each one is recorded in README.md ("Hardening").
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

safeload = pytest.importorskip("safeload")

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))
import common  # noqa: E402
import stages  # noqa: E402


def run_stage(stage: str, data: bytes) -> None:
    """The harness's own check, in crash mode: a violation raises ContractViolation."""
    try:
        stages.STAGES[stage](data)
    except common.ContractViolation:
        raise
    except BaseException as exc:  # noqa: BLE001
        common.check_error(exc)


def _zip_with_bad_utf8_name() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02N.")
    data = bytearray(buf.getvalue())
    for sig, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        data[pos + flags_at + 1] |= 0x08  # flag bit 11 (0x800, in the high byte): the name is UTF-8
    return bytes(data).replace(b"archive/data.pkl", b"\xffrchive/data.pkl")


def test_zip_name_invalid_utf8_is_format_error() -> None:
    """fuzz_zip, fuzz_torch: a member name flagged UTF-8 that is not, raised UnicodeDecodeError."""
    data = _zip_with_bad_utf8_name()
    with pytest.raises(safeload.FormatError) as info:
        safeload.loads(data)
    assert "UTF-8" in str(info.value) and "Unexpected" not in str(info.value)
    run_stage("zip", data)
    run_stage("torch", b"\x00" + data)
