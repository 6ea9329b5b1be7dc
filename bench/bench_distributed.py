"""Files per second: ``safeload scan --jobs 1``, ``--jobs 2``, a 2-worker Dask ``LocalCluster`` and picklescan, on
the same files in the same run; and the workers a one-million-file scan needs to finish in an hour.

Workloads (generated in a temporary folder, never in the repo):
  * ``--small`` small pickles (default 10,000: dicts, lists, protocol 1 to 5, some with a global)
  * real checkpoints: the samples in ../shared/samples (torch, numpy, joblib, paddle, mindspore, mxnet, keras files
    written by the frameworks), copied ``--copies`` times so that a run lasts long enough to time

safeload's bytecode is compiled first, as ``pip install`` does (``compile_bytecode``); a command that fails (an
undocumented exit status, a traceback) stops the bench with its output. ``--jobs`` is timed as the
whole command (``safeload scan -q --format json``: start-up, listing, report), and the
CPU seconds it used (its own and its workers', from ``getrusage``) are printed next to it: on a machine shared
with other work the wall time of ``--jobs 2`` depends on what else runs, its CPU cost does not. The runs of one
repeat are interleaved (``--jobs 1``, ``--jobs 2``, picklescan, then again), and the best of ``--repeat`` counts.
The scan phase alone (the files listed, no start-up, no report) is also timed in this process, one by one against
``pool_scan`` on 2 forked workers: the part of a scan that more workers can shorten.

The cluster is timed from the first task to the merged report (the cluster is started before, as a cluster is
already running when a team scans on it); its start-up is printed apart (``--no-cluster`` leaves it out).
picklescan runs as its own command (``picklescan -p FOLDER``), if installed (``pip install picklescan``; not a
dependency).

The per-core rate is the files per second of the scan alone in one process (no start-up, no report): the
figure that sets how many workers a scan needs.

    python bench/bench_distributed.py [--small 10000] [--copies 5] [--repeat 3] [--no-cluster] [--samples DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import shutil
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


def make_real(folder: Path, copies: int, samples: Path = SAMPLES) -> Path | None:
    if not samples.is_dir():
        return None
    out = folder / "real"
    for c in range(copies):
        shutil.copytree(samples, out / f"copy{c}", ignore=shutil.ignore_patterns("README*"))
    return out


def count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and the workers it waited for). A command that exits with a status
    its tool does not document, or prints a traceback, stops the bench with its output (bench_scan.run_checked)."""
    import resource

    from bench_scan import STATUSES, run_checked

    name = "picklescan" if Path(cmd[0]).name == "picklescan" else "safeload scan"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    run_checked(name, cmd, STATUSES[name])
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best_of(cmds: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, float]]:
    """Each command ``repeat`` times, interleaved; the best wall time of each, with that run's CPU seconds."""
    best: dict[str, tuple[float, float]] = {name: (math.inf, 0.0) for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            run = timed(cmd)
            if run[0] < best[name][0]:
                best[name] = run
    return best


def scan_phase(folder: Path, repeat: int) -> tuple[float, float]:
    """Seconds to scan the listed files one by one and on a 2-worker ``pool_scan`` (best of ``repeat``, interleaved;
    the pool's time includes forking its workers)."""
    from safeload._collect import collect_files
    from safeload._distributed import pool_scan, scan_one

    files, _ = collect_files([folder])
    scan_one(files[0])  # the policy built once, as in a running command
    one = two = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for item in files:
            scan_one(item)
        one = min(one, time.perf_counter() - t)
        t = time.perf_counter()
        for _report in pool_scan(files, 2):
            pass
        two = min(two, time.perf_counter() - t)
    return one, two


def per_core(folder: Path) -> float:
    from safeload._collect import collect_files
    from safeload._scan import policy_for, scan_file

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
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-cluster", action="store_true", help="leave out the Dask LocalCluster")
    ap.add_argument("--samples", type=Path, default=SAMPLES, help="the real checkpoints (../shared/samples)")
    args = ap.parse_args()
    from bench_scan import compile_bytecode  # this folder is on sys.path when the script runs

    compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        work = [("small pickles", make_small(tmp, args.small))]
        real = make_real(tmp, args.copies, args.samples)
        if real is not None:
            work.append(("real checkpoints", real))
        safeload = [str(BIN / "safeload"), "scan", "-q", "--format", "json"]
        picklescan = BIN / "picklescan"
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
        print()
        print("| workload | files | --jobs 1 | --jobs 2 | picklescan | per core (scan only) |")
        print("|---|---|---|---|---|---|")
        rates = []
        phases = []
        for name, folder in work:
            n = count(folder)
            cmds = {"j1": safeload + ["--jobs", "1", str(folder)], "j2": safeload + ["--jobs", "2", str(folder)]}
            if picklescan.exists():
                cmds["ps"] = [str(picklescan), "-p", str(folder)]
            best = best_of(cmds, args.repeat)
            core = per_core(folder)
            phases.append((name, n, *scan_phase(folder, args.repeat)))
            rates.append((name, core))
            j1, j2 = best["j1"], best["j2"]
            ps_text = f"{n / best['ps'][0]:,.0f}/s" if "ps" in best else "not installed"
            print(f"| {name} | {n:,} | {n / j1[0]:,.0f}/s ({j1[1]:.2f} CPU s) | {n / j2[0]:,.0f}/s ({j2[1]:.2f} CPU s)"
                  f" | {ps_text} | {core:,.0f}/s |")
            if "ps" in best:
                print(f"|  | time vs picklescan, same run | {j1[0] / best['ps'][0]:.2f}x | {j2[0] / best['ps'][0]:.2f}x "
                      f"| 1.00x | |")
        if not args.no_cluster:  # last: this process then has the client's threads, and a pool would not fork
            started, timings = cluster_rate([f for _, f in work], args.repeat)
            print()
            print(f"LocalCluster (2 worker processes) started in {started:.1f} s (not counted): "
                  + ", ".join(f"{name} {count(folder) / t:,.0f}/s" for (name, folder), t in zip(work, timings)))
        print()
        for name, n, one, two in phases:
            print(f"scan phase, {name} ({n:,} files listed, in this process): one by one {one:.3f} s, "
                  f"pool_scan on 2 workers {two:.3f} s: {one / two:.2f}x")
        print()
        for name, core in rates:
            workers = math.ceil(1_000_000 / (3600 * core))
            print(f"one million {name} in one hour: 1e6 / 3600 s = {1e6 / 3600:,.0f} files/s; at {core:,.0f} "
                  f"files/s a core, {workers} worker core(s), before listing and transfer time")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
