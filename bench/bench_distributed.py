"""Files per second: ``safeload scan --jobs 1``, ``--jobs 2``, a 2-worker Dask ``LocalCluster`` and picklescan, on
the same files in the same run; and the workers a one-million-file scan needs to finish in an hour.

Workloads (generated in a temporary folder, never in the repo):
  * ``--small`` small pickles (default 10,000: dicts, lists, protocol 1 to 5, some with a global)
  * real checkpoints: the samples in ../shared/samples (torch, numpy, joblib, paddle, mindspore, mxnet, keras files
    written by the frameworks), copied ``--copies`` times so that a run lasts long enough to time

``--jobs`` is timed as the whole command (``safeload scan -q --format json``: start-up, listing, report). The
cluster is timed from the first task to the merged report (the cluster is started before, as a cluster is
already running when a team scans on it); its start-up is printed apart. picklescan runs as its own command
(``picklescan -p FOLDER``), if installed (``pip install picklescan``; not a dependency).

The per-core rate is the files per second of the scan alone in one process (no start-up, no report): the
figure that sets how many workers a scan needs.

    python bench/bench_distributed.py [--small 10000] [--copies 5] [--repeat 1]
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def make_small(folder: Path, count: int) -> Path:
    out = folder / "small"
    out.mkdir()
    for i in range(count):
        obj: object = {"step": i, "lr": 0.1 / (i + 1), "names": [f"layer{j}" for j in range(i % 7)]}
        if i % 10 == 0:
            obj = {"kind": __import__("collections").OrderedDict(a=i)}  # a global the policy allows
        (out / f"p{i:05}.pkl").write_bytes(pickle.dumps(obj, protocol=i % 5 + 1))
    return out


def make_real(folder: Path, copies: int) -> Path | None:
    if not SAMPLES.is_dir():
        return None
    out = folder / "real"
    for c in range(copies):
        shutil.copytree(SAMPLES, out / f"copy{c}", ignore=shutil.ignore_patterns("README*"))
    return out


def count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def timed(cmd: list[str], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - t)
    return best


def per_core(folder: Path) -> float:
    from safeload._scan import collect_files, policy_for, scan_file

    files, _ = collect_files([folder])
    pol = policy_for()
    t = time.perf_counter()
    for path, display in files:
        scan_file(path, pol, display=display)
    return len(files) / (time.perf_counter() - t)


def cluster_rate(folders: list[Path], repeat: int) -> tuple[float, list[float]]:
    import distributed

    from safeload._distributed import scan_distributed

    t = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    client.run(lambda: __import__("safeload._distributed"))  # workers import the scanner once, as a warm cluster
    started = time.perf_counter() - t
    out = []
    try:
        for folder in folders:
            best = math.inf
            for _ in range(repeat):
                t = time.perf_counter()
                scan_distributed(client, [str(folder)])
                best = min(best, time.perf_counter() - t)
            out.append(best)
    finally:
        client.close()
        cluster.close()
    return started, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        work = [("small pickles", make_small(tmp, args.small))]
        real = make_real(tmp, args.copies)
        if real is not None:
            work.append(("real checkpoints", real))
        safeload = [str(BIN / "safeload"), "scan", "-q", "--format", "json"]
        picklescan = BIN / "picklescan"
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
        started, cluster = cluster_rate([f for _, f in work], args.repeat)
        print(f"LocalCluster (2 worker processes) started in {started:.1f} s (not counted below)")
        print()
        print("| workload | files | --jobs 1 | --jobs 2 | LocalCluster x2 | picklescan | per core (scan only) |")
        print("|---|---|---|---|---|---|---|")
        rates = []
        for (name, folder), cl in zip(work, cluster):
            n = count(folder)
            j1 = timed(safeload + ["--jobs", "1", str(folder)], args.repeat)
            j2 = timed(safeload + ["--jobs", "2", str(folder)], args.repeat)
            ps = timed([str(picklescan), "-p", str(folder)], args.repeat) if picklescan.exists() else None
            core = per_core(folder)
            rates.append((name, core))
            ps_text = f"{n / ps:,.0f}/s" if ps else "not installed"
            print(f"| {name} | {n:,} | {n / j1:,.0f}/s | {n / j2:,.0f}/s | {n / cl:,.0f}/s | {ps_text} | "
                  f"{core:,.0f}/s |")
        print()
        for name, core in rates:
            workers = math.ceil(1_000_000 / (3600 * core))
            print(f"one million {name} in one hour: 1e6 / 3600 s = {1e6 / 3600:,.0f} files/s; at {core:,.0f} "
                  f"files/s a core, {workers} worker core(s), before listing and transfer time")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
