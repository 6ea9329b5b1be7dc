"""What a rebuilder may ask of the pickle VM: :class:`RebuildContext`, the one object every rebuilder receives.

A rebuilder (``Entry.call``, ``Entry.newobj``, ``Entry.build``, a ``Pending`` builder) gets a context, not the VM.
The context offers exactly the services a rebuilder needs, each as a method:

* refusals and their offsets: :meth:`~RebuildContext.fail`, :attr:`~RebuildContext.op_start`;
* bounds: :meth:`~RebuildContext.charge` (``max_alloc``), :meth:`~RebuildContext.alloc_left`,
  :meth:`~RebuildContext.check_size` (``max_container``), :meth:`~RebuildContext.check_keys` (hash flooding and
  keys whose hashing would run Python code), :meth:`~RebuildContext.work` and :meth:`~RebuildContext.work_digits`
  (the work budget), :attr:`~RebuildContext.limits`;
* other allowed globals: :meth:`~RebuildContext.entry_of`, :meth:`~RebuildContext.call`,
  :meth:`~RebuildContext.newobj`;
* objects that wait for their BUILD state: :meth:`~RebuildContext.start_pending` (the VM refuses a STOP while one
  is unfinished);
* bytes outside the pickle opcodes (joblib's arrays): :meth:`~RebuildContext.splice_raw` and
  :meth:`~RebuildContext.run_nested`, which the VM implements with its frame, bounds and budget checks;
* the container's data: :attr:`~RebuildContext.context` (read-only), :attr:`~RebuildContext.tensor_builder`,
  :attr:`~RebuildContext.value_map`.

Nothing else of the VM (its position, stack, memo, frame) is reachable, and ``mypy --strict`` checks that every
rebuilder uses only these names. The VM (safeload/_vm.py) creates one context per stream and keeps it; the
context refers to its VM weakly, so the pair is no reference cycle and a VM (its stream copy, memo and the
container's readers) is freed as soon as the load is done, without waiting for the cyclic garbage collector (a
mapped file can then be closed at once). This module imports nothing of the VM at run time, so it adds no import
cycle either.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType

from .._hints import TYPE_CHECKING, Any, cast
from .._types import Limits, Pending
from ..errors import FormatError, SafeLoadError

if TYPE_CHECKING:
    from .._types import Entry
    from .._vm import VM

__all__ = ["RebuildContext"]


class RebuildContext:
    """The narrow interface between one pickle VM and the rebuilders it calls. Made by the VM, once per stream."""

    __slots__ = ("_vm", "_check_keys", "context")

    def __init__(self, vm: VM, check_keys: Callable[[VM, Any, str], None]) -> None:
        self._vm = cast("VM", weakref.proxy(vm))  # the VM holds this context: a strong reference would be a cycle
        self._check_keys = check_keys
        #: the container's data for this stream (torch: the tensor builder and the value map), read-only
        self.context: Mapping[str, Any] = MappingProxyType(vm.context)

    # ---- refusals ------------------------------------------------------------------------------------------------

    @property
    def op_start(self) -> int:
        """The offset of the opcode being run, relative to the stream (the VM adds the stream's base to errors)."""
        return self._vm.op_start

    def fail(self, what: str, why: str = "", cls: type[SafeLoadError] = FormatError, **kw: Any) -> SafeLoadError:
        """A refusal at the current opcode, to ``raise``: ``raise ctx.fail("what", "why")``."""
        return self._vm.fail(what, why, cls, **kw)

    # ---- bounds ---------------------------------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        return self._vm.limits

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` the rebuilder allocates beyond the input; refuse past ``max_alloc``."""
        self._vm.charge(nbytes, what)

    def alloc_left(self) -> int:
        """Bytes that may still be allocated before ``max_alloc`` is reached."""
        return self._vm.limits.max_alloc - self._vm.allocated

    def check_size(self, n: int, what: str) -> None:
        """Refuse a container of ``n`` items past ``max_container``."""
        self._vm.check_size(n, what)

    def check_keys(self, keys: Any, what: str = "dict") -> None:
        """Check dict keys or set members before anything hashes them (see ``check_keys`` in safeload/_vm.py)."""
        self._check_keys(self._vm, keys, what)

    def work(self, kind: str, amount: int) -> None:
        """Charge ``amount`` units of work other than opcodes to the budget."""
        self._vm.work(kind, amount)

    def work_digits(self, digits: int) -> None:
        """Charge a conversion quadratic in ``digits`` (int from text, Decimal from int)."""
        self._vm.work_digits(digits)

    # ---- other globals --------------------------------------------------------------------------------------------

    def entry_of(self, obj: Any) -> Entry | None:
        """The policy entry of a value a GLOBAL pushed, or None."""
        return self._vm.entry_of(obj)

    def call(self, func: Any, args: Any) -> Any:
        """REDUCE on ``func``: only allowed rebuilders and stubs, as the VM's own REDUCE."""
        return self._vm.call(func, args)

    def newobj(self, cls: Any, args: Any, kwargs: Any) -> Any:
        """NEWOBJ on ``cls``: only allowed rebuilders and stubs, as the VM's own NEWOBJ."""
        return self._vm.newobj(cls, args, kwargs)

    # ---- objects waiting for BUILD --------------------------------------------------------------------------------

    def start_pending(self, qualname: str, builder: Callable[[RebuildContext, Pending, Any], Any],
                      args: tuple[Any, ...] = ()) -> Pending:
        """An object that becomes real when its BUILD state arrives. The VM counts it until that BUILD runs and
        refuses a STOP while any is unfinished."""
        self._vm.pending += 1
        return Pending(qualname, builder, args)

    # ---- bytes outside the opcodes ----------------------------------------------------------------------------------

    def splice_raw(self, nbytes: int, what: str) -> bytearray:
        """Consume the ``nbytes`` raw bytes that follow the current opcode (joblib's array data): a private copy,
        charged to ``max_alloc``.

        The VM checks that they start where the current FRAME ends (never inside one) and that they exist, and
        resumes reading opcodes after them."""
        return self._vm.splice_raw(nbytes, what)

    def run_nested(self, context: Mapping[str, Any]) -> Any:
        """Run the complete pickle that follows the current opcode (joblib's object arrays) with the same policy,
        observer and counters, and resume after it. ``context`` is the nested stream's container data."""
        return self._vm.run_nested(dict(context))

    # ---- the container's data -------------------------------------------------------------------------------------

    @property
    def tensor_builder(self) -> Any:
        """The torch container's tensor builder, or None outside a torch checkpoint."""
        return self.context.get("tensor_builder")

    @property
    def value_map(self) -> Callable[[Any], Any] | None:
        """Maps safeload's values (torch dtypes) to the real ones the container builds with, or None."""
        mapper: Callable[[Any], Any] | None = self.context.get("value_map")
        return mapper

    def __repr__(self) -> str:
        return f"<safeload rebuild context at offset {self.op_start}>"
