"""``safeload convert``: open any checkpoint safeload opens and rewrite it in a format that holds no code.

* ``to="safetensors"``: tensors and arrays become safetensors records, named by their dotted path through nested
  dicts and lists (``model.layer1.weight``, ``optimizer.state.0.exp_avg``). Every subtree that holds no tensor is
  kept in the header's ``__metadata__`` as JSON text under its dotted path (``"epoch": "3"``), next to
  ``"format": "pt"``. Refused, because they cannot be represented faithfully: object, string, structured and
  datetime arrays; dtypes safetensors lacks (complex128, ...); metadata that JSON cannot hold (bytes, sets,
  objects); two paths that flatten to one name. Tuples become JSON lists and numpy scalars plain numbers.
  Tensors that shared memory (tied weights, views) are written as separate copies: safetensors has no aliasing.
  The nesting itself (which dicts, lists and tuples, with str or int keys) is kept in ``"safeload.layout"``
  (:data:`LAYOUT_KEY`), so that converting the file back to torch restores the checkpoint's shape.
* From safetensors to torch or pickle: the tensors, and the ``__metadata__`` entries put back where
  ``"safeload.layout"`` says (``epoch``, ``args``, the optimizer's ``param_groups``). A file without a layout (written
  by another tool) gives the flat ``{name: tensor}`` dict that safetensors readers return, plus each metadata entry
  (but ``format``) under its own name, decoded from JSON where it is JSON and kept as text where not.
* ``to="torch"``: the object as ``safeload.save`` writes it, a torch zip checkpoint whose ``data.pkl`` uses
  protocol-2 opcodes (torch tensors when torch is installed, else numpy arrays as tensor records).
* ``to="pickle"``: a plain pickle at ``protocol``, arrays in numpy's own pickle form: for readers with numpy and
  no torch, on old Pythons.

The destination is written atomically; on a refusal nothing is written.
"""

from __future__ import annotations

import json
import struct
from collections import OrderedDict

from ._hints import Any
from ._save import SaveRefused, _save, write_output

__all__ = ["LAYOUT_KEY", "convert", "target_for", "to_safetensors_bytes"]

_TARGETS = ("safetensors", "torch", "pickle")
#: the metadata entry that records the checkpoint's nesting (see the module docstring)
LAYOUT_KEY = "safeload.layout"
#: output name endings and the format each means, for ``convert`` without ``to``
_SUFFIXES = {".safetensors": "safetensors", ".pt": "torch", ".pth": "torch", ".bin": "torch", ".ckpt": "torch",
             ".tar": "torch", ".pkl": "pickle", ".pickle": "pickle"}


def target_for(dst: Any) -> str | None:
    """The output format an output name asks for (``out.pt`` -> torch), or None when the name does not say."""
    import os

    try:
        name = os.fsdecode(os.fspath(dst)).lower()
    except TypeError:
        return None
    return next((fmt for suffix, fmt in _SUFFIXES.items() if name.endswith(suffix)), None)

# numpy dtype name (as safeload builds arrays, ml_dtypes for bf16/fp8) -> safetensors dtype
_ST_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ", "float8_e8m0fnu": "F8_E8M0", "complex64": "C64",
}


def convert(src: Any, dst: Any, *, to: str = "safetensors", protocol: int | None = 4) -> None:
    """Rewrite the checkpoint ``src`` as ``dst`` (``to`` = "safetensors", "torch" or "pickle")."""
    import safeload

    if to not in _TARGETS:
        raise ValueError(f"to must be one of {_TARGETS}, not {to!r}")
    protocol = 4 if protocol is None else protocol
    if to == "safetensors":
        obj = safeload.load(src, tensors="numpy")
        head, arrays = _safetensors_layout(obj)
        size = len(head) + sum(a.nbytes for a in arrays)
        write_output(dst, size, lambda write: _write_safetensors(write, head, arrays), None)
        return
    if to == "torch":
        tensors = "numpy"
        try:
            import torch  # noqa: F401

            tensors = "auto"
        except ImportError:
            pass
        obj = _restore(src, safeload.load(src, tensors=tensors))
        _save(obj, dst, protocol, fmt="torch")
        return
    obj = _restore(src, safeload.load(src, tensors="numpy"))
    _save(obj, dst, protocol, fmt="pickle")


# ---- safetensors back to a checkpoint ----------------------------------------------------------------------------

def _safetensors_metadata(src: Any) -> dict[str, str] | None:
    """The ``__metadata__`` of ``src`` when it is a safetensors file on disk (None otherwise)."""
    import mmap
    import os

    from ._containers.safetensors import is_safetensors, parse_header
    from .errors import SafeLoadError

    if not isinstance(src, (str, bytes, os.PathLike)):
        return None
    with open(src, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < 10:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            data: Any = mapped  # the parsers read any buffer
            if not is_safetensors(data):
                return None
            try:
                _entries, metadata, _start = parse_header(data)
            except SafeLoadError:
                return None  # load() already accepted the file: this does not happen
            return metadata


def _restore(src: Any, obj: Any) -> Any:
    """A loaded safetensors file (flat ``{name: tensor}``) with its metadata put back; other objects as they are."""
    meta = _safetensors_metadata(src)
    if not meta or not isinstance(obj, dict):
        return obj
    meta = dict(meta)
    meta.pop("format", None)
    layout = meta.pop(LAYOUT_KEY, None)
    if layout is not None:
        try:
            return _unflatten(json.loads(layout), "", obj, meta)
        except (ValueError, KeyError, TypeError, RecursionError):
            pass  # a layout that does not match the file: fall back to the flat form below
    out = dict(obj)
    for key, text in meta.items():
        if key in out:
            raise SaveRefused(f"metadata {key!r}", "a metadata entry has the name of a tensor",
                              why="both would be the same key of the checkpoint", fix="Convert to safetensors only")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def _unflatten(layout: Any, name: str, tensors: dict[str, Any], meta: dict[str, str]) -> Any:
    """Rebuild the checkpoint from the layout tree; every tensor and metadata entry must be used exactly once."""
    used_t: set[str] = set()
    used_m: set[str] = set()
    depth_left = [1000]

    def build(node: Any, path: str) -> Any:
        depth_left[0] -= 1
        if depth_left[0] < 0:
            raise ValueError("layout too deep")
        if node == "T":
            used_t.add(path or "tensor")
            return tensors[path or "tensor"]
        if node == "M":
            used_m.add(path or "checkpoint")
            return json.loads(meta[path or "checkpoint"])
        kind, children = node
        if kind == "dict":
            out = {}
            for key, child in children:
                if type(key) not in (str, int):
                    raise TypeError("layout key")
                out[key] = build(child, f"{path}.{key}" if path else str(key))
            return out
        items = [build(child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(children)]
        if kind == "list":
            return items
        if kind == "tuple":
            return tuple(items)
        raise ValueError(f"layout node {kind!r}")

    result = build(layout, name)
    if used_t != set(tensors) or used_m != set(meta):
        raise ValueError("the layout does not name every tensor and metadata entry")
    return result


# ---- safetensors -------------------------------------------------------------------------------------------------

def _key(parent: str, key: Any, where: str) -> str:
    if type(key) is bool or type(key) not in (str, int):
        raise SaveRefused(where, f"a dict key of type {type(key).__name__} holds tensors",
                          why="safetensors names are strings: only str and int keys flatten to a dotted name",
                          fix="Use string keys, or convert to='torch'")
    text = str(key)
    return f"{parent}.{text}" if parent else text


def _is_array(obj: Any) -> bool:
    import numpy as np

    return type(obj) is np.ndarray


def _has_array(obj: Any, seen: set[int] | None = None) -> bool:
    """Whether a subtree holds an array (iterative; shared subtrees looked at once)."""
    todo = [obj]
    seen = set() if seen is None else seen
    while todo:
        item = todo.pop()
        if _is_array(item):
            return True
        if isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            todo.extend(item.values() if isinstance(item, dict) else item)
    return False


def _json_value(obj: Any, where: str) -> Any:
    """``obj`` as JSON-ready data, or a refusal naming the first thing JSON cannot hold."""
    import argparse

    t = type(obj)
    if obj is None or t in (bool, int, float, str):
        return obj
    if t in (list, tuple):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if t in (dict, OrderedDict):
        out = {}
        for k, v in obj.items():
            if type(k) not in (str, int) or type(k) is bool:
                raise SaveRefused(where, f"a dict key of type {type(k).__name__} in metadata",
                                  why="JSON object keys are strings", fix="Use string keys, or convert to='torch'")
            out[str(k)] = _json_value(v, f"{where}[{k!r}]")
        return out
    if t in (argparse.Namespace,):
        return _json_value(vars(obj), where)
    mod = t.__module__ or ""
    if mod == "numpy" or mod.startswith("numpy."):
        import numpy as np

        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            return obj.item()
    raise SaveRefused(where, f"{mod}.{t.__qualname__} cannot be kept in safetensors metadata",
                      why="the safetensors header holds only strings; safeload writes JSON, which has no such type",
                      fix="Convert it to numbers, strings, lists or dicts first, or convert to='torch'")


def _flatten(obj: Any) -> tuple[list[tuple[str, Any]], dict[str, str], Any]:
    """(tensors by dotted name, metadata JSON texts by dotted name, the layout tree that puts them back)."""
    tensors: list[tuple[str, Any]] = []
    meta: dict[str, str] = {}
    names: set[str] = set()
    root: list[Any] = [None]
    # each entry: (item, dotted name, where, the list its layout node goes into, at which index)
    todo: list[tuple[Any, str, str, list[Any], int]] = [(obj, "", "checkpoint", root, 0)]
    while todo:
        item, name, where, slot, index = todo.pop()
        if _is_array(item):
            slot[index] = "T"
            if name in names:
                raise SaveRefused(where, f"two entries flatten to the name {name!r}",
                                  why="safetensors names must be unique", fix="Rename one of the keys")
            names.add(name)
            tensors.append((name or "tensor", item))
            continue
        if isinstance(item, (dict, list, tuple)) and _has_array(item):
            is_dict = isinstance(item, dict)
            pairs = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            nodes: list[Any] = [None] * len(pairs)
            slot[index] = ("dict" if is_dict else "list" if isinstance(item, list) else "tuple",
                           [[k, None] for k, _v in pairs] if is_dict else nodes)
            children = []
            for i, (k, v) in enumerate(pairs):
                target = slot[index][1][i] if is_dict else nodes
                children.append((v, _key(name, k, where), f"{where}[{k!r}]", target, 1 if is_dict else i))
            todo.extend(reversed(children))
            continue
        slot[index] = "M"
        key = name or "checkpoint"
        if key in meta or key in ("format", LAYOUT_KEY):
            raise SaveRefused(where, f"the metadata name {key!r} is taken",
                              why="safetensors metadata keys must be unique ('format' is reserved)",
                              fix="Rename the key")
        meta[key] = json.dumps(_json_value(item, where), ensure_ascii=False, allow_nan=True)
    return tensors, meta, root[0]


def _safetensors_layout(obj: Any) -> tuple[bytes, list[Any]]:
    """The header (length prefix included) and the C-contiguous arrays, in file order."""
    import numpy as np

    tensors, meta, layout = _flatten(obj)
    prepared = []
    for name, arr in tensors:
        where = f"checkpoint tensor {name!r}"
        dt = arr.dtype
        dname = dt.name if dt.kind != "b" else "bool"
        numeric = dt.kind in "biufc" or dt.type.__module__.startswith("ml_dtypes")
        st = _ST_DTYPES.get(dname) if numeric and dt.names is None else None
        if st is None:
            raise SaveRefused(where, f"an array of dtype {dt} has no safetensors dtype",
                              why="safetensors holds numeric tensors only (no objects, strings, records, "
                                  "datetimes or complex128)",
                              fix="Convert the array, or convert to='torch'")
        if not dt.isnative:
            arr = arr.astype(dt.newbyteorder("="))
        prepared.append((name, st, arr if arr.flags.c_contiguous else arr.copy(order="C")))
    # largest items first keeps every record aligned to its own item size, as the safetensors writer does
    prepared.sort(key=lambda p: (-p[2].dtype.itemsize, p[0]))
    header: dict[str, Any] = {}
    offset = 0
    for name, st, arr in prepared:
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    header["__metadata__"] = {"format": "pt", **meta}
    if not (layout == "T" or (isinstance(layout, tuple) and layout[0] == "dict"
                              and all(child == "T" and type(k) is str and "." not in k for k, child in layout[1]))):
        # a plain {name: tensor} dict needs no layout: safetensors readers give it back as it is
        header["__metadata__"][LAYOUT_KEY] = json.dumps(layout, separators=(",", ":"), ensure_ascii=False)
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, [arr for _n, _s, arr in prepared]


def _write_safetensors(write: Any, head: bytes, arrays: list[Any]) -> None:
    import numpy as np

    write(head)
    for arr in arrays:
        if arr.nbytes:
            write(memoryview(arr.reshape(-1).view(np.uint8)))


def to_safetensors_bytes(obj: Any) -> bytes:
    """``obj`` (dicts and lists of numpy arrays plus metadata) as one safetensors file, in memory."""
    head, arrays = _safetensors_layout(obj)
    parts: list[bytes] = []
    _write_safetensors(parts.append, head, arrays)
    return b"".join(bytes(p) for p in parts)
