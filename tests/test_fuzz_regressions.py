"""Every contract violation the fuzzers in fuzz/ found, kept as a regression test.

Each input is rebuilt here from a description (or a byte literal), run through the same stage function the
harness runs (fuzz/stages.py), and must now end in a SafeLoadError or a result, never anything else. The
fuzzing run that found each one is recorded in README.md ("Hardening").
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from pathlib import Path

import pytest

safeload = pytest.importorskip("safeload")

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))
import common  # noqa: E402
import stages  # noqa: E402


_primed: list[bool] = []


def run_stage(stage: str, data: bytes) -> None:
    """The harness's own check, in crash mode: a violation raises ContractViolation."""
    if not _primed:
        stages.prime()  # safeload's own lazy imports (numpy, py7zr, ...) happen here, as in the harness
        _primed.append(True)
    stages._known_modules.update(sys.modules)  # count only what this input makes the stage import
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


def test_lzma_alone_header_naming_a_4gib_dictionary() -> None:
    """fuzz_formats: 13 bytes of lzma-alone header asked liblzma for a 4 GiB dictionary (MemoryError under the
    harness's address-space cap). The decoder's memory is now capped; the stream is a FormatError."""
    header = b"\x5d\x00\x00\xff\xff" + b"\xff" * 8  # properties 0x5d, dictionary 0xffff0000, size unknown
    with pytest.raises(safeload.FormatError) as info:
        safeload.loads(header + bytes(20))
    assert not isinstance(info.value.__cause__, MemoryError)
    finding = bytes.fromhex("2f0a4908ffffffffffffff5c0408071207466c4cc1aab634120442676f03ff")  # as found
    run_stage("formats", finding)


def test_lzma_streams_with_standard_dictionaries_still_load() -> None:
    import lzma

    for fmt, preset in ((lzma.FORMAT_ALONE, 6), (lzma.FORMAT_XZ, 9)):
        assert safeload.loads(lzma.compress(b"\x80\x02K\x05.", format=fmt, preset=preset)) == 5


def test_mxnet_shape_with_a_zero_and_huge_dimensions() -> None:
    """fuzz_formats: an MXNet aux shape (.., 2**62, .., 0): zero elements, so no bytes, but numpy could not
    reshape to it (ValueError). Shapes whose non-zero dimensions multiply past 2**62 are a FormatError."""
    finding = bytes.fromhex(
        "02120100000000000000000000000000000200000000000000c9fa93f901000000020000000200000000000000030000000000"
        "000002000000040000000000000003000000000000000100000000000000000000000600000006000000010000000300000000"
        "000000060000000100000003000000000000000000803f0000004000004040000000000000000002000000000000000300000000"
        "00000000000000000027000000000000000000020000000000000001000000000000000200000000000000030000000000000072"
        "737003934e554d505900000000000000637372")
    run_stage("formats", finding)
    with pytest.raises(safeload.FormatError):
        from safeload._containers.mxnet import load_mxnet_list

        load_mxnet_list(finding[1:], 1 << 30)
    # the same through the sparse path: a dense shape (2**62 + ..., 0) that numpy cannot create
    finding2 = bytes.fromhex(
        "02120100000000000000000000000000000200000000000000c9fa93f9010000000200000002000000000000000300000000"
        "0000000200000004000000000000000300000000000000010000000000000000000000060000000100000002000000000000"
        "000000803f0000803f0000803f0000803f0000803f0000803f00000000000000000200000000000000c9fa93f90200000001"
        "0000000300000000000000020000000200000000010040000000000000000001000000000000000000000006000000010000"
        "000300000000000000060000000100000003000000000000000000803f000000400000404000000000000000000200000000"
        "000000030000000020000000000000100027000000000000000000020000000000008c024f3894898887945294284b038c01"
        "7c944e4e4e4affffffff4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b"
        "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b628943100000803f0000803f0000803f000080"
        "3f947494628cffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffff000100637372")
    run_stage("formats", finding2)


def test_storage_record_crc_is_seen_by_load_only() -> None:
    """fuzz_scan: a torch checkpoint whose storage record fails its CRC-32 scans clean but does not load. The
    scanner checks record sizes and never reads tensor bytes (they are never run); documented in SECURITY.md,
    and the harness treats it as the one expected difference."""
    from torch_pickles import checkpoint, tensor_ops

    good = checkpoint({"w": tensor_ops("0", "FloatStorage", 4, 0, (4,), (1,))}, {"0": b"\x11" * 16})
    bad = good.replace(b"\x11" * 16, b"\x22" * 16)  # same length, so the headers still agree; the CRC does not
    assert safeload.loads(good, tensors="numpy")["w"].shape == (4,)
    with pytest.raises(safeload.FormatError, match="CRC-32"):
        safeload.loads(bad, tensors="numpy")
    from safeload._scan import scan

    assert scan(bad).exit_code == 0
    run_stage("scan", bad)


def test_scan_of_a_corrupt_7z_is_an_error_not_a_crash() -> None:
    """fuzz_scan: py7zr's CrcError / Bad7zFile escaped safeload.scan (a 7z holding an os.system pickle, one
    byte changed). The scanner now reports the archive as malformed (exit 2)."""
    pytest.importorskip("py7zr")
    from safeload._scan import scan

    finding = bytes.fromhex(
        "377abcaf271c00045e0572488300000000000000140000000000000071e175270100208002636f730a737900000017062501"
        "095e00070b016368204d41524b455285522e00e0005800565d0000813307ae0fd05a5b7c9f39109c6dfb6a5c46c88749b2b6"
        "da4d498b3264b3a93603064cca307eca622c9c1b638d72640318c550dbc8d45613a52f947b95b5a5f358d69337bccfcca44e"
        "3e6b7f8df667c2578a6000000017062501095e00070b010001212101180c590000")
    report = scan(finding)
    assert report.exit_code == 2 and report.findings[0].rule == "malformed"
    run_stage("scan", finding)


def test_scan_reports_out_of_memory_as_load_does() -> None:
    """fuzz_scan: an MXNet sparse array whose dense shape needs terabytes raised MemoryError out of
    safeload.scan; load reported it as LimitExceededError. The scanner now runs load's own wrapper."""
    from safeload._scan import scan

    finding = bytes.fromhex(
        "120100000000000000000000000000000200000000000000c9fa93f901000000020000000200000000000000030000000000"
        "0000020000000400000000000000030000000000000001000000000000000000000006000000010000000200000000000000"
        "0000803f0000803f0000803f0000803f0000803f0000803f00000000000000000200000000000000c9fa93f9020000000100"
        "0000030000000000000002000000020000960000000003000000000000000100000000000000000000000600000001000000"
        "0300000000000000060000000100000003000000000000000000803f00000040000040400000000000000000020000000000"
        "0000030000000000000000000000000000000200000000000000010000000000000002000000000000000300000000000000"
        "0000000000000000000000637372")
    with pytest.raises(safeload.LimitExceededError):
        safeload.loads(finding)
    report = scan(finding)
    assert report.exit_code == 2 and report.findings[0].rule == "limit-exceeded", report.to_dict()
    run_stage("scan", finding)


def test_persistent_id_holding_an_array_is_refused_not_compared() -> None:
    """fuzz_rebuild (CI smoke, FUZZ_SEED=1): a data.pkl whose persistent id starts with a two-element ndarray
    raised ValueError from ``pid[0] != "storage"`` (an array's ``!=`` is elementwise, its truth value raises).
    Values from the file are now compared by type first (safeload/_types.py, is_one_of); tests/test_hostile_values.py
    tries the same at every value of the real samples."""
    import numpy as np

    array = pickle.dumps(np.array([1, 2]), protocol=2)[2:-1]  # the ndarray's opcodes, without PROTO and STOP
    pkl = b"\x80\x02(" + array + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ."  # BINPERSID((array, '0', 'cpu', 1))
    pkl = pkl.replace(b"(" + array, b"(" + array + b"N", 1)  # five fields: (array, None, '0', 'cpu', 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
    with pytest.raises(safeload.FormatError, match="Unknown persistent id") as info:
        safeload.loads(buf.getvalue())
    assert not isinstance(info.value, safeload.InternalError)
    run_stage("rebuild", b"\x00" + pkl)
