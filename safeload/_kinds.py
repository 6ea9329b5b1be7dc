"""Files that are not pickles and cannot carry one, recognised by content: :func:`classify`.

Two groups, each kind with a one-line reason:

* **model formats that hold no pickle** (:data:`MODEL_KINDS`): GGUF/GGML, ONNX, TensorFlow Lite, HDF5 (Keras
  ``.h5``), safetensors. Their native loaders parse data; none unpickles or runs code. One exception is checked:
  an HDF5 file whose Keras config names a ``Lambda`` layer holds marshalled Python bytecode that
  ``keras.models.load_model`` runs when ``safe_mode=False``; it is kind ``keras-lambda`` (:data:`CODE_KINDS`),
  which a caller must not report as harmless.
* **everything else common in a repository** (:data:`OTHER_KINDS`): images, PDF, executables and shared libraries,
  fonts, audio and video, WebAssembly, SQLite, Git LFS pointers (the weights are not in the file).

A magic number alone is not enough, because a native loader reads the same bytes its own way. ``classify`` never
names a kind for a file that some native loader could act on:

* ``pickle.load`` (and ``torch.load``, ``joblib.load``, ``numpy.load(allow_pickle=True)``, which fall back to it)
  reads any bytes from byte 0; several magics are valid opcodes (``G`` BINFLOAT in GIF and GGUF, ``M`` BININT2
  in PE, ``B`` BINBYTES in BMP, ``\\x89`` NEWFALSE in PNG and HDF5). :func:`safeload._reach.cpython_reach` walks
  the stream as CPython does; if it reaches an opcode that could import or call, the file is not classified.
* ``zipfile`` and ``unzip`` find an archive by its end-of-central-directory record at the end of the file, so a
  file whose last 64 KiB hold ``PK\\x05\\x06`` is not classified (an image with a zip appended is a zip).
* ``tarfile`` (which ``torch.load`` tries first on a non-zip file) accepts any first block with a valid checksum:
  :func:`safeload._reach.is_tar` is that test.

Zip archives are never classified here: the scanner opens them member by member (a Keras v3 ``.keras`` zip then
has JSON and HDF5 members, which are classified one by one).

Interface: ``classify(data) -> (kind, reason) | None``; ``data`` is bytes, a memoryview or an mmap of the whole
file. Cost: a few slices of the head, a search of the last 64 KiB, the pickle walk up to CPython's first failure,
and for HDF5 one ``find`` over the file.
"""

from __future__ import annotations

import struct

from ._hints import Any

__all__ = ["CODE_KINDS", "MODEL_KINDS", "OTHER_KINDS", "classify"]

_LOADS_WITH_NO_CODE = "no code runs when loading it with "

#: kind -> reason, model formats that cannot carry a pickle
MODEL_KINDS: dict[str, str] = {
    "gguf": "GGUF model (llama.cpp): tensors and key-value metadata; " + _LOADS_WITH_NO_CODE + "gguf or llama.cpp",
    "ggml": "GGML/GGJT model (older llama.cpp): tensors and hyperparameters; " + _LOADS_WITH_NO_CODE + "llama.cpp",
    "onnx": "ONNX model (protobuf): a graph and its weights; " + _LOADS_WITH_NO_CODE + "onnx or onnxruntime "
            "(custom operators run only from libraries the user registers)",
    "tflite": "TensorFlow Lite model (flatbuffer, TFL3): " + _LOADS_WITH_NO_CODE + "the TFLite interpreter "
              "(custom operators run only when the user registers them)",
    "hdf5": "HDF5 file (Keras .h5 weights or model): datasets and attributes, no Lambda layer in its Keras config; "
            + _LOADS_WITH_NO_CODE + "h5py or keras",
    "safetensors": "safetensors file: a JSON header and raw tensor bytes; " + _LOADS_WITH_NO_CODE + "safetensors",
}
#: kind -> reason, files that hold code a loader may run: never to be reported as harmless
CODE_KINDS: dict[str, str] = {
    "keras-lambda": "HDF5 Keras model with a Lambda layer: its marshalled Python bytecode runs when "
                    "keras.models.load_model is called with safe_mode=False; re-save it without Lambda layers",
}
#: kind -> reason, everything else commonly found in a repository
OTHER_KINDS: dict[str, str] = {
    "png": "PNG image", "jpeg": "JPEG image", "gif": "GIF image", "webp": "WebP image", "bmp": "BMP image",
    "tiff": "TIFF image",
    "matlab": "MATLAB 5 MAT-file (scipy.io.loadmat)", "idl-sav": "IDL save file (scipy.io.readsav)",
    "pdf": "PDF document",
    "elf": "ELF executable or shared library (.so)", "mach-o": "Mach-O executable or library (.dylib)",
    "pe": "Windows executable or DLL (PE)", "java-class": "Java class or Mach-O universal binary",
    "wasm": "WebAssembly module",
    "woff": "WOFF font", "woff2": "WOFF2 font", "ttf": "TrueType font", "otf": "OpenType font",
    "wav": "WAV audio", "avi": "AVI video", "ogg": "Ogg audio or video", "flac": "FLAC audio", "mp3": "MP3 audio",
    "mp4": "MP4/QuickTime media (ISO base media file)",
    "sqlite": "SQLite database",
    "lfs-pointer": "Git LFS pointer: the weights are not in this file; run `git lfs pull` and scan again",
}

# (offset, magic, kind); checked in order, the first that matches wins (before the pickle/zip/tar checks)
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GGUF", "gguf"), (0, b"lmgg", "ggml"), (0, b"fmgg", "ggml"), (0, b"tjgg", "ggml"),
    (4, b"TFL3", "tflite"),
    (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"\xff\xd8\xff", "jpeg"), (0, b"GIF87a", "gif"), (0, b"GIF89a", "gif"),
    (0, b"II*\x00", "tiff"), (0, b"MM\x00*", "tiff"),
    (0, b"%PDF-", "pdf"),
    (0, b"\x7fELF", "elf"),
    (0, b"\xfe\xed\xfa\xce", "mach-o"), (0, b"\xfe\xed\xfa\xcf", "mach-o"), (0, b"\xce\xfa\xed\xfe", "mach-o"),
    (0, b"\xcf\xfa\xed\xfe", "mach-o"), (0, b"\xca\xfe\xba\xbe", "java-class"),
    (0, b"\x00asm", "wasm"),
    (0, b"wOFF", "woff"), (0, b"wOF2", "woff2"), (0, b"\x00\x01\x00\x00\x00", "ttf"), (0, b"OTTO", "otf"),
    (0, b"OggS", "ogg"), (0, b"fLaC", "flac"), (0, b"ID3", "mp3"), (4, b"ftyp", "mp4"),
    (0, b"SQLite format 3\x00", "sqlite"), (0, b"MATLAB 5.0 MAT-file", "matlab"), (0, b"SR\x00\x04", "idl-sav"),
    (0, b"SR\x00\x06", "idl-sav"),
    (0, b"version https://git-lfs.github.com/spec/", "lfs-pointer"),
)
#: _MAGIC by (offset, first byte of the magic), each list in _MAGIC's order: a file is compared with the few magics
#: that start with its own byte at that offset, and the first of _MAGIC that matches still wins
_MAGIC_BY_BYTE: dict[tuple[int, int], list[tuple[int, bytes, str]]] = {}
for _order, (_offset, _magic, _kind_name) in enumerate(_MAGIC):
    _MAGIC_BY_BYTE.setdefault((_offset, _magic[0]), []).append((_order, _magic, _kind_name))
_MAGIC_OFFSETS = tuple(sorted({offset for offset, _, _ in _MAGIC}))
_HDF5 = b"\x89HDF\r\n\x1a\n"
_EOCD_TAIL = 65_535 + 22  # the zip comment is at most 65,535 bytes: the end record is in the last 64 KiB


def classify(data: Any) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``data`` is a known non-pickle format that no native loader could act on as a
    pickle, zip or tar; None otherwise (the caller scans it, or reports it as unsupported)."""
    kind = _kind(data)
    if kind is None or _other_reader(data):
        return None
    if kind == "hdf5" and data.find(b'"class_name": "Lambda"') != -1:
        kind = "keras-lambda"
    reason = MODEL_KINDS.get(kind) or CODE_KINDS.get(kind) or OTHER_KINDS[kind]
    return kind, reason


def _kind(data: Any) -> str | None:
    head = bytes(data[:64])
    found: tuple[int, str] | None = None  # (place in _MAGIC, kind) of the first magic that matches
    for offset in _MAGIC_OFFSETS:
        if offset < len(head):
            for order, magic, kind in _MAGIC_BY_BYTE.get((offset, head[offset]), ()):
                if head.startswith(magic, offset):
                    if found is None or order < found[0]:
                        found = (order, kind)
                    break
    if found is not None:
        return found[1]
    if head[:2] == b"BM" and len(head) >= 14 and struct.unpack_from("<I", head, 2)[0] == len(data):
        return "bmp"  # the header's file size must be the file's
    if head[:2] == b"MZ" and _is_pe(data):
        return "pe"
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}[head[8:12]]
    for offset in (0, 512, 1024, 2048):  # HDF5 allows a user block of 512 * 2**n bytes before the superblock
        if bytes(data[offset:offset + 8]) == _HDF5:
            return "hdf5"
    if _is_safetensors(data):
        return "safetensors"
    if _is_onnx(data):
        return "onnx"
    return None


def _is_pe(data: Any) -> bool:
    if len(data) < 64:
        return False
    at = struct.unpack_from("<I", bytes(data[60:64]))[0]
    return 64 <= at <= len(data) - 4 and bytes(data[at:at + 4]) == b"PE\x00\x00"


def _is_safetensors(data: Any) -> bool:
    if len(data) < 10:
        return False
    n = struct.unpack_from("<Q", bytes(data[:8]))[0]
    if not 2 <= n <= len(data) - 8 or data[8:9] != b"{":
        return False
    end = bytes(data[8 + n - 1:8 + n]).rstrip(b" ")
    return end in (b"}", b"")  # the header is a JSON object, padded with spaces


# ModelProto field number -> protobuf wire type (0 varint, 2 length-delimited); onnx.proto
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def _is_onnx(data: Any) -> bool:
    """A ModelProto as protobuf writes it: ``ir_version`` (field 1) first, then only ModelProto fields with their
    wire types, lengths inside the file, a graph (field 7) among the first fields walked."""
    if len(data) < 16 or data[0:1] != b"\x08":
        return False
    from ._protobuf import varint as _varint
    from .errors import FormatError

    total = len(data)
    pos = 0
    seen: list[int] = []
    try:
        while pos < total and len(seen) < 16:
            window = bytes(data[pos:pos + 20])  # a key and a length: at most 10 bytes each
            key, used = _varint(window, 0, len(window))
            field, wire = key >> 3, key & 7
            if _ONNX_FIELDS.get(field) != wire:
                return False
            value, used = _varint(window, used, len(window))
            pos += used
            if field == 1 and not 1 <= value <= 64:
                return False
            if wire == 2:
                if pos + value > total:
                    return False
                pos += value
            seen.append(field)
            if field == 7:
                break
    except FormatError:
        return False
    return bool(seen) and seen[0] == 1 and 7 in seen


def _other_reader(data: Any) -> bool:
    """Whether pickle, zip or tar readers could read ``data`` as their own (see the module docstring)."""
    tail = bytes(data[max(0, len(data) - _EOCD_TAIL):])
    if b"PK\x05\x06" in tail or b"PK\x06\x06" in tail:
        return True
    try:
        from ._reach import cpython_reach, is_tar

        return is_tar(data) or bool(cpython_reach(data))
    except Exception:  # a walk that cannot decide: not classified, so the file is scanned instead
        return True
