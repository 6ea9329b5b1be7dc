"""Tensors: the checked records a torch checkpoint's pickle refers to, and the builders that make tensors of them.

The last step of the data flow (see README, Architecture). A container (``safeload/_containers/torch.py``) reads
bytes into :class:`Storage` records; the rebuilders (``safeload/_rebuild/torch.py``) check each call the file makes
and ask the checkpoint's builder for the object: :class:`TorchTensors` (torch tensors), :class:`NumpyTensors`
(numpy arrays) or :class:`NullTensors` (scan mode and a legacy file's first pass: placeholders with the checked
geometry). Every builder makes views through :func:`safeload._views.make_view`; the rules that decide whether a
file is accepted (:func:`check_view`, :func:`check_location`, :func:`check_grad`) live here, next to the records,
so every mode applies the same ones. torch is imported only to build torch tensors, never to scan.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from math import prod

from ._hints import Any
from ._views import _contiguous, byte_span, check_extent, framework, make_view, whole_storage
from .errors import FormatError

__all__ = ["NullTensors", "NumpyTensors", "Rebuilt", "Storage", "StorageType", "TORCH_DTYPES", "TensorPlaceholder",
           "TorchConstant", "TorchDType", "TorchDevice", "TorchTensors", "attr_array", "builder_context", "check_grad",
           "check_location", "check_view", "storage_dtype_of", "swap_width", "tensor_builder", "typed_storages"]

# torch dtype name -> (itemsize, numpy dtype or ml_dtypes name)
TORCH_DTYPES: dict[str, tuple[int, str]] = {
    "float32": (4, "float32"), "float64": (8, "float64"), "float16": (2, "float16"), "bfloat16": (2, "bfloat16"),
    "int64": (8, "int64"), "int32": (4, "int32"), "int16": (2, "int16"), "int8": (1, "int8"), "uint8": (1, "uint8"),
    "uint16": (2, "uint16"), "uint32": (4, "uint32"), "uint64": (8, "uint64"), "bool": (1, "bool"),
    "complex64": (8, "complex64"), "complex128": (16, "complex128"), "complex32": (4, "complex32"),
    "float8_e4m3fn": (1, "float8_e4m3fn"), "float8_e5m2": (1, "float8_e5m2"),
    "float8_e4m3fnuz": (1, "float8_e4m3fnuz"), "float8_e5m2fnuz": (1, "float8_e5m2fnuz"),
    "float8_e8m0fnu": (1, "float8_e8m0fnu"),
    # quantized storages: the integer representation (only _rebuild_qtensor may view them)
    "quint8": (1, "uint8"), "qint8": (1, "int8"), "qint32": (4, "int32"),
    # packed sub-byte quantized storages: the element count is in bytes (two 4-bit or four 2-bit values each)
    "quint4x2": (1, "uint8"), "quint2x4": (1, "uint8"),
}


_STEP_LIMIT = 1 << 63
_LOCATION = re.compile(r"cpu|meta|(?:cuda|mps|xpu|hpu|mtia)(?::(?:0|[1-9][0-9]{0,2}))?")


class TorchDType:
    """A torch dtype named by the file, kept as data until tensors are built."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class TorchDevice:
    """A ``torch.device`` the file names (``torch.device(type[, index])``), kept as data without torch."""

    __slots__ = ("type", "index")

    def __init__(self, type_: str, index: int | None) -> None:
        self.type = type_
        self.index = index

    def _plain(self) -> bool:
        return type(self.type) is str and (self.index is None or type(self.index) is int)

    def __eq__(self, other: object) -> bool:  # fields only as the rebuilder made them (a str and an int or None)
        if type(other) is not TorchDevice or not (self._plain() and other._plain()):
            return self is other
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index)) if self._plain() else object.__hash__(self)

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")


class TorchConstant:
    """A torch layout (``torch.strided``) or qscheme (``torch.per_tensor_affine``) named by the file, kept as data
    until torch objects are built (then the torch constant of that exact name, looked up, never called)."""

    __slots__ = ("kind", "name")

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name

    def _plain(self) -> bool:
        return type(self.kind) is str and type(self.name) is str

    def __eq__(self, other: object) -> bool:  # fields only as the rebuilder made them (two strs)
        if type(other) is not TorchConstant or not (self._plain() and other._plain()):
            return self is other
        return (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self.kind, self.name)) if self._plain() else object.__hash__(self)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class StorageType:
    """A ``torch.<X>Storage`` class named by the file; only ever used as a persistent-id field."""

    __slots__ = ("qualname", "dtype")

    def __init__(self, qualname: str, dtype: str | None) -> None:
        self.qualname = qualname
        self.dtype = dtype  # None: untyped (bytes)

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


class Storage:
    """One storage record of the checkpoint: its key, dtype, element count and bytes (possibly mapped)."""

    __slots__ = ("key", "dtype", "numel", "location", "buffer", "_views")

    def __init__(self, key: str, dtype: str, numel: int, location: str, buffer: Any) -> None:
        check_location(location)
        if dtype not in TORCH_DTYPES:
            raise FormatError(f"Storage dtype torch.{dtype} is not supported",
                              why="quantized, sparse and exotic dtypes are refused rather than guessed")
        if type(numel) is not int or numel < 0:
            raise FormatError(f"Storage {key!r} has a bad element count {numel!r:.40}")
        if buffer is not None and _nbytes(buffer) != numel * TORCH_DTYPES[dtype][0]:
            raise FormatError(f"Storage {key!r} holds {_nbytes(buffer)} bytes, but {numel} x {dtype} needs "
                              f"{numel * TORCH_DTYPES[dtype][0]}",
                              why="a record shorter or longer than its reference would be read outside its bytes",
                              fix="The file is damaged or was crafted; get a fresh copy from its source")
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.location = location
        self.buffer = buffer  # bytearray, mmap slice, or None in scan mode
        self._views: dict[str, Any] = {}

    def nbytes(self) -> int:
        return self.numel * TORCH_DTYPES[self.dtype][0]


def check_view(storage: Storage, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
    """Refuse a view that would address anything outside its storage record (Python ints: no overflow).

    The same rule in every tensor mode: torch and numpy tensors are then made by :func:`safeload._views.make_view`,
    which checks the same geometry again against the real length of the buffer."""
    if dtype not in TORCH_DTYPES:
        raise FormatError(f"Tensor dtype torch.{dtype} is not supported",
                          why="quantized, sparse and exotic dtypes are refused rather than guessed")
    itemsize = TORCH_DTYPES[dtype][0]
    check_extent(size, itemsize, "Tensor view")  # non-negative ints, at most 64, below 2**63 bytes
    agree = len(size) == len(stride)
    widest = 0
    for step in stride:
        if not 0 <= step < _STEP_LIMIT:
            agree = False
            break
        if step > widest:
            widest = step
    if not agree:
        raise FormatError("Tensor size and stride disagree, or a stride is negative",
                          why="torch has no negative strides; torch.as_strided refuses them")
    if offset * itemsize >= 1 << 63 or widest * itemsize >= 1 << 63:
        raise FormatError("Tensor stride or offset does not fit a signed 64-bit byte count",
                          why="torch and numpy overflow on it")
    nbytes = storage.nbytes()
    if nbytes % itemsize:
        raise FormatError(f"Storage {storage.key!r} of {nbytes} bytes does not hold whole {dtype} elements")
    numel_elems = nbytes // itemsize
    span = byte_span(size, stride, 1, offset)
    if span is not None:
        if span[1] > numel_elems:
            raise FormatError(
                f"Tensor view reaches element {span[1] - 1} of storage {storage.key!r}, which holds {numel_elems}",
                why="an offset, size or stride beyond the record would read memory outside it")
    elif offset > numel_elems:
        raise FormatError(f"Tensor offset {offset} is beyond storage {storage.key!r}")


def check_location(location: Any) -> None:
    """A storage location must be a device torch.load restores: ``cpu`` or ``meta`` exactly, or ``cuda``, ``mps``,
    ``xpu``, ``hpu``, ``mtia`` with an optional index (torch.serialization's registered deserializers, then
    ``torch.device``, which refuses leading zeros and signs). Checked in every tensor mode, scan included."""
    if type(location) is str and location in _LOCATIONS_SEEN:
        return
    if type(location) is not str or _LOCATION.fullmatch(location) is None:
        raise FormatError(f"Storage location {location!r:.60} is not a device",
                          why="torch.load refuses a location no deserializer knows; so does safeload, in every mode",
                          fix="Re-save the checkpoint from CPU tensors, or with map_location='cpu' applied")
    _LOCATIONS_SEEN.add(location)


#: locations that passed check_location (at most the few thousand strings _LOCATION matches)
_LOCATIONS_SEEN: set[str] = set()


def check_grad(dtype: str, requires_grad: bool) -> None:
    """torch refuses ``requires_grad`` on integer and bool tensors (``RuntimeError: only Tensors of floating point
    and complex dtype can require gradients``); every mode refuses it the same way."""
    if requires_grad and (dtype == "bool" or dtype.startswith(("int", "uint"))):
        raise FormatError(f"A torch.{dtype} tensor requires grad",
                          why="only floating point and complex tensors can require gradients; torch.load fails on it")


def _nbytes(buffer: Any) -> int:
    if type(buffer) is bytearray:
        return len(buffer)
    return buffer.nbytes if isinstance(buffer, memoryview) or hasattr(buffer, "__array_interface__") else len(buffer)


class Rebuilt:
    """What a tensor builder made while this checkpoint ran: identity -> (object, dtype). Only these objects may
    become a Parameter's data, the same in every mode (torch would refuse anything that is not a tensor)."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: dict[int, tuple[Any, str]] = {}

    def add(self, obj: Any, dtype: str) -> Any:
        self._made[id(obj)] = (obj, dtype)
        return obj

    def dtype_of(self, obj: Any) -> str | None:
        entry = self._made.get(id(obj))
        return entry[1] if entry is not None and entry[0] is obj else None


class TensorPlaceholder:
    """Scan mode's tensor: the checked geometry of a view that was never built."""

    __slots__ = ("storage_key", "dtype", "offset", "size", "stride")

    def __init__(self, storage_key: str, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage_key = storage_key
        self.dtype = dtype
        self.offset = offset
        self.size = size
        self.stride = stride

    def __repr__(self) -> str:
        return f"<tensor torch.{self.dtype}{list(self.size)}>"


class NumpyTensors:
    """Builds numpy arrays: views over one array per storage, so tied weights share memory as in torch."""

    torch = None  # data forms for torch.Size (a tuple) and torch.device (TorchDevice)

    def __init__(self, byteswap: bool) -> None:
        self.byteswap = byteswap
        self.rebuilt = Rebuilt()
        self._bases: dict[tuple[str, str], Any] = {}

    def np_dtype(self, dtype: str) -> Any:
        np = framework("numpy")
        name = TORCH_DTYPES[dtype][1]
        if hasattr(np, name) and name not in ("bool",):
            return np.dtype(name)
        if name == "bool":
            return np.dtype(np.bool_)
        try:
            ml_dtypes = framework("ml_dtypes")
        except ImportError:
            raise FormatError(f"torch.{dtype} tensors need ml_dtypes to become numpy arrays",
                              why="numpy has no such dtype",
                              fix="pip install ml_dtypes, or load with tensors='torch'") from None
        if not hasattr(ml_dtypes, name):
            raise FormatError(f"torch.{dtype} has no numpy equivalent", fix="load with tensors='torch'")
        return np.dtype(getattr(ml_dtypes, name))

    def base(self, storage: Storage, dtype: str) -> tuple[Any, Any]:
        """The record's bytes as a uint8 array (byteswapped when the file's byte order is not the host's), and the
        numpy dtype its tensors have."""
        key = (storage.key, dtype)
        cached = self._bases.get(key)
        if cached is None:
            np = framework("numpy")
            dt = self.np_dtype(dtype)
            arr = make_view(storage.buffer, np.dtype(np.uint8), (storage.nbytes(),), what=f"Storage {storage.key!r}")
            width = swap_width(storage.dtype)  # torch.load byteswaps by the storage's dtype, not the view's
            if self.byteswap and width > 1:
                arr = arr.reshape(-1, width)[:, ::-1].reshape(-1)  # a copy, each element's bytes reversed
            cached = self._bases[key] = (arr, dt)
        return cached

    def tensor(self, storage: Storage, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
               requires_grad: bool, conj: bool = False, neg: bool = False) -> Any:
        base, dt = self.base(storage, dtype)
        itemsize = dt.itemsize
        arr = make_view(base, dt, size, tuple(s * itemsize for s in stride), offset * itemsize,
                        what=f"Tensor over storage {storage.key!r}")
        if conj or neg:  # numpy has no lazy conj/neg views: the values torch's view resolves to, as a copy
            np = framework("numpy")
            arr = np.conj(arr) if conj else arr.copy()
            if neg:
                np.negative(arr, out=arr)
        return arr

    def sparse(self, layout: str, parts: tuple[Any, ...], size: tuple[int, ...], coalesced: bool | None) -> Any:
        return None  # numpy has no sparse tensors: the rebuilder refuses

    def quantized(self, *args: Any) -> Any:
        return None  # nor quantized ones

    def nested(self, *args: Any) -> Any:
        return None  # nor nested ones

    def jagged(self, *args: Any) -> Any:
        return None

    def set_attrs(self, obj: Any, attrs: dict[str, Any]) -> Any:
        """Python attributes saved on a tensor: the array as an ``AttrArray`` view carrying them."""
        view = obj.view(attr_array())
        vars(view).update(attrs)
        return view

    def is_parameter(self, obj: Any) -> bool:
        return True

    def parameter(self, data: Any, requires_grad: bool | None) -> Any:
        return data  # numpy has no Parameter: the array itself, as torch's .detach().numpy() would give


class TorchTensors:
    """Builds torch tensors: one untyped storage per record; tensors are views with torch's own as_strided."""

    def __init__(self, byteswap: bool, map_location: Any) -> None:
        self.torch = framework("torch")
        self.byteswap = byteswap
        self.map_location = map_location
        self.rebuilt = Rebuilt()
        self._storages: dict[str, Any] = {}
        self._placed: dict[tuple[str, str], Any] = {}
        self._devices: dict[str, Any] = {}
        self._dtypes: dict[str, Any] = {}  # dtype name -> torch dtype
        self._shares = not byteswap and not callable(map_location)  # tensors share the records' copied bytes
        self._handed_out: set[tuple[str, str]] = set()
        self._typed: dict[str, Any] = {}
        self.refs = 0  # storage references the pickle made (persistent ids) ...
        self.used = 0  # ... and tensors built over one: fewer tensors than references means saved storages

    def _device_for(self, location: str) -> Any:
        """The device a record saved at ``location`` is moved to, or None where its CPU copy stays (a CPU target,
        or a callable ``map_location``, applied in storage()); resolved once per location."""
        device = self._devices.get(location, self)
        if device is self:
            device = self._resolve_device(location)
            if device is not None and device.type == "cpu":  # torch.device.type builds a new str on every read
                device = None
            self._devices[location] = device
        return device

    def _resolve_device(self, location: str) -> Any:
        torch = self.torch
        ml = self.map_location
        if isinstance(ml, dict):
            location = ml.get(location, location)
            ml = None
        if ml is None:
            target = location
        elif isinstance(ml, (str, torch.device)):
            target = ml
        else:
            return None  # a callable: handled in storage()
        try:
            device = torch.device(target)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise FormatError(f"Storage location {location!r} is not a device", why=str(exc),
                              fix="Pass map_location='cpu'") from None
        if device.type not in ("cpu", "meta") and not _available(torch, device.type):
            name = "CUDA" if device.type == "cuda" else device.type
            raise FormatError(f"Tensors were saved on {location} and {name} is not available",
                              why="torch.load would fail the same way", fix="Pass map_location='cpu'")
        return device

    def storage(self, storage: Storage) -> Any:
        torch = self.torch
        cached = self._storages.get(storage.key)
        if cached is None:
            buf = storage.buffer
            if len(buf) == 0:
                cached = torch.UntypedStorage(0)
            else:
                cached = make_view(buf, torch.uint8, (storage.nbytes(),), what=f"Storage {storage.key!r}").untyped_storage()
            if self.byteswap:
                itemsize = swap_width(storage.dtype)
                if itemsize > 1:
                    swapped = whole_storage(torch, cached, torch.uint8).view(-1, itemsize).flip(1).contiguous()
                    cached = swapped.untyped_storage()
            if callable(self.map_location) and not isinstance(self.map_location, (str, dict, torch.device)):
                result = self.map_location(cached, storage.location)
                if result is not None:
                    cached = result if isinstance(result, torch.UntypedStorage) else result.untyped_storage()
            self._storages[storage.key] = cached
        return cached

    def tensor(self, storage: Storage, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
               requires_grad: bool, conj: bool = False, neg: bool = False) -> Any:
        torch = self.torch
        self.used += 1
        key = (storage.key, dtype)
        base = self._placed.get(key)
        if base is None:
            base = self._base(storage, dtype)
            self._placed[key] = base
        if (offset == 0 and len(size) == 1 and stride == (1,) and size[0] == base.shape[0]
                and key not in self._handed_out and not (conj or neg)):
            t = base  # the whole record as one 1-D tensor: hand out the base itself, once
            self._handed_out.add(key)
        elif offset == 0 and stride == _contiguous(size, 1) and prod(size) == base.shape[0]:
            t = base.view(size)  # the whole record in C order, a scalar included (torch checks the count again)
        else:
            itemsize = TORCH_DTYPES[dtype][0]
            t = make_view(base, base.dtype, size, tuple(s * itemsize for s in stride), offset * itemsize,
                          what=f"Tensor over storage {storage.key!r}")
        if conj:  # the bits torch._C._set_tensor_metadata sets, on this view only (checked by the rebuilder)
            torch._C._set_conj(t, True)
        if neg:
            torch._C._set_neg(t, True)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def sparse(self, layout: str, parts: tuple[Any, ...], size: tuple[int, ...], coalesced: bool | None) -> Any:
        """A sparse tensor from rebuilt parts, made by torch's constructor with ``check_invariants=True``; any
        inconsistency (an index out of range, sizes that disagree) is a FormatError."""
        torch = self.torch
        try:
            if layout == "sparse_coo":
                return torch.sparse_coo_tensor(parts[0], parts[1], size, check_invariants=True, is_coalesced=coalesced)
            return torch.sparse_compressed_tensor(*parts, size, layout=getattr(torch, layout), check_invariants=True)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise FormatError(f"Sparse {layout[7:].upper()} tensor is inconsistent", why=str(exc).split("\n")[0][:200],
                              fix="The file is damaged or was crafted; get a fresh copy from its source") from None

    def quantized(self, storage: Storage, repr_dtype: str, offset: int, size: tuple[int, ...],
                  stride: tuple[int, ...], quant: tuple[Any, ...]) -> Any:
        """A quantized tensor from its checked integer representation (the rebuilder checked the quantizer and the
        geometry). quint8/qint8/qint32 with integer zero points: made from a view of the representation (a copy).
        Packed quint4x2/quint2x4 and float zero points: an empty quantized tensor of that quantizer set over the
        record's storage, as torch's ``_rebuild_qtensor`` does (shares the record's memory)."""
        torch = self.torch
        packed = storage.dtype in ("quint4x2", "quint2x4")
        try:
            if quant[0] == "per_tensor":
                if packed:
                    made = torch._empty_affine_quantized(size, scale=quant[1], zero_point=quant[2],
                                                         dtype=getattr(torch, storage.dtype))
                    return made.set_(self.storage(storage), offset, size, stride)
                ints = self.tensor(storage, repr_dtype, offset, size, stride, False)
                return torch._make_per_tensor_quantized_tensor(ints, quant[1], quant[2])
            scales, zero_points, axis, low, high = quant[1:]
            if scales.dim() != 1 or zero_points.dim() != 1 or not scales.numel() == zero_points.numel() == size[axis]:
                raise ValueError(f"{scales.numel()} scales and {zero_points.numel()} zero points for {size[axis]} "
                                 f"channels")
            if not bool(torch.isfinite(scales).all()) or not bool((scales > 0).all()):
                raise ValueError("a scale is not a finite positive number")
            if zero_points.is_floating_point():
                if not bool(torch.isfinite(zero_points).all()):
                    raise ValueError("a float zero point is not finite")
            elif zero_points.numel() and not (low <= int(zero_points.min()) and int(zero_points.max()) <= high):
                raise ValueError(f"a zero point is outside torch.{storage.dtype}'s range {low}..{high}")
            if packed or zero_points.is_floating_point():
                made = torch._empty_per_channel_affine_quantized(size, scales=scales, zero_points=zero_points,
                                                                 axis=axis, dtype=getattr(torch, storage.dtype))
                return made.set_(self.storage(storage), offset, size, stride)
            ints = self.tensor(storage, repr_dtype, offset, size, stride, False)
            return torch._make_per_channel_quantized_tensor(ints, scales, zero_points, axis)
        except (RuntimeError, ValueError) as exc:
            raise FormatError("Quantized tensor parameters are inconsistent", why=str(exc).split("\n")[0][:200],
                              fix="The file is damaged or was crafted; get a fresh copy from its source") from None

    def nested(self, buffer: Any, sizes: Any, strides: Any, offsets: Any, check: Any) -> Any:
        """A strided nested tensor, once ``check`` has bounded every component by the buffer."""
        if buffer.dim() != 1 or buffer.stride() != (1,) or sizes.dim() != 2 or strides.dim() != 2 or offsets.dim() != 1:
            raise FormatError("Nested tensor parts have the wrong rank", why="torch saves a 1-D contiguous buffer, "
                              "[n, ndim] sizes and strides and [n] offsets")
        check(buffer.numel(), sizes.tolist(), strides.tolist(), offsets.tolist())
        return self.torch._nested_view_from_buffer(buffer, sizes, strides, offsets)

    def jagged(self, values: Any, offsets: Any, lengths: Any, ragged: int, cache: dict[str, Any], requires_grad: bool,
               check: Any) -> Any:
        """A jagged nested tensor, once ``check`` has bounded the offsets and lengths by the packed values and
        compared the cached sequence lengths (stored as the size of an ``(n, 0)`` tensor) with the real ones."""
        if (values.dim() < ragged or offsets.dim() != 1 or offsets.numel() < 1
                or (lengths is not None and lengths.dim() != 1)
                or any(t.dim() != 2 or t.shape[1] != 0 for t in cache.values())):
            raise FormatError("Jagged nested tensor parts have the wrong rank", why="torch saves values with the "
                              "packed dimension, 1-D offsets and lengths, and (n, 0) cached sequence lengths")
        seqlens = {name: int(t.shape[0]) for name, t in cache.items()}
        check(int(values.shape[ragged - 1]), offsets.tolist(), None if lengths is None else lengths.tolist(), seqlens)
        made = self.torch.nested.nested_tensor_from_jagged(values, offsets, lengths, jagged_dim=ragged,
                                                           min_seqlen=seqlens.get("min_seqlen"),
                                                           max_seqlen=seqlens.get("max_seqlen"))
        if requires_grad:
            made.requires_grad_(True)
        return made

    def typed_storage(self, storage: Storage) -> Any:
        """A saved storage (``torch.save(t.storage())``) as torch.load returns it: a ``TypedStorage`` of the
        record's dtype over the record's bytes (byteswapped and placed as its tensors are), one per record."""
        cached = self._typed.get(storage.key)
        if cached is None:
            torch = self.torch
            base = self._placed.get((storage.key, storage.dtype))
            if base is None:
                base = self._placed[(storage.key, storage.dtype)] = self._base(storage, storage.dtype)
            cached = self._typed[storage.key] = torch.storage.TypedStorage(
                wrap_storage=base.untyped_storage(), dtype=base.dtype, _internal=True)
        return cached

    def set_attrs(self, obj: Any, attrs: dict[str, Any]) -> Any:
        """Python attributes saved on a tensor, stored in its ``__dict__`` (names checked by the rebuilder; no
        ``setattr``, so no property setter runs)."""
        vars(obj).update({k: self.value(v) for k, v in attrs.items()})
        return obj

    def _base(self, storage: Storage, dtype: str) -> Any:
        """A 1-D tensor of ``dtype`` over the whole record, on the mapped device."""
        torch = self.torch
        tdtype = self._dtypes.get(dtype)
        if tdtype is None:
            tdtype = self._dtypes[dtype] = getattr(torch, dtype)
        device = self._device_for(storage.location)
        if self._shares and len(storage.buffer) > 0:  # shares the record's memory: one copy in all
            base = make_view(storage.buffer, tdtype, (storage.nbytes() // TORCH_DTYPES[dtype][0],),
                             what=f"Storage {storage.key!r}")
        else:
            base = whole_storage(torch, self.storage(storage), tdtype)
        if device is not None:  # base is in CPU memory here, where a CPU target leaves it
            try:
                base = base.to(device)
            except (RuntimeError, AssertionError, ValueError) as exc:  # e.g. an index past this machine's devices
                raise FormatError(f"Tensors saved on {storage.location} cannot be placed on {device}", why=str(exc)[:200],
                                  fix="Pass map_location='cpu'") from None
        return base

    def value(self, obj: Any) -> Any:
        """A torch dtype named as a value (``{"dtype": torch.float16}``) as the real torch dtype."""
        if type(obj) is TorchDType:
            return getattr(self.torch, obj.name)
        if type(obj) is TorchConstant:  # a layout or qscheme of a name from the rebuilder's fixed lists
            return getattr(self.torch, obj.name)
        return obj

    def is_parameter(self, obj: Any) -> bool:
        return isinstance(obj, self.torch.nn.Parameter)

    def parameter(self, data: Any, requires_grad: bool | None) -> Any:
        if requires_grad is None:  # as_subclass(Parameter), as torch._tensor._rebuild_from_type_v2 does
            requires_grad = bool(data.requires_grad)
        return self.torch.nn.Parameter(data, requires_grad=requires_grad)


def _available(torch: Any, kind: str) -> bool:
    """Whether this torch build can place tensors on a device type (``torch.cuda``, ``torch.mps``, ``torch.xpu``,
    ``torch.mtia``: their ``is_available()``; a type without such a module, like ``hpu`` without its plugin, is not)."""
    is_available = getattr(getattr(torch, kind, None), "is_available", None)
    return bool(is_available()) if callable(is_available) else False


def tensor_builder(opts: Any, byteswap: bool) -> Any:
    if opts.tensors == "none":
        return NullTensors()
    if opts.tensors == "numpy":
        return NumpyTensors(byteswap)
    if opts.tensors == "torch":
        try:
            framework("torch")
        except ImportError:
            raise FormatError("tensors='torch' but torch is not installed", fix="pip install torch, or use "
                              "tensors='numpy'") from None
        return TorchTensors(byteswap, opts.map_location)
    try:
        framework("torch")
    except ImportError:
        return NumpyTensors(byteswap)
    return TorchTensors(byteswap, opts.map_location)


def builder_context(builder: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"tensor_builder": builder}
    if isinstance(builder, TorchTensors):
        context["value_map"] = builder.value
    return context


def typed_storages(result: Any, builder: Any) -> Any:
    """With torch tensors, every :class:`Storage` the pickle returns outside a tensor (a saved storage) becomes
    the ``TypedStorage`` torch.load returns, inside dicts, lists and tuples (and only there: other objects keep
    safeload's record). Walked only when the pickle referenced storages more often than it built tensors."""
    if not isinstance(builder, TorchTensors) or builder.refs <= builder.used:
        return result

    def swap(obj: Any, depth: int) -> Any:
        kind = type(obj)
        if kind is Storage:
            return builder.typed_storage(obj)
        if depth > 200:
            return obj
        if kind in (dict, OrderedDict):
            for key, value in obj.items():
                new = swap(value, depth + 1)
                if new is not value:
                    obj[key] = new
        elif kind is list:
            for i, value in enumerate(obj):
                new = swap(value, depth + 1)
                if new is not value:
                    obj[i] = new
        elif kind is tuple:
            items = tuple(swap(v, depth + 1) for v in obj)
            if any(a is not b for a, b in zip(items, obj)):
                return items
        return obj

    return swap(result, 0)


class NullTensors:
    """Scan mode and the first pass over a legacy pickle: tensors are not built; each is a placeholder holding its
    checked geometry, so every rule that does not need the bytes (view bounds, dtypes, locations, Parameter data,
    requires_grad) is applied exactly as in the torch and numpy modes."""

    torch = None

    def __init__(self) -> None:
        self.rebuilt = Rebuilt()

    def tensor(self, storage: Storage, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
               requires_grad: bool, conj: bool = False, neg: bool = False) -> Any:
        return TensorPlaceholder(storage.key, dtype, offset, size, stride)

    def set_attrs(self, obj: Any, attrs: dict[str, Any]) -> Any:
        return obj

    def sparse(self, layout: str, parts: tuple[Any, ...], size: tuple[int, ...], coalesced: bool | None) -> Any:
        return TensorPlaceholder(layout, "sparse", 0, size, ())

    def quantized(self, storage: Storage, repr_dtype: str, offset: int, size: tuple[int, ...],
                  stride: tuple[int, ...], quant: tuple[Any, ...]) -> Any:
        return TensorPlaceholder(storage.key, storage.dtype, offset, size, stride)

    def nested(self, buffer: Any, sizes: Any, strides: Any, offsets: Any, check: Any) -> Any:
        return TensorPlaceholder(buffer.storage_key, "nested", 0, (), ())

    def jagged(self, values: Any, *args: Any) -> Any:
        return TensorPlaceholder(values.storage_key, "jagged", 0, (), ())

    def is_parameter(self, obj: Any) -> bool:
        return True

    def parameter(self, data: Any, requires_grad: bool | None) -> Any:
        return data


def swap_width(dtype: str) -> int:
    """How many bytes torch.load reverses per value of a foreign byte order: the element size, except for complex
    dtypes, whose real and imaginary parts are reversed each (``torch/csrc/utils/byte_order.cpp`` swaps complex64
    as two 4-byte floats); reversing all 8 bytes would swap the parts."""
    width = TORCH_DTYPES[dtype][0]
    return width // 2 if dtype.startswith("complex") else width


_attr_array: Any = None


def attr_array() -> Any:
    """numpy's form of a tensor saved with Python attributes (``t.foo = 1``): ``AttrArray``, an ndarray subclass
    whose views carry the attributes in their ``__dict__`` (made on first use: numpy is imported only then)."""
    global _attr_array
    if _attr_array is None:
        np = framework("numpy")
        _attr_array = type("AttrArray", (np.ndarray,), {"__module__": __name__})
    return _attr_array


def storage_dtype_of(stype: Any) -> str:
    """The element dtype a persistent id's storage class stands for (untyped storages hold bytes)."""
    if type(stype) is not StorageType:
        raise FormatError("Persistent id names no storage type", why=f"got {type(stype).__name__}")
    if stype.dtype is None:
        return "uint8"
    if stype.dtype.startswith("q:"):
        raise FormatError("Quantized storages are not supported", fix="Dequantize in a trusted environment")
    return stype.dtype
