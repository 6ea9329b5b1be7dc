"""Where ``safeload.save``'s bytes go: a path is written atomically (a temporary file in the same folder, flushed,
fsynced, renamed over the target, the folder fsynced), so a crash leaves the old file or the new one, never half
of one; a stream is written directly. ``compress="zstd"`` wraps either in one zstd frame."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from .._hints import Any


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _is_path(f: Any) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def _emit(sink: Any, size: int, body: Callable[[Callable[[Any], Any]], None], compress: str | None) -> None:
    if compress is None:
        body(sink.write)
        return
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3, threads=-1, write_content_size=True, write_checksum=True)
    with cctx.stream_writer(sink, size=size, closefd=False) as writer:
        body(writer.write)


def write_output(f: Any, size: int, body: Callable[[Callable[[Any], Any]], None], compress: str | None) -> None:
    """Run ``body(write)`` into ``f``: a path is written atomically (temp file, fsync, rename); a stream directly."""
    if not _is_path(f):
        if not hasattr(f, "write"):
            raise TypeError(f"safeload.save needs a path or a binary file object, not {type(f).__name__}")
        _emit(f, size, body, compress)
        return
    path = os.fsdecode(os.fspath(f))
    if os.path.islink(path):
        path = os.path.realpath(path)  # write through the link, as torch.save does, and keep the link
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            _emit(fh, size, body, compress)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
