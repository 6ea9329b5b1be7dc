"""Turn what the caller passed (a path, a PathLike, a binary file object, or bytes) into one read-only buffer.

A path is memory-mapped, not read: containers parse their directories from the map and copy out only the records
they need (so an eager load peaks near one copy of the tensors), and ``mmap=True`` maps the file copy-on-write so
tensors are views of it that can be written without touching the file.
"""

from __future__ import annotations

import io
import mmap as _mmap
import os
from typing import Any

from .errors import FormatError

__all__ = ["read_source"]


def read_source(f: Any, *, writable_map: bool = False) -> tuple[Any, str | None]:
    """The whole input as a buffer (bytes or an mmap), and a display name for messages (None for in-memory data).

    Paths are mapped: read-only for eager loads, copy-on-write when ``writable_map`` (``mmap=True``).
    """
    if isinstance(f, (bytes, bytearray, memoryview)):
        return bytes(f), None
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size == 0:
                    return b"", path
                access = _mmap.ACCESS_COPY if writable_map else _mmap.ACCESS_READ
                try:
                    return _mmap.mmap(fh.fileno(), 0, access=access), path
                except (OSError, ValueError):  # a pipe or a special file: read it instead
                    return fh.read(), path
        except IsADirectoryError:
            raise FormatError(f"{path} is a directory", why="safeload.load opens one checkpoint file",
                              fix="Pass the checkpoint file inside it, or use `safeload scan` for folders") from None
        except OSError as exc:
            raise FormatError(f"Cannot read {path}: {exc.strerror or exc}", why="the file could not be opened",
                              fix="Check the path and its permissions") from exc
    read = getattr(f, "read", None)
    if read is None:
        raise TypeError(f"safeload.load expects a path, a binary file object or bytes, not {type(f).__name__}")
    data = read()
    if isinstance(data, str):
        raise TypeError("safeload.load needs a file opened in binary mode ('rb')")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"the file object's read() returned {type(data).__name__}, not bytes")
    name = getattr(f, "name", None)
    return bytes(data), name if isinstance(name, str) else None


_ = io
