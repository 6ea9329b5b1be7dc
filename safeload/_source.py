"""Turn what the caller passed (a path, a PathLike, a binary file object, or bytes) into one read-only buffer.

A path is memory-mapped, not read: containers parse their directories from the map and copy out only the records
they need (so an eager load peaks near one copy of the tensors), and ``mmap=True`` maps the file copy-on-write so
tensors are views of it that can be written without touching the file.
"""

from __future__ import annotations

import mmap as _mmap
import os

from ._hints import Any
from .errors import FormatError

__all__ = ["DirectoryError", "FileOpenError", "FilePermissionError", "MappedFile", "MissingFileError", "copy_range",
           "file_error", "read_source"]

_DIRECT_READ = 1 << 20  # records at least this large are read from the file, not copied out of the map


class MappedFile(_mmap.mmap):
    """A mapped input file that can also read a byte range straight into new memory (``pread``), so large
    records are copied once without making the mapped pages resident as well."""

    _fd: int = -1

    def read_into_new(self, offset: int, size: int) -> Any:
        # numpy.empty, not bytearray(size): a bytearray is zero-filled first, which touches every page twice
        import numpy

        buf: Any = numpy.empty(size, dtype=numpy.uint8)
        view = memoryview(buf)
        done = 0
        while done < size:
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n <= 0:
                raise FormatError("The file changed or shrank while it was being read", offset=offset + done)
            done += n
        return buf

    def __del__(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileOpenError(FormatError, OSError):
    """A path that could not be opened: a :class:`SafeLoadError` that is also the ``OSError`` torch.load raises
    (``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError`` through the subclasses below), with
    ``errno``, ``strerror`` and ``filename`` set, so drop-in code catching either keeps working."""


class MissingFileError(FileOpenError, FileNotFoundError):
    """The path does not exist (torch.load: ``FileNotFoundError``)."""


class FilePermissionError(FileOpenError, PermissionError):
    """The path may not be read (torch.load: ``PermissionError``)."""


class DirectoryError(FileOpenError, IsADirectoryError):
    """The path is a directory (torch.load: ``IsADirectoryError``)."""


def file_error(exc: OSError, path: str, what: str, **kw: Any) -> FileOpenError:
    cls: type[FileOpenError] = FileOpenError
    for os_cls, ours in ((FileNotFoundError, MissingFileError), (PermissionError, FilePermissionError),
                         (IsADirectoryError, DirectoryError)):
        if isinstance(exc, os_cls):
            cls = ours
    err = cls(what, path=path, **kw)
    err.errno, err.strerror, err.filename = exc.errno, exc.strerror, path
    return err


def copy_range(data: Any, offset: int, size: int) -> Any:
    """A writeable buffer holding ``data[offset:offset+size]``, made with one copy (a bytearray, or a uint8
    numpy array for large ranges of a mapped file)."""
    if size >= _DIRECT_READ and isinstance(data, MappedFile) and hasattr(os, "preadv"):
        return data.read_into_new(offset, size)
    return bytearray(memoryview(data)[offset : offset + size])


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
                    mapped = MappedFile(fh.fileno(), 0, access=access)
                    mapped._fd = os.dup(fh.fileno())
                    return mapped, path
                except (OSError, ValueError):  # a pipe or a special file: read it instead
                    return fh.read(), path
        except IsADirectoryError as exc:
            raise file_error(exc, path, f"{path} is a directory", why="safeload.load opens one checkpoint file",
                             fix="Pass the checkpoint file inside it, or use `safeload scan` for folders") from None
        except OSError as exc:
            raise file_error(exc, path, f"Cannot read {path}: {exc.strerror or exc}", why="the file could not be opened",
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

