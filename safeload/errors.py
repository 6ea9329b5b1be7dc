"""The exception family.

Every refusal is a :class:`SafeLoadError`, which is a :class:`pickle.UnpicklingError`, so code that already
catches ``pickle.UnpicklingError`` around ``torch.load`` keeps working::

    pickle.UnpicklingError
    └── SafeLoadError                  every refusal
        ├── UnsafeGlobalError          a global outside the policy          (.module, .name)
        │   ├── DangerousGlobalError   one in the known-dangerous table     (.danger: what it does)
        │   └── UnsafeCallError        allowed as a value, but the file calls it with arguments it chose
        ├── LimitExceededError         a size, depth, count or memory limit (.limit, .value)
        ├── FormatError                corrupt, truncated, ambiguous or unsupported input
        │   ├── UnsupportedFormatError a format safeload does not open       (.kind)
        │   └── TrailingDataError      bytes after a pickle's STOP opcode    (.offset: where they start)
        └── InternalError              a bug in safeload itself (an unexpected exception while reading the file)

The kind of a refusal is its type: code (the scanner's rules included) decides by ``isinstance``, never by the
message text, which is for people and may be reworded. Third-party parsers (decompression libraries, tarfile,
py7zr) run behind :func:`third_party`, the one place where what they raise becomes a ``FormatError``; any other
exception is a safeload bug, an ``InternalError``.

Each error carries where it happened (``offset``, ``opcode``, ``member``, ``path``) and a ``fix``: the safe way
forward. ``str(error)`` renders all of it as plain text, one sentence each, with no terminal escapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ._hints import Any
from ._names import danger_of

try:  # pickle.UnpicklingError is _pickle's (pickle re-exports the C module's classes); pickle.py itself is not
    from _pickle import UnpicklingError  # needed to scan, and importing it is about 1.5 ms of every start
except ImportError:  # an interpreter without the C unpickler
    from pickle import UnpicklingError

__all__ = [
    "DangerousGlobalError",
    "FormatError",
    "InternalError",
    "LimitExceededError",
    "SafeLoadError",
    "TrailingDataError",
    "UnsafeCallError",
    "UnsafeGlobalError",
    "UnsupportedFormatError",
    "error_context",
    "third_party",
]


class SafeLoadError(UnpicklingError):
    """Base class of every refusal. ``what`` says what was refused, ``why`` the reason, ``fix`` the safe way on."""

    default_fix = "Open the file with the framework that wrote it only if you trust where it came from."

    def __init__(
        self,
        what: str,
        *,
        why: str = "",
        fix: str | None = None,
        offset: int | None = None,
        opcode: str | None = None,
        member: str | None = None,
        path: str | None = None,
    ) -> None:
        self.what = what
        self.why = why
        self.fix = self.default_fix if fix is None else fix
        self.offset = offset
        self.opcode = opcode
        self.member = member
        self.path = path
        super().__init__(what)

    @property
    def location(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(f"file {self.path!r}")
        if self.member is not None:
            parts.append(f"member {self.member!r}")
        if self.offset is not None:
            parts.append(f"byte {self.offset}")
        if self.opcode is not None:
            parts.append(f"opcode {self.opcode}")
        return ", ".join(parts)

    def __str__(self) -> str:
        text = self.what
        where = self.location
        if where:
            text += f" (at {where})"
        text += "."
        if self.why:
            text += f" {self.why.rstrip('.')}."
        if self.fix:
            text += f" {self.fix.rstrip('.')}."
        return text

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keep the structured fields when the error crosses a process boundary (scan --jobs).
        return (_rebuild_error, (type(self), self.__dict__.copy()))


def _rebuild_error(cls: type[SafeLoadError], fields: dict[str, object]) -> SafeLoadError:
    err = cls.__new__(cls)
    err.__dict__.update(fields)
    UnpicklingError.__init__(err, fields.get("what", ""))
    return err


_DO_NOT_OPEN = ("Do not open this file with a loader that runs code; to see what it would do without running it, "
                "use safeload.load(..., unknown='stub')")


class UnsafeGlobalError(SafeLoadError):
    """The stream names a global (``module.name``) that the policy does not allow."""

    def __init__(self, module: str, name: str, **kwargs: object) -> None:
        self.module = module
        self.name = name
        kwargs.setdefault("fix", self._suggest(f"{module}.{name}"))
        super().__init__(f"Refused global {module}.{name}", **kwargs)  # type: ignore[arg-type]

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def _suggest(self, qualname: str) -> str:
        if danger_of(qualname) is not None:  # e.g. builtins.eval refused by its rebuilder: never to be allowed
            return _DO_NOT_OPEN
        return (f"If {qualname} is a class you trust, allow it: safeload.load(..., allow=[{qualname!r}]); "
                "to inspect the file without importing anything, use unknown='stub' (a whole pickled model then "
                "loads as inert stubs whose tensors you can read); save a state_dict instead of whole objects")


class DangerousGlobalError(UnsafeGlobalError):
    """The global is in safeload's known-dangerous table (``danger`` says what it does): never suggested for
    ``allow=``."""

    def __init__(self, module: str, name: str, danger: str, **kwargs: object) -> None:
        self.danger = danger
        kwargs.setdefault("why", f"{module}.{name} is known to be dangerous: it {danger}")
        super().__init__(module, name, **kwargs)

    def _suggest(self, qualname: str) -> str:
        return _DO_NOT_OPEN


class UnsafeCallError(UnsafeGlobalError):
    """The global is allowed as a value (a dtype, a class to compare with), but the stream calls or instantiates
    it with arguments the file chose."""


class LimitExceededError(SafeLoadError):
    """A size, depth, count or memory limit was hit. ``limit`` names the limit, ``value`` what the file asked for."""

    def __init__(self, limit: str, value: int, maximum: int, **kwargs: object) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        kwargs.setdefault(
            "fix",
            f"If the file is trusted and really this large, raise the limit: "
            f"policy=safeload.DEFAULT_POLICY.with_limits({limit}=...)",
        )
        what = kwargs.pop("what", None) or f"Limit {limit} exceeded: the file asks for {value}, the limit is {maximum}"
        super().__init__(str(what), **kwargs)  # type: ignore[arg-type]


def int_text_limit(exc: BaseException, offset: int | None = None) -> LimitExceededError | None:
    """The refusal for CPython's own limit on converting a long integer to text (``sys.get_int_max_str_digits``,
    4300 digits by default, a guard against quadratic-time conversion): a file may push an integer of any size
    (LONG4), and a rebuilder that checks it, or the message that shows it, converts it. The file is then refused
    as over a limit, as a MemoryError is; ``None`` when ``exc`` is any other exception."""
    if type(exc) is not ValueError or "integer string conversion" not in str(exc):
        return None
    import sys

    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    return LimitExceededError("int_max_str_digits", 0, limit, offset=offset,
                              what=f"An integer in the file has more than {limit} digits",
                              why="Python converts integers of at most sys.get_int_max_str_digits() digits to text "
                                  "(longer ones would take quadratic time); no checkpoint holds such a number",
                              fix="The file is damaged or was crafted; get a fresh copy from its source")


class FormatError(SafeLoadError):
    """The input is corrupt, truncated, ambiguous or in a format safeload does not read."""

    default_fix = "The file is damaged or was crafted; get a fresh copy from its source"


class UnsupportedFormatError(FormatError):
    """The input is in a format safeload does not open (``kind`` names it), or holds a part it cannot read."""

    def __init__(self, kind: str, **kwargs: object) -> None:
        self.kind = kind
        what = kwargs.pop("what", None) or f"Unsupported format: {kind}"
        super().__init__(str(what), **kwargs)  # type: ignore[arg-type]


class TrailingDataError(FormatError):
    """Bytes follow a pickle's STOP opcode where the format has none; ``offset`` is where they start. Another
    reader could run them as a second pickle."""


class InternalError(SafeLoadError):
    """Something unexpected happened inside safeload while it read the file: a safeload bug, never a verdict on
    the file. The original exception is ``__cause__``. The file was still refused: nothing it names ran."""

    default_fix = ("Please report this as a safeload bug, with the file if you can share it; until then, do not open "
                   "the file with a loader that runs code")

    @classmethod
    def wrap(cls, exc: BaseException, *, where: str = "while reading the file", **kwargs: Any) -> InternalError:
        """The InternalError for an unexpected ``exc``; raise it ``from exc``."""
        return cls(f"Internal error {where}: {type(exc).__name__}: {exc}",
                   why="safeload hit an exception it does not expect on any input", **kwargs)


@contextlib.contextmanager
def error_context(*, path: str | None = None, member: str | None = None) -> Iterator[None]:
    """Add the file and archive member to any SafeLoadError that crosses this layer without them."""
    try:
        yield
    except SafeLoadError as err:
        if path is not None and err.path is None:
            err.path = path
        if member is not None and err.member is None:
            err.member = member
        raise


@contextlib.contextmanager
def third_party(source: str, catch: tuple[type[BaseException], ...], *, what: str | None = None,
                offset: int | None = None, fix: str | None = None) -> Iterator[None]:
    """The one boundary for third-party code that parses the file: the decompression libraries
    (safeload/_containers/compressed.py) and the archive readers the scanner opens bundles with (tarfile, py7zr;
    safeload/_traverse.py). ``source`` names what is read ("the tar container"). What the library raises on bad
    input (``catch``) becomes a :class:`FormatError` (``what``, by default "Cannot read <source>"), with the
    library's exception named in ``why``; a MemoryError becomes a :class:`LimitExceededError` (``max_alloc``). A
    SafeLoadError passes as it is, and any other exception is left to the caller: raised by safeload's own code
    it is a bug, which ``load`` and ``scan`` report as an :class:`InternalError`."""
    try:
        yield
    except SafeLoadError:
        raise
    except MemoryError:
        raise LimitExceededError("max_alloc", 0, 0, what=f"Out of memory while reading {source}", offset=offset,
                                 why="the input asks for more memory than this machine has") from None
    except catch as exc:
        raise FormatError(what or f"Cannot read {source}", offset=offset, why=f"{type(exc).__name__}: {exc}",
                          fix=fix) from None
