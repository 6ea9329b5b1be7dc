"""``safeload.load`` and ``safeload.loads``: detect the format by content, open its container, run the VM."""

from __future__ import annotations

import gc
import sys

from ._hints import Any
from ._budget import budget_for
from ._detect import COMPRESSED, detect
from ._pickle_module import load_from_stream, pickle_module_caller
from ._source import read_source
from ._vm import VM
from .errors import (
    FormatError,
    InternalError,
    int_text_limit,
    LimitExceededError,
    SafeLoadError,
    TrailingDataError,
    UnsupportedFormatError,
    error_context,
)
from .policy import Policy, effective_policy

__all__ = ["load", "loads", "run_pickle"]

_TENSORS = ("auto", "numpy", "torch")


class Options:
    """The per-call options every container and rebuilder sees."""

    __slots__ = ("policy", "unknown", "encoding", "errors", "tensors", "map_location", "mmap", "observer")

    def __init__(self, policy: Policy, unknown: str, encoding: str, errors: str, tensors: str,
                 map_location: Any, mmap: bool, observer: Any = None) -> None:
        if unknown not in ("raise", "stub"):
            raise ValueError(f"unknown must be 'raise' or 'stub', not {unknown!r}")
        if tensors not in _TENSORS and not (observer is not None and tensors == "none"):
            raise ValueError(f"tensors must be one of {_TENSORS}, not {tensors!r}")
        if not isinstance(encoding, str) or not isinstance(errors, str):
            raise TypeError("encoding and errors must be strings")
        self.policy = policy
        self.unknown = unknown
        self.encoding = encoding
        self.errors = errors
        self.tensors = tensors
        self.map_location = map_location
        self.mmap = mmap
        #: scan mode: receives every global and refusal; tensors="none" then checks storages without reading them
        self.observer = observer


def run_pickle(data: bytes, start: int, opts: Options, *, end: int | None = None, whole: bool = True,
               persistent_load: Any = None, context: dict[str, Any] | None = None, member: str | None = None) -> Any:
    """Run one pickle stream. With ``whole``, bytes after STOP are refused: a file is read one way only.

    ``member`` names the stream for the scanner (an archive member, or a part of a multi-pickle file).
    """
    if opts.observer is not None:
        opts.observer.begin_pickle(member, start)
    vm = VM(data, start, end, policy=opts.policy, unknown=opts.unknown, encoding=opts.encoding, errors=opts.errors,
            persistent_load=persistent_load, context=context, observer=opts.observer)
    result = vm.run()
    stop = vm.base + vm.pos
    limit = len(data) if end is None else end
    if whole and stop != limit:
        raise TrailingDataError(f"{limit - stop} bytes of data after the pickle's STOP opcode", offset=stop,
                          why="data after STOP can hide a second pickle that another reader would run",
                          fix="If the file is trusted, cut it at the STOP opcode; otherwise discard it")
    return result


def _refuse_unsafe_mode(weights_only: Any, pickle_load_args: dict[str, Any]) -> None:
    if weights_only is False:
        raise SafeLoadError(
            "weights_only=False refused",
            why="safeload never runs code from a file, which is what weights_only=False asks for",
            fix="Allow the classes you trust with allow=[...] or safeload.safe_globals([...]), or inspect the file "
                "with unknown='stub', which returns inert stubs that keep every tensor reachable",
        )
    unknown_args = set(pickle_load_args) - {"fix_imports"}
    if unknown_args:
        raise TypeError(f"safeload.load() got unexpected keyword arguments {sorted(unknown_args)}")


def load(f: Any, map_location: Any = None, pickle_module: Any = None, *, weights_only: Any = True,
         mmap: bool = False, allow: Any = (), policy: Policy | None = None, tensors: str = "auto",
         unknown: str = "raise", encoding: str = "latin1", errors: str = "strict", **pickle_load_args: Any) -> Any:
    """Open a checkpoint without running code from it. A drop-in for ``torch.load``.

    ``f`` is a path, a PathLike, a binary file object or bytes. The format is found from the content, never the
    name. ``pickle_module`` is accepted for compatibility and never used: every pickle goes through safeload's
    own VM. Refusals raise :class:`safeload.SafeLoadError`.
    """
    if hasattr(f, "read"):  # torch's and megengine's loaders call pickle_module.load(f): one pickle, as pickle.load
        caller = pickle_module_caller(sys._getframe(1))
        if caller is not None:
            return load_from_stream(caller, f, encoding, errors)
    _refuse_unsafe_mode(weights_only, pickle_load_args)
    opts = Options(effective_policy(policy, allow), unknown, encoding, errors, tensors, map_location, bool(mmap))
    data, name = read_source(f, writable_map=bool(mmap))
    # Rebuilding creates many small containers and no reference cycles of its own; pausing the cyclic collector
    # for the duration saves repeated full-heap scans (a third of the time on a 20k-tensor optimizer state).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with error_context(path=name):
            return load_buffer(data, opts)
    finally:
        if gc_was_enabled:
            gc.enable()


def load_buffer(data: Any, opts: Options, kind: str | None = None, archive: Any = None) -> Any:
    """Route by content, under the work budget of this input (safeload/_budget.py: work in proportion to
    ``len(data)``). Only SafeLoadError leaves: an exception safeload does not expect is an
    :class:`~safeload.InternalError` (a bug report), never a leaked IndexError or a silent FormatError.

    ``kind``: what :func:`safeload._detect.detect` returned for ``data``, and ``archive``: the
    :class:`~safeload._containers.zip.ZipArchive` of ``data`` (a zip), when the caller (the scanner) has already
    made them; neither is made a second time."""
    try:
        with budget_for(len(data), opts.policy.limits):
            return _load_bytes(data, opts, kind, archive)
    except SafeLoadError:
        raise
    except MemoryError as exc:
        raise LimitExceededError("max_alloc", 0, opts.policy.limits.max_alloc, what="Out of memory while loading",
                                 why="the file asks for more memory than this machine has") from exc
    except RecursionError as exc:
        raise LimitExceededError("max_depth", 0, opts.policy.limits.max_depth, what="Nesting too deep") from exc
    except Exception as exc:
        raise (int_text_limit(exc) or InternalError.wrap(exc)) from exc


def loads(data: bytes, map_location: Any = None, pickle_module: Any = None, **kwargs: Any) -> Any:
    """:func:`load` for bytes already in memory."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"safeload.loads expects bytes, not {type(data).__name__}")
    return load(bytes(data), map_location, pickle_module, **kwargs)


def _load_npz(zf: Any, opts: Options) -> dict[str, Any]:
    """An .npz archive as a dict of arrays, keyed like ``np.load(...)[key]``."""
    from ._containers.npy import load_npy

    out: dict[str, Any] = {}
    for name in zf.members:
        if not name.endswith(".npy"):
            raise FormatError(f"Unexpected member {name!r} in an .npz archive", member=name,
                              why="an .npz archive holds only .npy members")
        with error_context(member=name):
            out[name[:-4]] = load_npy(zf.read(name, max_size=opts.policy.limits.max_decompressed,
                                              limit="max_decompressed"),
                                      lambda d, start, _n=name: run_pickle(d, start, opts, member=_n))
    return out


_TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # PROTO 2, LONG1 of the magic number


def _load_bytes(data: bytes, opts: Options, kind: str | None = None, archive: Any = None) -> Any:
    if kind is None:
        kind = detect(data)  # the registry: one format per file, or a polyglot FormatError
    if kind == "tar":  # torch < 0.4; its first member name spells opcodes CPython fails on (checked by detect)
        from ._containers.torch import load_torch_tar

        return load_torch_tar(data, opts, run_pickle)
    if kind == "pickle":
        if bytes(data[: len(_TORCH_LEGACY_PREFIX)]) == _TORCH_LEGACY_PREFIX:
            from ._containers.torch import load_torch_legacy

            return load_torch_legacy(data, opts, run_pickle)
        return run_pickle(data, 0, opts)
    if kind == "zip":
        from ._containers.torch import load_torch_zip
        from ._containers.zip import ZipArchive

        zf = archive if archive is not None else ZipArchive(data, opts.policy.limits.max_members)
        if any(name.endswith(".npy") for name in zf.members) and not any(n.endswith("data.pkl") for n in zf.members):
            return _load_npz(zf, opts)
        result = load_torch_zip(data, opts, run_pickle, zf=zf)
        _refuse_pickle_members(zf, opts)
        return result
    if kind == "npy":
        from ._containers.npy import load_npy

        return load_npy(data, lambda d, start: run_pickle(d, start, opts))
    if kind in COMPRESSED:
        return _load_compressed(kind, data, opts)
    if kind == "safetensors":
        from ._containers.safetensors import load_safetensors

        return load_safetensors(data, opts.tensors, copy=not opts.mmap)
    if kind == "mxnet":
        from ._containers.mxnet import load_mxnet_list

        return _framework_tensors(load_mxnet_list(data, opts.policy.limits.max_alloc, opts.tensors != "none"), opts)
    if kind in ("mindspore", "mindspore-encrypted"):
        from ._containers.mindspore import load_mindspore

        return _framework_tensors(load_mindspore(data, opts.policy.limits.max_alloc, opts.tensors != "none"), opts)
    if kind == "paddle-tensor":
        from ._containers.paddle import load_dense_tensors

        return _framework_tensors(load_dense_tensors(data, opts.policy.limits.max_alloc, opts.tensors != "none"), opts)
    if kind == "empty":
        raise FormatError("Empty input", why="there is nothing to load", fix="Check that the file was fully downloaded")
    raise UnsupportedFormatError(kind, offset=0,
                      why="safeload does not open this kind of file yet",
                      fix="Convert it with the framework that wrote it, in a trusted environment")


def _refuse_pickle_members(zf: Any, opts: Options) -> None:
    """torch.load reads ``data.pkl`` and the storage records; ``np.load(file)[key]``, ``zipfile`` and ``unzip``
    read every member. A member that is neither, and that holds an .npy, a zip, or bytes CPython's unpickler could
    import or call something from, is refused: the checkpoint would be read one way by torch and another way by
    the tools that open every member.

    In a scan, each member read here is handed to the scanner (``observer.unread_member``) with the verdict, so
    the scanner neither reads it nor walks it a second time."""
    from ._detect import cpython_reach

    pkl = [n for n in zf.members if n.endswith("data.pkl") and n.count("/") <= 1]
    records = (pkl[0][: -len("data.pkl")] if len(pkl) == 1 else "") + "data/"
    after = len(records)
    for name in zf.members:
        if (name.startswith(records) and name.find("/", after) < 0) or name in pkl or name.endswith("/"):
            continue  # a storage record, the pickle, or a directory entry
        content = zf.read(name, max_size=opts.policy.limits.max_decompressed, limit="max_decompressed")
        head = bytes(content[:6])
        refused = head == b"\x93NUMPY" or head[:4] == b"PK\x03\x04" or bool(cpython_reach(content))
        if opts.observer is not None:
            opts.observer.unread_member(name, content, refused)
        if refused:
            raise FormatError(f"Checkpoint member {name!r} holds a pickle, an .npy or a zip that torch.load never "
                              "reads", member=name,
                              why="np.load(file)[key], zipfile and unzip open every member of the archive: they "
                                  "would read what safeload and torch.load do not",
                              fix="Remove the member with a trusted tool, or re-save the checkpoint with torch.save")


def _load_compressed(kind: str, data: Any, opts: Options) -> Any:
    """One compression layer (joblib's compressors, zstd) around any other format; never two."""
    from ._containers.compressed import decompress

    content = decompress(kind, data, opts.policy.limits.max_decompressed)
    with error_context(member=f"<{kind} content>"):
        inner = detect(content)
        if inner in COMPRESSED:
            raise FormatError(f"A {inner} stream inside a {kind} stream", offset=0,
                              why="nested compression multiplies decompression bombs and is never written by the "
                                  "frameworks safeload reads",
                              fix="Decompress the outer layer yourself if you trust the file")
        return _load_bytes(content, opts, inner)


def _framework_tensors(obj: Any, opts: Options) -> Any:
    """Formats that hold plain arrays give numpy arrays; ``tensors="torch"`` converts them to torch tensors."""
    if opts.tensors != "torch":
        return obj
    try:
        import torch
    except ImportError:
        raise FormatError("tensors='torch' but torch is not installed",
                          fix="pip install torch, or use tensors='numpy'") from None
    import numpy as np

    def convert(value: Any) -> Any:
        if type(value) is np.ndarray:
            name = value.dtype.name
            if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
                width = "int16" if name == "bfloat16" else "uint8"
                return torch.from_numpy(np.ascontiguousarray(value).view(width)).view(getattr(torch, name))
            return torch.from_numpy(np.ascontiguousarray(value) if value.flags.writeable else value.copy())
        if type(value) is dict:
            return {k: convert(v) for k, v in value.items()}
        if type(value) is list:
            return [convert(v) for v in value]
        return value

    return convert(obj)
