"""safeload as a ``pickle_module``: one pickle read from a stream with pickle.load's meaning.

``torch.load(f, pickle_module=safeload)`` and ``megengine.load(f, pickle_module=safeload)`` call
``safeload.load(f)`` and ``safeload.Unpickler(f).load()`` where they would call ``pickle.load``:

* torch's zip loader (torch/serialization.py ``_load``) makes one ``pickle_module.Unpickler`` over ``data.pkl``
  and installs its own ``persistent_load``, which reads the storage records from the archive;
* torch's legacy loader (``_legacy_load``, files written with ``_use_new_zipfile_serialization=False``) calls
  ``pickle_module.load(f)`` three times (magic number, protocol version, sys_info), then
  ``pickle_module.Unpickler(f)`` with its ``persistent_load`` for the object pickle, then ``pickle_module.load(f)``
  for the storage key list, and then reads the raw storage bytes that follow into the storages it made;
* megengine/serialization.py ``load`` opens the file and calls ``pickle_module.load(f)`` once.

Each of those calls means "read ONE pickle from ``f`` and leave ``f`` just after it", which is not what
``safeload.load(f)`` means for a caller of its own (open the whole file, whatever its format). So
``safeload.load`` hands a file object to :func:`load_from_stream` when, and only when, the calling function is
in one of the modules of :data:`PICKLE_MODULE_CALLERS`. Every pickle still runs in safeload's VM under the
policy in force for ``safeload.Unpickler`` (``patch("pickle", ...)`` settings, else the default policy):
nothing the file names is imported or called, and persistent ids are refused outside the object pickle.
"""

from __future__ import annotations

from types import FrameType

from ._hints import Any
from .errors import FormatError

__all__ = ["PICKLE_MODULE_CALLERS", "Settings", "current_settings", "load_from_stream", "pickle_module_caller",
           "read_one", "run_one", "set_current_settings", "stream_start"]

# Modules that use ``pickle_module.load(f)`` with pickle.load's meaning -> what their loads rebuild tensors as.
PICKLE_MODULE_CALLERS = {"torch.serialization": "torch", "megengine.serialization": "megengine"}


class Settings:
    """The policy settings of one patch() call (or the defaults)."""

    __slots__ = ("policy", "allow", "unknown", "save_protocol")

    def __init__(self, policy: Any, allow: Any, unknown: str, save_protocol: int) -> None:
        self.policy, self.allow, self.unknown, self.save_protocol = policy, tuple(allow), unknown, save_protocol

    def load_kwargs(self) -> dict[str, Any]:
        return {"policy": self.policy, "allow": self.allow, "unknown": self.unknown}


_CURRENT: list[Settings] = [Settings(None, (), "raise", 4)]


def current_settings() -> Settings:
    """The settings ``safeload.Unpickler`` and the pickle_module path use: those of ``patch("pickle")``."""
    return _CURRENT[0]


def set_current_settings(settings: Settings | None) -> None:
    _CURRENT[0] = settings if settings is not None else Settings(None, (), "raise", 4)


def pickle_module_caller(frame: FrameType | None) -> str | None:
    """The framework whose serialization module runs ``frame`` (the caller of ``safeload.load``), if any."""
    if frame is None:
        return None
    name = frame.f_globals.get("__name__")
    return PICKLE_MODULE_CALLERS.get(name) if isinstance(name, str) else None


def stream_start(f: Any) -> int | None:
    """Where a seekable, readable stream is now; None for paths and streams that cannot be rewound."""
    if not hasattr(f, "read"):
        return None
    try:
        return int(f.tell()) if f.seekable() and f.readable() else None
    except (AttributeError, OSError, ValueError):
        return None


def run_one(data: bytes, encoding: str, errors: str, settings: Settings, torch_pl: Any = None) -> tuple[Any, int]:
    """Run the pickle at the start of ``data``; return the object and the offset just after its STOP."""
    from ._vm import VM
    from .errors import error_context
    from .policy import effective_policy

    policy = effective_policy(settings.policy, settings.allow)
    extra: dict[str, Any] = {}
    if torch_pl is not None:  # storages read by torch, checked and wrapped by safeload/_containers/torch.py
        extra["persistent_load"], extra["context"] = _torch_storages(torch_pl)
    vm = VM(data, 0, policy=policy, unknown=settings.unknown, encoding=encoding, errors=errors, **extra)
    with error_context():
        result = vm.run()
    return result, vm.base + vm.pos


def _torch_storages(torch_pl: Any) -> tuple[Any, dict[str, Any]]:
    """torch's own ``persistent_load`` behind safeload's checks, for both of torch's storage references: the zip
    format's ``('storage', type, key, location, numel)`` and the legacy format's, which adds a sixth item, the
    storage view (torch >= 0.4 always writes None there; a view is refused, as ``safeload.load`` refuses it). The
    legacy loader fills the storages from the bytes after the key list once this pickle is done; the tensors
    safeload builds share the storages' memory, so they hold those bytes too."""
    from ._containers.torch import torch_persistent_load

    legacy: list[bool] = []

    def load_storage(ref: tuple[Any, ...]) -> Any:
        return torch_pl(ref + (None,) if legacy and legacy[-1] else ref)

    checked, context = torch_persistent_load(load_storage)

    def persistent_load(pid: Any) -> Any:
        if type(pid) is tuple and len(pid) == 6 and pid[0] == "storage":
            if pid[5] is not None:
                raise FormatError("Legacy storage views are not supported",
                                  why="torch >= 0.4 never writes a storage view; a view names bytes inside another "
                                      "storage", fix="Re-save the checkpoint with a current torch")
            legacy.append(True)
            try:
                return checked(pid[:5])
            finally:
                legacy.pop()
        return checked(pid)

    return persistent_load, context


_FIRST_READ = 1 << 16


def _read_pickle_bytes(file: Any, start: int | None) -> bytes:
    """The bytes of the pickle at the stream's position, and possibly some after it. A seekable stream is read in
    doubling chunks until the opcode walk (safeload/_opcodes.py, the walk the VM makes) reaches STOP, so a legacy
    torch file's raw storages after its pickles are not read into memory once per pickle; anything else is read to
    its end, as before."""
    if start is None:
        data = file.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("a pickle must be read from a binary file")
        return bytes(data)
    from ._opcodes import iter_ops

    buf = bytearray()
    want = _FIRST_READ
    while True:
        chunk = file.read(want)
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError("a pickle must be read from a binary file")
        buf += chunk
        if len(chunk) < want:  # the end of the stream: the VM reads what there is (and reports a truncation)
            return bytes(buf)
        try:
            for spec, _arg, _at in iter_ops(bytes(buf)):
                if spec.code == 0x2E:  # STOP
                    return bytes(buf)
        except FormatError:
            pass  # the pickle goes on past what was read, or is damaged: read on (the VM decides)
        want = len(buf)


def read_one(file: Any, encoding: str, errors: str, settings: Settings, torch_pl: Any = None) -> Any:
    """pickle.load's contract: one pickle from ``file``, which is left just after its STOP."""
    start = stream_start(file)
    data = _read_pickle_bytes(file, start)
    if not data:
        raise EOFError("Ran out of input")
    result, used = run_one(bytes(data), encoding, errors, settings, torch_pl)
    if used < len(data):
        if start is None:
            raise FormatError(f"{len(data) - used} bytes after the pickle in a stream that cannot be rewound",
                              why="pickle.load leaves the rest of a stream unread; safeload read it and cannot put it back",
                              fix="Pass a seekable file")
        file.seek(start + used)
    return result


def load_from_stream(framework: str, f: Any, encoding: str, errors: str) -> Any:
    """``safeload.load(f)`` called by ``framework``'s serialization module as its ``pickle_module.load``."""
    settings = current_settings()
    if framework != "megengine":
        return read_one(f, encoding, errors, settings)
    from ._rebuild.megengine import WANT_TENSORS

    token = WANT_TENSORS.set(True)  # megengine.load returns MegEngine tensors, as the patched one does
    try:
        return read_one(f, encoding, errors, settings)
    finally:
        WANT_TENSORS.reset(token)
