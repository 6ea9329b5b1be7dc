"""PyTorch checkpoints: the zip format (torch >= 1.6) and the legacy stream format.

Zip: ``<archive>/data.pkl`` runs through the VM; its persistent ids ``('storage', type, key, location, numel)``
resolve to the records ``<archive>/data/<key>``, each checked: the key names an existing member, the record is
exactly ``numel * itemsize`` bytes, one key is one dtype. TorchScript archives are refused with directions.

Legacy: the magic number, protocol and sys_info pickles, then the object pickle, the storage-key list pickle and
the raw storages (``int64 numel`` + bytes each). Every pickle runs through the same VM.
"""

from __future__ import annotations

import re
import struct
import sys
from collections import OrderedDict

from .._hints import Any
from .._tensors import (TORCH_DTYPES, NullTensors, Storage, TorchTensors, builder_context, check_view,
                        storage_dtype_of, tensor_builder, typed_storages)
from .._types import is_one_of
from .._views import framework, whole_storage
from ..errors import FormatError, error_context
from .zip import ZipArchive

__all__ = ["load_torch_legacy", "load_torch_tar", "load_torch_zip", "pickle_at", "storage_dtype_of", "tensor_builder"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# ---- torch.load(f, pickle_module=safeload) ---------------------------------------------------------------------------

def torch_persistent_load(torch_load_storage: Any) -> tuple[Any, dict[str, Any]]:
    """The VM's ``persistent_load`` and context when torch.load drives ``safeload.Unpickler`` and installs its own
    ``persistent_load`` (``torch.load(f, pickle_module=safeload)``). torch keeps reading the archive records; the
    file's storage references are checked first (``('storage', <a storage class safeload resolved>, key str,
    location matching check_location, numel int >= 0)``) and passed to torch with torch's own storage class, and
    what torch returns must be a CPU ``TypedStorage`` of exactly that dtype and size. Tensors are then rebuilt by
    safeload's rebuilders over its bytes, as in ``safeload.load``."""
    torch = framework("torch")
    builder = TorchTensors(False, None)  # torch's load_tensor has already byteswapped and placed the storage
    storages: dict[str, Storage] = {}

    def persistent_load(pid: Any) -> Any:
        stype, key, location, numel, dtype, existing = storage_ref(pid, storages)
        if existing is not None:
            return existing
        Storage(key, dtype, numel, location, None)  # the location rule of every mode
        cls = torch.UntypedStorage if stype.dtype is None else getattr(torch, stype.qualname.rpartition(".")[2])
        try:
            typed = torch_load_storage(("storage", cls, key, location, numel))
        except (RuntimeError, ValueError, KeyError, OSError) as exc:  # torch's reader: no record, a short record
            raise FormatError(f"torch.load could not read the record of storage {key!r:.40}",
                              why=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                              fix="The file is damaged or was crafted; get a fresh copy from its source") from None
        untyped = getattr(typed, "_untyped_storage", typed)
        if not isinstance(untyped, torch.UntypedStorage) or untyped.device.type != "cpu":
            raise FormatError(f"Storage {key!r} was not loaded to CPU memory",
                              why="safeload rebuilds tensors over CPU storages only", fix="Pass map_location='cpu'")
        buf = whole_storage(torch, untyped, torch.uint8).numpy()
        storage = storages[key] = Storage(key, dtype, numel, location, buf)  # size checked against numel
        return storage

    return persistent_load, builder_context(builder)


def storage_ref(pid: Any, storages: dict[str, Storage]) -> tuple[Any, str, str, int, str, Storage | None]:
    """A zip checkpoint's storage reference ``('storage', type, key, location, numel)``, checked: its storage
    type, key, location, element count and dtype, and the storage already made for that key (which must have
    the same dtype and size)."""
    if type(pid) is not tuple or len(pid) != 5 or type(pid[0]) is not str or pid[0] != "storage":  # by type first
        raise FormatError(f"Unknown persistent id {type(pid).__name__}",
                          why="torch zip checkpoints use ('storage', type, key, location, numel)")
    _tag, stype, key, location, numel = pid
    if type(key) is not str or type(location) is not str or type(numel) is not int or not 0 <= numel < 1 << 59:
        raise FormatError("Malformed storage reference",
                          why="key and location must be strings, numel an int >= 0 whose bytes fit in int64 (torch's "
                              "reader takes a C int64)")
    dtype = storage_dtype_of(stype)
    existing = storages.get(key)
    if existing is not None and (existing.dtype != dtype or existing.numel != numel):
        raise FormatError(f"Storage {key!r} is referenced as two different types or sizes",
                          why="a key reused with another dtype or length could read past its record")
    return stype, key, location, numel, dtype, existing


# ---- zip format ---------------------------------------------------------------------------------------------------

def _archive_prefix(zf: ZipArchive) -> str:
    pickles = [n for n in zf.members if n.endswith("data.pkl") and (len(n) == 8 or n[-9] == "/")]
    if any(n.endswith("/constants.pkl") and n.count("/") == 1 or "/code/" in n for n in zf.members):
        raise FormatError("TorchScript archive refused", why="the file is a torch.jit.save archive: its code/ folder "
                          "holds a program, not a checkpoint",
                          fix="Open it with torch.jit.load in a trusted environment and save model.state_dict(), "
                              "or export the weights with the tool that made it")
    top = [n for n in pickles if n.count("/") <= 1]
    if len(top) != 1:
        raise FormatError("Not a torch checkpoint: " + ("no data.pkl" if not top else f"{len(top)} data.pkl members"),
                          why="a torch zip checkpoint holds exactly one <archive>/data.pkl")
    return top[0][: -len("data.pkl")]


def load_torch_zip(data: Any, opts: Any, run_pickle: Any, *, zf: ZipArchive | None = None) -> Any:
    zf = zf or ZipArchive(data, opts.policy.limits.max_members)
    prefix = _archive_prefix(zf)
    byteorder: str = sys.byteorder  # no record: torch.load reads the host's order (and warns on big-endian hosts)
    if prefix + "byteorder" in zf.members:
        raw_order = bytes(zf.read(prefix + "byteorder", max_size=16))
        if raw_order not in (b"little", b"big"):  # torch.load compares the exact bytes: no whitespace, no case
            raise FormatError(f"Unknown byteorder {raw_order!r}", member=prefix + "byteorder",
                              why="torch.load accepts exactly 'little' or 'big' and fails on anything else")
        byteorder = raw_order.decode("ascii")
    byteswap = byteorder != sys.byteorder
    _check_version(zf, prefix)
    builder = tensor_builder(opts, byteswap)
    storages: dict[str, Storage] = {}

    counting = isinstance(builder, TorchTensors)
    scanning, mapping = opts.tensors == "none", opts.mmap
    members = zf.members
    records = f"{prefix}data/"

    def persistent_load(pid: Any) -> Any:
        if counting:
            builder.refs += 1
        _stype, key, location, numel, dtype, existing = storage_ref(pid, storages)
        if existing is not None:
            return existing
        name = records + key
        member = members.get(name)
        if member is None:
            raise FormatError(f"Storage {key!r} has no record", why=f"the archive has no member {name!r}")
        nbytes = numel * TORCH_DTYPES[dtype][0]
        if member.size != nbytes:
            raise FormatError(f"Storage {key!r} record is {member.size} bytes, but {numel} x {dtype} needs {nbytes}",
                              member=name, why="a size mismatch would read outside the record")
        if scanning:
            buf = None  # scan mode: sizes checked, data never read
        elif mapping:
            buf = zf.raw(name)  # CRC deferred: the record is mapped, not read
        else:
            buf = zf.read_writeable(name, verify=False)  # copied once, into writeable memory
            if nbytes < _CrcChecks.THREADED:
                zf.verify(name, buf)
            else:
                crc.check(name, buf)
        storage = Storage(key, dtype, numel, location, buf)
        storages[key] = storage
        return storage

    pkl_name = prefix + "data.pkl"
    crc = _CrcChecks(zf)
    try:
        with error_context(member=pkl_name):
            pkl = zf.read(pkl_name, max_size=opts.policy.limits.max_alloc)
            result = run_pickle(pkl, 0, opts, persistent_load=persistent_load, context=builder_context(builder),
                                member=pkl_name)
        crc.wait()  # nothing is returned before every record read has passed its CRC-32 check
        return typed_storages(result, builder)
    finally:
        crc.close()


_VERSION = re.compile(rb"[ \t\n\r\f\v]*\+?([0-9]{1,19})[ \t\n\r\f\v]*")


def _check_version(zf: ZipArchive, prefix: str) -> None:
    """The archive's format version, read as torch's reader reads it (``.data/version`` if present, else
    ``version``; a decimal number from 1 to 10, the range torch 2.13 reads). torch refuses other values; so does
    safeload. An archive with neither record loads (torch's reader refuses it: README, Differences from torch.load)."""
    for rel in (".data/version", "version"):
        if prefix + rel in zf.members:
            raw = bytes(zf.read(prefix + rel, max_size=64))
            match = _VERSION.fullmatch(raw)
            if match is None or not 1 <= int(match.group(1)) <= 10:
                raise FormatError(f"Torch archive format version {raw[:20]!r} is not one torch reads",
                                  member=prefix + rel, why="torch.load accepts a decimal version from 1 to 10 only",
                                  fix="The file is damaged or was crafted; get a fresh copy from its source")
            return


class _CrcChecks:
    """CRC-32 checks of the records an eager load copies. Large records are checked on a second thread while the
    next one is read (zlib releases the GIL), so verification costs little extra time; ``wait`` re-raises the first
    mismatch."""

    THREADED = 1 << 20  # records this large or larger are checked on the second thread

    def __init__(self, zf: ZipArchive) -> None:
        self.zf = zf
        self.pool: Any = None
        self.jobs: list[Any] = []

    def check(self, name: str, buf: Any) -> None:
        if len(buf) < self.THREADED:
            self.zf.verify(name, buf)
            return
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safeload-crc")
        self.jobs.append(self.pool.submit(self.zf.verify, name, buf))

    def wait(self) -> None:
        for job in self.jobs:
            job.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# ---- legacy format ----------------------------------------------------------------------------------------------

def pickle_at(data: Any, pos: int, opts: Any, run_pickle: Any, part: str, **kw: Any) -> tuple[Any, int]:
    """Run the pickle that starts at ``pos`` in a stream of several; return it and where the next one starts."""
    from .._opcodes import iter_ops

    end = pos
    for _spec, _arg, off in iter_ops(data, pos):
        end = off + 1
    return run_pickle(data, pos, opts, end=end, whole=True, member=part, **kw), end


def load_torch_legacy(data: bytes, opts: Any, run_pickle: Any) -> Any:
    from .._opcodes import iter_ops

    if opts.mmap:
        raise FormatError("mmap=True needs the zip checkpoint format", offset=0,
                          why="this is a legacy (_use_new_zipfile_serialization=False) file, which torch.load does not "
                              "map either", fix="Load it without mmap, or re-save it with safeload.save")

    def next_pickle(pos: int, part: str) -> tuple[Any, int]:
        return pickle_at(data, pos, opts, run_pickle, part)

    magic, pos = next_pickle(0, "legacy magic number")
    if magic != _LEGACY_MAGIC:
        raise FormatError("Not a legacy torch file: wrong magic number", offset=0)
    proto, pos = next_pickle(pos, "legacy protocol version")
    if proto != 1001:
        raise FormatError(f"Legacy torch protocol {proto!r} is not supported", offset=pos)
    sys_info, pos = next_pickle(pos, "legacy sys_info")
    if type(sys_info) is not dict or type(sys_info.get("little_endian")) is not bool:
        raise FormatError("Legacy torch sys_info is malformed", offset=pos)
    byteswap = (sys_info["little_endian"] is True) != (sys.byteorder == "little")
    main_start = pos
    main_end = main_start
    for _spec, _arg, off in iter_ops(data, main_start):
        main_end = off + 1
    keys, raw_start = next_pickle(main_end, "legacy storage keys")
    if type(keys) is not list or not all(type(k) is str for k in keys) or len(set(keys)) != len(keys):
        raise FormatError("Legacy torch storage key list is malformed", offset=main_end)
    # First pass: which dtype each key has, from the object pickle's persistent ids (nothing is built).
    refs: dict[str, tuple[str, int, str]] = {}
    views: dict[str, tuple[str, int, int]] = {}  # view key -> (root key, offset, size), in elements

    def record(pid: Any) -> Any:
        if type(pid) is not tuple or len(pid) != 6 or not is_one_of(pid[0], ("storage",)):
            raise FormatError("Unknown legacy persistent id", why="expected ('storage', type, key, location, numel, view)")
        _t, stype, key, location, numel, view = pid
        if type(key) is not str or type(location) is not str or type(numel) is not int or numel < 0:
            raise FormatError("Malformed legacy storage reference")
        dtype = storage_dtype_of(stype)
        prev = refs.get(key)
        if prev is not None and prev != (dtype, numel, location):
            raise FormatError(f"Storage {key!r} is referenced with two different types, sizes or locations",
                              why="torch.load keeps whichever reference comes first; safeload does not guess")
        refs[key] = (dtype, numel, location)
        if view is None:
            return Storage(key, dtype, numel, location, None)
        view_key, offset, size = _legacy_view(view, key, numel, views)
        return Storage(view_key, dtype, size, location, None)

    first = _with_tensors(opts, "none")
    first.observer = None  # the object pickle is reported once, on the second pass
    first.unknown = "stub"  # and refused there, with the scanner seeing every global
    run_pickle(data, main_start, first, end=main_end, persistent_load=record,
               context={"tensor_builder": NullTensors()}, member="legacy object")
    if set(refs) - set(keys):
        raise FormatError("The object pickle refers to storages the key list does not name", offset=main_end)
    if set(views) & (set(keys) | set(refs)):
        raise FormatError("A legacy storage view has the key of a storage", offset=main_start,
                          why="torch.load returns whichever of the two it made first for that key")
    # The raw storages, in key-list order.
    storages: dict[str, Storage] = {}
    pos = raw_start
    builder = tensor_builder(opts, byteswap)
    for key in keys:
        if key not in refs:
            raise FormatError(f"Storage {key!r} is listed but never used", offset=pos)
        dtype, numel, location = refs[key]
        if pos + 8 > len(data):
            raise FormatError(f"Storage {key!r} is truncated", offset=pos)
        (count,) = struct.unpack_from("<q" if not byteswap else ">q", data, pos)
        itemsize = TORCH_DTYPES[dtype][0]
        if count != numel or pos + 8 + count * itemsize > len(data):
            raise FormatError(f"Storage {key!r} size {count} disagrees with its reference ({numel}) or the file",
                              offset=pos)
        start = pos + 8
        pos = start + count * itemsize
        storages[key] = Storage(key, dtype, numel, location,
                                None if opts.tensors == "none" else bytearray(data[start:pos]))
    if pos != len(data):
        raise FormatError(f"{len(data) - pos} bytes after the last legacy storage", offset=pos,
                          why="trailing data can hide a second payload")
    for view_key, (root_key, offset, size) in views.items():  # slices of their root's bytes (shared memory)
        root = storages[root_key]
        width = TORCH_DTYPES[root.dtype][0]
        buf = None if root.buffer is None else memoryview(root.buffer)[offset * width : (offset + size) * width]
        storages[view_key] = Storage(view_key, root.dtype, size, root.location, buf)

    def persistent_load(pid: Any) -> Any:
        if (type(pid) is not tuple or len(pid) != 6 or type(pid[2]) is not str or pid[2] not in storages
                or not (pid[5] is None or type(pid[5]) is tuple and pid[5] and type(pid[5][0]) is str)):
            raise FormatError("Unknown legacy persistent id")  # (the first pass checked every field of the same ids)
        if isinstance(builder, TorchTensors):
            builder.refs += 1
        return storages[pid[2] if pid[5] is None else pid[5][0]]

    result = run_pickle(data, main_start, opts, end=main_end, persistent_load=persistent_load,
                        context=builder_context(builder), member="legacy object")
    return typed_storages(result, builder)


def _legacy_view(view: Any, key: str, numel: int, views: dict[str, tuple[str, int, int]]) -> tuple[str, int, int]:
    """A torch 0.3.1 storage slice, ``(view_key, offset, size)`` in elements of storage ``key``: inside the storage,
    and one view key always the same slice (torch.load makes a view key once and returns it for every later
    reference, whatever that reference says)."""
    if (type(view) is not tuple or len(view) != 3 or type(view[0]) is not str or type(view[1]) is not int
            or type(view[2]) is not int):
        raise FormatError("Malformed legacy storage view", why="expected (view_key, offset, size)")
    view_key, offset, size = view
    if offset < 0 or size < 0 or offset + size > numel:
        raise FormatError(f"Legacy storage view {view_key!r:.40} ({offset}, {size}) lies outside storage {key!r:.40} "
                          f"of {numel} elements", why="torch would slice past the storage's bytes",
                          fix="The file is damaged or was crafted; get a fresh copy from its source")
    prev = views.setdefault(view_key, (key, offset, size))
    if prev != (key, offset, size):
        raise FormatError(f"Legacy storage view {view_key!r:.40} is defined twice, differently",
                          why="torch.load keeps the first definition and ignores the second; safeload does not guess")
    return view_key, offset, size


def _with_tensors(opts: Any, tensors: str) -> Any:
    import copy

    clone = copy.copy(opts)
    clone.tensors = tensors
    return clone



# ---- the tar format (torch < 0.4) -------------------------------------------------------------------------------

_TAR_MEMBERS = ("sys_info", "storages", "tensors", "pickle")
_TAR_KEYS = (str, int)  # storage keys: checked by type before a dict lookup (an unhashable key would raise there)


def _tar_members(data: Any, max_members: int) -> dict[str, bytes]:
    """The regular members of a tar archive by name, read from memory: nothing is extracted to disk."""
    import io
    import tarfile

    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as tar:
            for count, info in enumerate(tar, start=1):
                if count > max_members:
                    raise FormatError(f"The tar archive has more than {max_members} members")
                if not info.isreg():
                    raise FormatError(f"Tar member {info.name!r} is not a regular file", member=info.name,
                                      why="links and devices in a checkpoint are a path-traversal trick")
                if info.name in out:
                    raise FormatError(f"Duplicate tar member {info.name!r}", member=info.name,
                                      why="two members with one name are read differently by different tools")
                handle = tar.extractfile(info)
                out[info.name] = handle.read() if handle is not None else b""
    except tarfile.TarError as exc:
        raise FormatError("Malformed tar archive", why=str(exc)) from None
    return out


def _record_count(raw: bytes, opts: Any, run_pickle: Any, member: str) -> tuple[int, int]:
    """The record count a tar member starts with (a pickled int), and where the first record begins."""
    count, pos = pickle_at(raw, 0, opts, run_pickle, member)
    if type(count) is not int or count < 0 or count > len(raw):
        raise FormatError(f"Torch tar {member} count is malformed", member=member)
    return count, pos


def load_torch_tar(data: Any, opts: Any, run_pickle: Any) -> Any:
    """The tar checkpoints of torch < 0.4: sys_info, storages, tensors and pickle members."""
    members = _tar_members(data, opts.policy.limits.max_members)
    missing = [m for m in ("storages", "tensors", "pickle") if m not in members]
    extra = sorted(set(members) - set(_TAR_MEMBERS))
    if missing or extra:
        raise FormatError("Not a torch tar checkpoint", why=f"missing {missing}, unexpected {extra}")
    if opts.mmap:
        raise FormatError("mmap=True needs the zip checkpoint format", why="this is a torch < 0.4 tar file",
                          fix="Load it without mmap, or re-save it with safeload.save")
    byteswap = False
    if "sys_info" in members:
        sys_info, _ = pickle_at(members["sys_info"], 0, opts, run_pickle, "sys_info")
        if type(sys_info) is not dict or type(sys_info.get("little_endian")) is not bool:
            raise FormatError("Torch tar sys_info is malformed", member="sys_info")
        byteswap = (sys_info["little_endian"] is True) != (sys.byteorder == "little")
    builder = tensor_builder(opts, byteswap)
    order = ">" if byteswap else "<"

    # storages: a count, then (key, location, storage type) pickles each followed by int64 numel + bytes,
    # then a list of views (target, root, offset, numel)
    raw = members["storages"]
    count, pos = _record_count(raw, opts, run_pickle, "storages")
    storages: dict[Any, Storage] = {}
    for _ in range(count):
        head, pos = pickle_at(raw, pos, opts, run_pickle, "storages")
        if type(head) is not tuple or len(head) != 3 or type(head[0]) not in _TAR_KEYS or type(head[1]) is not str:
            raise FormatError("Torch tar storage header is malformed", member="storages", offset=pos)
        key, location, stype = head
        dtype = storage_dtype_of(stype)
        if pos + 8 > len(raw):
            raise FormatError("Torch tar storage is truncated", member="storages", offset=pos)
        (numel,) = struct.unpack_from(order + "q", raw, pos)
        size = numel * TORCH_DTYPES[dtype][0]
        if numel < 0 or pos + 8 + size > len(raw):
            raise FormatError(f"Torch tar storage {key!r} claims {numel} elements beyond the member",
                              member="storages", offset=pos)
        if key in storages:
            raise FormatError(f"Torch tar storage {key!r} appears twice", member="storages", offset=pos)
        buf: Any = None if opts.tensors == "none" else bytearray(raw[pos + 8 : pos + 8 + size])
        storages[key] = Storage(str(key), dtype, numel, location, buf)
        pos += 8 + size
    views, pos = pickle_at(raw, pos, opts, run_pickle, "storages")
    if type(views) is not list or pos != len(raw):
        raise FormatError("Torch tar storage views are malformed, or data follows them", member="storages")
    for view in views:
        if (type(view) is not tuple or len(view) != 4 or type(view[0]) not in _TAR_KEYS or type(view[1]) not in _TAR_KEYS
                or view[1] not in storages or view[0] in storages):
            raise FormatError("Torch tar storage view is malformed", member="storages")
        target, root_key, offset, numel = view
        root = storages[root_key]
        if type(offset) is not int or type(numel) is not int or offset < 0 or numel < 0 or offset + numel > root.numel:
            raise FormatError(f"Torch tar storage view {target!r} lies outside storage {root_key!r}",
                              member="storages")
        es = TORCH_DTYPES[root.dtype][0]
        buf = None if root.buffer is None else memoryview(root.buffer)[offset * es : (offset + numel) * es]
        storages[target] = Storage(f"{root.key}@{offset}", root.dtype, numel, root.location, buf)

    # tensors: a count, then (key, storage key, tensor type) pickles each followed by ndim, sizes, strides, offset
    raw = members["tensors"]
    count, pos = _record_count(raw, opts, run_pickle, "tensors")
    tensors: dict[int, Any] = {}
    for _ in range(count):
        head, pos = pickle_at(raw, pos, opts, run_pickle, "tensors")
        if (type(head) is not tuple or len(head) != 3 or type(head[1]) not in _TAR_KEYS or head[1] not in storages
                or type(head[0]) is not int):
            raise FormatError("Torch tar tensor header is malformed", member="tensors", offset=pos)
        key, storage_key, _tensor_type = head
        if pos + 8 > len(raw):
            raise FormatError("Torch tar tensor is truncated", member="tensors", offset=pos)
        (ndim,) = struct.unpack_from(order + "i", raw, pos)
        if not 0 <= ndim <= 64 or pos + 16 + 16 * ndim > len(raw):
            raise FormatError(f"Torch tar tensor {key} has a bad rank {ndim}", member="tensors", offset=pos)
        size = struct.unpack_from(f"{order}{ndim}q", raw, pos + 8)
        stride = struct.unpack_from(f"{order}{ndim}q", raw, pos + 8 + 8 * ndim)
        (offset,) = struct.unpack_from(order + "q", raw, pos + 8 + 16 * ndim)
        pos += 16 + 16 * ndim
        storage = storages[storage_key]
        if offset < 0:
            raise FormatError(f"Torch tar tensor {key} has a negative offset", member="tensors")
        with error_context(member="tensors"):
            check_view(storage, storage.dtype, offset, size, stride)
        tensors[key] = builder.rebuilt.add(builder.tensor(storage, storage.dtype, offset, size, stride, False),
                                           storage.dtype)  # a tensor this checkpoint rebuilt, as in the zip format
    if pos != len(raw):
        raise FormatError("Data follows the last torch tar tensor", member="tensors", offset=pos)

    def persistent_load(pid: Any) -> Any:
        if type(pid) is tuple and pid:
            return pid[0]  # a module container (class, source file, source): the class, already policy-checked
        try:
            return tensors[int(pid)]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"Persistent id {pid!r:.40} names no tensor of this checkpoint",
                              member="pickle") from None

    result, _end = pickle_at(members["pickle"], 0, opts, run_pickle, "pickle", persistent_load=persistent_load,
                             context=builder_context(builder))
    return result
