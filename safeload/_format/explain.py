"""``--explain``: a readable decompilation of a flagged pickle, produced with fickling.

fickling turns the opcode stream into a Python AST symbolically; nothing in the pickle is imported or run.
The input and the output are both bounded: pickles over ``MAX_INPUT`` bytes are not decompiled, and the text is
cut at ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
import contextlib
import io

from .._hints import Any

__all__ = ["decompile", "pickle_bytes"]

MAX_INPUT = 4 << 20
MAX_LINES = 60


def pickle_bytes(data: Any, member: str | None, start: int) -> bytes | None:
    """The bytes of the pickle stream that the loader began at ``start`` of ``member`` (or of ``data``).

    None where the stream cannot be found again (an .npz member, whose name the loader does not pass on).
    """
    is_zip = bytes(data[:4]) == b"PK\x03\x04"
    if is_zip and member is None:
        return None
    if member is not None and is_zip:
        from .._containers.zip import ZipArchive
        from ..errors import SafeLoadError

        try:
            zf = ZipArchive(data)
            if member not in zf.members or zf.members[member].size > MAX_INPUT:
                return None
            return zf.read(member)[start:]
        except SafeLoadError:
            return None
    return bytes(data[start : start + MAX_INPUT])


def decompile(data: Any, member: str | None, start: int) -> str | None:
    """Python-like source for what unpickling the stream would do, or None if fickling cannot render it."""
    raw = pickle_bytes(data, member, start)
    if not raw:
        return None
    try:
        from fickling.fickle import Pickled  # type: ignore[import-untyped]
    except ImportError:
        return "(install fickling to see a decompilation)"
    sink = io.StringIO()
    try:
        with contextlib.redirect_stderr(sink):  # fickling warns on stderr about malformed streams
            pickled = Pickled.load(raw, fail_on_decode_error=False)
            source = ast.unparse(pickled.ast)
    except Exception as exc:  # fickling's own errors vary by version; the scan result does not depend on them
        return f"(fickling could not decompile this pickle: {type(exc).__name__})"
    lines = source.splitlines() or ["(empty)"]
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES] + [f"... ({len(lines) - MAX_LINES} more lines)"]
    return "\n".join(lines)
