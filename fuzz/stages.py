"""One function per stage of safeload, each run on fuzzer-chosen bytes. Imported by the fuzz_* harnesses and by
tests/test_fuzz_regressions.py (which replays every saved finding through the same function)."""

from __future__ import annotations

import io
import sys
import zipfile
from typing import Any

import common

#: modules a stage may import (safeload's own, numpy for arrays, the decompressors)
_ALLOWED_IMPORTS = ("safeload", "numpy", "zstandard", "lz4", "bz2", "_bz2", "lzma", "_lzma", "zlib", "gzip", "py7zr",
                    "ml_dtypes", "tarfile", "multivolumefile", "pyzstd", "pyppmd", "pybcj", "inflate64", "brotli",
                    "Cryptodome", "texttable", "psutil", "bcj", "ppmd", "_zstd", "fickling", "encodings.idna",
                    "atheris", "signal", "_signal", "unicodedata", "stringprep", "encodings.raw_unicode_escape", "encodings.latin_1",
                    "encodings.unicode_escape", "encodings.ascii", "encodings.utf_8", "encodings.cp437")
_KINDS = {"pickle", "npy", "zip", "tar", "hdf5", "safetensors", "mxnet", "zlib", "zfile", "gzip", "bz2", "xz", "lzma",
          "lz4", "zstd", "7z", "mindspore-encrypted", "paddle-tensor", "mindspore", "empty", "unknown"}


def _known_kinds() -> set[str]:
    """The formats above plus every kind safeload/_kinds.py names (files that carry no pickle)."""
    from safeload._kinds import CODE_KINDS, MODEL_KINDS, OTHER_KINDS

    return _KINDS | set(MODEL_KINDS) | set(CODE_KINDS) | set(OTHER_KINDS) | {"keras-lambda"}

_known_modules: set[str] = set()


def _check_imports() -> None:
    if len(sys.modules) == len(_known_modules):
        return
    new = [m for m in sys.modules if m not in _known_modules]
    _known_modules.update(new)
    # stdlib text codecs that the zip, json and pickle readers pick by themselves; a bytes-to-bytes codec
    # (uu_codec, zlib_codec, rot_13, ...) would mean the file chose a codec, and is a finding
    bad = [m for m in new if not m.startswith(_ALLOWED_IMPORTS)
           and not (m.startswith("encodings.") and not m.endswith(("_codec", "rot_13")))]
    if bad:
        raise common.ContractViolation(f"modules imported because of the input: {bad}")


def _opts(tensors: str = "numpy", unknown: str = "raise", limits: dict[str, int] | None = None) -> Any:
    import safeload
    from safeload._load import Options

    policy = safeload.DEFAULT_POLICY.with_limits(**(limits or {"max_alloc": 256 << 20}))
    return Options(policy, unknown, "latin1", "strict", tensors, None, False)


def detect(data: bytes) -> None:
    from safeload._detect import detect as _detect

    kind = _detect(data)
    if kind not in _known_kinds():
        raise common.ContractViolation(f"detect returned {kind!r}")


def zip_reader(data: bytes) -> None:
    from safeload._containers.zip import ZipArchive

    zf = ZipArchive(data, max_members=10_000)
    for name in list(zf.members)[:50]:
        zf.read(name, max_size=16 << 20)


def torch_container(data: bytes) -> None:
    """The torch containers: zip, legacy stream and tar, chosen by the first byte."""
    from safeload._containers import torch as t
    from safeload._load import run_pickle

    if not data:
        return
    sel, body = data[0] % 3, data[1:]
    opts = _opts()
    if sel == 0:
        t.load_torch_zip(body, opts, run_pickle)
    elif sel == 1:
        t.load_torch_legacy(body, opts, run_pickle)
    else:
        t.load_torch_tar(body, opts, run_pickle)
    _check_imports()


def formats(data: bytes) -> None:
    """The other containers: npy, safetensors, mxnet, mindspore, paddle and the compression layers."""
    from safeload._containers import compressed, mindspore, mxnet, npy, paddle, safetensors
    from safeload._load import run_pickle

    if not data:
        return
    sel, body = data[0] % 8, data[1:]
    opts = _opts()
    limit = 64 << 20
    if sel == 0:
        npy.load_npy(body, lambda d, start: run_pickle(d, start, opts))
    elif sel == 1:
        safetensors.load_safetensors(body, "numpy")
    elif sel == 2:
        mxnet.load_mxnet_list(body, limit)
    elif sel == 3:
        mindspore.load_mindspore(body, limit)
    elif sel == 4:
        paddle.load_dense_tensors(body, limit)
    else:
        kind = compressed.sniff(body) or ("zlib", "gzip", "zstd", "bz2", "xz", "lzma")[data[0] % 6]
        compressed.decompress(kind, body, limit)
    _check_imports()


def vm(data: bytes) -> None:
    """The walker (iter_ops) and the VM, in raise and stub mode, on a plain pickle stream."""
    from safeload._load import run_pickle
    from safeload._opcodes import iter_ops

    # (the VM may accept a stream the walker refuses: joblib's wrappers read their raw array bytes inline)
    try:
        for _ in iter_ops(data):
            pass
    except Exception as exc:  # noqa: BLE001
        common.check_error(exc)
    for unknown in ("raise", "stub"):
        try:
            run_pickle(data, 0, _opts(unknown=unknown))
        except Exception as exc:  # noqa: BLE001
            common.check_error(exc)
    _check_imports()


def rebuild(data: bytes) -> None:
    """The tensor rebuilders: the input is a torch data.pkl. A first pass (scan mode) learns which storages it
    names; the harness writes records of exactly the right size (or one byte short, if the first input byte is
    odd), zips them like torch.save and loads the checkpoint with numpy tensors."""
    import safeload
    from safeload._containers.torch import storage_dtype_of  # noqa: F401
    from safeload._load import load_buffer
    from safeload._rebuild.torch import TORCH_DTYPES, Storage, StorageType

    if not data:
        return
    flag, pkl = data[0], data[1:]
    wanted: dict[str, int] = {}

    def persistent_load(pid: Any) -> Any:
        if type(pid) is tuple and len(pid) == 5 and type(pid[1]) is StorageType and type(pid[2]) is str \
                and type(pid[4]) is int and 0 <= pid[4] < (1 << 20):
            dtype = pid[1].dtype or "uint8"
            if dtype in TORCH_DTYPES:
                nbytes = wanted.setdefault(pid[2], pid[4] * TORCH_DTYPES[dtype][0])
                return Storage(pid[2], dtype, pid[4], str(pid[3]), bytearray(nbytes))
        raise safeload.FormatError("bad pid")

    from safeload._containers.torch import tensor_builder
    from safeload._load import run_pickle

    opts = _opts()
    try:
        run_pickle(pkl, 0, opts, persistent_load=persistent_load,
                   context={"tensor_builder": tensor_builder(opts, False)})
    except Exception as exc:  # noqa: BLE001
        common.check_error(exc)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "big" if flag & 2 else "little")
        for i, (key, size) in enumerate(wanted.items()):
            if "/" in key or ".." in key or not key:
                continue
            short = 1 if (flag & 1 and i == 0 and size) else 0
            zf.writestr(f"archive/data/{key}", bytes(range(256)) * (size // 256) + bytes(size % 256 - short
                        if size % 256 >= short else 0))
        zf.writestr("archive/version", "3\n")
    load_buffer(buf.getvalue(), _opts(tensors="numpy"))
    _check_imports()


def scanner(data: bytes) -> None:
    """``safeload.scan`` never raises, and agrees with ``load`` on whatever load reads."""
    import safeload
    from safeload._detect import COMPRESSED, detect
    from safeload._scan import scan

    report = scan(data, max_decompressed=64 << 20)
    code = report.exit_code
    if code not in (0, 1, 2, 3):
        raise common.ContractViolation(f"scan exit code {code}")
    kind = detect(data) if data else "empty"
    if len(data) >= 512 and data[257:262] == b"ustar":
        kind = "tar"  # the scanner opens any tar; load opens only torch's tar checkpoints
    if kind in ("pickle", "zip", "npy", "safetensors") and kind not in COMPRESSED:
        refusal = None
        try:
            safeload.loads(data, tensors="numpy",
                           policy=safeload.DEFAULT_POLICY.with_limits(max_alloc=64 << 20))
            loaded = True
        except Exception as exc:  # noqa: BLE001
            common.check_error(exc)
            loaded = False
            refusal = exc
        if refusal is not None and _unread_record(refusal):
            return  # the scanner checks record sizes but never reads tensor bytes (see SECURITY.md)
        text_skip = report.files and report.files[0].status == "skipped"
        if loaded and code != 0 and not text_skip:
            raise common.ContractViolation(f"load accepted what scan flagged (exit {code}): "
                                           f"{[f.message for f in report.findings][:3]}")
        if not loaded and code == 0 and not text_skip:
            raise common.ContractViolation("scan called clean what load refused")
    _check_imports()


def _unread_record(exc: BaseException) -> bool:
    """A refusal that only reading a torch storage record can find (its CRC-32): the scanner does not read them."""
    member = getattr(exc, "member", None) or ""
    return "fails its CRC-32 check" in str(exc) and "/data/" in member


STAGES = {
    "detect": detect,
    "zip": zip_reader,
    "torch": torch_container,
    "formats": formats,
    "vm": vm,
    "rebuild": rebuild,
    "scan": scanner,
}


def prime() -> None:
    """Import everything once, so that later imports are the input's doing."""
    for stage in STAGES.values():
        for sample in (b"", b"\x80\x02N.", b"\x00\x80\x02N."):
            try:
                stage(sample)
            except Exception:  # noqa: BLE001
                pass
    try:  # the scanner imports py7zr (and its own imports) when it meets a 7z archive: safeload's choice
        import py7zr

        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w") as archive:
            archive.writestr(b"\x80\x02N.", "a.pkl")
        scanner(buf.getvalue())
    except Exception:  # noqa: BLE001
        pass
    _known_modules.update(sys.modules)
