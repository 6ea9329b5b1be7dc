"""Output safety: text a file chose (global names, strings, member and file names) never reaches the terminal, a
JSON reader or GitHub as raw control characters or lone surrogates, in any ``--format``.

Each crafted pickle first runs the oracle's payload (so it is a live attack under the native unpickler, which the
oracle proves) and then names a global whose text carries ANSI escapes, newlines, C1 controls, a bidi override or
an unpaired surrogate. The real console script runs in a subprocess; its raw bytes are checked.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import oracle
from safeload._format.escape import escape, escaped

SCRIPT = Path(sys.executable).with_name("safeload")
FORMATS = ("text", "json", "sarif")


def _u(text: str) -> bytes:
    """BINUNICODE, encoded with surrogatepass as CPython's unpickler decodes it."""
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _named(module: str, name: str) -> bytes:
    """The oracle's live payload, then POP, then STACK_GLOBAL (module, name): a name with any characters."""
    live = oracle.payload(4)[:-1]  # drop STOP
    return live + b"0" + _u(module) + _u(name) + b"\x93."


CASES = {
    "ansi": _named("os\x1b[31m\x1b]0;pwned\x07", "system\x1b[2J\x1b[H"),
    "newline": _named("os", "system\nmodel.pt: clean [pickle]\r"),
    "c1_del_bidi": _named("os\x9b31m\x7f", "sys\u202etem\u2028x"),
    "surrogate": _named("os\ud800", "system\udfff"),
}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "safeload"]
    return subprocess.run(argv + [str(a) for a in args], capture_output=True, timeout=120, cwd=cwd)


def _assert_clean(raw: bytes, where: str) -> str:
    """``raw`` is strict UTF-8 with no control character but newline, no C1 control, DEL or surrogate."""
    text = raw.decode("utf-8")  # strict: a lone surrogate could not have been encoded
    bad = sorted({f"U+{ord(c):04X}" for c in text if c != "\n" and not c.isprintable()})
    assert not bad, f"{where}: raw characters {bad} reached the output"
    return text


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crafted")
    out = {}
    for key, data in CASES.items():
        path = folder / f"{key}.pkl"
        path.write_bytes(data)
        out[key] = path
    return out


def test_the_crafted_pickles_are_live(crafted: dict[str, Path]) -> None:
    for key, path in crafted.items():
        assert "pickle" in oracle.live(path, ("pickle",)), key


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key", sorted(CASES))
def test_every_format_escapes_file_text(crafted: dict[str, Path], key: str, fmt: str) -> None:
    r = run("scan", "--format", fmt, crafted[key])
    assert r.returncode == 1, r.stderr.decode("utf-8", "replace")  # unsafe, and the report was not lost
    out = _assert_clean(r.stdout, f"{key} {fmt} stdout")
    _assert_clean(r.stderr, f"{key} {fmt} stderr")
    if fmt == "text":
        assert "UNSAFE" in out and "builtins.open" in out
        assert not any(line.startswith("model.pt: clean") for line in out.splitlines())  # no forged report line
    else:
        doc = json.loads(out)
        strings = "\n".join(_strings(doc))
        _assert_clean(strings.encode("utf-8"), f"{key} {fmt} decoded strings")
        assert "builtins.open" in strings
    expected = {"ansi": "\\x1b[31m", "newline": "system\\nmodel.pt", "c1_del_bidi": "\\x9b31m\\x7f",
                "surrogate": "os\\ud800"}[key]
    assert expected in (out if fmt == "text" else "\n".join(_strings(json.loads(out))))


def _strings(doc: object) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []


def test_file_names_are_escaped_too(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (a lone surrogate once decoded) and holds ESC: every format, the summary."""
    folder = tmp_path / "repo"
    folder.mkdir()
    name = b"w\x1b[2J\xff.pkl"
    (folder / name.decode("utf-8", "surrogateescape")).write_bytes(CASES["ansi"])
    for fmt in FORMATS:
        r = run("scan", "--format", fmt, folder)
        assert r.returncode == 1, (fmt, r.stderr)
        out = _assert_clean(r.stdout, f"{fmt} stdout")
        _assert_clean(r.stderr, f"{fmt} stderr")
        if fmt == "sarif":  # the URI still names the real file: its bytes, percent-encoded
            uris = [loc["physicalLocation"]["artifactLocation"]["uri"]
                    for res in json.loads(out)["runs"][0]["results"] for loc in res["locations"]]
            assert any(u.endswith("w%1B%5B2J%FF.pkl") for u in uris), uris


def test_load_and_info_escape_too(crafted: dict[str, Path]) -> None:
    for command in ("load", "info"):
        r = run(command, crafted["ansi"])
        assert r.returncode in (1, 2), (command, r.returncode, r.stderr)
        _assert_clean(r.stdout, f"{command} stdout")
        _assert_clean(r.stderr, f"{command} stderr")


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))
def test_escape_is_printable_and_utf8(text: str) -> None:
    out = escape(text)
    assert all(c.isprintable() for c in out)
    out.encode("utf-8")
    if text.isprintable():
        assert out == text


def test_escaped_copies_reports_without_touching_them() -> None:
    from safeload._scan import FileReport, Finding, Report

    finding = Finding("a\x1b.pkl", "unknown-global", "unsafe", "Refused global m\ud800.n",
                      explanation="line one\nx = 'a\x1bb'")
    report = Report([FileReport("a\x1b.pkl", "unsafe", "pickle", findings=[finding])])
    copy = escaped(report)
    assert report.files[0].path == "a\x1b.pkl"  # the original is unchanged
    assert copy.files[0].path == "a\\x1b.pkl" and copy.findings[0].message == "Refused global m\\ud800.n"
    assert copy.findings[0].explanation == "line one\nx = 'a\\x1bb'"  # our line breaks stay
    assert copy.exit_code == report.exit_code == 1


def test_escape_cuts_long_text() -> None:
    assert escape("a" * 10, 4) == "aaaa... (6 more characters)"


def _cells(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs a POSIX pty")
@pytest.mark.parametrize("columns", [80, 40])
def test_progress_bar_stays_inside_the_terminal(tmp_path: Path, columns: int) -> None:
    """Under a real pty of ``columns`` columns (and $COLUMNS), every bar line is at most ``columns - 1`` cells, so it
    never wraps; long, wide-character and escape-laden names are cut from the front."""
    import fcntl
    import pty
    import termios

    folder = tmp_path / ("d" * 50)
    folder.mkdir()
    names = [f"{i:03}_{'x' * 70}.pkl" for i in range(120)] + ["模型权重文件" * 8 + ".pkl", "a\x1b[2Jb.pkl"]
    for name in names:
        (folder / name).write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.")
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "safeload"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the pty
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
            os.environ["COLUMNS"] = str(columns)
            os.execv(argv[0], argv + ["scan", "-o", os.devnull, str(folder)])
        finally:
            os._exit(127)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        chunks.append(chunk)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = b"".join(chunks).decode("utf-8")
    bars = [seg for seg in text.replace("\r\n", "\n").replace("\n", "\r").split("\r") if seg.startswith("[")]
    assert len(bars) >= len(names) - 1  # drawn once per file (the bar starts after the first)
    widest = max(_cells(seg) for seg in bars)
    assert widest <= columns - 1, [seg for seg in bars if _cells(seg) > columns - 1][:3]
    assert not any("\x1b" in seg for seg in bars)
    assert any(seg.endswith(" " * 3) or "..." in seg for seg in bars)
