"""Text from a file never reaches a terminal, a JSON reader or GitHub as it is.

A pickle chooses its global names, strings and archive member names, and a folder its file names. Before a report
is written, every string in it goes through :func:`escape`: characters that are not printable (C0 controls such as
ESC and newline, DEL, C1 controls, bidirectional and other format characters, line and paragraph separators,
unassigned code points) and unpaired surrogates (a BINUNICODE decoded with ``surrogatepass``, a file name that is
not UTF-8) become Python-style escapes (``\\x1b``, ``\\n``, ``\\u202e``, ``\\ud800``). The result is printable
and encodable as UTF-8, so an ANSI sequence cannot recolour or rewrite the terminal, a newline cannot forge a line
of the report, and a surrogate cannot crash the UTF-8 writer and lose the report. Backslashes are left as they are.
"""

from __future__ import annotations

from .._hints import TYPE_CHECKING, Any
from .._record import field_names, replace

__all__ = ["escape", "escaped"]

if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: fields whose text is several lines of our own layout (fickling's decompilation): escaped line by line
_MULTILINE = frozenset({"explanation"})


def escape(text: str, limit: int | None = None) -> str:
    """``text`` with every non-printable character escaped; cut to ``limit`` characters (with a note) if given."""
    if limit is not None and len(text) > limit:
        cut = f"... ({len(text) - limit} more characters)"
        text = text[:limit]
    else:
        cut = ""
    if text.isprintable():
        return text + cut
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
            continue
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out) + cut


def escaped(obj: T) -> T:
    """A copy of a report (dataclasses, lists, tuples, dicts) with every string in it escaped."""
    return _escaped(obj, "")  # type: ignore[no-any-return]


def _escaped(obj: Any, name: str) -> Any:
    if isinstance(obj, str):
        if name in _MULTILINE:
            return "\n".join(escape(line) for line in obj.split("\n"))
        return escape(obj)
    names = None if isinstance(obj, type) else field_names(obj)
    if names is not None:  # a record (safeload/_record.py): the report's own classes
        return replace(obj, **{n: _escaped(getattr(obj, n), n) for n in names})
    if not isinstance(obj, type) and hasattr(type(obj), "__dataclass_fields__"):  # safeload info's records
        import dataclasses

        changes = {f.name: _escaped(getattr(obj, f.name), f.name) for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, list):
        return [_escaped(item, name) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_escaped(item, name) for item in obj)
    if isinstance(obj, dict):
        return {_escaped(k, ""): _escaped(v, name) for k, v in obj.items()}
    return obj
