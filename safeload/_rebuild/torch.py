"""PyTorch tensors, rebuilt by safeload from checked storage references.

The file's ``torch._utils._rebuild_*`` calls reach these functions, never torch's. Each checks that the storage
came from the container (a persistent id safeload resolved), that offset, size and stride address only bytes inside
the record (Python ints: no overflow), that ``backward_hooks`` and any extra state are empty, and only then asks the
checkpoint's builder (``safeload/_tensors.py``) for the object: a torch tensor when torch is wanted, else a numpy
array (bfloat16 and float8 through ``ml_dtypes``), both made by :func:`safeload._views.make_view`. torch is imported
only to build torch tensors, never to scan.

Every rule that decides whether a file is accepted lives in a rebuilder or next to the records
(``safeload/_tensors.py``), not in a tensor back end, so ``tensors="torch"``, ``tensors="numpy"`` and scan's
placeholders (:class:`TensorPlaceholder`) accept and refuse the same files: storage sizes and locations
(:class:`Storage`), view bounds (:func:`check_view`), ``requires_grad`` on integer tensors (:func:`check_grad`),
and Parameter data that must be a tensor this checkpoint rebuilt (:class:`Rebuilt`).
"""

from __future__ import annotations

import re
from collections import OrderedDict

from .._hints import Any
from .._tensors import (_STEP_LIMIT, TORCH_DTYPES, Rebuilt, Storage, StorageType, TensorPlaceholder, TorchConstant,
                        TorchDevice, TorchDType, check_grad, check_location, check_view)
from .._views import byte_span, check_extent
from ..errors import FormatError
from .._names import danger_of
from .._record import replace
from .._types import Entry
from .context import RebuildContext

__all__ = ["ENTRIES", "Rebuilt", "Storage", "StorageType", "TensorPlaceholder", "TorchConstant", "TorchDType",
           "TorchDevice", "TORCH_DTYPES", "torch_safe_globals",
           "check_grad", "check_location", "check_view"]

_QUANTIZED_REPR = {"quint8": ("uint8", 0, 255), "qint8": ("int8", -128, 127), "qint32": ("int32", -(1 << 31), (1 << 31) - 1),
                   "quint4x2": ("uint8", 0, 15), "quint2x4": ("uint8", 0, 3)}
_SUB_BYTE = {"quint4x2": 4, "quint2x4": 2}  # bits per value
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
            "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}

_STORAGE_CLASSES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_QUANTIZED = ("QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage")


def _dtype_name(vm: RebuildContext, dtype: Any) -> str:
    if type(dtype) is TorchDType:
        return dtype.name
    entry = vm.entry_of(dtype)  # a real torch dtype, mapped from a TorchDType value for torch tensors
    if entry is not None and type(entry.value) is TorchDType:
        return str(entry.value.name)
    raise vm.fail(f"Tensor dtype is a {type(dtype).__name__}", "expected a torch dtype")


def _ints(vm: RebuildContext, value: Any, what: str) -> tuple[int, ...]:
    if type(value) is list:
        value = tuple(value)
    if type(value) is not tuple:
        raise vm.fail(f"Tensor {what} is not a tuple of ints")
    for v in value:
        if type(v) is not int:
            raise vm.fail(f"Tensor {what} is not a tuple of ints")
    if len(value) > 64:
        raise vm.fail(f"Tensor with {len(value)} dimensions", "torch allows at most 64")
    return value


def _empty_hooks(vm: RebuildContext, hooks: Any, what: str = "backward_hooks") -> None:
    if hooks is None or (type(hooks) in (OrderedDict, dict) and not hooks):
        return
    raise vm.fail(f"Tensor carries {what}", "hooks and extra state are code or objects the file attaches to a "
                  "tensor; torch keeps and calls them, safeload refuses them",
                  fix="Save plain tensors (a state_dict) without hooks")


def _tensor(vm: RebuildContext, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
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
    dtype = dtype_name or storage.dtype
    if storage.dtype in _QUANTIZED_REPR or dtype in _QUANTIZED_REPR:
        raise vm.fail(f"A plain tensor over a torch.{storage.dtype} storage",
                      "quantized storages are read by _rebuild_qtensor only, with their quantizer")
    conj, neg = (False, False) if metadata is None else _view_bits(vm, metadata, dtype)
    check_view(storage, dtype, offset, size, stride)
    check_grad(dtype, requires_grad)
    builder = _builder(vm)
    if conj or neg:
        t = builder.tensor(storage, dtype, offset, size, stride, requires_grad, conj=conj, neg=neg)
    else:
        t = builder.tensor(storage, dtype, offset, size, stride, requires_grad)
    return builder.rebuilt.add(t, dtype)


def _view_bits(vm: RebuildContext, metadata: Any, dtype: str) -> tuple[bool, bool]:
    """The conjugate and negative bits of a view (``torch._utils.get_tensor_metadata``: ``{"conj": True}``,
    ``{"neg": True}``); any other key or value is refused. torch sets the conj bit only on complex tensors and the
    neg bit on floating point and complex ones (``tensor.conj().imag``); safeload refuses other dtypes."""
    if metadata is None:
        return False, False
    if type(metadata) not in (dict, OrderedDict) or not all(k in ("conj", "neg") for k in metadata):
        raise vm.fail("Tensor carries metadata other than the conj and neg bits",
                      "torch saves only {'conj': True} and {'neg': True} here; safeload rebuilds nothing else")
    conj, neg = metadata.get("conj", False), metadata.get("neg", False)
    if type(conj) is not bool or type(neg) is not bool:
        raise vm.fail("Tensor conj/neg bits are not bools")
    if conj and not dtype.startswith("complex"):
        raise vm.fail(f"A torch.{dtype} tensor has the conjugate bit", "only complex tensors are conjugate views")
    if neg and (dtype == "bool" or dtype.startswith(("int", "uint"))):
        raise vm.fail(f"A torch.{dtype} tensor has the negative bit", "only float and complex tensors are negative views")
    return conj, neg


def _builder(vm: RebuildContext) -> Any:
    builder = vm.context.get("tensor_builder")
    if builder is None:
        raise vm.fail("Tensor outside a torch checkpoint", "torch._utils rebuild calls only make sense inside a "
                      "checkpoint whose storages safeload opened")
    return builder


def _rebuild_tensor_v2(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    if len(args) not in (6, 7):
        raise vm.fail(f"_rebuild_tensor_v2 called with {len(args)} arguments")
    storage, offset, size, stride, requires_grad, hooks = args[:6]
    return _tensor(vm, storage, offset, size, stride, requires_grad, hooks, metadata=args[6] if len(args) == 7 else None)


def _rebuild_tensor_v3(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    if len(args) not in (7, 8):
        raise vm.fail(f"_rebuild_tensor_v3 called with {len(args)} arguments")
    storage, offset, size, stride, requires_grad, hooks = args[:6]
    return _tensor(vm, storage, offset, size, stride, requires_grad, hooks, dtype_name=_dtype_name(vm, args[6]),
                   metadata=args[7] if len(args) == 8 else None)


def _rebuild_tensor(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    if len(args) != 4:
        raise vm.fail(f"_rebuild_tensor called with {len(args)} arguments")
    return _tensor(vm, *args, False, None)


def _rebuild_parameter(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    if len(args) not in (3, 4):
        raise vm.fail(f"_rebuild_parameter called with {len(args)} arguments")
    data, requires_grad, hooks = args[:3]
    _empty_hooks(vm, hooks)
    attrs = _attrs(vm, args[3]) if len(args) == 4 else {}
    if type(requires_grad) is not bool:
        raise vm.fail("requires_grad is not a bool")
    builder = _builder(vm)
    dtype = builder.rebuilt.dtype_of(data)
    if dtype is None:
        raise vm.fail(f"Parameter data is a {type(data).__name__}, not a tensor this checkpoint rebuilt",
                      "torch.nn.Parameter needs a tensor; the same rule holds in every tensor mode")
    check_grad(dtype, requires_grad)
    param = builder.parameter(data, requires_grad)
    if attrs:
        param = builder.set_attrs(param, attrs)
    return builder.rebuilt.add(param, dtype)


_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


def _attrs(vm: RebuildContext, state: Any) -> dict[str, Any]:
    """Python attributes saved with a tensor or Parameter (``t.foo = 1``: torch's ``_set_obj_state``), as plain
    data. torch calls ``setattr`` for each; safeload accepts only a dict of identifier names that are not dunders
    and not attributes of the tensor class (a property such as ``data``, ``grad`` or ``requires_grad`` would run
    its setter), and stores them in the object's ``__dict__``. The ``(dict, slots)`` form of tensor subclasses is
    refused."""
    if state is None:
        return {}
    if type(state) not in (dict, OrderedDict):
        raise vm.fail(f"Tensor state is a {type(state).__name__}, not a dict of attributes",
                      "torch.Tensor and Parameter save their Python attributes as a dict; the (dict, slots) form "
                      "belongs to tensor subclasses, which safeload does not rebuild")
    for key in state:
        if type(key) is not str or _ATTR_NAME.fullmatch(key) is None or key.startswith("__") or key in _TENSOR_NAMES():
            raise vm.fail(f"Tensor attribute {key!r:.60} is not a plain attribute name",
                          "a dunder or a name torch.Tensor defines (data, grad, requires_grad, _backward_hooks, ...) "
                          "would change the tensor or run code; only new plain attributes are restored",
                          fix="Save the attribute next to the tensor (a dict entry) instead of on it")
    return {k: v for k, v in state.items() if k not in _DYNAMO_MARKS}


#: torch.compile's dynamic-shape marks (``torch._dynamo.mark_dynamic``), saved as tensor attributes: compile-time
#: hints, not data. safeload drops them (rebuilding them would mean importing torch._dynamo because a file names it).
_DYNAMO_MARKS = frozenset({"_dynamo_dynamic_indices", "_dynamo_dynamic_range", "_dynamo_hint_overrides",
                           "_specialize_on", "_has_dynamo_dim_marking", "_dynamo_weak_dynamic_indices",
                           "_dynamo_static_indices", "_dynamo_unbacked_indices", "_dynamo_strict_unbacked_indices"})


class DimRange:
    """A ``torch._dynamo.decorators._DimRange`` a file holds (part of a dynamic-shape mark, which is then dropped):
    ``dim`` an int >= 0, ``min`` and ``max`` ints or None. Identity hash (it sits in a set)."""

    __slots__ = ("dim", "min", "max")

    def __init__(self, dim: int, low: int | None, high: int | None) -> None:
        self.dim, self.min, self.max = dim, low, high


def _dim_range_new(vm: RebuildContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if args or kwargs:
        raise vm.fail("torch._dynamo.decorators._DimRange made with arguments", "torch saves it empty, then its state")
    return vm.start_pending("torch._dynamo.decorators._DimRange", _dim_range_build, ())


def _dim_range_build(vm: RebuildContext, pending: Any, state: Any) -> Any:
    if type(state) is dict and set(state) <= {"dim", "min", "max"}:
        state = [state.get("dim"), state.get("min"), state.get("max")]
    if (type(state) not in (list, tuple) or len(state) != 3 or type(state[0]) is not int or state[0] < 0
            or not all(v is None or type(v) is int for v in state[1:])):
        raise vm.fail("torch._dynamo.decorators._DimRange state is not (dim, min, max) ints")
    return DimRange(state[0], state[1], state[2])


def _TENSOR_NAMES() -> frozenset[str]:  # noqa: N802
    """Every name defined on torch.Tensor and Parameter (and their bases), or a fixed list without torch."""
    global _tensor_names
    if _tensor_names is None:
        import sys

        torch = sys.modules.get("torch")
        names = set(_FIXED_TENSOR_NAMES)
        if torch is not None:
            for cls in (torch.Tensor, torch.nn.Parameter):
                for klass in cls.__mro__:
                    names.update(vars(klass))
            _tensor_names = frozenset(names)
        else:
            return frozenset(names)
    return _tensor_names


_tensor_names: frozenset[str] | None = None
_FIXED_TENSOR_NAMES = ("data", "grad", "requires_grad", "grad_fn", "_backward_hooks", "_post_accumulate_grad_hooks",
                       "_grad", "_base", "_version", "names", "real", "imag", "shape", "dtype", "device", "layout",
                       "is_leaf", "retains_grad", "T", "H", "mT", "mH", "_python_dispatch", "_cdata")


def torch_safe_globals() -> tuple[Any, ...]:
    """Classes the user allowed through ``torch.serialization.add_safe_globals`` / ``safe_globals``, when torch is
    already imported (never imported for this). They count as ``allow=`` does: rebuilt by safeload's protocol for
    allowed classes, never called. Functions are skipped (safeload allows classes only), and so are torch's own
    registrations (module ``torch...``), which safeload rebuilds with its own code or refuses. A ``(class, "name")``
    pair allows the class under that name."""
    import sys

    torch = sys.modules.get("torch")
    get = getattr(getattr(torch, "serialization", None), "get_safe_globals", None)
    if get is None:
        return ()
    from .._names import canonical_qualname as _canonical_qualname
    from .user import user_class_entry

    out: list[Any] = []
    for item in get():
        cls, name = (item if type(item) is tuple and len(item) == 2 else (item, None))
        if not isinstance(cls, type) or (cls.__module__ or "").split(".")[0] == "torch":
            continue
        try:
            entry = user_class_entry(cls)
        except TypeError:  # a class safeload cannot rebuild safely: left to the refusal at load time
            continue
        if type(name) is str:
            entry = replace(entry, qualname=_canonical_qualname(name))
        out.append(entry)
    return tuple(out)


def _size(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``torch.Size((2, 3))``: a tuple of ints becomes a torch.Size with torch tensors, else a plain tuple."""
    if len(args) != 1 or type(args[0]) not in (tuple, list) or not all(type(v) is int for v in args[0]):
        raise vm.fail("torch.Size called with something other than a tuple of ints")
    dims = tuple(args[0])
    if not all(-(1 << 63) <= v < (1 << 63) for v in dims):
        raise vm.fail("torch.Size dimension does not fit a signed 64-bit int", "torch.Size refuses it")
    torch = _torch_of(vm)
    return torch.Size(dims) if torch is not None else dims


_DEVICE_TYPES = ("cpu", "cuda", "meta", "mps", "xpu", "hpu", "mtia", "xla", "ipu", "lazy", "vulkan", "privateuseone")


def _device(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``torch.device("cuda", 0)`` / ``torch.device("cuda:0")`` as torch saves a device object: the type is one
    of torch's device type names and the index an int 0..127 (torch stores it in 8 signed bits and wraps larger
    ones: ``torch.device("cuda", 128)`` is ``cuda:-128``); ``torch.device`` itself is then called with these checked
    values only, which touches no device."""
    if not 1 <= len(args) <= 2 or type(args[0]) is not str:
        raise vm.fail("torch.device called with something other than (type[, index])")
    name = args[0]
    index = args[1] if len(args) == 2 else None
    if index is None and ":" in name:
        name, _, digits = name.partition(":")
        if re.fullmatch(r"0|[1-9][0-9]{0,2}", digits) is None:
            raise vm.fail(f"torch.device index {digits!r:.20} is not a plain number")
        index = int(digits)
    if name not in _DEVICE_TYPES:
        raise vm.fail(f"torch.device type {name!r:.40} is not a torch device type")
    if index is not None and (type(index) is not int or not 0 <= index <= 127):
        raise vm.fail(f"torch.device index {index!r:.20} is not an int from 0 to 127",
                      "torch keeps a device index in 8 signed bits; larger ones wrap to another device")
    torch = _torch_of(vm)
    if torch is None:
        return TorchDevice(name, index)
    return torch.device(name, index) if index is not None else torch.device(name)


_LAYOUTS = ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn", "jagged")
_QSCHEMES = ("per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
             "per_channel_affine_float_qparams")


def _get_layout(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``torch.serialization._get_layout("torch.strided")``: the layout of that exact name, from a fixed list."""
    if len(args) != 1 or type(args[0]) is not str or not args[0].startswith("torch.") or args[0][6:] not in _LAYOUTS:
        raise vm.fail(f"_get_layout called with {args!r:.60}", f"a layout is one of {', '.join(_LAYOUTS)}")
    return _constant(vm, TorchConstant("layout", args[0][6:]))


def _constant(vm: RebuildContext, value: Any) -> Any:
    mapper = vm.context.get("value_map")
    return mapper(value) if mapper is not None else value


def _torch_of(vm: RebuildContext) -> Any:
    """The torch module when this load builds torch tensors, else None (data forms: tuples, TorchDevice)."""
    return getattr(vm.context.get("tensor_builder"), "torch", None)


def _rebuild_from_type_v2(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """torch._tensor._rebuild_from_type_v2(func, new_type, args, state): only func=_rebuild_tensor_v2 and friends,
    new_type=Tensor, Parameter or an allowed torch.Tensor subclass (:func:`_rebuild_subclass`), state the tensor's
    plain attributes. This helper calls whatever it is given, so everything is checked."""
    if len(args) != 4:
        raise vm.fail(f"_rebuild_from_type_v2 called with {len(args)} arguments")
    func, new_type, fargs, state = args
    entry = vm.entry_of(func)
    if entry is not None and entry.qualname == _NJT:
        return _rebuild_njt(vm, new_type, fargs, state)
    if entry is None or entry.qualname not in _REBUILD_FUNCS:
        from ..errors import UnsafeGlobalError

        name = entry.qualname if entry is not None else type(func).__name__
        raise UnsafeGlobalError("torch._tensor", "_rebuild_from_type_v2", offset=vm.op_start,
                                why=f"it would call {name}; only torch's tensor rebuild functions may be passed to it")
    if type(new_type) is not TensorType:
        return _rebuild_subclass(vm, func, new_type, fargs, state)
    if new_type.name not in ("Tensor", "Parameter"):
        # torch.FloatTensor & co. are values for the tar format only; as_subclass raises TypeError on them
        raise vm.fail("_rebuild_from_type_v2 with a type other than torch.Tensor or Parameter")
    attrs = _attrs(vm, state)
    tensor = vm.call(func, fargs)
    builder = _builder(vm)
    if new_type.name == "Parameter" and not builder.is_parameter(tensor):
        # torch turns the result into a Parameter with as_subclass, which keeps its requires_grad
        tensor = builder.rebuilt.add(builder.parameter(tensor, None), builder.rebuilt.dtype_of(tensor) or "")
    if attrs:
        dtype = builder.rebuilt.dtype_of(tensor)
        if dtype is None:
            raise vm.fail("Tensor attributes on something that is not a tensor this checkpoint rebuilt")
        tensor = builder.rebuilt.add(builder.set_attrs(tensor, attrs), dtype)
    return tensor


def _rebuild_subclass(vm: RebuildContext, func: Any, new_type: Any, fargs: Any, state: Any) -> Any:
    """``_rebuild_from_type_v2(func, MyTensor, args, state)``: a torch.Tensor subclass the caller allowed (``allow=``
    or torch's ``add_safe_globals``). torch runs ``func(*args)``, then ``ret.as_subclass(MyTensor)`` when the type
    differs, then the subclass's own ``__setstate__`` if it has one, else ``setattr`` for each saved attribute
    (``torch._utils._set_obj_state``). safeload rebuilds the tensor with the checked rebuilders, checks the class
    (:func:`_tensor_subclass`), takes ``as_subclass`` (torch tensors; numpy and scan keep the array or placeholder,
    as for Parameter) and stores the attributes by the rules of plain tensors (:func:`_attrs`)."""
    cls = _tensor_subclass(vm, new_type)
    if type(state) is tuple:  # (dict or None, slots dict or None): the form of subclasses with __slots__
        if len(state) != 2 or not (state[1] is None or type(state[1]) is dict and not state[1]):
            raise vm.fail(f"Tensor subclass {cls.__qualname__} saved with slot values",
                          "torch sets slots with setattr; safeload restores only the instance dict",
                          fix="Save the slot values next to the tensor (a dict entry) instead of on it")
        state = state[0]
    attrs = _attrs(vm, state)
    for key in attrs:
        if any(key in vars(klass) for klass in cls.__mro__):
            raise vm.fail(f"Tensor attribute {key!r} is a name {cls.__qualname__} defines",
                          "torch would set it with setattr, which runs a property's setter; only new plain "
                          "attributes are restored", fix="Save the attribute next to the tensor instead of on it")
    tensor = vm.call(func, fargs)
    builder = _builder(vm)
    dtype = builder.rebuilt.dtype_of(tensor)
    if dtype is None:
        raise vm.fail(f"_rebuild_from_type_v2 made a {type(tensor).__name__}, not a tensor this checkpoint rebuilt")
    if builder.torch is not None and type(tensor) is not cls:
        tensor = tensor.as_subclass(cls)
    if attrs:
        tensor = builder.set_attrs(tensor, attrs)
    return builder.rebuilt.add(tensor, dtype)


def _tensor_subclass(vm: RebuildContext, new_type: Any) -> Any:
    """The class ``new_type`` is, when it is a torch.Tensor subclass the caller allowed whose rebuild runs none of its
    own code: ``__torch_dispatch__``, ``__torch_function__``, ``__setstate__`` and ``__setattr__`` are torch.Tensor's
    (looked up statically in the class dicts; nothing of the class is called). Anything else is refused."""
    import inspect
    import sys

    from .._stub import Stub
    from ..errors import UnsafeGlobalError

    entry = vm.entry_of(new_type)
    if entry is None and type(new_type) is Stub:  # not allowed: unknown="stub", or scan going on past the GLOBAL
        qualname = f"{new_type.module}.{new_type.name}"
        raise UnsafeGlobalError(new_type.module, new_type.name, offset=vm.op_start,
                                why=f"the file makes a tensor of class {qualname}, which is not allowed",
                                **({} if danger_of(qualname) else {"fix": (
                                    f"If {qualname} is a torch.Tensor subclass you trust, allow it: "
                                    f"safeload.load(..., allow=[{qualname!r}]) or torch.serialization.add_safe_globals"
                                    f"; else save t.as_subclass(torch.Tensor) instead")}))
    if entry is None or not isinstance(new_type, type):
        what = entry.qualname if entry is not None else type(new_type).__name__
        raise vm.fail(f"_rebuild_from_type_v2 with {what} as the tensor type",
                      "torch makes the tensor this type with as_subclass, which needs a torch.Tensor subclass; a "
                      "class allowed by name only (its module not importable here) cannot be checked",
                      fix="Install the module that defines the class where safeload runs, or save "
                          "t.as_subclass(torch.Tensor) instead")
    torch = sys.modules.get("torch")
    if torch is None or torch.Tensor not in new_type.__mro__:
        raise vm.fail(f"_rebuild_from_type_v2 with {entry.qualname}, which is not a torch.Tensor subclass",
                      "torch's as_subclass raises TypeError for it")
    for name, why in (("__torch_dispatch__", "a wrapper subclass: its tensors are built by its own code"),
                      ("__torch_function__", "its code would run on every torch call on the tensor, safeload's too"),
                      ("__setstate__", "torch.load would run it with the file's state"),
                      ("__setattr__", "torch.load would run it for each saved attribute")):
        if inspect.getattr_static(new_type, name) is not inspect.getattr_static(torch.Tensor, name):
            module, _, cname = entry.qualname.rpartition(".")
            raise UnsafeGlobalError(module, cname, offset=vm.op_start,
                                    why=f"{entry.qualname} defines its own {name}: {why}",
                                    fix="Load it with torch.load in a trusted environment and save the plain tensor "
                                        "(t.as_subclass(torch.Tensor)) and its attributes")
    return new_type


_NJT = "torch.nested._internal.nested_tensor._rebuild_njt"
_NJT_KWARGS = frozenset({"values", "offsets", "lengths", "_ragged_idx", "_metadata_cache", "requires_grad"})
_NJT_STATE = {"_values": "values", "_offsets": "offsets", "_lengths": "lengths", "_ragged_idx": "_ragged_idx",
              "_metadata_cache": "_metadata_cache"}


def _rebuild_njt(vm: RebuildContext, new_type: Any, fargs: Any, state: Any) -> Any:
    """A jagged nested tensor: ``_rebuild_from_type_v2(_rebuild_njt, NestedTensor, ({values, offsets, lengths,
    _ragged_idx, _metadata_cache, requires_grad},), state)``. values, offsets (int64, 1-D) and lengths (None or
    int64, 1-D, one per component) must be tensors this checkpoint rebuilt; the cached ``min_seqlen``/``max_seqlen``
    tensors (shape ``(n, 0)``: the value is the size) too. The state may only repeat the same objects (torch sets
    it after construction, so a different ``_values`` would replace the checked one) and carry dynamic-shape marks
    (dropped). With values: offsets non-decreasing from >= 0 to at most the packed dimension, every component
    inside it, and the cached sequence lengths equal to the real ones (torch's kernels trust them); then
    ``torch.nested.nested_tensor_from_jagged``. numpy has no nested tensors and refuses; scan checks the parts."""
    if type(new_type) is not TensorType or new_type.name != "NestedTensor":
        raise vm.fail("_rebuild_njt with a type other than torch's NestedTensor")
    if type(fargs) is not tuple or len(fargs) != 1 or type(fargs[0]) is not dict:
        raise vm.fail("_rebuild_njt arguments are not one dict of constructor arguments")
    kw = fargs[0]
    if not set(kw) <= _NJT_KWARGS or not {"values", "offsets"} <= set(kw):
        raise vm.fail(f"_rebuild_njt arguments {sorted(map(str, kw))!r:.80} are not NestedTensor's")
    values, offsets, lengths = kw["values"], kw["offsets"], kw.get("lengths")
    ragged, cache, requires_grad = kw.get("_ragged_idx", 1), kw.get("_metadata_cache"), kw.get("requires_grad", False)
    builder = _builder(vm)
    dtype = builder.rebuilt.dtype_of(values)
    if dtype is None or dtype in _QUANTIZED_REPR:
        raise vm.fail("Jagged nested tensor values are not a tensor this checkpoint rebuilt")
    if builder.rebuilt.dtype_of(offsets) != "int64" or (lengths is not None and builder.rebuilt.dtype_of(lengths) != "int64"):
        raise vm.fail("Jagged nested tensor offsets and lengths are not int64 tensors this checkpoint rebuilt")
    if type(ragged) is not int or not 1 <= ragged <= 64:
        raise vm.fail(f"Jagged nested tensor ragged dimension {ragged!r:.20} is not an int from 1 to 64")
    if type(requires_grad) is not bool:
        raise vm.fail("requires_grad is not a bool")
    check_grad(dtype, requires_grad)
    if cache is None:
        cache = {}
    if type(cache) is not dict or not set(cache) <= {"min_seqlen", "max_seqlen"}:
        raise vm.fail("Jagged nested tensor metadata cache holds something other than min_seqlen and max_seqlen")
    if any(builder.rebuilt.dtype_of(t) is None for t in cache.values()):
        raise vm.fail("Jagged nested tensor cached sequence lengths are not tensors this checkpoint rebuilt")
    if type(state) is not dict:
        raise vm.fail("Jagged nested tensor state is not a dict")
    for key, value in state.items():
        if key in _NJT_STATE:
            if value is not kw.get(_NJT_STATE[key], 1 if key == "_ragged_idx" else None) and not (
                    key == "_ragged_idx" and type(value) is int and value == ragged) and not (
                    key == "_metadata_cache" and value is cache):
                raise vm.fail(f"Jagged nested tensor state {key!r} is not the constructor's argument",
                              "torch sets the state after construction, so it would replace the checked part")
        elif key not in _DYNAMO_MARKS and key != "_dynamo_propagated_dynamic_indices":
            raise vm.fail(f"Jagged nested tensor state {key!r:.60} is not one torch saves")
    made = builder.jagged(values, offsets, lengths, ragged, cache, requires_grad, _jagged_check(vm))
    if made is None:
        raise vm.fail("Jagged nested tensors need torch", "numpy has no nested tensors",
                      fix="Load with tensors='torch', or save nt.values() and nt.offsets() instead")
    return builder.rebuilt.add(made, dtype)


def _jagged_check(vm: RebuildContext) -> Any:
    def check(total: int, offsets: list[int], lengths: list[int] | None, seqlens: dict[str, int]) -> None:
        if not offsets or offsets[0] < 0 or offsets[-1] > total or any(a > b for a, b in zip(offsets, offsets[1:])):
            raise vm.fail(f"Jagged nested tensor offsets do not rise from 0 to at most {total}",
                          "an offset outside the packed values would address memory outside them")
        if lengths is None:
            seqs = [b - a for a, b in zip(offsets, offsets[1:])]
        else:
            if len(lengths) != len(offsets) - 1 or any(n < 0 or o + n > total for o, n in zip(offsets, lengths)):
                raise vm.fail("Jagged nested tensor lengths reach past the packed values or disagree with the offsets")
            seqs = list(lengths)
        real = {"min_seqlen": min(seqs, default=None), "max_seqlen": max(seqs, default=None)}
        for name, value in seqlens.items():
            if real[name] is not None and value != real[name]:
                raise vm.fail(f"Jagged nested tensor cached {name} {value} is not the real {real[name]}",
                              "torch's kernels size their work by the cached value")

    return check


def _rebuild_sparse(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``_rebuild_sparse_tensor(layout, data)``: COO ``(indices, values, size[, is_coalesced])`` or compressed
    (CSR/CSC/BSR/BSC) ``(compressed_indices, plain_indices, values, size)``. Every part must be a tensor this
    checkpoint rebuilt, indices of an integer dtype (int64 for COO, int32 or int64 and one dtype for compressed),
    size a tuple of ints. With torch tensors the sparse tensor is made by torch's constructor with
    ``check_invariants=True`` (indices in range, sizes consistent, compressed indices sorted and bounded: the
    checks torch.load defers to ``_validate_loaded_sparse_tensors``, here made before anything is returned);
    numpy has no sparse tensors, so ``tensors="numpy"`` refuses them; scan checks the parts."""
    if len(args) != 2 or type(args[1]) is not tuple:
        raise vm.fail("_rebuild_sparse_tensor needs (layout, data)")
    layout, data = args
    name = layout.name if type(layout) is TorchConstant and layout.kind == "layout" else str(layout)[6:]
    if type(layout) is not TorchConstant and (_torch_of(vm) is None or type(layout) is not _torch_of(vm).layout):
        raise vm.fail(f"Sparse tensor layout is a {type(layout).__name__}")
    builder = _builder(vm)
    if name == "sparse_coo":
        if len(data) not in (3, 4):
            raise vm.fail(f"Sparse COO data has {len(data)} parts", "expected (indices, values, size[, is_coalesced])")
        indices, values, size = data[:3]
        coalesced = data[3] if len(data) == 4 else None
        if coalesced is not None and type(coalesced) is not bool:
            raise vm.fail("Sparse COO is_coalesced is not a bool or None")
        index_dtypes = [_part(vm, builder, indices, "indices")]
        if index_dtypes != ["int64"]:
            raise vm.fail(f"Sparse COO indices are {index_dtypes[0]}", "torch requires int64 indices")
        parts: tuple[Any, ...] = (indices, values)
    elif name in ("sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc"):
        if len(data) != 4:
            raise vm.fail(f"Sparse compressed data has {len(data)} parts",
                          "expected (compressed_indices, plain_indices, values, size)")
        compressed, plain, values, size = data
        coalesced = None
        dtypes = {_part(vm, builder, compressed, "compressed indices"), _part(vm, builder, plain, "plain indices")}
        if len(dtypes) != 1 or not dtypes <= {"int32", "int64"}:
            raise vm.fail(f"Sparse compressed indices are {sorted(dtypes)}", "torch requires one of int32 or int64")
        parts = (compressed, plain, values)
    else:
        raise vm.fail(f"Sparse tensor with layout {name!r:.40}")
    dtype = _part(vm, builder, values, "values")
    if type(size) is not tuple and not (_torch_of(vm) is not None and type(size) is _torch_of(vm).Size):
        raise vm.fail("Sparse tensor size is not a tuple of ints")
    size = _ints(vm, tuple(size), "size")
    try:
        check_extent(size, 1, "Sparse tensor size")
    except FormatError as err:
        err.offset = vm.op_start if err.offset is None else err.offset
        raise
    made = builder.sparse(name, parts, size, coalesced)
    if made is None:
        raise vm.fail("Sparse tensors need torch", "numpy has no sparse tensors",
                      fix="Load with tensors='torch', or convert with tensor.to_dense() in a trusted environment")
    return builder.rebuilt.add(made, dtype)


def _part(vm: RebuildContext, builder: Any, obj: Any, what: str) -> str:
    dtype = builder.rebuilt.dtype_of(obj)
    if dtype is None:
        raise vm.fail(f"Sparse tensor {what} are a {type(obj).__name__}, not a tensor this checkpoint rebuilt")
    return str(dtype)


def _rebuild_qtensor(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``_rebuild_qtensor(storage, offset, size, stride, quantizer_params, requires_grad, hooks)`` over a
    quint8/qint8/qint32 storage, or a packed quint4x2/quint2x4 one. The integer representation is a checked view
    like any tensor's (packed storages: the contiguous layout ``torch.quantize_per_*`` writes, offset 0, each row
    of the last dimension packed into whole bytes, and nothing else); the quantizer is
    ``(per_tensor_affine, scale, zero_point)`` with a finite positive float scale and an int zero point in the
    dtype's range, or ``(per_channel_affine, scales, zero_points, axis)`` with tensors this checkpoint rebuilt,
    one per index of ``size[axis]``, ``0 <= axis < len(size)``: float64 scales and int64 zero points, or float32
    scales and float32 zero points (torch saves ``per_channel_affine_float_qparams`` under the
    ``per_channel_affine`` name; the zero points' dtype tells them apart, as in torch's
    ``_empty_per_channel_affine_quantized``). These are the checks torch's ``_rebuild_qtensor`` makes, and more.
    With torch the tensor is made by torch's quantized constructors from the checked representation; numpy has
    no quantized tensors and refuses; scan checks everything but the values."""
    if len(args) != 7:
        raise vm.fail(f"_rebuild_qtensor called with {len(args)} arguments")
    storage, offset, size, stride, params, requires_grad, hooks = args
    if type(storage) is not Storage or storage.dtype not in _QUANTIZED_REPR:
        raise vm.fail("_rebuild_qtensor over something other than a quint8, qint8 or qint32 storage")
    if type(offset) is not int or offset < 0:
        raise vm.fail("Tensor storage offset is not a non-negative int")
    size, stride = _ints(vm, size, "size"), _ints(vm, stride, "stride")
    if requires_grad is not False:
        raise vm.fail("A quantized tensor requires grad", "quantized tensors cannot require gradients")
    _empty_hooks(vm, hooks)
    repr_dtype, low, high = _QUANTIZED_REPR[storage.dtype]
    if storage.dtype in _SUB_BYTE:
        _check_packed(vm, storage, offset, size, stride)
    else:
        check_view(storage, repr_dtype, offset, size, stride)
    if type(params) is not tuple or not params:
        raise vm.fail("Quantizer parameters are not a tuple")
    scheme = params[0]
    scheme_name = scheme.name if type(scheme) is TorchConstant else str(scheme)[6:]
    if type(scheme) is not TorchConstant and (_torch_of(vm) is None or type(scheme) is not _torch_of(vm).qscheme):
        raise vm.fail(f"Quantizer scheme is a {type(scheme).__name__}")
    builder = _builder(vm)
    if scheme_name == "per_tensor_affine" and len(params) == 3:
        scale, zero_point = params[1:]
        if type(scale) is not float or not 0.0 < scale < float("inf"):
            raise vm.fail(f"Quantizer scale {scale!r:.30} is not a finite positive float")
        if type(zero_point) is not int or not low <= zero_point <= high:
            raise vm.fail(f"Quantizer zero point {zero_point!r:.30} is outside torch.{storage.dtype}'s range")
        quant: tuple[Any, ...] = ("per_tensor", scale, zero_point)
    elif scheme_name in ("per_channel_affine", "per_channel_affine_float_qparams") and len(params) == 4:
        scales, zero_points, axis = params[1:]
        if type(axis) is not int or not 0 <= axis < len(size):
            raise vm.fail(f"Quantizer axis {axis!r:.30} is outside the tensor's {len(size)} dimensions")
        pair = (builder.rebuilt.dtype_of(scales), builder.rebuilt.dtype_of(zero_points))
        if pair not in (("float64", "int64"), ("float32", "float32")):
            raise vm.fail(f"Per-channel scales and zero points are {pair[0] or 'not tensors'} and "
                          f"{pair[1] or 'not tensors'}", "torch saves float64 scales with int64 zero points, or float32 "
                          "scales with float32 zero points (float qparams), as tensors of the same checkpoint")
        quant = ("per_channel", scales, zero_points, axis, low, high)
    else:
        raise vm.fail(f"Quantizer {scheme_name!r:.40} with {len(params)} parameters",
                      "safeload rebuilds per_tensor_affine and per_channel_affine quantized tensors",
                      fix="Dequantize (tensor.dequantize()) in a trusted environment and save a state_dict")
    made = builder.quantized(storage, repr_dtype, offset, size, stride, quant)
    if made is None:
        raise vm.fail("Quantized tensors need torch", "numpy has no quantized tensors",
                      fix="Load with tensors='torch', or dequantize in a trusted environment")
    return builder.rebuilt.add(made, storage.dtype)


def _check_packed(vm: RebuildContext, storage: Storage, offset: int, size: tuple[int, ...],
                  stride: tuple[int, ...]) -> None:
    """A packed quint4x2/quint2x4 tensor: exactly the layout torch's quantizers write (offset 0, contiguous strides,
    each row of the last dimension packed into ``ceil(n * bits / 8)`` bytes, the record exactly that long). torch
    reads a packed tensor's offset and strides in values over a storage counted in bytes, so any other geometry
    means different things to different torch functions; safeload refuses it."""
    try:
        check_extent(size, 1, "Packed quantized tensor")
    except FormatError as err:
        err.offset = vm.op_start if err.offset is None else err.offset
        raise
    contiguous: list[int] = []
    step = 1
    for dim in reversed(size):
        contiguous.insert(0, step)
        step *= max(dim, 1)
    per_byte = 8 // _SUB_BYTE[storage.dtype]
    rows = 1
    for dim in size[:-1]:
        rows *= dim
    nbytes = rows * -(-(size[-1] if size else 1) // per_byte)
    if offset != 0 or tuple(stride) != tuple(contiguous) or storage.nbytes() != nbytes:
        raise vm.fail(f"Packed torch.{storage.dtype} tensor of size {list(size)!r:.60}, stride {list(stride)!r:.60}, "
                      f"offset {offset} over {storage.nbytes()} bytes",
                      f"torch's quantizers write it contiguous at offset 0 in exactly {nbytes} bytes; torch reads other "
                      "geometries of packed values inconsistently",
                      fix="Re-quantize the tensor (torch.quantize_per_tensor/per_channel) and save it whole")


def _rebuild_nested(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``_rebuild_nested_tensor(buffer, sizes, strides, offsets)`` (a strided nested tensor): the buffer a 1-D
    tensor this checkpoint rebuilt, sizes and strides int64 ``[n, ndim]`` tensors and offsets an int64 ``[n]``
    tensor, all rebuilt here; with values, each component's size, stride and offset must be non-negative and
    address only elements of the buffer (the rule of :func:`check_view`), before ``torch._nested_view_from_buffer``
    sees them (it trusts them). numpy has no nested tensors and refuses; scan checks the parts' dtypes."""
    if len(args) != 4:
        raise vm.fail(f"_rebuild_nested_tensor called with {len(args)} arguments")
    builder = _builder(vm)
    buffer, sizes, strides, offsets = args
    dtype = builder.rebuilt.dtype_of(buffer)
    if dtype is None or any(builder.rebuilt.dtype_of(t) != "int64" for t in (sizes, strides, offsets)):
        raise vm.fail("Nested tensor parts are not tensors this checkpoint rebuilt (int64 sizes, strides, offsets)")
    made = builder.nested(buffer, sizes, strides, offsets, _nested_check(vm))
    if made is None:
        raise vm.fail("Nested tensors need torch", "numpy has no nested tensors",
                      fix="Load with tensors='torch', or save t.unbind() (a list of tensors) instead")
    return builder.rebuilt.add(made, dtype)


def _nested_check(vm: RebuildContext) -> Any:
    def check(numel: int, sizes: list[Any], strides: list[Any], offsets: list[Any]) -> None:
        if not (len(sizes) == len(strides) == len(offsets)) or len({len(r) for r in sizes} | {len(r) for r in strides}) > 1:
            raise vm.fail("Nested tensor sizes, strides and offsets disagree in count or rank")
        for size, stride, offset in zip(sizes, strides, offsets):
            if offset < 0 or any(v < 0 for v in (*size, *stride)):
                raise vm.fail("Nested tensor component with a negative size, stride or offset")
            span = byte_span(tuple(size), tuple(stride), 1, offset)
            if (span is not None and span[1] > numel) or (span is None and offset > numel):
                raise vm.fail(f"Nested tensor component reaches past its buffer of {numel} elements",
                              "a size, stride or offset beyond the buffer would read memory outside it")

    return check


def _rebuild_meta(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
    """``_rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)``: a tensor without data on the meta
    device. The geometry is checked as for any view (ints, at most 64 dims, below 2**63 bytes); with torch tensors
    it is ``torch.empty_strided(..., device="meta")`` (allocates nothing), else a TensorPlaceholder."""
    if len(args) != 4:
        raise vm.fail(f"_rebuild_meta_tensor_no_storage called with {len(args)} arguments")
    dtype = _dtype_name(vm, args[0])
    size = _ints(vm, args[1], "size")
    stride = _ints(vm, args[2], "stride")
    requires_grad = args[3]
    if type(requires_grad) is not bool:
        raise vm.fail("requires_grad is not a bool")
    if dtype not in TORCH_DTYPES:
        raise vm.fail(f"Tensor dtype torch.{dtype} is not supported")
    try:
        check_extent(size, TORCH_DTYPES[dtype][0], "Meta tensor")
    except FormatError as err:
        if err.offset is None:
            err.offset = vm.op_start
        raise
    if len(size) != len(stride) or not all(0 <= s < _STEP_LIMIT // 16 for s in stride):
        raise vm.fail("Meta tensor size and stride disagree, or a stride is negative or too large")
    check_grad(dtype, requires_grad)
    builder = _builder(vm)
    torch = getattr(builder, "torch", None)
    if torch is None:
        return builder.rebuilt.add(TensorPlaceholder("meta", dtype, 0, size, stride), dtype)
    t = torch.empty_strided(size, stride, dtype=getattr(torch, dtype), device="meta", requires_grad=requires_grad)
    return builder.rebuilt.add(t, dtype)


class TensorType:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<torch.{self.name}>"


def _unsupported(qualname: str, what: str) -> Entry:
    def call(vm: RebuildContext, args: tuple[Any, ...]) -> Any:
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
              reason="only with torch's own rebuild functions and Tensor, Parameter or an allowed Tensor subclass"),
        Entry("torch.Tensor", value=TensorType("Tensor"), reason="the tensor type, as a value"),
        Entry("torch.nn.parameter.Parameter", value=TensorType("Parameter"), reason="the Parameter type, as a value"),
        Entry("torch._utils._rebuild_qtensor", call=_rebuild_qtensor,
              reason="per-tensor and per-channel affine quantized tensors; scale, zero point and axis checked"),
        Entry("torch._utils._rebuild_sparse_tensor", call=_rebuild_sparse,
              reason="COO and compressed sparse tensors over rebuilt tensors; torch's invariants checked"),
        Entry("torch._utils._rebuild_nested_tensor", call=_rebuild_nested,
              reason="a strided nested tensor over a rebuilt buffer; every component checked against it"),
        _unsupported("torch._utils._rebuild_wrapper_subclass", "Tensor subclasses"),
        Entry(_NJT, reason="a jagged nested tensor: only as _rebuild_from_type_v2's function, parts checked"),
        Entry("torch.nested._internal.nested_tensor.NestedTensor", value=TensorType("NestedTensor"),
              reason="the jagged nested tensor type, as a value"),
        Entry("torch._dynamo.decorators._DimRange", value=DimRange, newobj=_dim_range_new,
              reason="part of a torch.compile dynamic-shape mark: (dim, min, max) ints, then dropped"),
        Entry("torch._utils._rebuild_meta_tensor_no_storage", call=_rebuild_meta,
              reason="a tensor without data on the meta device; geometry checked"),
        Entry("torch.Size", call=_size, reason="a tuple of ints; torch.Size with torch tensors"),
        Entry("torch.device", call=_device, reason="a device type from a fixed list and an index 0..127"),
        Entry("torch.serialization._get_layout", call=_get_layout, reason="a layout from a fixed list of names"),
    ]
    for cls, dtype in _STORAGE_CLASSES.items():
        out.append(Entry(f"torch.{cls}", value=StorageType(f"torch.{cls}", dtype), reason="a storage class, as a value"))
        out.append(Entry(f"torch.cuda.{cls}", value=StorageType(f"torch.cuda.{cls}", dtype),
                         reason="a CUDA storage class, as a value"))
    for cls in _STORAGE_CLASSES:  # torch.FloatTensor & co., as the old tar format names tensor types
        tensor_cls = cls.replace("Storage", "Tensor")
        out.append(Entry(f"torch.{tensor_cls}", value=TensorType(tensor_cls), reason="a tensor class, as a value"))
    for cls in _QUANTIZED:
        qname = {"QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
                 "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4"}[cls]
        out.append(Entry(f"torch.{cls}", value=StorageType(f"torch.{cls}", qname), reason="quantized storage"))
    out.append(Entry("torch.storage.UntypedStorage", value=StorageType("torch.storage.UntypedStorage", None),
                     reason="an untyped storage class, as a value"))
    out.append(Entry("torch.UntypedStorage", value=StorageType("torch.UntypedStorage", None),
                     reason="an untyped storage class, as a value"))
    for name in _QSCHEMES:
        out.append(Entry(f"torch.{name}", value=TorchConstant("qscheme", name), reason="a torch qscheme, as a value"))
    for name in (*TORCH_DTYPES, *_ALIASES):
        out.append(Entry(f"torch.{name}", value=TorchDType(_ALIASES.get(name, name)), reason="a torch dtype, as a value"))
    return tuple(out)


ENTRIES = _entries()
