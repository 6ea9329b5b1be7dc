"""The records every layer shares, in a module that imports nothing of safeload's: :class:`Limits` (what one file
may make safeload do), :class:`Entry` (one allowed global and the rebuilders it may call) and :class:`Pending` (an
object a rebuilder started that waits for its BUILD state).

Rebuilders receive a :class:`~safeload._rebuild.context.RebuildContext`, never the VM (the import below is for the
type checker only). ``Entry`` is internal: ``allow=`` and :meth:`safeload.Policy.allowing` take classes and names,
and refuse an ``Entry``.

The rebuilders (safeload/_rebuild/), the VM (safeload/_vm.py) and the budget (safeload/_budget.py) import these
from here, and ``safeload.policy`` re-exports ``Limits`` and ``Entry``; so the default table can be assembled from
the rebuilders (safeload/_rebuild/registry.py) without any module importing one that imports it back.
"""

from __future__ import annotations

from collections.abc import Callable

from ._hints import TYPE_CHECKING, Any
from ._record import field, field_names, record

if TYPE_CHECKING:
    from ._rebuild.context import RebuildContext

__all__ = ["DEFAULT_LIMITS", "Entry", "Limits", "Pending", "is_one_of"]


def is_one_of(value: Any, choices: tuple[Any, ...]) -> bool:
    """``value in choices`` for a value the file made, compared by exact type first. An object a rebuilder made
    (an ndarray, a tensor, a list) is never compared with ``==``/``in`` against a constant: numpy's ``==`` is
    elementwise and its truth value raises, a list cannot be hashed. Every comparison of a file's value with a
    constant goes through here, or checks ``type(value)`` first (tests/test_hostile_values.py finds the others)."""
    kind = type(value)
    for choice in choices:  # a loop, not any() over a generator: called for every storage of a checkpoint
        if kind is type(choice) and value == choice:
            return True
    return False


@record(frozen=True)
class Limits:
    """Bounds on what one file may make safeload do. Hitting one raises LimitExceededError.

    max_depth            nesting of MARK frames, and of tuples used as dict keys or set members
    max_memo             the largest memo index a PUT may name
    max_opcodes          opcodes executed in one pickle stream
    max_container        items in one container built by a rebuilder (object arrays, sets from lists, ...)
    max_alloc            bytes safeload may allocate beyond the input itself (array copies, dense MXNet arrays, ...)
    max_decompressed     bytes one compressed stream or compressed archive member may inflate to
    max_hash_collisions  dict keys or set members sharing one hash value (hash-flooding inputs)
    max_members          entries in one archive
    work_base            work units every input gets (see safeload/_budget.py: one unit is about one opcode)
    work_per_byte        work units per byte of the input on disk: a load or scan of ``n`` bytes may do at most
                         ``work_base + work_per_byte * n`` units of work (opcodes, decompressed bytes, hashed key
                         nodes, number conversions), so time is bounded by the input's size
    """

    max_depth: int = 1000
    max_memo: int = 1 << 24
    max_opcodes: int = 200_000_000
    max_container: int = 100_000_000
    max_alloc: int = 1 << 36
    max_decompressed: int = 4 << 30
    max_hash_collisions: int = 1000
    max_members: int = 1_000_000
    work_base: int = 2_000_000
    work_per_byte: int = 8

    def __post_init__(self) -> None:
        for name in field_names(self) or ():
            value = getattr(self, name)
            if type(value) is not int:  # bool is an int subclass and is refused on purpose
                raise TypeError(f"Limits.{name} must be an int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"Limits.{name} must be at least 1, got {value}")


DEFAULT_LIMITS = Limits()


@record(frozen=True)
class Entry:
    """One allowed global (internal: the default table, scan stand-ins and safeload/policies/ build these).

    qualname  the exact name, canonical spelling
    value     what GLOBAL pushes: the real object (a type used as a value) or this entry itself (a function)
    call      REDUCE / INST / OBJ with arguments: ``call(ctx, args) -> object``; None if the name may not be called
    newobj    NEWOBJ / NEWOBJ_EX: ``newobj(ctx, args, kwargs) -> object``; None if not allowed
    build     BUILD on an instance of ``value`` (a type): ``build(ctx, inst, state) -> object``; None refuses it
    reason    why it is safe, shown by ``safeload info`` and the scanner

    ``ctx`` is the :class:`~safeload._rebuild.context.RebuildContext` of the stream being read.
    """

    qualname: str
    value: Any = None
    call: Callable[[RebuildContext, tuple[Any, ...]], Any] | None = None
    newobj: Callable[[RebuildContext, tuple[Any, ...], dict[str, Any]], Any] | None = None
    reason: str = ""
    build: Callable[[RebuildContext, Any, Any], Any] | None = None
    lazy: Callable[[], Any] | None = field(default=None, compare=False)

    def resolve(self) -> Any:
        """The object a GLOBAL pushes. Lazy values (numpy types) are resolved on first use."""
        if self.lazy is not None:
            return self.lazy()
        return self if self.value is None else self.value

    def __repr__(self) -> str:
        return f"<safeload global {self.qualname}>"


class Pending:
    """An object a rebuilder started (REDUCE) that needs its BUILD state to become real (ndarray, dtype)."""

    __slots__ = ("builder", "args", "result", "qualname")

    def __init__(self, qualname: str, builder: Callable[[RebuildContext, Pending, Any], Any],
                 args: tuple[Any, ...]) -> None:
        self.qualname = qualname
        self.builder = builder
        self.args = args
        self.result: Any = None

    def __repr__(self) -> str:
        return f"<safeload pending {self.qualname}>"
