"""The real ``safeload`` console script, run in a subprocess: every exit code, every output format (validated
against tests/data/*.schema.json), folders, a Hugging Face cache layout, ``info`` and ``convert``."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from samples_path import SAMPLES as SHARED_SAMPLES

from corpus import GLOBAL, MARK, PROTO, REDUCE, STOP, STRING, TUPLE

jsonschema = pytest.importorskip("jsonschema")

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = SHARED_SAMPLES
SCRIPT = Path(sys.executable).with_name("safeload")
EVIL = GLOBAL("os", "system") + MARK + STRING("touch MARKER") + TUPLE + REDUCE + STOP
BENIGN = PROTO(2) + b"}q\x00X\x01\x00\x00\x00aK\x01s."
CUSTOM = PROTO(2) + GLOBAL("notinstalled_pkg.mod", "Config") + b")\x81}b."  # NEWOBJ, BUILD {}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "safeload"]
    return subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=cwd)


def torch_zip(pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "clean": ("model.pt", torch_zip(BENIGN)),
        "evil": ("weights.bin", EVIL),
        "evil_gz": ("archive.json", gzip.compress(torch_zip(EVIL))),
        "corrupt": ("broken.pkl", BENIGN[:-3]),
        "text": ("README.md", b"# Model card\n\nweights below\n"),
        "custom": ("custom.pkl", CUSTOM),
    }
    out = {}
    for key, (name, content) in made.items():
        folder = tmp_path / key
        folder.mkdir()
        (folder / name).write_bytes(content)
        out[key] = folder / name
    return out


def schema(name: str) -> dict:
    """A schema shipped in the package (``safeload/_format/report.schema.json``)."""
    from importlib.resources import files

    return json.loads((files("safeload._format") / name).read_text())


# ---- exit codes ----------------------------------------------------------------------------------------------------

def test_exit_0_clean(files: dict[str, Path]) -> None:
    r = run("scan", files["clean"])
    assert r.returncode == 0, r.stderr
    assert "clean" in r.stdout and "1 file scanned" in r.stderr and "exit 0" in r.stderr


def test_exit_1_unsafe(files: dict[str, Path]) -> None:
    r = run("scan", files["evil"])
    assert r.returncode == 1
    assert "dangerous-global" in r.stdout and "os.system" in r.stdout
    assert "UNSAFE" in r.stderr


def test_exit_1_inside_container_with_odd_name(files: dict[str, Path]) -> None:
    r = run("scan", files["evil_gz"])
    assert r.returncode == 1
    assert "[gzip]!model.pt" not in r.stdout and "[gzip]!archive/data.pkl" in r.stdout


def test_exit_2_corrupt(files: dict[str, Path]) -> None:
    r = run("scan", files["corrupt"])
    assert r.returncode == 2
    assert "malformed" in r.stdout and "could not be scanned" in r.stderr


def test_exit_2_unsupported(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"\x01\x02\x03\x04" + bytes(64))  # no format safeload knows
    r = run("scan", tmp_path)
    assert r.returncode == 2 and "unsupported-format" in r.stdout


def test_exit_3_nothing_scanned_only_when_asked(files: dict[str, Path], tmp_path: Path) -> None:
    r = run("scan", files["text"])
    assert r.returncode == 0  # a repository without checkpoints keeps CI green by default
    assert "skipped" in r.stderr and "text, not a checkpoint" in r.stderr
    assert run("scan", "--fail-on", "unsafe,nothing", files["text"]).returncode == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("scan", "--fail-on", "nothing", empty).returncode == 3
    assert run("scan", empty).returncode == 0


@pytest.mark.parametrize("args", [
    ("scan",), ("scan", "--format", "xml", "."), ("scan", "/no/such/path"), ("scan", "--jobs", "0", "."),
    ("scan", "--policy", "/no/such/policy.json", "."), ("frobnicate",), ("info", "/no/such/file"),
    ("scan", "--fail-on", "unsafe,sometimes", "."), ("scan", "--fail-on", "", "."),
    ("scan", "-o", "/no/such/folder/report.json", "."), ("scan", "--allow", "subprocess.Popen", "."),
    ("scan", "--allow", "not a name", "."), ("scan", "--allow", "Config", "."), ("scan", "--allow", "os.system", "."),
    ("scan", "--max-decompressed", "-5", "."), ("info", "--allow", "builtins.eval", "."),
])
def test_exit_4_usage(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 4 and "Traceback" not in r.stderr


def test_exit_table_is_one_source_for_help_and_readme() -> None:
    from safeload._cli import EXIT_TABLE, exit_table_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert exit_table_markdown() in readme
    help_text = " ".join(run("scan", "--help").stdout.split())
    for code, meaning in EXIT_TABLE:
        assert f"{code} {' '.join(meaning.split())}" in help_text
    assert "--fail-on" in help_text and "unsafe,error,unsupported" in help_text


def test_fail_on_chooses_what_fails(files: dict[str, Path]) -> None:
    both = (files["evil"], files["corrupt"], files["text"])
    assert run("scan", *both).returncode == 1
    assert run("scan", "--fail-on", "error", *both).returncode == 2
    assert run("scan", "--fail-on", "skipped", *both).returncode == 3
    assert run("scan", "--fail-on", "unsafe", files["corrupt"]).returncode == 0
    r = run("scan", "--format", "sarif", "--fail-on", "error", *both)
    assert json.loads(r.stdout)["runs"][0]["invocations"][0]["exitCode"] == r.returncode == 2
    r = run("scan", "--format", "json", files["text"])
    assert json.loads(r.stdout)["exit_code"] == r.returncode == 0


def test_stdin_include_exclude(files: dict[str, Path], tmp_path: Path) -> None:
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "safeload"]
    for fmt in ("text", "json", "sarif"):
        r = subprocess.run(argv + ["scan", "--format", fmt, "-"], input=files["evil"].read_bytes(),
                           capture_output=True, timeout=120)
        assert r.returncode == 1 and b"<stdin>" in r.stdout + r.stderr and b"os.system" in r.stdout, r.stderr
    r = subprocess.run(argv + ["scan", "-"], input=files["clean"].read_bytes(), capture_output=True, timeout=120)
    assert r.returncode == 0
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "evil.bin").write_bytes(files["evil"].read_bytes())
    (folder / "ok.pt").write_bytes(files["clean"].read_bytes())
    assert run("scan", folder).returncode == 1
    assert run("scan", "--exclude", "*.bin", folder).returncode == 0
    assert run("scan", "--include", "*.pt", folder).returncode == 0
    assert run("scan", "--include", "*.pt", "--include", f"{folder}/evil*", folder).returncode == 1


def test_worst_status_wins(files: dict[str, Path]) -> None:
    r = run("scan", files["clean"], files["corrupt"], files["evil"], files["text"])
    assert r.returncode == 1
    r = run("scan", files["clean"], files["corrupt"], files["text"])
    assert r.returncode == 2


# ---- options -------------------------------------------------------------------------------------------------------

def test_allow_and_policy_file(files: dict[str, Path], tmp_path: Path) -> None:
    assert run("scan", files["custom"]).returncode == 1
    assert run("scan", "--allow", "notinstalled_pkg.mod.Config", files["custom"]).returncode == 0
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow": ["notinstalled_pkg.mod.Config"]}))
    assert run("scan", "--policy", policy, files["custom"]).returncode == 0
    yaml = tmp_path / "policy.yaml"
    yaml.write_text("allow:\n  - notinstalled_pkg.mod.Config\n")
    r = run("scan", "--policy", yaml, files["custom"])
    assert r.returncode == 4 and "YAML" in r.stderr
    lines = tmp_path / "policy.txt"
    lines.write_text("# trusted\nnotinstalled_pkg.mod.Config\n")
    assert run("scan", "--policy", lines, files["custom"]).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"allow": "x"}')
    assert run("scan", "--policy", bad, files["custom"]).returncode == 4


def test_output_file_quiet_and_no_progress_when_piped(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    r = run("scan", "--format", "json", "--output", out, files["evil"].parent, files["clean"].parent)
    assert r.returncode == 1 and r.stdout == ""
    assert "\r" not in r.stderr  # no progress bar when stderr is not a terminal
    jsonschema.validate(json.loads(out.read_text()), schema("report.schema.json"))
    q = run("scan", "-q", files["evil"], files["clean"])
    assert q.returncode == 1 and q.stderr == "" and "model.pt" not in q.stdout and "weights.bin" in q.stdout


def test_jobs(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"{i}.pkl").write_bytes(EVIL if i == 7 else BENIGN)
    r = run("scan", "--jobs", "3", "--format", "json", tmp_path)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["summary"]["scanned"] == 12 and doc["summary"]["unsafe"] == 1
    assert [Path(f["path"]).name for f in doc["files"]] == sorted(f"{i}.pkl" for i in range(12))


def test_explain(files: dict[str, Path]) -> None:
    r = run("scan", "--explain", files["evil"])
    assert r.returncode == 1
    assert "decompiled by fickling" in r.stdout and "system('touch MARKER')" in r.stdout


# ---- formats -------------------------------------------------------------------------------------------------------

def test_json_schema(files: dict[str, Path]) -> None:
    r = run("scan", "--format", "json", *(p.parent for p in files.values()))
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema("report.schema.json"))
    assert doc["exit_code"] == r.returncode == 1
    statuses = {Path(f["path"]).name: f["status"] for f in doc["files"]}
    assert statuses == {"model.pt": "clean", "weights.bin": "unsafe", "archive.json": "unsafe",
                        "broken.pkl": "error", "README.md": "skipped", "custom.pkl": "unsafe"}
    quiet = json.loads(run("scan", "-q", "--format", "json", *(p.parent for p in files.values())).stdout)
    jsonschema.validate(quiet, schema("report.schema.json"))
    assert {Path(f["path"]).name for f in quiet["files"]} == {"weights.bin", "archive.json", "broken.pkl", "custom.pkl"}
    assert quiet["summary"] == doc["summary"]  # -q lists fewer files, and counts them all


def test_sarif_schema_and_code_scanning_fields(files: dict[str, Path], tmp_path: Path) -> None:
    from test_sarif_github import SCHEMAS, validate

    r = run("scan", "--format", "sarif", *(p.parent for p in files.values()), cwd=tmp_path)
    log = json.loads(r.stdout)
    if SCHEMAS is not None:  # the full official schema (tests/test_sarif_github.py checks GitHub's side)
        validate(log)
    run_ = log["runs"][0]
    rules = [rule["id"] for rule in run_["tool"]["driver"]["rules"]]
    assert all(rule["help"]["text"] for rule in run_["tool"]["driver"]["rules"])
    results = run_["results"]
    assert {res["ruleId"] for res in results} == {"dangerous-global", "unknown-global", "malformed"}
    for res in results:
        assert rules[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] == "error"
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert not uri.startswith("/") and (tmp_path / uri).is_file()  # relative to the root (no git: the cwd)
        assert res["partialFingerprints"]
    evil = next(res for res in results if res["properties"].get("global") == "os.system")
    assert evil["locations"][0]["physicalLocation"]["region"]["byteOffset"] == 0


def test_advice_is_in_cli_syntax(files: dict[str, Path]) -> None:
    for fmt in ("text", "json", "sarif"):
        r = run("scan", "--format", fmt, files["evil"], files["custom"])
        out = " ".join(r.stdout.replace("\\n", " ").split())
        assert "safeload.load(" not in out and "unknown='stub'" not in out, fmt
        assert f"--allow notinstalled_pkg.mod.Config {files['custom']}" in out, fmt
        assert f"safeload scan --explain {files['evil']}" in out, fmt
    r = run("scan", "--max-decompressed", "10", files["evil_gz"])
    assert r.returncode == 2 and "--max-decompressed BYTES" in r.stdout and "with_limits" not in r.stdout


def test_text_report_names_location_and_fix(files: dict[str, Path]) -> None:
    r = run("scan", files["evil_gz"])
    assert "pickle 0 byte" in r.stdout and "Fix:" in r.stdout and "(GLOBAL)" in r.stdout


# ---- folders and caches ----------------------------------------------------------------------------------------------

def test_hf_cache(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "1111").write_bytes(torch_zip(BENIGN))
    (repo / "blobs" / "2222").write_text('{"architectures": ["X"]}')
    (repo / "blobs" / "3333").write_bytes(torch_zip(EVIL))
    for rev in ("a1", "b2"):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "pytorch_model.bin").symlink_to("../../blobs/1111")
        (snap / "config.json").symlink_to("../../blobs/2222")
    (repo / "snapshots" / "b2" / "optimizer.pt").symlink_to("../../blobs/3333")
    r = run("scan", "--format", "json", tmp_path / "hub")
    doc = json.loads(r.stdout)
    paths = [f["path"] for f in doc["files"]]
    assert r.returncode == 1
    assert len(paths) == 3 and all("/snapshots/" in p for p in paths), paths  # each blob once
    unsafe = [f for f in doc["files"] if f["status"] == "unsafe"]
    assert [Path(f["path"]).name for f in unsafe] == ["optimizer.pt"]
    assert run("scan", repo / "snapshots" / "a1").returncode == 0


# ---- info, convert, python -m ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples not found")
def test_info_torch() -> None:
    r = run("info", SAMPLES / "pytorch" / "state_dict.pt")
    assert r.returncode == 0, r.stderr
    assert "torch-zip" in r.stdout and "protocol 2" in r.stdout and "Python 2.3" in r.stdout
    assert "torch._utils._rebuild_tensor_v2" in r.stdout
    assert "conv.weight" in r.stdout and "float32" in r.stdout and "(2, 1, 3, 3)" in r.stdout


def test_info_protocol5(tmp_path: Path) -> None:
    path = tmp_path / "b.pkl"
    path.write_bytes(PROTO(5) + b"\x96" + (3).to_bytes(8, "little") + b"abc.")  # BYTEARRAY8
    r = run("info", path)
    assert r.returncode == 0, r.stderr
    assert "Python 3.8" in r.stdout and "protocol 5" in r.stdout


def test_info_unsafe(files: dict[str, Path]) -> None:
    r = run("info", files["evil"])
    assert r.returncode == 1 and "dangerous" in r.stdout and "os.system" in r.stdout


def test_info_folder_several_files_and_json(files: dict[str, Path], tmp_path: Path) -> None:
    r = run("info", ".", cwd=files["clean"].parent)  # a folder: every file in it
    assert r.returncode == 0, r.stderr
    assert "file:     model.pt" in r.stdout and "torch-zip" in r.stdout
    r = run("info", "--format", "json", files["clean"], files["evil"], files["text"].parent)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    by_name = {Path(f["path"]).name: f for f in doc["files"]}
    assert set(by_name) == {"model.pt", "weights.bin", "README.md"}
    assert by_name["model.pt"]["pickles"][0]["protocol"] == 2 and by_name["model.pt"]["oldest_python"] == "Python 2.3"
    assert by_name["weights.bin"]["status"] == "unsafe"
    assert {"qualname": "os.system", "verdict": "dangerous", "count": 1} in by_name["weights.bin"]["globals"]
    assert by_name["README.md"]["status"] == "skipped"


def test_info_library_call(files: dict[str, Path]) -> None:
    import safeload
    from safeload._info import FileInfo

    got = safeload.info(files["custom"], allow=["notinstalled_pkg.mod.Config"])
    assert isinstance(got, FileInfo) and got.status == "clean" and got.exit_code == 0
    assert [(g.qualname, g.verdict) for g in got.globals] == [("notinstalled_pkg.mod.Config", "allowed")]
    assert got.to_dict()["pickles"] == [{"where": "file", "protocol": 2, "why": "PROTO 2 at byte 0"}]


@pytest.mark.skipif(not (SAMPLES / "joblib_sklearn").is_dir(), reason="samples not found")
def test_info_joblib_protocol_and_allow_consistent() -> None:
    path = SAMPLES / "joblib_sklearn" / "linreg.joblib"
    r = run("info", path)
    assert r.returncode == 1 and "protocol 4" in r.stdout and "protocol ?" not in r.stdout, r.stdout
    assert "Python 3.4" in r.stdout
    r = run("info", "--allow", "sklearn.linear_model._base.LinearRegression", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status:   clean" in r.stdout and "could not be listed" not in r.stdout
    assert "coef_" in r.stdout and "float64" in r.stdout


def test_convert_missing_or_present(files: dict[str, Path], tmp_path: Path) -> None:
    import importlib.util

    r = run("convert", files["clean"], tmp_path / "out.safetensors")
    if importlib.util.find_spec("safeload._convert") is None:
        assert r.returncode == 4 and "no converter" in r.stderr
    else:
        assert r.returncode in (0, 1, 4)
    assert run("convert", files["clean"]).returncode == 4
    r = run("convert", files["clean"], tmp_path / "missing" / "out.safetensors")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_python_m_and_no_numpy_or_torch(files: dict[str, Path]) -> None:
    r = subprocess.run([sys.executable, "-m", "safeload", "scan", "-q", files["evil"]], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    code = ("import sys; from safeload._cli import main; "
            f"rc = main(['scan', '-q', {str(files['clean'])!r}, {str(files['evil'])!r}]); "
            "print(rc, 'numpy' in sys.modules, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "1 False False", r.stdout + r.stderr


def test_pre_commit_hook_definition() -> None:
    hooks = (Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml").read_text()
    assert "id: safeload-scan" in hooks and "entry: safeload scan" in hooks
    assert "types: [file]" in hooks and "types: [binary]" not in hooks  # protocol-0 pickles are text
    # tests/test_pre_commit_hook.py runs the real pre-commit package with this definition


def test_scan_starts_before_the_folder_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``safeload scan FOLDER`` (stderr not a terminal) scans the first file after one folder entry has been read,
    not after the whole listing, and still reports every file, sorted, with skipped files and the exit status."""
    from test_collect import _CountingScandir

    from safeload import _collect, _distributed
    from safeload._cli import main

    for i in range(300):
        (tmp_path / f"p{i:03}.pkl").write_bytes(EVIL if i == 150 else BENIGN)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    scandir = _CountingScandir()
    at_first_scan: list[int] = []
    real_scan_one = _distributed.scan_one

    def scan_one(*args: object, **kwargs: object) -> object:
        at_first_scan.append(scandir.taken)
        return real_scan_one(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_collect.os, "scandir", scandir)
    monkeypatch.setattr(_distributed, "scan_one", scan_one)
    assert main(["scan", "--format", "json", str(tmp_path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert scandir.taken == 301 and at_first_scan[0] <= 2 and len(at_first_scan) == 300
    paths = [f["path"] for f in doc["files"]]
    assert paths == sorted(paths) and len(paths) == 301
    assert doc["summary"]["unsafe"] == 1 and doc["summary"]["errors"] == 1


@pytest.mark.parametrize("line", [
    ["scan", "a.pkl"], ["scan", "-q", "--format", "sarif", "-o", "r.sarif", "--jobs", "2", "--allow", "m.C", "d"],
    ["scan", "--fail-on", "unsafe", "--include", "*.pt", "--exclude", "x", "--root", "/r", "--explain", "-"],
    ["load", "--unknown", "stub", "a.pt", "b.pt"], ["info", "--format", "json", "a"],
    ["convert", "a.pt", "b.safetensors", "--to", "safetensors", "--protocol", "2"],
])
def test_the_parser_of_one_command_reads_a_line_as_the_whole_parser_does(line: list[str]) -> None:
    """main() builds only the command its line names (safeload/_cli.py:build_parser): the same namespace."""
    from safeload._cli import build_parser

    whole, one = build_parser().parse_args(line), build_parser(line[0]).parse_args(line)
    assert vars(one) == vars(whole) and one.func.__name__ == f"_cmd_{line[0]}"


@pytest.mark.parametrize("line", [["scan"], ["scan", "--jobs", "x", "a"], ["load", "--unknown", "maybe", "a"],
                                  ["info", "--bogus", "a"], ["convert", "a"], ["bogus"], []])
def test_a_bad_line_is_a_usage_error_whichever_parser_reads_it(line: list[str]) -> None:
    from safeload._cli import build_parser

    for command in (None, line[0] if line else None):
        with pytest.raises(SystemExit) as exc:
            build_parser(command).parse_args(line)
        assert exc.value.code == 2


_PENDING_CHILD = """
import atexit, threading
from safeload._cli import _nothing_pending
seen = [_nothing_pending()]
release = threading.Event()
worker = threading.Thread(target=release.wait)
worker.start()
seen.append(_nothing_pending())
release.set()
worker.join()
seen.append(_nothing_pending())
atexit.register(print, "the handler ran")
seen.append(_nothing_pending())
print(seen)
"""


def test_the_command_ends_without_teardown_only_when_nothing_is_pending() -> None:
    """safeload/_cli.py:run skips the interpreter's teardown only when no atexit handler and no other thread
    could still have work to do (a fresh interpreter: pytest registers handlers of its own). CPython's count of
    handlers keeps one that was unregistered: that errs on the side of the usual exit."""
    proc = subprocess.run([sys.executable, "-c", _PENDING_CHILD], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.stdout.split() == ["[True,", "False,", "True,", "False]", "the", "handler", "ran"], proc.stderr


@pytest.mark.parametrize("entry", [["-m", "safeload"], ["-c", "from safeload._cli import run; run()"]])
def test_a_scan_that_ends_without_teardown_writes_all_its_output(entry: list[str], tmp_path: Path) -> None:
    """The fast exit flushes everything: a JSON report of 300 files through a pipe, the summary on stderr, a
    --output file, and each exit status."""
    import pickle

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:03d}.pkl").write_bytes(pickle.dumps({"i": i, "names": [f"n{j}" for j in range(30)]}, 4))
    proc = subprocess.run([sys.executable, *entry, "scan", "--format", "json", str(folder)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["files"]) == 300 and "300 files scanned" in proc.stderr
    out = tmp_path / "report.sarif"
    (folder / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    proc = subprocess.run([sys.executable, *entry, "scan", "-q", "--format", "sarif", "-o", str(out), str(folder)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    results = json.loads(out.read_text())["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["dangerous-global"]
