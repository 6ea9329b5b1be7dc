"""PyTorch tensors, rebuilt by safeload from checked storage references.

The file's ``torch._utils._rebuild_*`` calls reach these functions, never torch's. Each checks that the storage
came from the container (a persistent id safeload resolved), that offset, size and stride address only bytes inside
the record (Python ints: no overflow), that ``backward_hooks`` and any extra state are empty, and only then builds
a view: a torch tensor when torch is wanted, else a numpy array (bfloat16 and float8 through ``ml_dtypes``).
torch is imported only to build torch tensors, never to scan.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..errors import FormatError
from ..policy import Entry

__all__ = ["ENTRIES", "Storage", "StorageType", "TorchDType", "TORCH_DTYPES", "check_view"]

# torch dtype name -> (itemsize, numpy dtype or ml_dtypes name)
TORCH_DTYPES: dict[str, tuple[int, str]] = {
    "float32": (4, "float32"), "float64": (8, "float64"), "float16": (2, "float16"), "bfloat16": (2, "bfloat16"),
    "int64": (8, "int64"), "int32": (4, "int32"), "int16": (2, "int16"), "int8": (1, "int8"), "uint8": (1, "uint8"),
    "uint16": (2, "uint16"), "uint32": (4, "uint32"), "uint64": (8, "uint64"), "bool": (1, "bool"),
    "complex64": (8, "complex64"), "complex128": (16, "complex128"), "complex32": (4, "complex32"),
    "float8_e4m3fn": (1, "float8_e4m3fn"), "float8_e5m2": (1, "float8_e5m2"),
    "float8_e4m3fnuz": (1, "float8_e4m3fnuz"), "float8_e5m2fnuz": (1, "float8_e5m2fnuz"),
    "float8_e8m0fnu": (1, "float8_e8m0fnu"),
}
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
            "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}

_STORAGE_CLASSES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_QUANTIZED = ("QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage")


class TorchDType:
    """A torch dtype named by the file, kept as data until tensors are built."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

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
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.location = location
        self.buffer = buffer  # bytearray, mmap slice, or None in scan mode
        self._views: dict[str, Any] = {}

    def nbytes(self) -> int:
        return self.numel * TORCH_DTYPES[self.dtype][0]


def _dtype_name(vm: Any, dtype: Any) -> str:
    if type(dtype) is TorchDType:
        return dtype.name
    entry = vm.entry_of(dtype)  # a real torch dtype, mapped from a TorchDType value for torch tensors
    if entry is not None and type(entry.value) is TorchDType:
        return entry.value.name  # type: ignore[no-any-return]
    raise vm.fail(f"Tensor dtype is a {type(dtype).__name__}", "expected a torch dtype")


def _ints(vm: Any, value: Any, what: str) -> tuple[int, ...]:
    if type(value) is list:
        value = tuple(value)
    if type(value) is not tuple or not all(type(v) is int for v in value):
        raise vm.fail(f"Tensor {what} is not a tuple of ints")
    if len(value) > 64:
        raise vm.fail(f"Tensor with {len(value)} dimensions", "torch allows at most 64")
    return value  # type: ignore[no-any-return]


def _empty_hooks(vm: Any, hooks: Any, what: str = "backward_hooks") -> None:
    if hooks is None or (type(hooks) in (OrderedDict, dict) and not hooks):
        return
    raise vm.fail(f"Tensor carries {what}", "hooks and extra state are code or objects the file attaches to a "
                  "tensor; torch keeps and calls them, safeload refuses them",
                  fix="Save plain tensors (a state_dict) without hooks")


def _tensor(vm: Any, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
            dtype_name: str | None = None, metadata: Any = None) -> Any:
    if type(storage) is not Storage:
        raise vm.fail(f"Tensor storage is a {type(storage).__name__}", "tensor data must come from the checkpoint's "
                      "storage records")
    if type(offset) is not int or offset < 0:
        raise vm.fail("Tensor storage offset is not a non-negative int")
    size = _ints(vm, size, "size")
    stride = _ints(vm, stride, "stride")
    if type(requires_grad) is not bool:
        raise vm.fail("requires_grad is not a bool")
    _empty_hooks(vm, hooks)
    if metadata is not None and not (type(metadata) in (dict, OrderedDict) and not metadata):
        raise vm.fail("Tensor carries metadata", "safeload rebuilds plain tensors only")
    dtype = dtype_name or storage.dtype
    check_view(storage, dtype, offset, size, stride)
    builder = vm.context.get("tensor_builder")
    if builder is None:
        raise vm.fail("Tensor outside a torch checkpoint", "torch._utils rebuild calls only make sense inside a "
                      "checkpoint whose storages safeload opened")
    return builder.tensor(storage, dtype, offset, size, stride, requires_grad)


def check_view(storage: Storage, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
    """Refuse a view that would address anything outside its storage record (Python ints: no overflow)."""
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise FormatError("Tensor size and stride disagree or are negative")
    if dtype not in TORCH_DTYPES:
        raise FormatError(f"Tensor dtype torch.{dtype} is not supported",
                          why="quantized, sparse and exotic dtypes are refused rather than guessed")
    itemsize = TORCH_DTYPES[dtype][0]
    if storage.nbytes() % itemsize:
        raise FormatError(f"Storage {storage.key!r} of {storage.nbytes()} bytes does not hold whole {dtype} elements")
    numel_elems = storage.nbytes() // itemsize
    view_elems = 1
    for n in size:
        view_elems *= n
    if view_elems * itemsize >= 1 << 63:
        # numpy refuses such a view and torch overflows; the scanner (which builds no view) must refuse it too
        raise FormatError(f"Tensor view of {view_elems} x {dtype} elements is larger than any array can be",
                          why="a logical size beyond 2**63 bytes overflows the array libraries")
    if all(n > 0 for n in size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= numel_elems:
            raise FormatError(
                f"Tensor view reaches element {last} of storage {storage.key!r}, which holds {numel_elems}",
                why="an offset, size or stride beyond the record would read memory outside it")
    elif offset > numel_elems:
        raise FormatError(f"Tensor offset {offset} is beyond storage {storage.key!r}")


def _rebuild_tensor_v2(vm: Any, args: tuple[Any, ...]) -> Any:
    if len(args) not in (6, 7):
        raise vm.fail(f"_rebuild_tensor_v2 called with {len(args)} arguments")
    return _tensor(vm, *args[:6], metadata=args[6] if len(args) == 7 else None)


def _rebuild_tensor_v3(vm: Any, args: tuple[Any, ...]) -> Any:
    if len(args) not in (7, 8):
        raise vm.fail(f"_rebuild_tensor_v3 called with {len(args)} arguments")
    return _tensor(vm, *args[:6], dtype_name=_dtype_name(vm, args[6]), metadata=args[7] if len(args) == 8 else None)


def _rebuild_tensor(vm: Any, args: tuple[Any, ...]) -> Any:
    if len(args) != 4:
        raise vm.fail(f"_rebuild_tensor called with {len(args)} arguments")
    return _tensor(vm, *args, False, None)


def _rebuild_parameter(vm: Any, args: tuple[Any, ...]) -> Any:
    if len(args) not in (3, 4):
        raise vm.fail(f"_rebuild_parameter called with {len(args)} arguments")
    data, requires_grad, hooks = args[:3]
    _empty_hooks(vm, hooks)
    if len(args) == 4:
        _empty_hooks(vm, args[3], "extra Parameter state")
    if type(requires_grad) is not bool:
        raise vm.fail("requires_grad is not a bool")
    builder = vm.context.get("tensor_builder")
    if builder is None or not builder.is_tensor(data):
        raise vm.fail("Parameter data is not a tensor this checkpoint rebuilt")
    return builder.parameter(data, requires_grad)


def _rebuild_from_type_v2(vm: Any, args: tuple[Any, ...]) -> Any:
    """torch._tensor._rebuild_from_type_v2(func, new_type, args, state): only func=_rebuild_tensor_v2 and friends,
    new_type=Tensor or Parameter, empty state. This helper calls whatever it is given, so everything is checked."""
    if len(args) != 4:
        raise vm.fail(f"_rebuild_from_type_v2 called with {len(args)} arguments")
    func, new_type, fargs, state = args
    entry = vm.entry_of(func)
    if entry is None or entry.qualname not in _REBUILD_FUNCS:
        from ..errors import UnsafeGlobalError

        name = entry.qualname if entry is not None else type(func).__name__
        raise UnsafeGlobalError("torch._tensor", "_rebuild_from_type_v2", offset=vm.op_start,
                                why=f"it would call {name}; only torch's tensor rebuild functions may be passed to it")
    if type(new_type) is not TensorType:
        raise vm.fail("_rebuild_from_type_v2 with a type other than torch.Tensor or Parameter")
    _empty_hooks(vm, state, "extra tensor state")
    tensor = vm.call(func, fargs)
    if new_type.name == "Parameter" and not vm.context["tensor_builder"].is_parameter(tensor):
        tensor = vm.context["tensor_builder"].parameter(tensor, True)
    return tensor


class TensorType:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<torch.{self.name}>"


def _unsupported(qualname: str, what: str) -> Entry:
    def call(vm: Any, args: tuple[Any, ...]) -> Any:
        raise FormatError(f"{what} are not supported", offset=vm.op_start, why=f"the file calls {qualname}",
                          fix="Convert the tensors to dense, unquantized ones (tensor.dequantize(), tensor.to_dense()) "
                              "in a trusted environment and save a state_dict")

    return Entry(qualname, call=call, reason=f"{what}: refused with an explanation")


_REBUILD_FUNCS = ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_tensor",
                  "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")


def _entries() -> tuple[Entry, ...]:
    out: list[Entry] = [
        Entry("torch._utils._rebuild_tensor_v2", call=_rebuild_tensor_v2, reason="a tensor view over a checked storage"),
        Entry("torch._utils._rebuild_tensor_v3", call=_rebuild_tensor_v3, reason="a tensor view with an explicit dtype"),
        Entry("torch._utils._rebuild_tensor", call=_rebuild_tensor, reason="a tensor view (old torch)"),
        Entry("torch._utils._rebuild_parameter", call=_rebuild_parameter, reason="a Parameter around a rebuilt tensor"),
        Entry("torch._utils._rebuild_parameter_with_state", call=_rebuild_parameter,
              reason="a Parameter; extra state refused"),
        Entry("torch._tensor._rebuild_from_type_v2", call=_rebuild_from_type_v2,
              reason="only with torch's own rebuild functions and Tensor/Parameter"),
        Entry("torch.Tensor", value=TensorType("Tensor"), reason="the tensor type, as a value"),
        Entry("torch.nn.parameter.Parameter", value=TensorType("Parameter"), reason="the Parameter type, as a value"),
        _unsupported("torch._utils._rebuild_qtensor", "Quantized tensors"),
        _unsupported("torch._utils._rebuild_sparse_tensor", "Sparse tensors"),
        _unsupported("torch._utils._rebuild_nested_tensor", "Nested tensors"),
        _unsupported("torch._utils._rebuild_wrapper_subclass", "Tensor subclasses"),
        _unsupported("torch._utils._rebuild_meta_tensor_no_storage", "Meta tensors"),
    ]
    for cls, dtype in _STORAGE_CLASSES.items():
        out.append(Entry(f"torch.{cls}", value=StorageType(f"torch.{cls}", dtype), reason="a storage class, as a value"))
        out.append(Entry(f"torch.cuda.{cls}", value=StorageType(f"torch.cuda.{cls}", dtype),
                         reason="a CUDA storage class, as a value"))
    for cls in _STORAGE_CLASSES:  # torch.FloatTensor & co., as the old tar format names tensor types
        tensor_cls = cls.replace("Storage", "Tensor")
        out.append(Entry(f"torch.{tensor_cls}", value=TensorType(tensor_cls), reason="a tensor class, as a value"))
    for cls in _QUANTIZED:
        out.append(Entry(f"torch.{cls}", value=StorageType(f"torch.{cls}", "q:" + cls), reason="quantized storage"))
    out.append(Entry("torch.storage.UntypedStorage", value=StorageType("torch.storage.UntypedStorage", None),
                     reason="an untyped storage class, as a value"))
    out.append(Entry("torch.UntypedStorage", value=StorageType("torch.UntypedStorage", None),
                     reason="an untyped storage class, as a value"))
    for name in (*TORCH_DTYPES, *_ALIASES):
        out.append(Entry(f"torch.{name}", value=TorchDType(_ALIASES.get(name, name)), reason="a torch dtype, as a value"))
    return tuple(out)


ENTRIES = _entries()
