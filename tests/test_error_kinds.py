"""Error kinds are types: each kind is raised by real input, the scanner's rules follow the type and never the
message text, the tree in errors.py's docstring names every class under its parent, and no code in the package
decides anything from an error's text (an AST check, with its own check on written code)."""

from __future__ import annotations

import ast
import io
import inspect
import pickle
import re
from pathlib import Path

import pytest

import safeload
from safeload import errors
from safeload._report import finding_from_error

PACKAGE = Path(safeload.__file__).resolve().parent

# ---- each kind, raised by real input ------------------------------------------------------------------------------


def test_a_dangerous_name_is_a_dangerous_global_error() -> None:
    data = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R."
    with pytest.raises(errors.DangerousGlobalError) as info:
        safeload.loads(data)
    err = info.value
    assert err.qualname == "posix.system" and err.danger and err.offset == 2
    assert "allow=[" not in err.fix  # never suggested for allow=
    with pytest.raises(errors.UnsafeGlobalError) as info:
        safeload.loads(b"\x80\x02cmypkg.config\nTrainConfig\n)\x81.")
    assert type(info.value) is errors.UnsafeGlobalError and "allow=['mypkg.config.TrainConfig']" in info.value.fix


def test_a_dangerous_name_refused_by_its_rebuilder_is_never_suggested_for_allow() -> None:
    data = b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R."
    assert pickle.loads(data) == 1  # the stream really calls eval
    with pytest.raises(errors.UnsafeGlobalError) as info:
        safeload.loads(data)
    assert info.value.qualname == "builtins.eval" and "allow=[" not in info.value.fix
    assert "unknown='stub'" in info.value.fix


def test_calling_a_name_allowed_as_a_value_is_an_unsafe_call_error() -> None:
    data = b"\x80\x02cbuiltins\nint\nX\x02\x00\x00\x0042\x85R."
    assert pickle.loads(data) == 42  # the stream really calls int
    with pytest.raises(errors.UnsafeCallError) as info:
        safeload.loads(data)
    assert info.value.qualname == "builtins.int" and not isinstance(info.value, errors.DangerousGlobalError)
    report = safeload.scan(data)
    assert [(f.rule, f.verdict) for f in report.findings] == [("unsafe-call", "allowed")]


def test_bytes_after_stop_are_a_trailing_data_error_and_the_scanner_reads_on_by_type() -> None:
    first = pickle.dumps([1, 2], protocol=2)
    hidden = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R."
    with pytest.raises(errors.TrailingDataError) as info:
        safeload.loads(first + hidden)
    assert info.value.offset == len(first)
    report = safeload.scan(first + hidden)
    assert report.exit_code == 1
    # the scanner opens what follows STOP as a blob of its own, because the error is a TrailingDataError
    after = f"[after STOP at byte {len(first)}]"
    opened = [(f.rule, f.qualname) for f in report.findings if f.member == after]
    assert opened == [("dangerous-global", "posix.system")]


def test_an_unknown_format_is_an_unsupported_format_error() -> None:
    data = b"GGUF\x03\x00\x00\x00" + bytes(40)
    with pytest.raises(errors.UnsupportedFormatError) as info:
        safeload.loads(data)
    assert info.value.kind == "gguf" and info.value.offset == 0


def test_errors_keep_their_type_and_fields_across_pickling() -> None:
    with pytest.raises(errors.DangerousGlobalError) as info:
        safeload.loads(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R.")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is errors.DangerousGlobalError and again.danger == info.value.danger
    assert str(again) == str(info.value)


# ---- the scanner's rules come from the type --------------------------------------------------------------------

@pytest.mark.parametrize(("err", "rule"), [
    (errors.UnsupportedFormatError("x", what="Reworded entirely"), "unsupported-format"),
    (errors.FormatError("Unsupported format: x"), "malformed"),  # the words alone make no kind
    (errors.TrailingDataError("Reworded"), "malformed"),
    (errors.UnsafeCallError("mypkg", "Thing", why=""), "unsafe-call"),
    (errors.UnsafeGlobalError("mypkg", "Thing", why="mypkg.Thing is allowed as a value"), "unknown-global"),
    (errors.UnsafeGlobalError("posix", "system", why=""), "dangerous-global"),  # by the table, not the text
    (errors.LimitExceededError("max_depth", 9, 8, what="Unsupported format: x"), "limit-exceeded"),
])
def test_finding_rules_follow_the_type_not_the_text(err: errors.SafeLoadError, rule: str) -> None:
    assert finding_from_error("f", err, None, None).rule == rule


def test_the_fix_of_a_global_follows_the_type_not_the_text() -> None:
    plain = errors.UnsafeGlobalError("mypkg", "Thing", why="mypkg.Thing is known to be dangerous: it lies")
    assert "allow=['mypkg.Thing']" in plain.fix
    dangerous = errors.DangerousGlobalError("mypkg", "Thing", "runs a shell", why="reworded")
    assert "allow=[" not in dangerous.fix and dangerous.danger == "runs a shell"


# ---- the tree in errors.py's docstring ---------------------------------------------------------------------------

def _drawn_tree() -> dict[str, str]:
    """{class: parent} from the box drawing in errors.py's docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│ ]   )*(?:[├└]── )?)([A-Za-z.]+Error)\b", line)
        if match is None:
            continue
        depth, name = len(match.group(1)), match.group(2).rpartition(".")[2]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_docstring_draws_every_error_class_under_its_parent() -> None:
    drawn = _drawn_tree()
    classes = {name: cls for name, cls in vars(errors).items()
               if inspect.isclass(cls) and issubclass(cls, errors.SafeLoadError)}
    assert set(drawn) == set(classes) | {"SafeLoadError"} - {"UnpicklingError"}, drawn
    assert drawn["SafeLoadError"] == "UnpicklingError"
    for name, cls in classes.items():
        if name != "SafeLoadError":
            assert cls.__bases__[0].__name__ == drawn[name], name
        assert name in errors.__all__ and getattr(safeload, name) is cls  # public, catchable from the package


# ---- no decision from message text -----------------------------------------------------------------------------

#: Attributes of an error that hold text for people.
_TEXT_FIELDS = {"what", "why", "fix", "message", "args", "strerror"}
_TEXT_TESTS = {"startswith", "endswith", "find", "rfind", "index", "count", "search", "match", "fullmatch"}
#: Third-party messages with no type to tell them apart (the literal tested, per file), and why.
_THIRD_PARTY = {
    ("_patch.py", "allow_pickle"): "numpy raises a bare ValueError for an object array read with allow_pickle=False",
    ("_detect.py", "memory"): "lzma raises one LZMAError type for a memory limit and for a bad stream",
    ("errors.py", "integer string conversion"): "CPython raises a bare ValueError when an int is over its "
                                                "int-to-text digit limit (sys.set_int_max_str_digits)",
}


def _is_text_of_error(node: ast.expr) -> bool:
    """``x.what`` (and the other text fields), ``str(x)``, ``repr(x)``, ``f"{x}"``, optionally ``.lower()``-ed."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("lower", "casefold"):
        node = node.func.value
    if isinstance(node, ast.Attribute):
        return node.attr in _TEXT_FIELDS
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("str", "repr"):
        return len(node.args) == 1 and not isinstance(node.args[0], ast.Constant)
    return isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "args"


def _literal(node: ast.AST) -> str:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            return sub.value
    return ""


def text_decisions(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every place that tests an error's text: ``"..." in err.why``, ``"..." in str(exc)``,
    ``err.what.startswith(...)``, ``re.search(..., str(exc))``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if any(_is_text_of_error(side) for side in node.comparators):
                found.append((node.lineno, _literal(node.left)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _TEXT_TESTS and _is_text_of_error(node.func.value):
                found.append((node.lineno, _literal(node)))
            elif node.func.attr in ("search", "match", "fullmatch", "findall") and isinstance(node.func.value,
                                                                                                ast.Name) \
                    and node.func.value.id == "re" and any(_is_text_of_error(a) for a in node.args[1:]):
                found.append((node.lineno, _literal(node.args[0])))
    return found


def test_the_checker_finds_each_form() -> None:
    written = '''
if "allowed as a value" in err.why: pass
if "x" not in str(exc): pass
if err.what.startswith("Unsupported format"): pass
if "memory" in str(exc).lower(): pass
if re.search("STOP", repr(e)): pass
if "a" in err.args[0]: pass
if isinstance(err, TrailingDataError): pass
if name.startswith("legacy"): pass
if "data.pkl" in names: pass
text = f" {self.why.rstrip('.')}."
'''
    assert [line for line, _ in text_decisions(written)] == [2, 3, 4, 5, 6, 7]


def test_no_code_in_the_package_decides_from_message_text() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, literal in text_decisions(path.read_text(encoding="utf-8")):
            if (path.name, literal) not in _THIRD_PARTY:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} tests the text {literal!r}")
    assert not offenders, "decide by the error's type (safeload/errors.py), not its message:\n" + "\n".join(offenders)


# ---- one boundary for third-party parsers (safeload.errors.third_party) ----------------------------------------

def test_a_corrupt_stream_is_one_format_error_in_load_and_scan() -> None:
    import gzip
    import zlib

    data = bytearray(gzip.compress(pickle.dumps(list(range(2000)), protocol=2)))
    data[20:40] = bytes(range(20))  # a broken deflate block: zlib.error
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(data))
    with pytest.raises(errors.FormatError) as info:
        safeload.loads(bytes(data))
    assert info.value.what == "Corrupt gzip stream" and info.value.why.startswith("error: ")
    report = safeload.scan(bytes(data))
    assert [(f.rule, f.message) for f in report.findings] == [("malformed", "Corrupt gzip stream")]


def test_a_broken_tar_is_a_format_error_of_the_scan() -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("a.bin")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"abcd"))
        second = tarfile.TarInfo("b.bin")
        second.size = 600
        tf.addfile(second, io.BytesIO(bytes(600)))
    cut = buf.getvalue()[:512 * 3 + 100]  # the second member's data cut short
    report = safeload.scan(cut)
    assert report.exit_code == 2 and report.findings[0].rule == "malformed"


def test_the_boundary_converts_only_what_the_library_raises() -> None:
    with pytest.raises(errors.FormatError) as info, errors.third_party("the x stream", (ValueError,), offset=3):
        raise ValueError("bad header")
    err = info.value
    assert (err.what, err.why, err.offset) == ("Cannot read the x stream", "ValueError: bad header", 3)
    with pytest.raises(KeyError), errors.third_party("the x stream", (ValueError,)):
        raise KeyError("a bug, not bad input")
    with pytest.raises(errors.LimitExceededError) as limit, errors.third_party("the x stream", (ValueError,)):
        raise MemoryError
    assert limit.value.limit == "max_alloc" and limit.value.what == "Out of memory while reading the x stream"
    refusal = errors.FormatError("from safeload itself")
    with pytest.raises(errors.FormatError) as same, errors.third_party("the x stream", (Exception,)):
        raise refusal
    assert same.value is refusal


@pytest.mark.internal_error
def test_a_bug_in_safeloads_own_reader_is_an_internal_error_never_a_format_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    from safeload._containers.zip import ZipArchive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.md", "hello")
        zf.writestr("model.bin", pickle.dumps([1, 2], protocol=2))

    def broken(self, name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise IndexError("a bug in the zip reader")

    monkeypatch.setattr(ZipArchive, "read", broken)
    report = safeload.scan(buf.getvalue())
    assert report.exit_code == 2
    assert [f.message for f in report.findings] == [
        "Internal error while scanning a zip file: IndexError: a bug in the zip reader"]
