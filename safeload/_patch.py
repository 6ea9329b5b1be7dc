"""Route the frameworks' own load functions through safeload: ``patch()``, ``unpatch()``, ``patched()``.

Wrapped, for whichever of these modules can be imported:

=============  ==========================================================================================
torch          ``torch.load`` (any ``weights_only``, ``pickle_module`` ignored), ``torch.save`` (checked)
numpy          ``numpy.load``: with ``allow_pickle=True``, pickled data and object arrays go through safeload;
               everything else is numpy's own loader with ``allow_pickle=False``. ``.npz`` files stay lazy
               ``NpzFile`` objects whose object members are read by safeload.
joblib         ``joblib.load``, ``joblib.dump`` (protocol pinned, checked)
paddle         ``paddle.load`` (with Paddle's own post-processing: name table, split parameters, Tensors),
               ``paddle.save`` (protocol pinned, checked)
megengine      ``megengine.load`` (MegEngine tensors rebuilt from checked arrays), ``megengine.save``
pickle         ``pickle.load``, ``pickle.loads``, ``pickle.Unpickler`` and every alias: ``pickle._load``,
               ``pickle._loads``, ``pickle._Unpickler`` (and ``load`` of its subclasses), ``_pickle``'s three,
               module-level names bound to them before ``patch()``, ``ForkingPickler.loads``
=============  ==========================================================================================

torch, joblib, paddle and megengine are one table (``_TABLE``: framework -> function, load or checked save, the
save's protocol parameter) served by one generic wrapper that binds each call to the original's signature.
Each wrapper keeps the wrapped function's signature (``functools.wraps``; ``inspect.signature`` shows the
original) and return types. A refusal raises the same :class:`safeload.SafeLoadError` as ``safeload.load``. The
wrapped savers write with a pinned pickle protocol (``save_protocol``, default 4; torch keeps protocol 2, the
only one ``torch.load(weights_only=True)`` reads inside its zip format) unless the caller names one, then load
what they wrote back with safeload and raise if it would be refused. ``unpatch()`` restores the originals.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import pickle
from collections.abc import Iterator

from ._hints import Any
from ._pickle_module import Settings as _Settings
from ._pickle_module import current_settings, read_one, run_one, set_current_settings
from ._pickle_module import stream_start as _start_of
from .errors import FormatError, SafeLoadError

__all__ = ["TARGETS", "Unpickler", "patch", "patched", "unpatch"]

TARGETS = ("torch", "numpy", "joblib", "paddle", "megengine", "pickle")

# (module object, attribute) -> original value, for everything currently patched
_ORIGINALS: dict[tuple[Any, str], Any] = {}
_PATCHED: dict[str, dict[str, Any]] = {}  # target -> the settings it was patched with
_ALIAS_TARGET: dict[tuple[Any, str], str] = {}  # (owner, attribute) outside its target's module -> the target


def patch(*targets: str, policy: Any = None, allow: Any = (), unknown: str = "raise", save_protocol: int = 4) -> list[str]:
    """Route the named frameworks' loaders through safeload (no names: every importable one of :data:`TARGETS`).

    ``policy``, ``allow`` and ``unknown`` are used for every wrapped load (``safeload.policies.sklearn`` lets
    ``joblib.load`` rebuild common estimators). Returns the targets that were patched. A named target that cannot
    be imported raises ImportError; unnamed ones are skipped.
    """
    if unknown not in ("raise", "stub"):
        raise ValueError(f"unknown must be 'raise' or 'stub', not {unknown!r}")
    if not 2 <= save_protocol <= 5:
        raise ValueError("save_protocol must be 2 to 5")
    explicit = bool(targets)
    for t in targets:
        if t not in TARGETS:
            raise ValueError(f"safeload cannot patch {t!r}; it patches {', '.join(TARGETS)}")
    settings = _Settings(policy, allow, unknown, save_protocol)
    done = []
    for target in targets or TARGETS:
        try:
            module = importlib.import_module(target)
        except ImportError:
            if explicit:
                raise
            continue
        _INSTALLERS[target](module, settings)
        _PATCHED[target] = {"policy": policy, "allow": allow, "unknown": unknown, "save_protocol": save_protocol}
        done.append(target)
    return done


def unpatch(*targets: str) -> None:
    """Restore the original functions (no names: everything patched)."""
    wanted = set(targets) if targets else None
    for (owner, attr), original in list(_ORIGINALS.items()):
        target = _ALIAS_TARGET.get((owner, attr)) or _target_of(owner)
        if wanted is not None and target not in wanted:
            continue
        _ALIAS_TARGET.pop((owner, attr), None)
        setattr(owner, attr, original)
        del _ORIGINALS[(owner, attr)]
    for target in list(_PATCHED):
        if wanted is None or target in wanted:
            del _PATCHED[target]
    if "pickle" not in _PATCHED:
        set_current_settings(None)


@contextlib.contextmanager
def patched(*targets: str, **settings: Any) -> Iterator[list[str]]:
    """``with safeload.patched(): ...``: patch for the block, then restore what was there before."""
    before = dict(_PATCHED)
    done = patch(*targets, **settings)
    try:
        yield done
    finally:
        unpatch(*done)
        for target in done:
            if target in before:  # it was patched before the block: put that back
                patch(target, **before[target])


def _target_of(owner: Any) -> str:
    name = getattr(owner, "__name__", "") or getattr(owner, "__module__", "")
    return name.split(".")[0]


def _install(owner: Any, attr: str, make: Any) -> None:
    key = (owner, attr)
    original = _ORIGINALS.get(key, getattr(owner, attr))
    wrapper = make(original)
    _ORIGINALS[key] = original
    setattr(owner, attr, wrapper)


def _load(f: Any, settings: _Settings, **kw: Any) -> Any:
    from ._load import load

    return load(f, **settings.load_kwargs(), **kw)


def _check_written(f: Any, start: int | None, settings: _Settings, what: str) -> None:
    """Load back what a wrapped saver wrote; raise if safeload would refuse it."""
    from ._load import load, loads

    try:
        if isinstance(f, (str, os.PathLike)):
            load(f, **settings.load_kwargs(), tensors="numpy", mmap=True)
        elif start is not None:
            end = f.tell()
            f.seek(start)
            data = f.read(end - start)
            f.seek(end)
            loads(data, **settings.load_kwargs(), tensors="numpy")
    except SafeLoadError as err:
        err.what = f"{what} wrote a file that safeload would refuse: {err.what}"
        raise


# ---- torch, joblib, paddle, megengine: one table, one wrapper -------------------------------------------------------
#
# Each wrapped function is read through its own signature: the first parameter is what a loader reads, the second
# is where a saver writes; a saver's protocol parameter (named in the table) is set to ``save_protocol`` when the
# caller left it out or passed None, and the saved file is then loaded back (:func:`_check_written`).

def _arguments(sig: inspect.Signature | None, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> tuple[inspect.BoundArguments | None, list[Any], dict[str, Any]]:
    """The call bound to the original's signature: the bound arguments, the values in parameter order, and every
    named value (``**kwargs`` parameters flattened in)."""
    if sig is None:
        return None, list(args), dict(kwargs)
    bound = sig.bind(*args, **kwargs)  # a TypeError here is the one the original raises for this call
    values: list[Any] = []
    named: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            values.extend(value)
        else:
            values.append(value)
            named[name] = value
    return bound, values, named


def _load_torch(settings: _Settings, source: Any, named: dict[str, Any]) -> Any:
    extra = {k: v for k, v in named.items()
             if k not in ("f", "map_location", "pickle_module", "weights_only", "mmap", "encoding")}
    # pickle_module and weights_only are not used: every pickle goes through safeload. encoding is dropped: torch
    # passes utf-8 by default, and safeload decodes Python 2 strings as latin1.
    return _load(source, settings, map_location=named.get("map_location"), mmap=bool(named.get("mmap")),
                 tensors="torch", **extra)


def _load_joblib(settings: _Settings, source: Any, named: dict[str, Any]) -> Any:
    return _load(source, settings, tensors="numpy")  # mmap_mode is not honoured: arrays are read into memory


def _load_paddle(settings: _Settings, source: Any, named: dict[str, Any]) -> Any:
    from ._containers.paddle import paddle_result

    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise FormatError(f"{os.fspath(source)} is not a file",
                          why="safeload opens one file; paddle.load of a prefix or directory loads a program "
                              "and its parameters",
                          fix="Load the .pdiparams file itself (safeload returns its arrays in variable-name "
                              "order), or unpatch paddle for trusted model directories")
    paddle = importlib.import_module("paddle")

    def to_tensor(array: Any, name: Any) -> Any:
        tensor = paddle.to_tensor(array)
        if name is not None:
            with contextlib.suppress(Exception):
                tensor.name = name
        return tensor

    obj = _load(source, settings, tensors="numpy")
    return paddle_result(obj, return_numpy=bool(named.get("return_numpy", False)),
                         keep_name_table=bool(named.get("keep_name_table")), to_tensor=to_tensor)


def _load_megengine(settings: _Settings, source: Any, named: dict[str, Any]) -> Any:
    from ._rebuild.megengine import WANT_TENSORS

    token = WANT_TENSORS.set(True)  # MegEngine tensors built from the checked arrays
    try:
        return _load(source, settings, tensors="numpy")
    finally:
        WANT_TENSORS.reset(token)


class _Wrapped:
    """One wrapped function of one framework: ``load`` (a reader) or ``save`` (a checked saver)."""

    __slots__ = ("attr", "role", "read", "protocol")

    def __init__(self, attr: str, role: str, read: Any = None, protocol: str | None = None) -> None:
        self.attr, self.role, self.read, self.protocol = attr, role, read, protocol


_TABLE: dict[str, tuple[_Wrapped, ...]] = {
    # torch.save keeps its own protocol (2): torch.load(weights_only=True) reads no other inside its zip format
    "torch": (_Wrapped("load", "load", _load_torch), _Wrapped("save", "save")),
    "joblib": (_Wrapped("load", "load", _load_joblib), _Wrapped("dump", "save", protocol="protocol")),
    "paddle": (_Wrapped("load", "load", _load_paddle), _Wrapped("save", "save", protocol="protocol")),
    "megengine": (_Wrapped("load", "load", _load_megengine), _Wrapped("save", "save", protocol="pickle_protocol")),
}


def _wrapper(target: str, spec: _Wrapped, settings: _Settings, original: Any) -> Any:
    try:
        sig: inspect.Signature | None = inspect.signature(original)
    except (TypeError, ValueError):
        sig = None
    what = f"{target}.{spec.attr}"

    if spec.role == "load":
        @functools.wraps(original)
        def load(*args: Any, **kwargs: Any) -> Any:
            _bound, values, named = _arguments(sig, args, kwargs)
            if not values:
                raise TypeError(f"{what}() needs the file to read")
            return spec.read(settings, values[0], named)

        return load

    @functools.wraps(original)
    def save(*args: Any, **kwargs: Any) -> Any:
        bound, values, named = _arguments(sig, args, kwargs)
        if len(values) < 2:
            raise TypeError(f"{what}() needs the object and where to write it")
        if spec.protocol is not None and bound is not None and spec.protocol in bound.signature.parameters \
                and named.get(spec.protocol) is None:
            bound.arguments[spec.protocol] = settings.save_protocol
            args, kwargs = bound.args, bound.kwargs
        start = _start_of(values[1])
        result = original(*args, **kwargs)
        _check_written(values[1], start, settings, what)
        return result

    return save


def _install_table(target: str, module: Any, settings: _Settings) -> None:
    for spec in _TABLE[target]:
        _install(module, spec.attr, functools.partial(_wrapper, target, spec, settings))


# ---- numpy ----------------------------------------------------------------------------------------------------------

def _install_numpy(np: Any, settings: _Settings) -> None:
    npz_class = _safe_npz_class(np, settings)

    def make_load(original: Any) -> Any:
        @functools.wraps(original)
        def load(file: Any, mmap_mode: Any = None, allow_pickle: bool = False, fix_imports: bool = True,
                 encoding: str = "ASCII", **kwargs: Any) -> Any:
            if not allow_pickle:
                return original(file, mmap_mode, False, fix_imports, encoding, **kwargs)
            start = _start_of(file)
            try:
                result = original(file, mmap_mode, False, fix_imports, encoding, **kwargs)
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise
                if start is not None:
                    file.seek(start)
                elif not isinstance(file, (str, os.PathLike)):
                    raise FormatError("numpy.load of a pickle from a stream that cannot be rewound",
                                      fix="Pass a path or a seekable file") from exc
                return _load(file, settings, encoding="bytes" if encoding == "bytes" else "latin1")
            if isinstance(result, np.lib.npyio.NpzFile):
                result.__class__ = npz_class
            return result

        return load

    _install(np, "load", make_load)


def _safe_npz_class(np: Any, settings: _Settings) -> type:
    base = np.lib.npyio.NpzFile

    class SafeNpzFile(base):  # type: ignore[misc, valid-type]
        """numpy's NpzFile; members holding pickles (object arrays) are read by safeload."""

        def __getitem__(self, key: str) -> Any:
            try:
                return super().__getitem__(key)
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise
                member = key if key in self.zip.namelist() else f"{key}.npy"
                from ._load import loads

                return loads(self.zip.read(member), **settings.load_kwargs())

    SafeNpzFile.__name__ = SafeNpzFile.__qualname__ = base.__name__
    return SafeNpzFile


# ---- pickle ---------------------------------------------------------------------------------------------------------

class Unpickler:
    """A drop-in for ``pickle.Unpickler`` that runs safeload's VM: ``Unpickler(file, ...).load()``.

    Reads one pickle from the file and leaves the file just after it, as pickle does. ``find_class`` and
    ``persistent_load`` overrides are never consulted: names are looked up in the safeload policy only, and
    persistent ids (torch storages) are refused in a plain pickle (open the whole checkpoint with
    ``safeload.load``).
    """

    def __init__(self, file: Any, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict",
                 buffers: Any = None) -> None:
        self._file = file
        self._encoding = encoding
        self._errors = errors
        self.memo: dict[int, Any] = {}
        self._settings = current_settings()

    def load(self) -> Any:
        torch_pl = self.__dict__.get("persistent_load")  # set on the instance by torch.load(pickle_module=safeload)
        return read_one(self._file, self._encoding, self._errors, self._settings, torch_pl)

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError("safeload.Unpickler never resolves globals through find_class")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("safeload.Unpickler refuses persistent ids")


def _install_pickle(module: Any, settings: _Settings) -> None:
    set_current_settings(settings)

    def make_load(original: Any) -> Any:
        @functools.wraps(original)
        def load(file: Any, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict",
                 buffers: Any = None) -> Any:
            return read_one(file, encoding, errors, settings)

        return load

    def make_loads(original: Any) -> Any:
        @functools.wraps(original)
        def loads(data: Any, /, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict",
                  buffers: Any = None) -> Any:
            if isinstance(data, str):
                raise TypeError("Can't load pickle from unicode string")
            return run_one(bytes(data), encoding, errors, settings)[0]

        return loads

    # Every alias of the pickle loaders: pickle's public names and the pure-Python ones it also exports
    # (_load, _loads, _Unpickler), the C module's (_pickle), and any module-level name elsewhere bound to one of
    # them before patch() ran (``from pickle import loads``), plus multiprocessing's ForkingPickler.loads.
    import _pickle

    originals = {}
    for owner, names in ((module, ("load", "_load")), (_pickle, ("load",))):
        for name in names:
            originals[id(_ORIGINALS.get((owner, name), getattr(owner, name)))] = make_load
            _install(owner, name, make_load)
    for owner, names in ((module, ("loads", "_loads")), (_pickle, ("loads",))):
        for name in names:
            originals[id(_ORIGINALS.get((owner, name), getattr(owner, name)))] = make_loads
            _install(owner, name, make_loads)
    for owner, names in ((module, ("Unpickler", "_Unpickler")), (_pickle, ("Unpickler",))):
        for name in names:
            originals[id(_ORIGINALS.get((owner, name), getattr(owner, name)))] = lambda original: Unpickler
            _install(owner, name, lambda original: Unpickler)
    for owner in (module, _pickle):
        _ALIAS_TARGET[(owner, "load")] = _ALIAS_TARGET[(owner, "loads")] = _ALIAS_TARGET[(owner, "Unpickler")] = "pickle"
    # Subclasses of the pure-Python unpickler made before patch(): their inherited load() reads with safeload.
    _install(pickle_py_unpickler(), "load", lambda original: _subclass_load(settings))
    _ALIAS_TARGET[(pickle_py_unpickler(), "load")] = "pickle"
    import sys

    for name, other in list(sys.modules.items()):
        if other is None or other is module or other is _pickle or name.startswith("safeload"):
            continue
        try:
            items = list(vars(other).items())
        except TypeError:
            continue
        for attr, value in items:
            make = originals.get(id(value))
            if make is not None and not attr.startswith("__"):
                _install(other, attr, make)
                _ALIAS_TARGET[(other, attr)] = "pickle"
    reduction = sys.modules.get("multiprocessing.reduction")
    forking = getattr(reduction, "ForkingPickler", None)
    if forking is not None and id(forking.__dict__.get("loads")) in originals:
        _install(forking, "loads", lambda original: staticmethod(make_loads(original)))
        _ALIAS_TARGET[(forking, "loads")] = "pickle"


def pickle_py_unpickler() -> type:
    """The pure-Python unpickler class (``pickle._Unpickler`` before patch())."""
    return _ORIGINALS.get((pickle, "_Unpickler"), pickle._Unpickler)  # type: ignore[no-any-return]


def _subclass_load(settings: _Settings) -> Any:
    def load(self: Any) -> Any:
        """Read the pickle from the unpickler's file with safeload's VM (find_class overrides are not used)."""
        read = getattr(self, "_file_read", None)
        if read is None:
            raise pickle.UnpicklingError("Unpickler.__init__() was not called")
        file = _Reader(read)
        return read_one(file, getattr(self, "encoding", "ASCII"), getattr(self, "errors", "strict"), settings)

    return load


class _Reader:
    """The file of a pure-Python unpickler, seen through its ``read`` only (it cannot be rewound)."""

    def __init__(self, read: Any) -> None:
        self.read = lambda n=-1: read() if n is None or n < 0 else read(n)

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True


_INSTALLERS: dict[str, Any] = {
    **{target: functools.partial(_install_table, target) for target in _TABLE},
    "numpy": _install_numpy, "pickle": _install_pickle,
}

