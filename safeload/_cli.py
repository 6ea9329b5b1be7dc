"""The ``safeload`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import __version__
from ._load import load
from .errors import SafeLoadError

__all__ = ["main"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 4


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
    status = EXIT_OK
    for path in args.paths:
        try:
            obj = load(path, allow=args.allow, unknown=args.unknown)
        except SafeLoadError as err:
            print(f"{path}: refused: {err}", file=sys.stderr)
            status = EXIT_REFUSED
            continue
        print(f"{path}: loaded")
        for line in _describe(obj):
            print(f"  {line}")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeload", description="Open untrusted ML checkpoints without running code.")
    parser.add_argument("--version", action="version", version=f"safeload {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load", help="load checkpoints safely and print an outline of what they hold")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--allow", action="append", default=[], metavar="MODULE.NAME", help="allow a class (repeatable)")
    p.add_argument("--unknown", choices=("raise", "stub"), default="raise")
    p.set_defaults(func=_cmd_load)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return int(args.func(args))
    except (TypeError, ValueError) as exc:
        print(f"safeload: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
