"""``safeload.state_dict(obj)``: the state_dict a user would have saved, recovered from a whole pickled model.

``torch.save(model)`` and ``megengine.save(module)`` pickle the module objects themselves. Loaded with
``unknown="stub"``, each module is an inert :class:`~safeload.Stub` whose ``state`` is the module's ``__dict__``,
and the tensors inside are real arrays (or torch tensors). This walks those stubs the way the frameworks' own
``Module.state_dict()`` walks live modules, and returns the same keys in the same order:

* **torch** (a stub whose state has ``_parameters``): the module's ``_parameters`` (skipping None), then its
  ``_buffers`` (skipping None and names in ``_non_persistent_buffers_set``), then each child in ``_modules`` with the
  prefix ``name.``. Tensors are detached, as ``nn.Module.state_dict`` returns them.
* **MegEngine** (a stub whose state has ``_modules`` as a list of attribute names): the module's own tensors in
  sorted attribute order (lists, tuples and dicts of tensors expand to ``attr.0``, ``attr.key``), then its child
  modules in sorted order; each value once. Parameters of normalization layers are reshaped to 1-D, as MegEngine's
  ``state_dict`` does.

Nothing is imported or called: only the recorded state is read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from ._hints import Any
from ._stub import Stub

__all__ = ["state_dict"]

_MGE_NORMS = frozenset({"BatchNorm1d", "BatchNorm2d", "SyncBatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm",
                        "_BatchNorm"})


def state_dict(obj: Any) -> OrderedDict[str, Any]:
    """The ``state_dict`` of a whole pickled torch or MegEngine module loaded with ``unknown="stub"``.

    A mapping (already a state_dict) is returned as an OrderedDict. Raises ``TypeError`` for anything else.
    """
    if isinstance(obj, Stub):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        if isinstance(state, dict) and "_parameters" in state:
            out: OrderedDict[str, Any] = OrderedDict()
            _torch(obj, "", out, 0)
            return out
        if isinstance(state, dict) and isinstance(state.get("_modules"), list):
            out = OrderedDict()
            _megengine(obj, "", out, 0)
            return out
        raise TypeError(f"{obj.qualname} is not a pickled torch or MegEngine module: its state has neither "
                        "_parameters nor a _modules list")
    if isinstance(obj, Mapping):
        return OrderedDict(obj)
    raise TypeError(f"safeload.state_dict expects a module stub (load with unknown='stub') or a mapping, "
                    f"not {type(obj).__name__}")


_MAX_DEPTH = 200


def _depth_check(depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise TypeError(f"module nesting deeper than {_MAX_DEPTH}: not a module tree a framework writes")


def _state_of(stub: Stub) -> dict[str, Any]:
    state = stub.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]
    return state if isinstance(state, dict) else {}


def _detach(value: Any) -> Any:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter):
        return value.detach()
    return value


def _mapping(module: Stub, state: dict[str, Any], key: str) -> Mapping[Any, Any]:
    """``state[key]`` as torch writes it: a dict (or None). Anything else is not a module's state: TypeError."""
    value = state.get(key)
    if value is None:
        return {}
    if isinstance(value, Stub) and value.qualname == "collections.OrderedDict":
        value = value.dictitems
    if not isinstance(value, Mapping):
        raise TypeError(f"{module.qualname}.{key} is a {type(value).__name__}, not the dict a pickled torch module has")
    return value


def _torch(module: Stub, prefix: str, out: OrderedDict[str, Any], depth: int) -> None:
    _depth_check(depth)
    state = _state_of(module)
    non_persistent = state.get("_non_persistent_buffers_set") or ()
    if not isinstance(non_persistent, (set, frozenset, list, tuple)):
        raise TypeError(f"{module.qualname}._non_persistent_buffers_set is a {type(non_persistent).__name__}")
    non_persistent = [n for n in non_persistent if isinstance(n, str)]
    for name, value in _mapping(module, state, "_parameters").items():
        if value is not None:
            out[prefix + str(name)] = _detach(value)
    for name, value in _mapping(module, state, "_buffers").items():
        if value is not None and name not in non_persistent:
            out[prefix + str(name)] = _detach(value)
    for name, child in _mapping(module, state, "_modules").items():
        if isinstance(child, Stub):
            _torch(child, f"{prefix}{name}.", out, depth + 1)


def _is_tensor(value: Any) -> bool:
    import sys

    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return True
    module = type(value).__module__
    return module.startswith("megengine") and type(value).__name__ in ("Tensor", "Parameter")


def _is_module(value: Any) -> bool:
    return isinstance(value, Stub) and isinstance(_state_of(value).get("_modules"), list)


def _expand(prefix: str, value: Any, depth: int) -> list[tuple[str, Any]]:
    _depth_check(depth)
    if _is_tensor(value) or _is_module(value):
        return [(prefix, value)]
    if isinstance(value, (list, tuple, dict)):
        if isinstance(value, dict):
            try:
                targets = [(str(k), value[k]) for k in sorted(value)]
            except TypeError:
                return []
        else:
            targets = [(str(i), v) for i, v in enumerate(value)]
        out: list[tuple[str, Any]] = []
        for key, item in targets:
            out.extend((f"{prefix}.{sub}", v) for sub, v in _expand(key, item, depth + 1))
        return out
    return []


def _megengine(module: Stub, prefix: str, out: OrderedDict[str, Any], depth: int) -> None:
    _depth_check(depth)
    state = _state_of(module)
    flat = []
    seen: set[int] = set()  # per module, as MegEngine's _flatten
    for key in sorted(k for k in state if isinstance(k, str)):
        for name, value in _expand(key, state[key], depth):
            if id(value) in seen:
                continue
            seen.add(id(value))
            flat.append((name, value))
    reshape = module.name in _MGE_NORMS and module.module.startswith("megengine.module")
    for name, value in flat:
        if _is_tensor(value):
            out[prefix + name] = value.reshape(-1) if reshape else value
    for name, value in flat:
        if _is_module(value):
            _megengine(value, f"{prefix}{name}.", out, depth + 1)
