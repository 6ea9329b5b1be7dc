"""Denial of service under a memory cap: each attack runs in a child process with ``RLIMIT_AS`` at 2 GiB and a
wall-clock timeout, through ``safeload.load`` and through ``safeload.scan``. A pass means a SafeLoadError (or a
small result) within the time cap, the child alive, and time that grows with the input, not with what it claims.

Complements test_limits.py (memo bombs, length claims, MARK nesting, hash collisions, allocating constructors)
with the attacks that need big inputs or containers: zip and zstd bombs, a 20 MB opcode flood, 100k-deep
nesting without MARKs through the scanner, exponential graphs inside a checkpoint, and archive member floods.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

safeload = pytest.importorskip("safeload")

REPO = Path(__file__).resolve().parents[1]
CAP = 2 << 30

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    cap = int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import safeload
    from safeload._scan import scan
    mode, path, limits = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    policy = safeload.DEFAULT_POLICY.with_limits(**limits) if limits else None
    out = {"ok": False}
    t0 = time.perf_counter()
    try:
        if mode == "load":
            result = safeload.load(path, tensors="numpy", policy=policy)
            out["ok"] = True
            out["type"] = type(result).__name__
        else:
            report = scan(path, policy=policy)
            out["ok"] = True
            out["exit"] = report.exit_code
            out["rules"] = [f.rule for f in report.findings][:5]
    except BaseException as e:
        out["exc"] = type(e).__name__
        out["mro"] = [c.__name__ for c in type(e).__mro__]
        out["limit"] = getattr(e, "limit", None)
        out["msg"] = str(e)[:300]
        out["cause"] = type(e.__cause__).__name__ if e.__cause__ else None
    out["elapsed"] = time.perf_counter() - t0
    print(json.dumps(out))
    """
)


def child(mode: str, data: bytes, tmp_path: Path, timeout: float = 60, cap: int = CAP, **limits: int) -> dict:
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), json.dumps(limits), str(cap)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def refused(res: dict, seconds: float, limit: str | None = None, memory_ok: bool = False) -> None:
    """A SafeLoadError within ``seconds``; not an out-of-memory conversion unless ``memory_ok``."""
    assert not res["ok"], res
    assert "SafeLoadError" in res["mro"], res
    assert res["elapsed"] < seconds, res
    if limit is not None:
        assert res["limit"] == limit, res
    if not memory_ok:
        assert res["cause"] != "MemoryError", res


def scan_not_clean(res: dict, seconds: float) -> None:
    assert res["ok"] and res["exit"] in (1, 2), res
    assert res["elapsed"] < seconds, res


# ---- zip bombs -----------------------------------------------------------------------------------------------


def _deflate_zeros(n: int) -> bytes:
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk = bytes(1 << 22)
    parts = [comp.compress(chunk) for _ in range(n // len(chunk))]
    return b"".join(parts) + comp.flush()


def _zip_with_raw_member(name: str, raw: bytes, usize: int, crc: int = 0) -> bytes:
    """One deflated member whose headers declare ``usize``: built by hand so the declared size can lie."""
    nb = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), usize, len(nb), 0) + nb
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), usize, len(nb),
                          0, 0, 0, 0, 0, 0) + nb
    body = local + raw
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + eocd


@pytest.fixture(scope="module")
def zeros_1g() -> bytes:
    return _deflate_zeros(512 << 20)  # a few MB of deflate that inflate to 512 MiB


def test_zip_bomb_declared_size_over_limit(zeros_1g: bytes, tmp_path: Path) -> None:
    data = _zip_with_raw_member("archive/data.pkl", zeros_1g, 512 << 20)
    refused(child("load", data, tmp_path, max_alloc=64 << 20), 1.0, limit="max_alloc")
    scan_not_clean(child("scan", data, tmp_path, max_alloc=64 << 20), 2.0)


def test_zip_bomb_that_lies_about_its_size(zeros_1g: bytes, tmp_path: Path) -> None:
    # declares 1 KiB, inflates to 512 MiB: inflation stops at the declared size + 1
    data = _zip_with_raw_member("archive/data.pkl", zeros_1g, 1024)
    refused(child("load", data, tmp_path), 1.0)
    scan_not_clean(child("scan", data, tmp_path), 2.0)


def test_zip_bomb_default_limits_stay_under_the_cap(zeros_1g: bytes, tmp_path: Path) -> None:
    # declares its true 512 MiB (under the default max_alloc): inflated in bounded time, refused as a pickle
    data = _zip_with_raw_member("archive/data.pkl", zeros_1g, 512 << 20)
    refused(child("load", data, tmp_path), 15.0, memory_ok=True)


# ---- zstd bombs -----------------------------------------------------------------------------------------------


def _zstd_rle_bomb(nblocks: int) -> bytes:
    """A zstd frame of ``nblocks`` RLE blocks of 128 KiB zeros: 4 bytes of input per 128 KiB of output."""
    out = bytearray(b"\x28\xb5\x2f\xfd" + b"\x00" + b"\x38")  # magic, no content size, window 128 KiB
    for i in range(nblocks):
        last = 1 if i == nblocks - 1 else 0
        out += ((131072 << 3) | (1 << 1) | last).to_bytes(3, "little") + b"\x00"  # RLE block of 0x00
    return bytes(out)


def test_zstd_bomb_refused_by_max_decompressed(tmp_path: Path) -> None:
    data = _zstd_rle_bomb(64 * 1024)  # 256 KiB that would inflate to 8 GiB
    refused(child("load", data, tmp_path, max_decompressed=256 << 20), 5.0, limit="max_decompressed")


def test_zstd_bomb_in_scan(tmp_path: Path) -> None:
    data = _zstd_rle_bomb(64 * 1024)
    scan_not_clean(child("scan", data, tmp_path, max_decompressed=256 << 20), 5.0)


def test_zstd_bomb_with_default_limits_is_refused_not_killed(tmp_path: Path) -> None:
    # 1.25 GiB of zeros under a 1 GiB memory cap and the default max_decompressed (4 GiB): the child must survive
    # and refuse
    res = child("load", _zstd_rle_bomb(10 * 1024), tmp_path, cap=1 << 30)
    refused(res, 20.0, memory_ok=True)


# ---- opcode floods and deep nesting ------------------------------------------------------------------------------


def test_opcode_flood_20mb(tmp_path: Path) -> None:
    # 20 MB of NONE, POP: 20M opcodes. The VM runs about a million opcodes a second, so a file this size is
    # refused at max_opcodes rather than run to the end (the default, 200M, allows minutes on such a file).
    data = b"\x80\x02" + b"N0" * (20 << 20 >> 1) + b"N."
    refused(child("load", data, tmp_path, max_opcodes=1_000_000), 3.0, limit="max_opcodes")
    # The scanner walks on after the VM's refusal, to name what a native reader would import; that walk is paid
    # from the file's work budget (work_base + work_per_byte x size): with 1 unit a byte, 4 MB stop within seconds.
    data = data[: 4 << 20] + b"N."
    res = child("scan", data, tmp_path, max_opcodes=1_000_000, work_per_byte=1)
    scan_not_clean(res, 10.0)


def test_opcode_flood_time_is_linear(tmp_path: Path) -> None:
    t = []
    for kb in (512, 2048):
        res = child("load", b"\x80\x02" + b"N0" * (kb << 10 >> 1) + b"N.", tmp_path)
        assert res["ok"], res
        t.append(res["elapsed"])
    assert t[1] < 8 * t[0] + 0.5, t  # 4x the input, well under 8x the time


def test_stack_flood(tmp_path: Path) -> None:
    data = b"\x80\x02" + b"N" * (2 << 20) + b"."  # 2M items left on the stack at STOP
    res = child("load", data, tmp_path)
    assert not res["ok"] and "SafeLoadError" in res["mro"], res
    assert res["elapsed"] < 15.0, res


@pytest.mark.parametrize("mode", ["load", "scan"])
def test_100k_deep_nesting_without_marks(mode: str, tmp_path: Path) -> None:
    # 100k nested lists ([[[...]]]) and 100k nested dicts, built with APPEND / SETITEM: no MARK to count
    lists = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    dicts = b"\x80\x02" + b"}K\x00" * 100_000 + b"s" * 99_999 + b"\x94."  # ... {0: {0: ...}}
    for data in (lists, dicts):
        res = child(mode, data, tmp_path)
        if mode == "load":
            assert res["ok"] or res.get("exc") in ("LimitExceededError", "FormatError"), res
        else:
            assert res["ok"] and res["exit"] in (0, 1, 2), res
        assert res["elapsed"] < 5.0, res


def test_exponential_graph_in_a_checkpoint_scan(tmp_path: Path) -> None:
    parts = [b"\x80\x02", b")", b"q\x00", b"0"]                 # EMPTY_TUPLE, BINPUT 0, POP
    for i in range(1, 100):
        parts += [b"h" + bytes([i - 1]), b"h" + bytes([i - 1]), b"\x86", b"q" + bytes([i])]
        if i < 99:
            parts.append(b"0")
    pkl = b"".join(parts) + b"."                                # 2**99 paths, 100 objects
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
    res = child("scan", buf.getvalue(), tmp_path)
    assert res["ok"] and res["elapsed"] < 2.0, res
    res = child("load", buf.getvalue(), tmp_path)
    assert res["ok"] and res["elapsed"] < 2.0, res


# ---- archive member floods ----------------------------------------------------------------------------------------


def test_zip_member_count_claim(tmp_path: Path) -> None:
    # an end record that claims 2**32 - 2 members, in a 22-byte file
    data = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFE, 0xFFFE, 0, 0, 0)
    refused(child("load", data, tmp_path, max_members=1000), 1.0)
    scan_not_clean(child("scan", data, tmp_path), 2.0)


def _many_members(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02N.")
        for i in range(n):
            zf.writestr(f"archive/x{i}", b"")
    return buf.getvalue()


def test_zip_member_flood(tmp_path: Path) -> None:
    data = _many_members(30_000)
    refused(child("load", data, tmp_path, max_members=10_000), 2.0, limit="max_members")
    res = child("load", data, tmp_path)  # under the default limit: parsed in time proportional to the input
    assert res["elapsed"] < 10.0, res
    assert res["ok"] or "SafeLoadError" in res["mro"], res


def test_tar_member_flood(tmp_path: Path) -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(5_000):
            tf.addfile(tarfile.TarInfo(f"m{i}"), io.BytesIO(b""))
    refused(child("load", buf.getvalue(), tmp_path, max_members=1000), 3.0)
    scan_not_clean(child("scan", buf.getvalue(), tmp_path, max_members=1000), 10.0)
