"""SARIF for GitHub code scanning, through the real console script in a real git repository: the full official
SARIF 2.1.0 schema, repository-relative URIs under ``%SRCROOT%``, fingerprints that do not depend on how a path was
typed, absolute ``file:`` URIs outside the root, results capped below GitHub's limits (a pickle naming 26,000
globals), and notifications for the files that were not scanned."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from corpus import GLOBAL, MARK, REDUCE, STOP, STRING, TUPLE
from safeload._format.sarif import MAX_RESULTS, MAX_RESULTS_PER_FILE, SarifFormatter

jsonschema = pytest.importorskip("jsonschema")

SCRIPT = Path(sys.executable).with_name("safeload")
EVIL = GLOBAL("os", "system") + MARK + STRING("touch MARKER") + TUPLE + REDUCE + STOP
BENIGN = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s."

# Where the official schema is: $SAFELOAD_SCHEMAS, else ../shared/schemas beside the checkout (as tests/samples_path.py
# finds ../shared/samples), else the workplace's shared folder.
_CANDIDATES = [os.environ.get("SAFELOAD_SCHEMAS", ""),
               str(Path(__file__).resolve().parents[2] / "shared" / "schemas"), "/work/shared/schemas"]
SCHEMAS = next((Path(c) for c in _CANDIDATES if c and (Path(c) / "sarif-schema-2.1.0.json").is_file()), None)
needs_schema = pytest.mark.skipif(SCHEMAS is None, reason="../shared/schemas/sarif-schema-2.1.0.json not found")

# GitHub code scanning's limits per run (../shared/schemas/README.md)
GITHUB_RESULTS, GITHUB_RULES, GITHUB_LOCATIONS, GITHUB_TAGS, GITHUB_GZIP = 25_000, 25_000, 1_000, 20, 10 << 20


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "safeload"]
    return subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd)


def sarif(*args: str | Path, cwd: Path | None = None, code: int = 1) -> dict:
    r = run("scan", "--format", "sarif", *args, cwd=cwd)
    assert r.returncode == code, r.stderr
    return json.loads(r.stdout)


def validate(log: dict) -> None:
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())  # type: ignore[operator]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    cls(schema).validate(log)


def github_limits(log: dict) -> None:
    assert len(log["runs"]) <= 20
    for run_ in log["runs"]:
        assert len(run_["results"]) <= GITHUB_RESULTS
        assert len(run_["tool"]["driver"]["rules"]) <= GITHUB_RULES
        for rule in run_["tool"]["driver"]["rules"]:
            assert len(rule["properties"]["tags"]) <= GITHUB_TAGS and "security" in rule["properties"]["tags"]
        for res in run_["results"]:
            assert len(res["locations"]) <= GITHUB_LOCATIONS and res["partialFingerprints"]
    assert len(gzip.compress(json.dumps(log).encode())) < GITHUB_GZIP


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "models" / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "models" / "evil.bin").write_bytes(EVIL)
    (root / "models" / "sub" / "ok.pkl").write_bytes(BENIGN)
    (root / "models" / "broken.pkl").write_bytes(BENIGN[:-3])
    (root / "models" / "README.md").write_text("# weights\n")
    (root / "models" / "empty.bin").write_bytes(b"")
    return root


def _uris(log: dict) -> list[dict]:
    return [loc["physicalLocation"]["artifactLocation"] for res in log["runs"][0]["results"]
            for loc in res["locations"]]


@needs_schema
def test_full_schema_repository_relative_uris_and_notifications(repo: Path) -> None:
    log = sarif("models", cwd=repo / "models" / "sub" / ".." / "..")
    validate(log)
    github_limits(log)
    run_ = log["runs"][0]
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.resolve().as_uri() + "/"
    locations = _uris(log)
    assert {loc["uri"] for loc in locations} == {"models/evil.bin", "models/broken.pkl"}
    assert all(loc["uriBaseId"] == "%SRCROOT%" and (repo / loc["uri"]).is_file() for loc in locations)
    notes = run_["invocations"][0]["toolExecutionNotifications"]
    noted = {n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: n for n in notes if "locations" in n}
    assert set(noted) == {"models/README.md", "models/empty.bin"}  # skipped files are named, with the reason
    assert all(n["descriptor"]["id"] == "skipped" and "Not scanned" in n["message"]["text"] for n in noted.values())
    # from a subfolder the URIs are still relative to the git top level
    deeper = sarif("..", cwd=repo / "models" / "sub")
    assert {loc["uri"] for loc in _uris(deeper)} == {"models/evil.bin", "models/broken.pkl"}


def test_fingerprints_do_not_depend_on_how_the_path_was_typed(repo: Path) -> None:
    seen = []
    for cwd, path in ((repo, "models/evil.bin"), (repo, "./models/evil.bin"), (repo, repo / "models/evil.bin"),
                      (repo, "models/sub/../evil.bin"), (repo / "models", "evil.bin"),
                      (repo / "models" / "sub", "../evil.bin")):
        log = sarif(path, cwd=cwd)
        seen.append({(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                      r["partialFingerprints"]["safeloadFinding/v1"]) for r in log["runs"][0]["results"]})
    assert len(seen[0]) == 1 and all(s == seen[0] for s in seen), seen
    # another file with the same finding gets another fingerprint
    (repo / "models" / "evil2.bin").write_bytes(EVIL)
    other = sarif("models/evil2.bin", cwd=repo)["runs"][0]["results"][0]["partialFingerprints"]
    assert other["safeloadFinding/v1"] != next(iter(seen[0]))[1]


@needs_schema
def test_paths_outside_the_root_are_absolute_file_uris(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "evil.bin").write_bytes(EVIL)
    log = sarif(outside / "evil.bin", "models/evil.bin", cwd=repo)
    validate(log)
    by_uri = {loc["uri"]: loc for loc in _uris(log)}
    absolute = next(u for u in by_uri if u.startswith("file:"))
    assert "uriBaseId" not in by_uri[absolute] and ".." not in absolute
    assert Path(unquote(urlparse(absolute).path)) == (outside / "evil.bin").resolve()
    assert by_uri["models/evil.bin"]["uriBaseId"] == "%SRCROOT%"
    # --root moves %SRCROOT%: now the outside file is relative and the repository's is absolute
    log = sarif("--root", outside, outside / "evil.bin", "models/evil.bin", cwd=repo)
    uris = {loc["uri"] for loc in _uris(log)}
    assert "evil.bin" in uris and any(u.startswith("file:") and u.endswith("/models/evil.bin") for u in uris)
    assert log["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == outside.resolve().as_uri() + "/"
    assert run("scan", "--format", "sarif", "--root", tmp_path / "nope", "models", cwd=repo).returncode == 4


@needs_schema
def test_a_pickle_naming_26000_globals_is_capped_with_a_notification(repo: Path) -> None:
    body = b"".join(b"cm%d\nC\n0" % i for i in range(26_000))  # GLOBAL m<i>.C, POP
    (repo / "models" / "many.pkl").write_bytes(b"\x80\x02" + body + b"N.")
    log = sarif("models", cwd=repo)
    validate(log)
    github_limits(log)
    results = log["runs"][0]["results"]
    per_file: dict[str, int] = {}
    for res in results:
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        per_file[uri] = per_file.get(uri, 0) + 1
    assert per_file["models/many.pkl"] == MAX_RESULTS_PER_FILE
    assert per_file["models/evil.bin"] == 1  # the other file is not pushed out
    notes = [n["message"]["text"] for n in log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
             if n["descriptor"]["id"] == "results-left-out"]
    assert any(f"{26_000 - MAX_RESULTS_PER_FILE} of 26000 findings in models/many.pkl" in t for t in notes), notes
    assert len(json.dumps(log)) < 2 << 20


def test_the_run_cap_keeps_every_flagged_file_and_the_worst_first() -> None:
    from safeload._scan import FileReport, Finding, Report

    files = []
    for i in range(MAX_RESULTS // MAX_RESULTS_PER_FILE + 20):
        path = f"m{i:03}.pkl"
        findings = [Finding(path, "unknown-global", "unsafe", f"Refused global m.C{j}", qualname=f"m.C{j}",
                            pickle=0, offset=j) for j in range(MAX_RESULTS_PER_FILE + 5)]
        findings.append(Finding(path, "dangerous-global", "unsafe", "Refused global os.system", qualname="os.system",
                                pickle=0, offset=999))
        files.append(FileReport(path, "unsafe", "pickle", findings=findings))
    log = json.loads(SarifFormatter(root=".").format(Report(files)))
    results = log["runs"][0]["results"]
    assert len(results) == MAX_RESULTS
    firsts = {}
    for res in results:
        firsts.setdefault(res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], res["ruleId"])
    assert len(firsts) == len(files) and set(firsts.values()) == {"dangerous-global"}
    fingerprints = [r["partialFingerprints"]["safeloadFinding/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)


def _copy_real(dest: Path, pattern: str, roots: list[Path]) -> bool:
    for root in roots:
        for path in sorted(root.rglob(pattern)):
            if path.is_file() and 0 < path.stat().st_size < 2 << 20:
                dest.write_bytes(path.read_bytes())
                return True
    return False


@needs_schema
def test_a_realistic_mixed_repository_scans_clean(tmp_path: Path) -> None:
    """Code, docs, images, a shared library, an LFS pointer and real weights: exit 0 in every format, no SARIF
    result, a notification (with its reason) for each file not scanned."""
    import sysconfig

    from samples_path import SAMPLES

    if not (SAMPLES / "pytorch").is_dir():
        pytest.skip("samples not found")
    roots = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["stdlib"])]
    repo = tmp_path / "project"
    for sub in ("src", "docs/img", "lib", "models"):
        (repo / sub).mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("# project\n\nclass Net: see src\n")
    (repo / "src" / "model.py").write_text("class Net:\n    pass\n")
    wanted = {"docs/img/a.png": "*.png", "docs/img/b.jpg": "*.jpg", "lib/_ext.so": "*.so"}
    present = {name for name, pattern in wanted.items() if _copy_real(repo / name, pattern, roots)}
    for name in ("state_dict.pt", "optimizer_state_dict.pt"):
        (repo / "models" / name).write_bytes((SAMPLES / "pytorch" / name).read_bytes())
    (repo / "models" / "weights.safetensors").write_bytes(
        (SAMPLES / "mindspore" / "dense_with_adam.safetensors").read_bytes())
    (repo / "models" / "only.weights.h5").write_bytes((SAMPLES / "tensorflow_keras" / "only.weights.h5").read_bytes())
    (repo / "models" / "big.bin").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 12345\n")
    for fmt in ("text", "json"):
        r = run("scan", "--format", fmt, ".", cwd=repo)
        assert r.returncode == 0, r.stdout + r.stderr
    log = sarif(".", cwd=repo, code=0)
    validate(log)
    assert log["runs"][0]["results"] == []
    notes = {n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: n["message"]["text"]
             for n in log["runs"][0]["invocations"][0]["toolExecutionNotifications"] if "locations" in n}
    expected = {"README.md", "src/model.py", "models/only.weights.h5", "models/big.bin", *present}
    assert expected <= set(notes), (expected, notes)
    assert "LFS" in notes["models/big.bin"] and "HDF5" in notes["models/only.weights.h5"]
    # a Keras model with a Lambda layer holds code: not clean, whatever --fail-on leaves out
    (repo / "models" / "lambda.h5").write_bytes(
        (SAMPLES / "tensorflow_keras" / "model_with_lambda_legacy.h5").read_bytes())
    assert run("scan", ".", cwd=repo).returncode == 2
