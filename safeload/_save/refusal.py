"""What ``safeload.save`` refuses and how it says so: :class:`SaveRefused`, the object path rendered for messages
(``checkpoint['opt']['state'][0]``), the per-class hints with their fix, and the attribute checks that mirror
the BUILD checks of ``safeload.load`` (plain names only; a dataclass's declared fields only)."""

from __future__ import annotations

import dataclasses
import types

from .._hints import Any
from ..errors import SafeLoadError

ROOT = "checkpoint"


class SaveRefused(SafeLoadError):
    """``safeload.save`` found an object that ``safeload.load`` would refuse. ``obj_path`` says where it is."""

    default_fix = "Save plain data: state_dict()s, tensors, arrays, numbers, strings, lists and dicts"

    def __init__(self, obj_path: str, what: str, **kwargs: Any) -> None:
        self.obj_path = obj_path
        super().__init__(f"{obj_path}: {what}", **kwargs)


# ---- paths inside the object, rendered only for messages ------------------------------------------------------

def render(path: Any) -> str:
    nodes = []
    while type(path) is tuple:
        nodes.append(path)
        path = path[0]
    text = path if isinstance(path, str) else ROOT
    as_attr = False
    for _parent, kind, value in reversed(nodes):
        if kind == "via":  # inside a reduce's arguments: name the object itself
            break
        if kind == "state":
            as_attr = True
            continue
        if kind == "item":
            text += f".{value}" if as_attr and type(value) is str else f"[{_short(value)}]"
        elif kind == "key":
            text += f" (the dict key {_short(value)})"
        elif kind == "member":
            text += " (a set member)"
        as_attr = False
    return text


def _short(value: Any) -> str:
    text = repr(value) if type(value) in (str, int, bool, float, bytes, type(None)) else f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def qualname_of(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def user_state(obj: Any, path: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(``__dict__`` state, slot state) of an allowed plain class, checked as safeload.load's BUILD checks it."""
    kind = type(obj)
    state = getattr(obj, "__dict__", None)
    slots: dict[str, Any] = {}
    for klass in kind.__mro__:
        names = klass.__dict__.get("__slots__", ())
        for name in [names] if isinstance(names, str) else names:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                slots[name] = object.__getattribute__(obj, name)
            except AttributeError:
                pass
    for part in (state, slots):
        for key in part or ():
            if type(key) is not str or (key.startswith("__") and key.endswith("__")):
                raise SaveRefused(render(path), f"{qualname_of(kind)} has the attribute {key!r}",
                                  why="safeload.load sets only plain attribute names",
                                  fix="Rename or drop the attribute")
    if dataclasses.is_dataclass(kind) and state:
        fields = {f.name for f in dataclasses.fields(kind)}
        extra = sorted(set(state) - fields)
        if extra:
            raise SaveRefused(render(path), f"dataclass {qualname_of(kind)} has attributes {extra} that are not fields",
                              why="safeload.load sets only a dataclass's declared fields",
                              fix="Declare them as fields or drop them")
    return (dict(state) if state else None), (slots or None)


def describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{getattr(obj, '__module__', '?')}.{name}"


_HINTS = (
    ("torch.nn.modules.module.Module", "a whole torch module", "Save model.state_dict() and rebuild the model in code"),
    ("torch.optim.optimizer.Optimizer", "a whole optimizer", "Save optimizer.state_dict()"),
    ("torch.optim.lr_scheduler.LRScheduler", "a whole LR scheduler", "Save scheduler.state_dict()"),
    ("torch.optim.lr_scheduler._LRScheduler", "a whole LR scheduler", "Save scheduler.state_dict()"),
    ("torch.cuda.amp.grad_scaler.GradScaler", "a GradScaler", "Save scaler.state_dict()"),
    ("torch.amp.grad_scaler.GradScaler", "a GradScaler", "Save scaler.state_dict()"),
    ("torch.Size", "a torch.Size", "Save tuple(size)"),
    ("torch.device", "a torch.device", "Save str(device)"),
    ("torch._C.Generator", "a torch.Generator", "Save generator.get_state()"),
    ("io.IOBase", "an open file or stream", "Save its path or its contents"),
    ("_io._IOBase", "an open file or stream", "Save its path or its contents"),
)


def refusal_for(obj: Any, path: Any) -> SaveRefused:
    kind = type(obj)
    where = render(path)
    mro = {qualname_of(c) for c in kind.__mro__}
    for base, what, fix in _HINTS:
        if base in mro:
            return SaveRefused(where, f"{qualname_of(kind)} ({what}) is not loadable safely",
                               why="safeload.load, like torch.load(weights_only=True), refuses objects whose class "
                                   "would have to run code", fix=fix)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.LambdaType)) or (
            callable(obj) and not isinstance(obj, type) and kind.__module__ == "functools"):
        name = getattr(obj, "__qualname__", kind.__name__)
        return SaveRefused(where, f"the function {name} is not loadable safely",
                           why="a function is code, and safe loaders never load code",
                           fix="Save its name, or the data it computes, instead")
    if isinstance(obj, type):
        return SaveRefused(where, f"the class {qualname_of(obj)} is not loadable safely",
                           why="a class is code; safe loaders never resolve one from a file",
                           fix="Save its name as a string")
    if isinstance(obj, types.ModuleType):
        return SaveRefused(where, f"the module {obj.__name__} is not loadable safely",
                           why="a module is code", fix="Save its name as a string")
    if isinstance(obj, (types.GeneratorType, types.CoroutineType)):
        return SaveRefused(where, f"a {kind.__name__} is not loadable safely", why="it is running code",
                           fix="Save list(...) of what it yields")
    qualname = qualname_of(kind)
    return SaveRefused(where, f"{qualname} is not loadable safely",
                       why=f"safeload.load refuses {qualname}: it is outside the policy",
                       fix=f"Save its data (a dict, a state_dict()) instead; or, if it is a plain data class you "
                           f"trust, pass allow=[{qualname!r}] to both save and load")
