"""``safeload scan`` against picklescan, modelscan and fickling, each run as a whole command on the same files.

Workloads (generated in a temporary folder, never in the repo):
  * a ~500 MB torch checkpoint (``torch.save`` of a state_dict)
  * a folder of 1000 small pickles
  * a mixed repository: Python sources, docs, real PNG/JPEG images and shared libraries copied from this Python's
    installation, an LFS pointer, and the real checkpoints of ../shared/samples/pytorch (what a CI scan of a
    project sees)
  * the real samples in ../shared/samples (if present)

safeload's bytecode is compiled first, as ``pip install`` does (``compile_bytecode``). Every tool runs under one
interpreter made for the bench (``user_python``): a throw-away virtual environment whose only ``.pth`` file puts
the checkout (safeload, with whatever compiled modules sit in it) and this environment's site-packages (the other
tools) on ``sys.path``. So no tool pays for the development install's editable-install finder (a ``.pth`` hook
that runs at every interpreter start, about 17 ms), and all of them start as a regular install starts
(``--dev-python`` times them under this interpreter instead). Each command runs ``--repeat`` times, the tools
taking turns within each repeat (so that a burst of other work on a shared machine falls on all of them); the best
wall time counts. Ratios are against picklescan, in the same run. A command that exits with a status its tool
does not document, that changes its status between repeats, or that prints a traceback stops the bench with its
output (``run_checked``): a timing of a command that failed early is not a timing of the tool. The status of each
tool is printed in the table, with the machine's load average before and after.
fickling has no folder mode: for folders it is timed as one Python process calling ``fickling.is_likely_safe``
on each file (its CLI would pay its start-up 1000 times). A tool that is not installed is reported as such.

    python bench/bench_scan.py [--size-mb 500] [--small 1000] [--repeat 3] [--samples DIR] [--dev-python]
"""

from __future__ import annotations

import argparse
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

_FICKLING_LOOP = (
    "import sys, pathlib, fickling\n"
    "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
    "    if p.is_file():\n"
    "        try: fickling.is_likely_safe(str(p))\n"
    "        except Exception: pass\n"
)


def make_checkpoint(folder: Path, size_mb: int) -> Path:
    import torch

    n = max(1, size_mb // 8)
    state = {f"layer{i}.weight": torch.randn(1024, 2048) for i in range(n)}  # 8 MiB each
    path = folder / "big" / "model.pt"
    path.parent.mkdir()
    torch.save(state, path)
    return path.parent


def make_small(folder: Path, count: int) -> Path:
    out = folder / "small"
    out.mkdir()
    for i in range(count):
        obj = {"step": i, "lr": 0.001 * i, "names": [f"p{j}" for j in range(20)], "shape": (i % 7, 3)}
        (out / f"{i:04d}.pkl").write_bytes(pickle.dumps(obj, protocol=4))
    return out


def make_mixed_repo(folder: Path, sources: int = 400) -> Path:
    """A project tree as CI scans it: mostly code, docs, images and libraries, a few real checkpoints."""
    import sysconfig

    repo = folder / "repo"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    purelib = Path(sysconfig.get_paths()["purelib"])
    copied = 0
    for path in sorted(stdlib.rglob("*.py")):
        if copied >= sources:
            break
        dest = repo / "src" / f"{copied:04d}_{path.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
        copied += 1
    for pattern, sub, most in (("*.png", "docs/img", 40), ("*.jpg", "docs/img", 10), ("*.so", "lib", 20),
                               ("*.md", "docs", 40), ("*.txt", "docs", 40)):
        found = [p for p in sorted(purelib.rglob(pattern)) if p.is_file() and p.stat().st_size < 8 << 20][:most]
        for i, path in enumerate(found):
            dest = repo / sub / f"{i:03d}_{path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    (repo / "models").mkdir(parents=True, exist_ok=True)
    (repo / "models" / "big.bin").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 12345\n")
    if (SAMPLES / "pytorch").is_dir():
        for path in sorted((SAMPLES / "pytorch").glob("*state_dict*.pt")):  # weights, not pickled modules
            (repo / "models" / path.name).write_bytes(path.read_bytes())
    return repo


#: exit statuses each tool documents (safeload: clean, unsafe, could not scan, nothing scanned; picklescan and
#: modelscan and fickling: clean, issues found, scan error); anything else is a failure of the command
STATUSES = {"safeload scan": {0, 1, 2, 3}, "picklescan": {0, 1, 2}, "modelscan": {0, 1, 2, 3}, "fickling": {0, 1, 2},
            "python -c pass": {0}, "python -c 'import safeload'": {0}}


def user_python(folder: Path) -> str:
    """An interpreter that starts as a regular install does: a virtual environment (no pip, no packages of its own)
    on this Python, whose one ``.pth`` file names the checkout and this environment's site-packages. Paths listed
    in a ``.pth`` file are added as they are, their own ``.pth`` files are not run, so the development install's
    editable finder is left out for every tool alike."""
    import sysconfig
    import venv

    env = folder / "python"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    site = Path(sysconfig.get_paths(vars={"base": str(env), "platbase": str(env)})["purelib"])
    import safeload

    repo = Path(safeload.__file__).resolve().parents[1]
    (site / "bench_paths.pth").write_text(f"{repo}\n{sysconfig.get_paths()['purelib']}\n")
    python = env / "bin" / "python"
    check = subprocess.run([str(python), "-c", "import safeload, sys; print(safeload.__file__)"], capture_output=True,
                           text=True, check=False)
    if check.returncode or Path(check.stdout.strip()).resolve().parent != repo / "safeload":
        raise SystemExit(f"bench: the bench interpreter does not import this checkout's safeload:\n{check.stderr}")
    return str(python)


def commands(target: Path, is_folder: bool, python: str) -> dict[str, list[str] | None]:
    def tool(name: str) -> list[str] | None:
        path = BIN / name if (BIN / name).exists() else shutil.which(name)
        return [python, str(path)] if path else None  # the console script, run by the bench's interpreter

    found = {name: tool(name) for name in ("safeload", "picklescan", "modelscan", "fickling")}
    fickling = None
    if found["fickling"]:
        if is_folder:
            fickling = [python, "-c", _FICKLING_LOOP, str(target)]
        else:
            files = [p for p in target.rglob("*") if p.is_file()]
            fickling = found["fickling"] + ["--check-safety", str(files[0])] if len(files) == 1 else None
    return {
        "safeload scan": found["safeload"] + ["scan", "-q", str(target)] if found["safeload"] else None,
        "picklescan": found["picklescan"] + ["-p", str(target)] if found["picklescan"] else None,
        "modelscan": found["modelscan"] + ["-p", str(target)] if found["modelscan"] else None,
        "fickling": fickling,
    }


def run_checked(name: str, argv: list[str], statuses: set[int] | None = None, expect: int | None = None) -> int:
    """Run ``argv`` (output captured); stop the bench, showing the output, if the command exits with a status not
    in ``statuses`` (or not ``expect``, the status of its first run) or prints a traceback. Returns the status."""
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600, check=False)
    err = done.stderr.decode("utf-8", "replace")
    bad = []
    if statuses is not None and done.returncode not in statuses:
        bad.append(f"exit status {done.returncode}, not one of {sorted(statuses)}")
    if expect is not None and done.returncode != expect:
        bad.append(f"exit status {done.returncode}, where its first run exited {expect}")
    if "Traceback (most recent call last)" in err or "Traceback (most recent call last)" in done.stdout.decode(
            "utf-8", "replace"):
        bad.append("a traceback")
    if bad:
        out = done.stdout.decode("utf-8", "replace")
        raise SystemExit(f"bench: {name} failed ({'; '.join(bad)}): {' '.join(argv)}\n--- stdout (end) ---\n"
                         f"{out[-3000:]}\n--- stderr (end) ---\n{err[-3000:]}")
    return done.returncode


def best_times(cmds: dict[str, list[str]], repeat: int) -> tuple[dict[str, float], dict[str, int]]:
    """Each command ``repeat`` times, taking turns; the best wall time of each, and its exit status (checked by
    :func:`run_checked`: documented, the same in every run, no traceback)."""
    best = {name: float("inf") for name in cmds}
    status: dict[str, int] = {}
    for _ in range(repeat):
        for name, argv in cmds.items():
            start = time.perf_counter()
            code = run_checked(name, argv, STATUSES.get(name, STATUSES.get(name.rsplit(" ", 1)[0])), status.get(name))
            best[name] = min(best[name], time.perf_counter() - start)
            status[name] = code
    return best, status


def startup(folder: Path, python: str, repeat: int) -> list[tuple[str, float]]:
    """Start-up: the interpreter alone, ``import safeload``, and each tool on one tiny pickle and one tiny torch zip,
    taking turns, the best of ``repeat`` (each checked by :func:`run_checked`)."""
    import torch

    tiny = folder / "tiny"
    tiny.mkdir()
    (tiny / "small.pkl").write_bytes(pickle.dumps({"lr": 0.1, "names": ["a", "b"]}, protocol=4))
    torch.save({"w": torch.zeros(2, 3)}, tiny / "small.pt")
    cmds: dict[str, list[str]] = {"python -c pass": [python, "-c", "pass"],
                                  "python -c 'import safeload'": [python, "-c", "import safeload"]}
    for name in ("small.pkl", "small.pt"):
        for tool, argv in commands(tiny / name, False, python).items():
            if argv and tool in ("safeload scan", "picklescan"):
                cmds[f"{tool} {name}"] = argv
    best, _ = best_times(cmds, repeat)
    return list(best.items())


def compile_bytecode() -> None:
    """Write safeload's bytecode (``__pycache__``, ignored by git), as ``pip install`` does. Without it, a checkout
    run with ``PYTHONDONTWRITEBYTECODE=1`` (as on the development machine) compiles every module at every start,
    about 90 ms of each command, while the tools compared are installed with their bytecode."""
    import compileall

    import safeload

    compileall.compile_dir(str(Path(safeload.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=Path, default=None, help="the real samples (../shared/samples)")
    parser.add_argument("--dev-python", action="store_true",
                        help="run the tools under this interpreter (the development install) instead")
    args = parser.parse_args()
    global SAMPLES
    SAMPLES = args.samples or SAMPLES
    compile_bytecode()
    from safeload._build import build_description

    print(f"safeload {build_description()}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        python = sys.executable if args.dev_python else user_python(root)
        print(f"interpreter: {'this one (development install)' if args.dev_python else 'a regular start (user_python)'}")
        workloads = [(f"torch checkpoint, {args.size_mb} MB", make_checkpoint(root, args.size_mb), False),
                     (f"{args.small} small pickles", make_small(root, args.small), True),
                     ("mixed repository (code, docs, images, libraries, checkpoints)", make_mixed_repo(root), True)]
        if SAMPLES.is_dir():
            workloads.append(("mixed real samples", SAMPLES, True))
        started = startup(root, python, max(12, args.repeat))
        rows = []
        for label, target, is_folder in workloads:
            cmds = commands(target, is_folder or label.startswith("mixed"), python)
            best, status = best_times({name: argv for name, argv in cmds.items() if argv}, args.repeat)
            times: dict[str, float | None] = {name: best.get(name) for name in cmds}
            base = times.get("picklescan")
            for name, seconds in times.items():
                ratio = f"{seconds / base:.2f}x" if seconds is not None and base else "-"
                shown = f"{seconds:.3f}" if seconds is not None else "not run"
                rows.append((label, name, shown, ratio, str(status[name]) if name in status else "-"))
    print(f"| workload | tool | best of {args.repeat}, s | vs picklescan | exit |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"start-up, best of {max(12, args.repeat)}, the commands taking turns: "
          + ", ".join(f"`{name}` {seconds * 1000:.1f} ms" for name, seconds in started))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
