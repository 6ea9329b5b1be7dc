"""Crafted amplifiers against the work budget: small inputs that ask for a lot of work, through load and scan.

Each amplifier is built here (nothing is stored), written to a temporary folder and opened by ``safeload.load``
and ``safeload.scan`` in a fresh child process. For each one the table prints the input size, the seconds, the
child's peak memory (``VmHWM``) and what stopped it (the limit's name, or the verdict). The last lines give the
worst seconds per KB and megabytes per KB of input, the figures README.md's Hardening section quotes.

    python bench/bench_dos.py [--only NAME ...] [--timeout 120]

The amplifiers (functions below, also used by tests/test_vm_safety.py):

* opcode floods: NONE/POP in a deflated torch ``data.pkl``, in bz2, gzip, xz and zstd streams, and plain
* a tuple graph with shared references used as a dict key (hashing re-walks shared tuples)
* big numbers: ``Fraction('1e30000000')``, ``Decimal(int)`` repeated through the memo, long decimal text
* deep MARK nesting, a list flood, and an archive member flood
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# ---- the amplifiers ---------------------------------------------------------------------------------------------

PROTO2 = b"\x80\x02"


def flood(n_pairs: int) -> bytes:
    """A pickle of ``n_pairs`` NONE/POP pairs: 2 opcodes a pair, through the VM's handler path."""
    return PROTO2 + b"N0" * n_pairs + b"N."


def torch_zip_flood(n_pairs: int = 25_000_000) -> bytes:
    """A torch zip checkpoint whose ``data.pkl`` is a deflated flood (50 MB of opcodes in about 50 KB)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", flood(n_pairs), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        zf.writestr("archive/version", b"3\n")
        zf.writestr("archive/byteorder", b"little")
    return out.getvalue()


def bz2_flood(n_pairs: int = 25_000_000) -> bytes:
    """A bz2 stream (joblib's compressor) of a flood: about 2 KB for 50 MB of opcodes."""
    return bz2.compress(flood(n_pairs), 9)


def gzip_flood(n_pairs: int = 25_000_000) -> bytes:
    return gzip.compress(flood(n_pairs), 9, mtime=0)


def xz_flood(n_pairs: int = 25_000_000) -> bytes:
    return lzma.compress(flood(n_pairs), preset=9)


def zstd_flood(n_pairs: int = 25_000_000) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(flood(n_pairs))


def plain_flood(n_pairs: int = 500_000) -> bytes:
    """An uncompressed 1 MB flood: the budget a plain pickle gets covers every opcode it holds."""
    return flood(n_pairs)


def hash_graph(depth: int = 48) -> bytes:
    """{t_depth: None} where t_0 = (1,) and t_{i+1} = (t_i, t_i) through the memo: 2**depth nodes to hash."""
    body = PROTO2 + b"K\x01\x85q\x000"  # (1,) -> memo 0
    for i in range(depth):
        body += b"h" + bytes([i % 256]) + b"h" + bytes([i % 256]) + b"\x86q" + bytes([(i + 1) % 256]) + b"0"
    return body + b"}\x94(h" + bytes([depth % 256]) + b"Nu."


def fraction_exponent(exponent: int = 30_000_000) -> bytes:
    text = f"1e{exponent}".encode()
    return PROTO2 + b"cfractions\nFraction\nX" + struct.pack("<I", len(text)) + text + b"\x85R."


def decimal_repeat(bits: int = 1 << 16, times: int = 100_000) -> bytes:
    """[Decimal(n)] * times with one ``bits``-bit n: each REDUCE converts n to decimal digits again."""
    n = (1 << bits) - 1
    raw = n.to_bytes((bits + 7) // 8 + 1, "little", signed=True)
    head = PROTO2 + b"cdecimal\nDecimal\nq\x000\x8b" + struct.pack("<I", len(raw)) + raw + b"\x85q\x010]("
    return head + b"h\x00h\x01R" * times + b"e."


def long_text(times: int = 200) -> bytes:
    """LONG opcodes with 4300 decimal digits each (the most Python converts): quadratic text-to-int work."""
    return PROTO2 + b"](" + (b"L" + b"7" * 4300 + b"L\n") * times + b"e."


def deep_nesting(depth: int = 500_000) -> bytes:
    return PROTO2 + b"(" * depth + b"N."


def list_flood(n: int = 1_000_000) -> bytes:
    return PROTO2 + b"](" + b"N" * n + b"e."


def member_flood(n: int = 60_000) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        for i in range(n):
            zf.writestr(f"archive/data/{i}", b"")
    return out.getvalue()


AMPLIFIERS = {
    "torch zip, deflated NONE/POP": torch_zip_flood,
    "bz2 NONE/POP": bz2_flood,
    "gzip NONE/POP": gzip_flood,
    "xz NONE/POP": xz_flood,
    "zstd NONE/POP": zstd_flood,
    "plain NONE/POP, 1 MB": plain_flood,
    "shared tuple graph as a dict key": hash_graph,
    "Fraction('1e30000000')": fraction_exponent,
    "Decimal(2**65536) x 100k via memo": decimal_repeat,
    "LONG text, 4300 digits x 200": long_text,
    "MARK nesting 500k": deep_nesting,
    "list of 1M None": list_flood,
    "zip with 60k members": member_flood,
}

# ---- running them -----------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import safeload
    from safeload._scan import scan
    mode, path = sys.argv[1], sys.argv[2]
    out = {}
    t0 = time.perf_counter()
    try:
        if mode == "load":
            safeload.load(path, tensors="numpy")
            out["stop"] = "loaded"
        elif mode == "scan":
            report = scan(path)
            out["stop"] = f"exit {report.exit_code}: " + ",".join(sorted({f.rule for f in report.findings}))[:40]
        else:
            out["stop"] = "baseline: python with safeload imported"
    except safeload.SafeLoadError as e:
        out["stop"] = getattr(e, "limit", None) or type(e).__name__
    out["seconds"] = time.perf_counter() - t0
    # the peak of this process's own memory (VmHWM); ru_maxrss would carry the parent's peak across exec
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    out["rss_mb"] = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
    """
)


def run(mode: str, path: Path, timeout: float) -> dict[str, object]:
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"stop": f"TIMEOUT after {timeout:.0f} s", "seconds": timeout, "rss_mb": float("nan")}
    if proc.returncode != 0:
        return {"stop": f"child died rc={proc.returncode}", "seconds": float("nan"), "rss_mb": float("nan")}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="substrings of amplifier names to run")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    baseline = float(run("baseline", Path("/dev/null"), args.timeout)["rss_mb"])  # type: ignore[arg-type]
    print(f"child baseline (python + safeload imported): {baseline:.0f} MB")
    print(f"{'amplifier':36} {'bytes':>9} {'mode':5} {'seconds':>8} {'peak MB':>8}  stopped by")
    worst_s = worst_m = 0.0
    with tempfile.TemporaryDirectory(prefix="safeload-bench-dos-") as tmp:
        for name, build in AMPLIFIERS.items():
            if args.only and not any(s.lower() in name.lower() for s in args.only):
                continue
            data = build()
            path = Path(tmp) / "input.bin"
            path.write_bytes(data)
            kb = max(len(data), 1024) / 1024  # per KB, counting inputs under 1 KB as 1 KB
            for mode in ("load", "scan"):
                res = run(mode, path, args.timeout)
                secs, rss = float(res["seconds"]), float(res["rss_mb"])  # type: ignore[arg-type]
                worst_s = max(worst_s, secs / kb)
                worst_m = max(worst_m, (rss - baseline) / kb)
                print(f"{name:36} {len(data):9} {mode:5} {secs:8.2f} {rss:8.0f}  {res['stop']}", flush=True)
    print(f"worst: {worst_s:.3f} s per KB of input, {worst_m:.2f} MB per KB above the baseline")


if __name__ == "__main__":
    main()
