"""The work budget: how much work one load (or one scanned file) may make safeload do, in proportion to its size.

Limits such as ``max_opcodes`` bound one kind of work at a size no real file reaches. They do not bound time: a
50 KB deflated pickle of NONE/POP runs 50 million opcodes, a 212-byte tuple graph used as a dict key hashes
billions of nodes. The budget does. Every load and every scanned file gets

    ``Limits.work_base + Limits.work_per_byte * (size of the input on disk)``

work units, and safeload charges each costly step to it. One unit is about one opcode of the VM (roughly half a
microsecond on a slow core):

=================  =====================================================================================
kind               units charged
=================  =====================================================================================
``opcodes``        1 per opcode the VM runs
``decompressed``   1 per :data:`DECOMPRESSED_BYTES_PER_UNIT` (64) bytes bz2 produces, 1 per 192 bytes of
                   the faster decompressors (deflate, lzma, zstd, lz4)
``key_nodes``      1 per node visited when a tuple is hashed as a dict key or set member (shared references
                   count once per visit: that is what ``hash`` does)
``digits``         text-to-number conversions, quadratic in the digits: ``digits**2 //``
                   :data:`DIGITS_SQUARED_PER_UNIT`, at least 1
=================  =====================================================================================

The interface, for containers and rebuilders:

* :func:`budget_for` ``(input_size, limits)``: a context manager that opens the budget of one load.
  ``safeload.load`` and ``safeload.scan`` open it in ``load_buffer``, with the size of the file; a nested call
  keeps the outer budget.
* :func:`current` ``()``: the budget of the load in progress (a default-sized one outside any load).
* :meth:`Budget.charge` ``(kind, amount, offset=None)``: spend; raises ``LimitExceededError("work_per_byte")``
  when the budget is spent.
"""

from __future__ import annotations

import contextvars

from ._hints import Any
from .errors import LimitExceededError

__all__ = ["DECOMPRESSED_BYTES_PER_UNIT", "DIGITS_SQUARED_PER_UNIT", "Budget", "budget_for", "current"]

#: bz2 inflates a flood at ~120 MB/s on a slow core (8 ns a byte): 64 bytes are about half a microsecond, one
#: unit. zlib (deflate, gzip, zip members), lzma/xz, zstd and lz4 run at 350 MB/s or more: 192 bytes a unit, so
#: that any deflate stream (at most 1032:1) costs at most 6 units per input byte to inflate.
DECOMPRESSED_BYTES_PER_UNIT = 64
_FAST_BYTES_PER_UNIT = 192
#: ``int(text)`` and ``Decimal(int)`` cost about digits**2 / 4000 opcodes' time in CPython 3.11.
DIGITS_SQUARED_PER_UNIT = 4096

_KINDS = ("opcodes", "decompressed", "key_nodes", "digits")


class Budget:
    """Work units left for one input. ``spent`` records what each kind took (for the benchmark and errors)."""

    __slots__ = ("input_size", "total", "left", "spent", "_part")

    def __init__(self, input_size: int, limits: Any) -> None:
        self.input_size = int(input_size)
        self.total = limits.work_base + limits.work_per_byte * self.input_size
        self.left = self.total
        self.spent = dict.fromkeys(_KINDS, 0)
        self._part = 0  # decompressed bytes not yet charged (less than one unit)

    def charge(self, kind: str, amount: int, offset: int | None = None) -> None:
        """Spend ``amount`` units of ``kind``; refuse when the input's budget is spent."""
        self.spent[kind] += amount
        self.left -= amount
        if self.left < 0:
            raise self.exceeded(kind, offset)

    def charge_bytes(self, nbytes: int, kind: str = "bz2", offset: int | None = None) -> None:
        """Charge decompressed output: ``nbytes`` more bytes came out of a ``kind`` decompressor."""
        rate = DECOMPRESSED_BYTES_PER_UNIT if kind == "bz2" else _FAST_BYTES_PER_UNIT
        self._part += nbytes * (_FAST_BYTES_PER_UNIT // rate)
        units, self._part = divmod(self._part, _FAST_BYTES_PER_UNIT)
        if units:
            self.charge("decompressed", units, offset)

    def charge_digits(self, digits: int, offset: int | None = None) -> None:
        """Charge a quadratic text/number conversion of ``digits`` digits."""
        self.charge("digits", max(1, digits * digits // DIGITS_SQUARED_PER_UNIT), offset)

    def exceeded(self, kind: str, offset: int | None = None) -> LimitExceededError:
        worst = max(self.spent, key=self.spent.__getitem__)
        return LimitExceededError(
            "work_per_byte", self.total - self.left, self.total, offset=offset,
            what=(f"The file asks for more work than its size allows: {self.total} work units for "
                  f"{self.input_size} bytes, spent at {kind} (most on {worst}: {self.spent[worst]})"),
            why="work out of proportion to the input (opcode floods in compressed data, hashing shared tuple "
                "graphs, huge number conversions) is how small files make a loader run for minutes",
            fix="If the file is trusted, raise the budget: "
                "policy=safeload.DEFAULT_POLICY.with_limits(work_per_byte=..., work_base=...)",
        )


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("safeload_budget", default=None)


def current(limits: Any = None, input_size: int = 0) -> Budget:
    """The budget of the load in progress; outside any load (a VM run on its own), a fresh one for
    ``input_size`` bytes."""
    budget = _CURRENT.get()
    if budget is None:
        from ._types import DEFAULT_LIMITS

        budget = Budget(input_size, DEFAULT_LIMITS if limits is None else limits)
    return budget


class budget_for:  # noqa: N801 - used as a function: ``with budget_for(size, limits) as budget:``
    """Open the budget of one input (``input_size`` bytes on disk) for the code inside the block; inside another
    input's block (a member of an archive, a load nested in a scan), that input's budget. A class rather than a
    ``contextlib.contextmanager``: it is entered once or twice for every file scanned, and the generator
    machinery cost about 2 µs each time, a twentieth of the scan of a small pickle."""

    __slots__ = ("_size", "_limits", "_token")

    def __init__(self, input_size: int, limits: Any) -> None:
        self._size = input_size
        self._limits = limits
        self._token: Any = None

    def __enter__(self) -> Budget:
        outer = _CURRENT.get()
        if outer is not None:
            return outer
        budget = Budget(self._size, self._limits)
        self._token = _CURRENT.set(budget)
        return budget

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
