"""The differential oracle: the real native loaders are the judge of what a file can do.

Each native loader runs in its own child process, with a fresh empty working directory, an address-space cap and
a timeout, on a file whose payload (if it runs) only creates a file named :data:`MARKER` in the working directory.
The child swallows every exception: a loader that fails after the payload ran has still run it. The parent then
looks for the marker.

The loaders, named as :func:`run_natives` reports them:

``pickle``        C ``pickle.load`` on the open file, repeated until end of file (multi-pickle readers do that)
``pickle_py``     the pure-Python ``pickle._Unpickler``, the same way (its FRAME handling differs from C's)
``torch``         ``torch.load(path, weights_only=False)`` (skipped when torch is not installed)
``numpy``         ``numpy.load(path, allow_pickle=True)``, and every member of an ``NpzFile``
``joblib``        ``joblib.load(path)`` (skipped when joblib is not installed)
``zipfile``       ``zipfile.ZipFile``: every member read, then ``pickle.loads`` and ``numpy.load`` of it
``unzip``         Info-ZIP ``unzip -o`` into a folder, then ``pickle.load`` of every extracted file
``tarfile``       ``tarfile.open`` (any compression): every regular member, then ``pickle.loads``
``decompress``    gzip, bz2, lzma/xz and zstd: the file decompressed, then ``pickle.loads`` and ``joblib.load``

Use :func:`payload` to build a live pickle, :func:`run_natives` to see which loaders run it, and
:func:`safeload_verdict` for what safeload says of the same file. The property every container test asserts:

    safeload scan exit 0, or safeload.load accepting the file  =>  no native loader creates the marker
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "safeload-oracle-marker"

#: every loader the oracle knows; ``run_natives`` runs those whose module is importable here
LOADERS = ("pickle", "pickle_py", "torch", "numpy", "joblib", "zipfile", "unzip", "tarfile", "decompress")

_CHILD = r"""
import io, os, sys, resource
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
cap = 4 << 30
resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
path, loader = sys.argv[1], sys.argv[2]

def pickles(f, unpickler):
    for _ in range(64):
        try:
            unpickler(f).load()
        except EOFError:
            return
        except Exception:
            return

def loads_all(raw):
    import pickle
    pickles(io.BytesIO(raw), pickle.Unpickler)
    try:
        import numpy as np
        r = np.load(io.BytesIO(raw), allow_pickle=True)
        if hasattr(r, "files"):
            for k in r.files:
                r[k]
    except Exception:
        pass

try:
    if loader == "pickle":
        import pickle
        with open(path, "rb") as f:
            pickles(f, pickle.Unpickler)
    elif loader == "pickle_py":
        import pickle
        with open(path, "rb") as f:
            pickles(f, pickle._Unpickler)
    elif loader == "torch":
        import torch
        torch.load(path, weights_only=False)
    elif loader == "numpy":
        import numpy as np
        r = np.load(path, allow_pickle=True)
        if hasattr(r, "files"):
            for k in r.files:
                try:
                    r[k]
                except Exception:
                    pass
    elif loader == "joblib":
        import joblib
        joblib.load(path)
    elif loader == "zipfile":
        import zipfile
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                try:
                    loads_all(zf.read(info))
                except Exception:
                    pass
    elif loader == "unzip":
        import subprocess
        subprocess.run(["unzip", "-o", "-qq", path, "-d", "x"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        for root, _dirs, files in os.walk("x"):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    loads_all(f.read())
    elif loader == "tarfile":
        import tarfile
        with tarfile.open(path) as tf:
            for info in tf:
                if info.isreg():
                    try:
                        loads_all(tf.extractfile(info).read())
                    except Exception:
                        pass
    elif loader == "decompress":
        import bz2, gzip, lzma
        raw = open(path, "rb").read()
        outs = []
        for fn in (gzip.decompress, bz2.decompress, lzma.decompress):
            try:
                outs.append(fn(raw))
            except Exception:
                pass
        try:
            import zstandard
            outs.append(zstandard.ZstdDecompressor().decompressobj().decompress(raw))
        except Exception:
            pass
        for out in outs:
            loads_all(out)
        try:
            import joblib
            joblib.load(path)
        except Exception:
            pass
except BaseException:
    pass
"""


def payload(proto: int = 2, text: str = MARKER) -> bytes:
    """A pickle that, run by a native unpickler, creates ``text`` in the working directory (``open(text, 'w')``)."""
    if proto < 2:
        return b"c__builtin__\nopen\n(V" + text.encode() + b"\nVw\ntR."
    name = text.encode()
    return (b"\x80" + bytes([proto]) + b"cbuiltins\nopen\nX" + len(name).to_bytes(4, "little") + name
            + b"X\x01\x00\x00\x00w\x86R.")


def available(loader: str) -> bool:
    """Whether ``loader`` can run on this machine."""
    import importlib.util

    needs = {"torch": "torch", "numpy": "numpy", "joblib": "joblib"}
    if loader == "unzip":
        return shutil.which("unzip") is not None
    module = needs.get(loader)
    return module is None or importlib.util.find_spec(module) is not None


def run_native(path: str | os.PathLike[str], loader: str, timeout: float = 120) -> bool:
    """Run one native loader on ``path`` in a capped child; True if the payload created the marker."""
    path = os.path.abspath(path)
    with tempfile.TemporaryDirectory(prefix="safeload-oracle-") as cwd:
        try:
            subprocess.run([sys.executable, "-c", _CHILD, path, loader], cwd=cwd, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            pass
        return any(MARKER in files for _root, _dirs, files in os.walk(cwd))


def run_natives(path: str | os.PathLike[str], loaders: tuple[str, ...] = LOADERS) -> dict[str, bool]:
    """Every available loader in ``loaders`` on ``path``: ``{loader: marker created}``."""
    return {name: run_native(path, name) for name in loaders if available(name)}


def live(path: str | os.PathLike[str], loaders: tuple[str, ...] = LOADERS) -> list[str]:
    """The loaders that run the payload in ``path``."""
    return [name for name, hit in run_natives(path, loaders).items() if hit]


def safeload_verdict(path: str | os.PathLike[str]) -> tuple[int, bool]:
    """``(scan exit code, load accepted)`` for ``path``, both run in this process."""
    import safeload

    report = safeload.scan(str(path))
    try:
        safeload.load(str(path), tensors="numpy")
    except safeload.SafeLoadError:
        accepted = False
    else:
        accepted = True
    return report.exit_code, accepted


def check(path: str | os.PathLike[str], loaders: tuple[str, ...] = LOADERS) -> list[str]:
    """The oracle's property for one file. Returns the violations (empty when the property holds)."""
    hits = live(path, loaders)
    if not hits:
        return []
    code, accepted = safeload_verdict(path)
    problems = []
    if code == 0:
        problems.append(f"scan exits 0 but {', '.join(hits)} run(s) the payload")
    if accepted:
        problems.append(f"safeload.load accepts it but {', '.join(hits)} run(s) the payload")
    return problems


def scratch() -> Path:
    """A scratch folder for generated files (removed by the caller, or by pytest's tmp_path)."""
    return Path(tempfile.mkdtemp(prefix="safeload-oracle-files-"))
