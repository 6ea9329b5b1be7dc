"""Detection benchmark: the adversarial corpus (tests/corpus.py, tests/corpus_containers.py) through safeload and
the tools a user would pick instead, in the same run.

For each tool and each malicious file: "caught" (refused, flagged or reported as unscannable), "missed" (loaded
or reported clean, nothing ran) or "ran" (the payload created its marker file: the tool executed the file's
code). Payloads are harmless: their only effect is to create a file named MARKER in a fresh temporary folder.

    python bench/bench_detection.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHILD = r"""
import json, os, sys, io, contextlib
tool, listing = sys.argv[1], sys.argv[2]
cases = json.load(open(listing))
out = {}
if tool == "picklescan":
    from picklescan.scanner import scan_file_path
elif tool == "fickling":
    import fickling
elif tool == "torch.load(weights_only=True)":
    import torch
elif tool == "safeload scan":
    import safeload
for name, path in cases:
    folder = os.path.dirname(path)
    os.chdir(folder)
    verdict = "missed"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if tool == "picklescan":
                r = scan_file_path(path)
                verdict = "caught" if (r.infected_files or r.scan_err) else "missed"
            elif tool == "fickling":
                verdict = "missed" if fickling.is_likely_safe(path) else "caught"
            elif tool == "torch.load(weights_only=True)":
                torch.load(path, weights_only=True)
            elif tool == "safeload scan":
                verdict = "caught" if safeload.scan(path).exit_code != 0 else "missed"
    except BaseException:
        verdict = "caught"
    if os.path.exists(os.path.join(folder, "MARKER")):
        verdict = "ran"
    out[name] = verdict
print(json.dumps(out))
"""


def modelscan(cases: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    exe = Path(sys.executable).with_name("modelscan")
    for name, path in cases:
        proc = subprocess.run([str(exe), "-p", path], capture_output=True, text=True, cwd=os.path.dirname(path))
        verdict = "caught" if proc.returncode in (1, 2) else "missed"  # 0: no issues, 3: nothing it could scan
        if os.path.exists(os.path.join(os.path.dirname(path), "MARKER")):
            verdict = "ran"
        out[name] = verdict
    return out


def main() -> None:
    import corpus
    import corpus_containers

    cases: list[tuple[str, bytes]] = [(c.name, c.data) for c in corpus.build_corpus()]
    cases += [(c.name, c.data) for c in corpus_containers.build()]
    with tempfile.TemporaryDirectory() as tmp:
        listing = []
        for i, (name, data) in enumerate(cases):
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            path = folder / "model.pt"  # the extension users download: scanners that route by name see a .pt
            path.write_bytes(data)
            listing.append((name, str(path)))
        listing_file = Path(tmp) / "cases.json"
        listing_file.write_text(json.dumps(listing))
        results: dict[str, dict[str, str]] = {}
        timings: dict[str, float] = {}
        for tool in ("safeload scan", "torch.load(weights_only=True)", "picklescan", "fickling"):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, tool, str(listing_file)], capture_output=True,
                                  text=True)
            timings[tool] = time.perf_counter() - start
            if proc.returncode != 0:
                print(f"{tool}: failed to run: {proc.stderr[-500:]}", file=sys.stderr)
                continue
            results[tool] = json.loads(proc.stdout.strip().splitlines()[-1])
        if Path(sys.executable).with_name("modelscan").exists():
            start = time.perf_counter()
            results["modelscan"] = modelscan(listing)
            timings["modelscan"] = time.perf_counter() - start
    print(f"{len(cases)} malicious files (tests/corpus.py + tests/corpus_containers.py), each named model.pt\n")
    print("| tool | caught | missed (called clean or loaded) | ran the payload | time |")
    print("|---|---|---|---|---|")
    for tool, verdicts in results.items():
        counts = {v: sum(1 for x in verdicts.values() if x == v) for v in ("caught", "missed", "ran")}
        print(f"| {tool} | {counts['caught']} | {counts['missed']} | {counts['ran']} | {timings[tool]:.1f} s |")
    missed = {t: sorted(n for n, v in r.items() if v != "caught") for t, r in results.items()}
    print("\nnot caught, per tool:")
    for tool, names in missed.items():
        print(f"- {tool}: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")


if __name__ == "__main__":
    main()
