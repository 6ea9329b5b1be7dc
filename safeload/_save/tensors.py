"""Tensor and array storage for the torch zip format: the ``data/<key>`` records, the dtype each is written as
(``_rebuild_tensor_v2`` over a typed storage, or ``_v3`` over an untyped one, as torch writes them), the strides
of contiguous layouts, and the check that a tensor is one ``safeload.load`` rebuilds. torch and numpy are never
imported here unless the object being saved already holds their tensors."""

from __future__ import annotations

from .._hints import Any
from .._rebuild.torch import TORCH_DTYPES
from .refusal import SaveRefused, render
# torch dtypes written with _rebuild_tensor_v3 over an untyped storage, as torch itself does
V3_DTYPES = frozenset({"uint16", "uint32", "uint64", "complex32", "float8_e4m3fn", "float8_e5m2",
                        "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"})
STORAGE_CLASS = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage", "bfloat16": "BFloat16Storage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
    "uint8": "ByteStorage", "bool": "BoolStorage", "complex64": "ComplexFloatStorage",
    "complex128": "ComplexDoubleStorage",
}


class Record:
    """One ``data/<key>`` record: its size, and how to get its bytes when the archive is written."""

    __slots__ = ("key", "dtype", "nbytes", "source", "kind")

    def __init__(self, key: str, dtype: str, nbytes: int, source: Any, kind: str) -> None:
        self.key = key
        self.dtype = dtype
        self.nbytes = nbytes
        self.source = source  # a torch UntypedStorage or a C-contiguous numpy array
        self.kind = kind

    def buffer(self) -> memoryview:
        if self.kind == "numpy":
            arr = self.source
            return memoryview(arr.reshape(-1).view("u1")) if arr.size else memoryview(b"")
        storage = self.source
        if storage.device.type != "cpu":
            storage = storage.cpu()  # one storage at a time: peak memory stays one record above the input
        if storage.nbytes() == 0:
            return memoryview(b"")
        import torch

        data: Any = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
        return memoryview(data)


def c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


def f_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for n in shape:
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(strides)


def numpy_torch_dtype(dt: Any) -> str | None:
    """The torch dtype name a numpy dtype maps to (converting byte order), or None if torch has none."""
    if dt.names is not None or dt.subdtype is not None:
        return None
    if dt.kind in "biufc":
        name = dt.name if dt.kind != "b" else "bool"
    elif dt.type.__module__.startswith("ml_dtypes"):
        name = dt.name
    else:
        return None
    return name if name in TORCH_DTYPES and name != "complex32" else None


def check_tensor(t: Any, path: Any) -> str:
    """The torch dtype name of a tensor safeload.load rebuilds; anything else is a SaveRefused."""
    import torch

    utils: Any = torch._utils
    problem = None
    if t.layout != torch.strided:
        problem, fix = f"a {t.layout} tensor", "Save t.to_dense()"
    elif t.is_quantized:
        problem, fix = "a quantized tensor", "Save t.dequantize() (and its scale and zero point as data)"
    elif getattr(t, "is_nested", False):
        problem, fix = "a nested tensor", "Save its components with t.unbind()"
    elif t.device.type == "meta":
        problem, fix = "a meta tensor (it has no data)", "Materialize it first (t.to_empty(device='cpu'))"
    elif str(t.dtype).rpartition(".")[2] not in TORCH_DTYPES:
        problem, fix = f"a tensor of dtype {t.dtype}", "Convert it to a dtype safeload reads (t.to(torch.float32))"
    elif utils._get_obj_state(t):
        problem, fix = "a tensor carrying Python attributes", "Save the attributes next to the tensor in a dict"
    elif utils.get_tensor_metadata(t):
        problem, fix = "a tensor carrying extra metadata", "Save t.clone()"
    if problem is not None:
        raise SaveRefused(render(path), problem, why="safeload.load rebuilds dense, plain tensors only", fix=fix)
    return str(t.dtype).rpartition(".")[2]
