"""``safeload.save``: write only what safe loaders open, refuse the rest before writing a byte.

One walk over the object graph checks every object against what ``safeload.load`` accepts under the same policy
and, in the same pass, writes the pickle that torch's zip format keeps as ``data.pkl``. The walk is iterative (no
recursion limit) and keeps an id-memo, so shared and cyclic references are written once and read back shared.
It emits only the opcodes that ``torch.load(weights_only=True)`` reads (protocol 2, no FRAME): torch tensors and
numpy arrays become ``torch._utils._rebuild_tensor_v2`` / ``_v3`` calls over persistent storage ids, exactly the
form torch writes, so the file needs no torch to be written and no code to be read.

What the file becomes:

* anything holding a torch tensor or a numpy array whose dtype torch has: torch's zip checkpoint
  (``archive/data.pkl``, ``archive/data/<key>`` records aligned to 64 bytes, ``byteorder``, ``version``,
  ``.format_version``, ``.storage_alignment``, ``.data/serialization_id``). ``torch.load`` sees numpy arrays as
  CPU tensors; ``safeload.load(tensors="numpy")`` gives arrays back.
* anything else (plain data, numpy scalars, string arrays): a plain pickle at ``pickle_protocol``, which
  ``pickle.load`` reads on every Python that knows that protocol.
* ``compress="zstd"``: either of them inside one zstd frame (safeload reads it; torch alone does not).

The file is written to a temporary file in the same folder, flushed, fsynced and renamed over the target, so a
crash leaves the old file or the new one, never half of one. On a refusal nothing is written.

One job per module, in the order the data flows:

* :mod:`.walk`: the one walk that checks each object and writes ``data.pkl`` (its refusals in :mod:`.refusal`,
  its opcodes in :mod:`.opcodes`, tensor and array records in :mod:`.tensors`);
* :mod:`.plain`: the standard pickler's path for files without tensors;
* :mod:`.zipwriter`: torch's zip layout, planned in full, then streamed;
* :mod:`.atomic`: the atomic file write, or the caller's stream, optionally inside zstd.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._hints import Any, cast
from .._compat import check_protocol, pickle_module_for
from ..policy import Policy, effective_policy
from .atomic import write_output as write_output  # also for safeload/_convert.py
from .plain import plain_pickle
from .refusal import SaveRefused
from .walk import Walker
from .zipwriter import ZipPlan, torch_members

__all__ = ["save", "SaveRefused"]


def save(obj: Any, f: Any, pickle_protocol: int = 4, *, compress: str | None = None, policy: Policy | None = None,
         allow: Iterable[Any] = (), pickle_module: Any = None) -> None:
    """Write ``obj`` so that ``safeload.load`` and ``torch.load(weights_only=True)`` can open it without code.

    ``f`` is a path (written atomically) or a binary stream. Anything ``safeload.load`` would refuse under the
    same ``policy``/``allow`` raises :class:`SaveRefused` (a ``SafeLoadError``) naming where it is inside ``obj``,
    and nothing is written. ``pickle_protocol`` (0 to 5) pins the protocol of a plain pickle; torch-format files
    always use protocol-2 opcodes in ``data.pkl``, which every torch reads. ``compress="zstd"`` wraps the file in
    zstd (safeload reads it; torch does not). ``pickle_module`` may be ``pickle``, ``pickle5`` or ``safeload``.
    """
    _save(obj, f, pickle_protocol, compress=compress, policy=policy, allow=allow, pickle_module=pickle_module)


def _save(obj: Any, f: Any, pickle_protocol: int = 4, *, compress: str | None = None, policy: Policy | None = None,
          allow: Iterable[Any] = (), pickle_module: Any = None, fmt: str = "auto") -> str:
    """:func:`save` with ``fmt``: "auto", "torch" (zip even without tensors) or "pickle" (arrays as numpy pickles).
    Returns the format written."""
    protocol = check_protocol(pickle_protocol)
    module = pickle_module_for(protocol, pickle_module)
    if cast(object, compress) is False:  # torch.save's spelling of no compression
        compress = None
    if compress not in (None, "zstd"):
        raise ValueError(f"compress must be None or 'zstd', not {compress!r}")
    if fmt not in ("auto", "torch", "pickle"):
        raise ValueError(f"format must be 'auto', 'torch' or 'pickle', not {fmt!r}")
    if compress == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            raise ValueError("compress='zstd' needs the zstandard package: pip install zstandard") from None
    pol = effective_policy(policy, allow)
    walker = Walker(pol, arrays="pickle" if fmt == "pickle" else "storage", allow_tensors=fmt != "pickle")
    walker.walk(obj)
    if fmt == "torch" or (fmt == "auto" and walker.records):
        if protocol < 2:
            raise ValueError(f"pickle_protocol={protocol} cannot hold tensors: torch's zip format keeps its pickle at "
                             "protocol 2, which every torch reads. Pass pickle_protocol=2 or higher")
        pkl = walker.getvalue()
        plan = ZipPlan(torch_members(pkl, walker.records))
        write_output(f, plan.total, plan.write, compress)
        return "torch"
    data = plain_pickle(obj, protocol, module, walker)
    write_output(f, len(data), lambda write: write(data), compress)
    return "pickle"
