"""The pre-commit hook end to end: the real ``pre-commit`` package installs this checkout's hook (as committed
to a scratch clone) into a temporary git repository; ``git commit`` then lets benign weights and ordinary files
through and blocks a binary pickle and a protocol-0 pickle, which pre-commit's ``identify`` calls text.

The hook environment is installed once per module (pip fetches numpy, zstandard and fickling); the test is skipped,
saying why, where that cannot be done (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import oracle

pre_commit = pytest.importorskip("pre_commit")
identify = pytest.importorskip("identify.identify")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check,
                          timeout=600)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("pre-commit")
    src = base / "safeload-src"  # this checkout's package and hook definition, committed in a scratch clone
    src.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "safeload", src / "safeload", ignore=shutil.ignore_patterns("__pycache__"))
    git("init", "-q", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "hook source", cwd=src)
    rev = git("rev-parse", "HEAD", cwd=src).stdout.strip()
    work = base / "work"
    work.mkdir()
    git("init", "-q", cwd=work)
    (work / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {src}\n    rev: {rev}\n    hooks:\n      - id: safeload-scan\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(base / "cache")}
    hook = [sys.executable, "-m", "pre_commit"]
    subprocess.run(hook + ["install"], cwd=work, env=env, check=True, capture_output=True, timeout=120)
    r = subprocess.run(hook + ["install-hooks"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"pre-commit could not install the hook environment (network?): {r.stdout[-300:]}")
    git("add", ".pre-commit-config.yaml", cwd=work)
    git("commit", "-qm", "config", cwd=work, check=False)
    return work, env


def commit(work: Path, env: dict[str, str], name: str, data: bytes) -> subprocess.CompletedProcess[str]:
    (work / name).write_bytes(data)
    subprocess.run(["git", "add", name], cwd=work, check=True, timeout=60)
    full = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")}
    return subprocess.run(["git", "commit", "-m", f"add {name}"], cwd=work, env=full, capture_output=True,
                          text=True, timeout=600)


def committed(work: Path, name: str) -> bool:
    return name in git("ls-tree", "--name-only", "HEAD", cwd=work, check=False).stdout.split()


def test_benign_weights_and_ordinary_files_pass(repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    work, env = repo
    weights = tmp_path / "w.pt"
    torch.save({"layer.weight": torch.ones(2, 2), "epoch": 3}, weights)
    for name, data in (("model.pt", weights.read_bytes()), ("README.md", b"# Model card\n"),
                       ("train.py", b"class Net:\n    pass\n")):
        r = commit(work, env, name, data)
        assert r.returncode == 0, r.stdout + r.stderr
        assert committed(work, name)


@pytest.mark.parametrize("name, proto", [("binary.pkl", 2), ("text_protocol0.pkl", 0)])
def test_malicious_pickles_are_blocked(repo: tuple[Path, dict[str, str]], tmp_path: Path, name: str,
                                       proto: int) -> None:
    work, env = repo
    data = oracle.payload(proto)
    live = tmp_path / name
    live.write_bytes(data)
    assert "pickle" in oracle.live(live, ("pickle",))  # the file runs its payload under pickle.load
    tags = identify.tags_from_path(str(live))
    assert ("text" if proto == 0 else "binary") in tags  # why the hook must not filter on `types: [binary]`
    r = commit(work, env, name, data)
    assert r.returncode != 0, r.stdout + r.stderr
    out = r.stdout + r.stderr  # git prints the hook's output on stderr
    assert "safeload scan" in out and "UNSAFE" in out and "builtins.open" in out
    assert not committed(work, name)
    subprocess.run(["git", "rm", "-q", "--cached", name], cwd=work, check=False, timeout=60)
