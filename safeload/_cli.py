"""The ``safeload`` command line: ``load``, ``scan``, ``info`` and ``convert``.

``safeload scan`` exit codes: one table, :data:`EXIT_TABLE`, printed by ``--help`` and copied into the README
(``tests/test_cli.py`` checks that they agree); ``--fail-on`` chooses which outcomes count.

The report goes to stdout (or ``--output``); the summary and the progress bar go to stderr, the bar only on a
terminal. Every string that came from a file is escaped before it is printed (``_format/escape.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Sequence

from ._hints import IO, Any, NoReturn
from . import __version__
from ._load import load
from .errors import SafeLoadError

__all__ = ["main", "run"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 4
EXIT_UNSAFE, EXIT_ERROR, EXIT_NOTHING = 1, 2, 3

#: ``--fail-on`` outcomes, the exit status each gives, and what it means (the first that applies wins)
FAIL_ON: dict[str, tuple[int, str]] = {
    "unsafe": (EXIT_UNSAFE, "a file names a global outside the allowlist, or calls an allowed name in a way "
                            "that would run code"),
    "error": (EXIT_ERROR, "a file could not be scanned: corrupt, truncated, ambiguous, over a limit, unreadable"),
    "unsupported": (EXIT_ERROR, "a file that could hold a pickle is in a format safeload does not read"),
    "skipped": (EXIT_NOTHING, "a file was skipped (text, empty, a known format without code, a link)"),
    "nothing": (EXIT_NOTHING, "no file was scanned at all"),
}
DEFAULT_FAIL_ON = ("unsafe", "error", "unsupported")
EXIT_TABLE = (
    ("0", "nothing that --fail-on names happened (by default: nothing unsafe, every file that could hold a pickle "
          "was read)"),
    ("1", "unsafe: " + FAIL_ON["unsafe"][1]),
    ("2", "error or unsupported: a file could not be scanned (corrupt, truncated, ambiguous, over a limit, "
          "unreadable, or a format safeload does not read)"),
    ("3", "nothing scanned (--fail-on nothing) or a file skipped (--fail-on skipped)"),
    ("4", "usage error: bad option, missing path, unreadable policy file, unwritable output"),
)


def _describe(obj: Any, indent: str = "", depth: int = 0, limit: int = 40) -> list[str]:
    """A short, bounded outline of a loaded object: containers by key, arrays by dtype and shape."""
    lines: list[str] = []
    todo: list[tuple[str, Any, int]] = [("", obj, 0)]
    while todo and len(lines) < limit:
        key, value, level = todo.pop()
        pad = "  " * level
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        if shape is not None and dtype is not None:
            lines.append(f"{pad}{key}{type(value).__name__} {dtype} {tuple(shape)}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key}{type(value).__name__} ({len(value)} keys)")
            if level < 3:
                todo.extend((f"{k!s}: ", v, level + 1) for k, v in reversed(list(value.items())[:limit]))
        elif isinstance(value, (list, tuple)):
            lines.append(f"{pad}{key}{type(value).__name__} ({len(value)} items)")
        else:
            text = repr(value)
            lines.append(f"{pad}{key}{text if len(text) < 80 else text[:77] + '...'}")
    if todo:
        lines.append("...")
    return lines


def _cmd_load(args: argparse.Namespace) -> int:
    from ._format.escape import escape

    status = EXIT_OK
    for path in args.paths:
        try:
            obj = load(path, allow=args.allow, unknown=args.unknown)
        except SafeLoadError as err:
            print(f"{escape(path)}: refused: {escape(str(err))}", file=sys.stderr)
            status = EXIT_REFUSED
            continue
        print(f"{escape(path)}: loaded")
        for line in _describe(obj):
            print(f"  {escape(line)}")
    return status



# ---- scan ---------------------------------------------------------------------------------------------------------

class UsageError(Exception):
    """Bad arguments: exit status 4."""


def _read_policy_file(path: str) -> list[str]:
    """``--policy FILE``: JSON ``{"allow": ["module.Name", ...]}``, or one name per line (``#`` comments)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    if text.lstrip().startswith("{"):
        import json

        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"policy file {path} is not valid JSON: {exc}") from None
        names = doc.get("allow", []) if isinstance(doc, dict) else None
        if set(doc) - {"allow"} or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UsageError(f'policy file {path} must be {{"allow": ["module.Name", ...]}}')
        return names
    names = [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]
    if any(":" in n or n.startswith("- ") for n in names):
        raise UsageError(f'policy file {path} looks like YAML; write JSON {{"allow": ["module.Name", ...]}} or one '
                         f"name per line")
    return names


def _scan_all(files: Iterable[tuple[str, str]], allow: list[str], args: argparse.Namespace) -> Iterator[Any]:
    """Each file's report: here, on a process pool (--jobs), or on a Dask cluster (--scheduler), as ``files`` (a
    list, or a folder walk still going on) are listed; files already in the --results file are not scanned again
    (safeload/_distributed.py)."""
    import itertools

    from ._distributed import ResultsFile, pool_scan, scan_items, scan_one

    state = ResultsFile(args.results)
    already: list[Any] = []

    def todo() -> Iterator[tuple[str, str]]:
        for item in files:
            if item[1] in state.done:
                already.append(state.done[item[1]])
            else:
                yield item

    try:
        pending = todo()
        if args.scheduler:
            try:
                import distributed
            except ImportError:
                raise UsageError("--scheduler needs dask.distributed: pip install 'safeload[dask]'") from None
            client_type: Any = distributed.Client  # untyped
            with client_type(args.scheduler, timeout="30s") as client:
                results: Iterator[Any] = scan_items(client, pending, allow, args.max_decompressed, args.explain)
                for result in results:
                    state.write([result])
                    yield result
        else:
            head = list(itertools.islice(pending, 2))
            rest = itertools.chain(head, pending)
            if args.jobs > 1 and len(head) > 1:
                results = pool_scan(rest, args.jobs, allow, args.max_decompressed, args.explain)
            else:
                results = (scan_one(item, tuple(allow), args.max_decompressed, args.explain) for item in rest)
            for result in results:
                state.write([result])
                yield result
        yield from already
    finally:
        state.close()


def _columns(stream: IO[str] | None = None) -> int:
    """The width of the terminal ``stream`` (default: stderr) is on: $COLUMNS, else the terminal's own, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size((sys.stderr if stream is None else stream).fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 80
    return columns if columns > 0 else 80


def _cells(ch: str) -> int:
    import unicodedata

    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _fit_tail(text: str, room: int) -> str:
    """The end of ``text`` in at most ``room`` terminal cells, with ``...`` in front when cut."""
    if sum(_cells(c) for c in text) <= room:
        return text
    kept: list[str] = []
    used = 3
    for ch in reversed(text):
        used += _cells(ch)
        if used > room:
            break
        kept.append(ch)
    return ("..." + "".join(reversed(kept))) if room >= 3 else ""


class _Progress:
    """A one-line bar on stderr, drawn only when stderr is a terminal, never in the terminal's last column (a
    line that fills it wraps on many terminals and leaves one line per file)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 1 and sys.stderr.isatty()
        self.done = 0
        self.width = max(_columns() - 1, 1)

    def step(self, name: str) -> None:
        from ._format.escape import escape

        self.done += 1
        if self.enabled:
            bar = max(0, min(30, self.width // 3 - 2))
            filled = bar * self.done // self.total
            head = f"[{'#' * filled}{'.' * (bar - filled)}] {self.done}/{self.total} " if bar else ""
            head = head[: self.width]
            tail = _fit_tail(escape(name), self.width - len(head))
            line = head + tail
            pad = self.width - len(head) - sum(_cells(c) for c in tail)
            sys.stderr.write("\r" + line + " " * max(pad, 0))
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _check_writable(output: str) -> None:
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {output}: the folder {folder} does not exist")
    if os.path.isdir(output) or not os.access(output if os.path.exists(output) else folder, os.W_OK):
        raise UsageError(f"cannot write {output}: not a writable file")


def _write_output(text: str, output: str | None) -> None:
    if output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader stopped; the exit status still reports the scan
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def _outcomes(report: Any) -> set[str]:
    """The ``--fail-on`` outcomes that happened in ``report``."""
    seen: set[str] = set()
    for file in report.files:
        if file.status == "unsafe":
            seen.add("unsafe")
        elif file.status == "error":
            rules = {f.rule for f in file.findings}
            seen.add("unsupported" if rules and rules <= {"unsupported-format"} else "error")
        elif file.status != "clean":
            seen.add("skipped")
    if not any(file.status in ("clean", "unsafe", "error") for file in report.files):
        seen.add("nothing")
    return seen


def exit_status(report: Any, fail_on: Sequence[str] = DEFAULT_FAIL_ON) -> int:
    """The exit status of a scan under ``--fail-on``: the lowest status among the outcomes named that happened."""
    codes = [FAIL_ON[name][0] for name in _outcomes(report) if name in fail_on]
    return min(codes, default=EXIT_OK)


_VERDICT = {0: "nothing unsafe found", 1: "UNSAFE files found", 2: "some files could not be scanned",
            3: "nothing was scanned, or files were skipped"}


def _summary(report: Any, out: IO[str], code: int) -> None:
    from ._format.escape import escape

    print(f"safeload scan: {report.summary()}", file=out)
    skipped = report.skipped
    for file in skipped[:20]:
        print(f"  skipped {escape(file.path)}: {escape(file.reason)}", file=out)
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more skipped", file=out)
    print(f"safeload scan: {_VERDICT[code]} (exit {code})", file=out)


def _parse_fail_on(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FAIL_ON]
    if unknown or not names:
        raise UsageError(f"--fail-on takes a comma-separated list of {', '.join(FAIL_ON)}, not {text!r}")
    return names


def _checked_inputs(allow: list[str], paths: list[str]) -> tuple[Iterator[tuple[str, str]], list[Any]]:
    """The files under ``paths``, listed lazily (safeload/_collect.py), and the list those skipped are added to as
    they are met, after checking ``allow``: bad names and missing paths are usage errors before anything is
    scanned."""
    from ._scan import policy_for
    from .policy import danger_of

    for name in allow:
        parts = name.split(".")
        if len(parts) < 2 or not all(part.isidentifier() for part in parts):
            raise UsageError(f"--allow {name!r} is not a name: give the module and the class, as in "
                             f"--allow mypkg.config.TrainConfig (a --policy file: JSON or one such name per line)")
        danger = danger_of(name)
        if danger is not None:
            raise UsageError(f"--allow {name}: {danger}; safeload never allows a name known to run code, read "
                             f"the file with `safeload scan --explain` to see what it would do")
    try:
        policy_for(None, allow)
    except TypeError as exc:
        raise UsageError(str(exc)) from None
    try:
        from ._collect import iter_any  # paths, and fsspec URLs (s3://, https://, ...)

        skipped: list[Any] = []
        return iter_any(paths, skipped), skipped
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None


def _selected(display: str, include: list[str], exclude: list[str]) -> bool:
    """``--include`` / ``--exclude``: shell patterns matched against the path as shown and against its file name."""
    if not include and not exclude:
        return True
    import fnmatch

    name = os.path.basename(display)

    def hit(pattern: str) -> bool:
        return fnmatch.fnmatchcase(display, pattern) or fnmatch.fnmatchcase(name, pattern)

    return (not include or any(hit(p) for p in include)) and not any(hit(p) for p in exclude)


def _scan_stdin(allow: list[str], args: argparse.Namespace) -> Any:
    """``-``: the bytes of standard input, scanned as one file named ``<stdin>``."""
    from ._record import replace
    from ._scan import scan

    data = sys.stdin.buffer.read()
    result = scan(data, allow=allow, max_decompressed=args.max_decompressed, explain=args.explain).files[0]
    renamed = [replace(f, path="<stdin>") for f in result.findings]
    return replace(result, path="<stdin>", findings=renamed)


def _cli_advice(report: Any) -> Any:
    """The report with the library's advice (``safeload.load(..., allow=[...])``, ``unknown='stub'``,
    ``with_limits(max_decompressed=...)``) said as command-line options. Other advice is kept as it is."""
    from ._record import replace

    def fix_for(f: Any) -> str:
        text = f.fix or ""
        import shlex

        where = shlex.quote(f.path) if f.path not in ("<stdin>", "<bytes>") else "-"
        if f.rule == "dangerous-global" and "unknown='stub'" in text:
            return (f"Do not open this file with a loader that runs code; to see what it would do without running it: "
                    f"`safeload scan --explain {where}`, or `safeload load --unknown stub {where}` (inert stubs)")
        if f.rule == "unknown-global" and f.qualname and "allow=[" in text:
            return (f"If {f.qualname} is a class you trust: `safeload scan --allow {f.qualname} {where}` (or list it "
                    f"in a --policy file); to see what unpickling would do: `safeload scan --explain {where}`; "
                    f"better, save a state_dict instead of whole objects")
        if f.rule == "limit-exceeded" and "with_limits(max_decompressed=" in text:
            return "If the file is trusted and really this large, raise the limit: `--max-decompressed BYTES`"
        return text

    files = []
    for file in report.files:
        if file.findings:  # a file without findings has no advice to rewrite: kept as it is
            file = replace(file, findings=[replace(f, fix=fix_for(f)) for f in file.findings])
        files.append(file)
    return replace(report, files=files)


def _cmd_scan(args: argparse.Namespace) -> int:
    from ._format import OutputFormat
    from ._scan import Report

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    fail_on = _parse_fail_on(args.fail_on)
    if args.max_decompressed is not None and args.max_decompressed <= 0:
        raise UsageError(f"--max-decompressed must be a positive number of bytes, not {args.max_decompressed}")
    if args.root is not None and not os.path.isdir(args.root):
        raise UsageError(f"--root {args.root}: no such folder")
    if args.output is not None:  # an unwritable --output is a usage error before the scan, not after it
        _check_writable(args.output)
    allow = list(args.allow)
    if args.policy:
        allow += _read_policy_file(args.policy)
    stdin = args.paths.count("-")
    if stdin > 1:
        raise UsageError("'-' (standard input) can be given once")
    listed, skipped = _checked_inputs(allow, [p for p in args.paths if p != "-"]) if len(args.paths) > stdin \
        else (iter(()), [])
    files: Iterable[tuple[str, str]] = (f for f in listed if _selected(f[1], args.include, args.exclude))
    report = Report()
    if stdin:
        report.files.append(_scan_stdin(allow, args))
    if not args.quiet and sys.stderr.isatty():  # the bar needs the number of files: the listing comes first
        files = list(files)
        progress = _Progress(len(files), True)
    else:  # else files are scanned as the folders are walked
        progress = _Progress(0, False)
    try:
        for result in _scan_all(files, allow, args):
            report.files.append(result)
            progress.step(result.path)
    finally:
        progress.close()
    report.files.extend(f for f in skipped if _selected(f.path, args.include, args.exclude))
    report.files.sort(key=lambda f: f.path)
    code = exit_status(report, fail_on)
    formatter = OutputFormat(args.format).to_formatter(quiet=args.quiet, root=args.root, exit_code=code)
    _write_output(formatter.format(_cli_advice(report)), args.output)
    if not args.quiet:
        _summary(report, sys.stderr, code)
    return code


# ---- info ---------------------------------------------------------------------------------------------------------

def _info_text(item: Any) -> list[str]:
    """One file's ``safeload info`` block (every string already escaped)."""
    lines = [f"file:     {item.path}", f"format:   {item.format or 'unknown'}",
             f"status:   {item.status}{' (' + item.reason + ')' if item.reason else ''}"]
    if item.pickles:
        lines.append("pickles:")
        for stream in item.pickles:
            proto = "?" if stream.protocol is None else stream.protocol
            lines.append(f"  {stream.where}: protocol {proto} ({stream.why})")
        known = [(s.protocol, s.why) for s in item.pickles if s.protocol is not None]
        if known:
            proto, why = max(known)
            lines.append(f"oldest Python that can read it: {item.oldest_python} (protocol {proto}: {why})")
    lines.append(f"globals:  {len(item.globals)}")
    for use in item.globals:
        lines.append(f"  {use.verdict:<9} {use.qualname}{f'  (x{use.count})' if use.count > 1 else ''}")
    for f in item.findings:
        lines.append(f"finding:  {f.rule}: {f.message} (at {f.location})")
    if item.tensors_error is not None:
        lines.append(f"tensors:  could not be listed: {item.tensors_error}")
    elif item.status in ("clean", "unsafe") and (item.tensors or item.tensor_count or item.pickles):
        rows = item.tensors
        lines.append(f"tensors:  {item.tensor_count}" + (f" (first {len(rows)} shown)" if item.tensor_count > len(rows)
                                                         else ""))
        if rows:
            cells = [(r.name, r.dtype, str(r.shape)) for r in rows]
            widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(("name", "dtype", "shape"))]
            lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(("name", "dtype", "shape"), widths))
                         + "bytes".rjust(12))
            for row, c in zip(rows, cells):
                lines.append("  " + "  ".join(x.ljust(w) for x, w in zip(c, widths)) + f"{row.nbytes:>12,}")
            lines.append(f"  total {sum(r.nbytes for r in rows):,} bytes")
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    from ._format.escape import escaped
    from ._info import info

    allow = list(args.allow)
    files, skipped = _checked_inputs(allow, args.paths)
    from ._info import FileInfo

    items = [FileInfo(f.path, None, f.status, f.reason) for f in skipped]
    items += [info(path, allow=allow, display=display) for path, display in files]
    items.sort(key=lambda i: i.path)
    shown = escaped(items)
    if args.format == "json":
        import json

        from . import __version__

        doc = {"tool": "safeload", "version": __version__, "files": [i.to_dict() for i in shown]}
        _write_output(json.dumps(doc, indent=2) + "\n", None)
    else:
        blocks = ["\n".join(_info_text(i)) for i in shown]
        _write_output("\n\n".join(blocks) + ("\n" if blocks else ""), None)
    return max((i.exit_code for i in items), default=EXIT_OK)


EXIT_CANNOT_WRITE = 2


def _cmd_convert(args: argparse.Namespace) -> int:
    """Exit 0 written, 1 refused (the input is unsafe or cannot be represented), 2 the output cannot be written,
    4 usage (no --to and an output name that does not say which format)."""
    import importlib
    import importlib.util

    from ._format.escape import escape

    if importlib.util.find_spec("safeload._convert") is None:
        print("safeload convert: this installation has no converter (safeload._convert is missing)",
              file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module("safeload._convert")
    to = args.to or module.target_for(args.dst)
    if to is None:
        raise UsageError(f"convert: cannot tell the output format from the name {escape(args.dst)!r}; "
                         f"name it .safetensors, .pt or .pkl, or pass --to safetensors|torch|pickle")
    folder = os.path.dirname(os.path.abspath(args.dst))
    if not os.path.isdir(folder):
        print(f"safeload convert: cannot write {escape(args.dst)}: the folder {escape(folder)} does not exist "
              f"(create it first)", file=sys.stderr)
        return EXIT_CANNOT_WRITE
    try:
        module.convert(args.src, args.dst, to=to, protocol=args.protocol)
    except SafeLoadError as err:
        print(f"safeload convert: refused: {escape(str(err))}", file=sys.stderr)
        return EXIT_REFUSED
    except FileNotFoundError as exc:
        if not os.path.exists(args.src):
            raise UsageError(f"convert: {escape(args.src)}: no such file") from None
        print(f"safeload convert: cannot write {escape(args.dst)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
    except OSError as exc:
        print(f"safeload convert: cannot write {escape(args.dst)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
    print(f"safeload convert: wrote {escape(args.dst)} ({to})", file=sys.stderr)
    return EXIT_OK


def exit_table_text() -> str:
    """The exit status table of ``safeload scan``, as ``--help`` prints it."""
    return "exit status:\n" + "".join(f"  {code}  {text}\n" for code, text in EXIT_TABLE)


def exit_table_markdown() -> str:
    """The same table as the README shows it."""
    return "| exit | meaning |\n|---|---|\n" + "".join(f"| {code} | {text} |\n" for code, text in EXIT_TABLE)


# ---- parser -------------------------------------------------------------------------------------------------------

def _help_width() -> int:
    """The width argparse's HelpFormatter takes when given none (``shutil.get_terminal_size().columns - 2``:
    $COLUMNS, else the terminal on stdout, else 80), found without importing shutil, which argparse would import
    for every argument added (shutil imports the compression modules: about 2 ms of every start)."""
    return _columns(sys.__stdout__) - 2


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter with its default width (:func:`_help_width`)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _help_width() if width is None else width)


class _RawDescriptionHelpFormatter(_HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """argparse's RawDescriptionHelpFormatter with its default width (:func:`_help_width`)."""


class _VersionAction(argparse._VersionAction):
    """``--version``: the version and which build runs (safeload/_build.py), found only when asked for: finding it
    imports every compiled module, which a scan of a pickle would not otherwise load (about 4 ms of each start)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from ._build import build_description

        self.version = f"safeload {__version__}, {build_description()}"
        super().__call__(parser, namespace, values, option_string)


def _load_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--allow", action="append", default=[], metavar="MODULE.NAME", help="allow a class (repeatable)")
    p.add_argument("--unknown", choices=("raise", "stub"), default="raise")
    p.set_defaults(func=_cmd_load)


def _scan_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Scan without running anything. The report goes to stdout, the summary to stderr.\n\n"
                     + exit_table_text())
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
    p.add_argument("--allow", action="append", default=[], metavar="MODULE.NAME",
                   help="treat this global as allowed (repeatable)")
    p.add_argument("--policy", metavar="FILE",
                   help='names to allow: JSON {"allow": ["module.Name", ...]} or one name per line')
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="scan N files at a time (processes)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="scan on a Dask cluster, e.g. tcp://HOST:8786 (needs safeload[dask])")
    p.add_argument("--results", default=None, metavar="FILE",
                   help="append each file's report to FILE (JSON lines); files already in it are not scanned again")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary or progress; only files with findings")
    p.add_argument("--explain", action="store_true",
                   help="decompile each flagged pickle with fickling (nothing is run)")
    p.add_argument("--max-decompressed", type=int, default=None, metavar="BYTES",
                   help="what compressed streams and archives in one file may inflate to (default 4 GiB)")
    p.add_argument("--fail-on", default=",".join(DEFAULT_FAIL_ON), metavar="LIST",
                   help=f"comma-separated outcomes that make the exit status non-zero: {', '.join(FAIL_ON)} "
                        f"(default: {','.join(DEFAULT_FAIL_ON)})")
    p.add_argument("--include", action="append", default=[], metavar="PATTERN",
                   help="scan only files whose path or name matches this shell pattern (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out files whose path or name matches this shell pattern (repeatable)")
    p.add_argument("--root", default=None, metavar="DIR",
                   help="SARIF: the folder URIs are relative to (default: the git top level of the working "
                        "directory)")
    p.set_defaults(func=_cmd_scan)


def _info_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Exit status: 0 every file clean or skipped, 1 one is unsafe, 2 one could not be scanned, "
                     "4 usage error.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked as scan walks them)")
    p.add_argument("--allow", action="append", default=[], metavar="MODULE.NAME",
                   help="treat this global as allowed (repeatable), as scan does")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_info)


def _convert_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Exit status: 0 written, 1 refused (unsafe or not representable), 2 the output cannot be "
                     "written, 4 usage error.")
    p.add_argument("src", metavar="IN")
    p.add_argument("dst", metavar="OUT")
    p.add_argument("--to", choices=("safetensors", "torch", "pickle"), default=None,
                   help="output format (default: from OUT's name: .safetensors, .pt/.pth/.bin/.ckpt, .pkl/.pickle)")
    p.add_argument("--protocol", type=int, default=None, metavar="N", help="pickle protocol ceiling (torch output)")
    p.set_defaults(func=_cmd_convert)


#: each command: its one-line help, its help formatter, and what adds its options
_COMMANDS: dict[str, tuple[str, type[argparse.HelpFormatter], Any]] = {
    "load": ("load checkpoints safely and print an outline of what they hold", _HelpFormatter, _load_options),
    "scan": ("scan files, folders, Hugging Face caches and standard input (-) without running anything",
             _RawDescriptionHelpFormatter, _scan_options),
    "info": ("format, pickle protocols, oldest Python, globals and tensors of files", _HelpFormatter, _info_options),
    "convert": ("rewrite a checkpoint safely, to safetensors or a pinned pickle protocol", _HelpFormatter,
                _convert_options),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every command for ``safeload --help`` and a line that names none; with
    ``command`` (the first word of a command line), that command alone, which parses that line the same way:
    argparse reads only the chosen command's parser, and building the other three took about 4 ms of every
    ``safeload scan``."""
    parser = argparse.ArgumentParser(prog="safeload", description="Open untrusted ML checkpoints without running code.",
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action=_VersionAction, version=f"safeload {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (text, formatter, add_options) in _COMMANDS.items():
        if command is None or command == name:
            add_options(sub.add_parser(name, help=text, formatter_class=formatter))
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words and words[0] in _COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"safeload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TypeError, ValueError) as exc:
        print(f"safeload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("safeload: interrupted", file=sys.stderr)
        return 130


def _nothing_pending() -> bool:
    """Whether the interpreter's teardown has nothing to do for the program: no ``atexit`` handler is registered
    (the pools of ``--jobs``, a Dask client, fsspec, logging, ``weakref.finalize`` all register one) and no other
    thread runs."""
    import atexit

    count = getattr(atexit, "_ncallbacks", None)  # CPython's; elsewhere the usual exit
    if count is None or count() != 0:
        return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def run() -> NoReturn:
    """The ``safeload`` command: the console script and ``python -m safeload`` call this (code that calls
    :func:`main` in-process gets the exit status back instead).

    When nothing is pending (:func:`_nothing_pending`: a scan in this process, as opposed to one with ``--jobs``,
    ``--scheduler``, a URL or ``--explain``), standard output and error are flushed and the process ends at once,
    without the teardown that frees every module and object one by one: about 3 ms of the 45 ms that ``safeload
    scan`` of one small file takes. Every file safeload writes is closed before :func:`main` returns (``with``
    blocks); anything else exits the usual way."""
    code = main()
    if _nothing_pending():
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stream: the usual exit reports it
            pass
        else:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
