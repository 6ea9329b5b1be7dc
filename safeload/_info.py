"""``safeload info``: what a file is, as data. :func:`info` returns a :class:`FileInfo` (format, scan status, each
pickle stream's protocol and the oldest Python that reads it, the globals with their verdicts, the findings, and
the tensors with dtype, shape and size). Nothing from the file is imported or run: the scan is the scanner's, and
the tensors are listed from ``safeload.load(..., unknown="stub")``, in which every class the file names, allowed
or not, is an inert stub.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from ._hints import Any

__all__ = ["FileInfo", "GlobalUse", "PickleStream", "TensorRow", "info"]

#: the oldest Python whose pickle module reads each protocol
PROTOCOL_PYTHON = {0: "any Python", 1: "any Python", 2: "Python 2.3", 3: "Python 3.0", 4: "Python 3.4",
                   5: "Python 3.8"}
MAX_TENSOR_ROWS = 200
_CONTAINERS = ("tar", "7z", "gzip", "bz2", "xz", "zstd", "lzma", "lz4")


@dataclass(frozen=True)
class PickleStream:
    where: str  # the member chain, "file" for the file itself, with " @offset" when not at its start
    protocol: int | None  # None: the stream could not be read again
    why: str  # the PROTO opcode, or the newest opcode, that sets the protocol


@dataclass(frozen=True)
class GlobalUse:
    qualname: str
    verdict: str  # allowed | unknown | dangerous
    count: int


@dataclass(frozen=True)
class TensorRow:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass
class FileInfo:
    path: str
    format: str | None
    status: str  # clean | unsafe | error | skipped (the scan's)
    reason: str = ""
    pickles: list[PickleStream] = field(default_factory=list)
    oldest_python: str | None = None
    globals: list[GlobalUse] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)  # safeload._scan.Finding
    tensors: list[TensorRow] = field(default_factory=list)  # the first MAX_TENSOR_ROWS
    tensor_count: int = 0
    tensors_error: str | None = None  # why the tensors could not be listed

    @property
    def exit_code(self) -> int:
        """As ``safeload scan`` would exit for this one file: 0 clean or skipped, 1 unsafe, 2 error."""
        return {"unsafe": 1, "error": 2}.get(self.status, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def protocol_of(raw: bytes) -> tuple[int, str]:
    """The protocol a stream needs, and why: its PROTO opcode or its newest opcode. A stream with data inline (joblib
    writes array bytes between opcodes) is judged by the opcodes before that data."""
    from ._opcodes import iter_ops
    from .errors import SafeLoadError

    best, why, seen = 0, "only protocol 0 opcodes", 0
    try:
        for spec, arg, offset in iter_ops(raw):
            seen += 1
            if spec.name == "PROTO" and isinstance(arg, int) and arg > best:
                best, why = arg, f"PROTO {arg} at byte {offset}"
            elif spec.proto > best:
                best, why = spec.proto, f"opcode {spec.name} (protocol {spec.proto}) at byte {offset}"
    except SafeLoadError:
        if not seen:
            raise
        why += " (opcodes up to inline data)"
    return best, why


def info(path: str | os.PathLike[str], *, allow: Any = (), display: str | None = None) -> FileInfo:
    """Describe one file without running anything from it. ``allow``: names treated as allowed, as in ``scan``."""
    from ._format.explain import pickle_bytes
    from ._scan import policy_for, scan_file

    name = display if display is not None else os.fspath(path)
    streams: list[PickleStream] = []

    def hook(blob: Any, chain: tuple[str, ...], member: str | None, start: int) -> None:
        where = "!".join([*chain, member] if member else chain) or "file"
        raw = pickle_bytes(blob, member, start)
        if raw is None:
            streams.append(PickleStream(where, None, "the stream could not be located again"))
            return
        try:
            proto, why = protocol_of(raw)
        except Exception as exc:  # a malformed stream: the scan's findings say what is wrong
            streams.append(PickleStream(where, None, f"unreadable ({type(exc).__name__})"))
            return
        streams.append(PickleStream(where + (f" @{start}" if start else ""), proto, why))

    report = scan_file(path, policy_for(None, list(allow)), stream_hook=hook, display=name)
    counts: dict[tuple[str, str], int] = {}
    for ref in report.globals:
        counts[(ref.qualname, ref.verdict)] = counts.get((ref.qualname, ref.verdict), 0) + 1
    known = [(s.protocol, s.why) for s in streams if s.protocol is not None]
    result = FileInfo(
        path=name, format=report.format, status=report.status, reason=report.reason, pickles=streams,
        oldest_python=PROTOCOL_PYTHON.get(max(known)[0]) if known else None,
        globals=[GlobalUse(q, v, n) for (q, v), n in sorted(counts.items())], findings=list(report.findings))
    if report.status in ("clean", "unsafe") and report.format not in _CONTAINERS:
        _tensors(path, result)
    return result


def _tensors(path: str | os.PathLike[str], result: FileInfo) -> None:
    from ._load import load
    from .errors import SafeLoadError

    obj: Any = None
    error = ""
    for tensors in ("numpy", "auto"):
        try:  # unknown="stub" and no allow list: every class is an inert stub, so allowed names change nothing
            obj = load(path, tensors=tensors, unknown="stub")
            break
        except (SafeLoadError, ValueError) as exc:
            error = str(exc)
    if obj is None:
        result.tensors_error = error
        return
    result.tensors, result.tensor_count = tensor_rows(obj)


def tensor_rows(obj: Any) -> tuple[list[TensorRow], int]:
    """Each array or tensor reachable from ``obj`` (bounded), and how many there are."""
    from ._stub import Stub

    rows: list[TensorRow] = []
    total = 0
    todo: list[tuple[str, Any]] = [("", obj)]
    seen: set[int] = set()
    visits = 0
    while todo and visits < 1_000_000:
        name, value = todo.pop()
        visits += 1
        if id(value) in seen:
            continue
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        if shape is not None and dtype is not None and type(value).__name__ in ("ndarray", "Tensor", "Parameter"):
            seen.add(id(value))
            total += 1
            if len(rows) < MAX_TENSOR_ROWS:
                nbytes = getattr(value, "nbytes", None)
                if nbytes is None:
                    nbytes = value.numel() * value.element_size()
                rows.append(TensorRow(name or "(root)", str(dtype).replace("torch.", ""),
                                      tuple(int(d) for d in shape), int(nbytes)))
            continue
        prefix = f"{name}." if name else ""
        if isinstance(value, dict):
            seen.add(id(value))
            todo.extend((f"{prefix}{k}", v) for k, v in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            seen.add(id(value))
            todo.extend((f"{prefix}{i}", v) for i, v in reversed(list(enumerate(value))))
        elif type(value) is Stub:
            seen.add(id(value))
            parts = [("state", value.state), ("args", value.args), ("items", value.items),
                     ("dictitems", value.dictitems)]
            todo.extend((f"{prefix}{label}" if label != "state" else name, v) for label, v in reversed(parts)
                        if v)
    return rows, total
