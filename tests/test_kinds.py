"""safeload._kinds.classify: real files of each kind found on this machine (images, shared libraries, scipy's
audio, MATLAB and IDL test files, the Keras and safetensors samples) are recognised with a reason; hand-built
minimal files of the formats no installed library writes (GGUF, ONNX, TFLite, PDF, WOFF2, PE, LFS pointers); and
polyglots that a native loader would act on (a pickle behind a GIF or GGUF magic, a zip appended to a PNG) are
never classified, which the oracle proves by running the real loaders."""

from __future__ import annotations

import io
import struct
import sysconfig
import zipfile
from pathlib import Path

import pytest
from samples_path import SAMPLES

import oracle
from safeload._kinds import CODE_KINDS, MODEL_KINDS, OTHER_KINDS, classify

ROOTS = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["stdlib"])]


def _find(pattern: str, limit: int = 20) -> list[Path]:
    found: list[Path] = []
    for root in ROOTS:
        for path in root.rglob(pattern):
            if path.is_file() and 0 < path.stat().st_size < 4 << 20:
                found.append(path)
                if len(found) >= limit:
                    return found
    return found


@pytest.mark.parametrize("pattern, kinds", [
    ("*.png", {"png"}), ("*.jpg", {"jpeg"}), ("*.gif", {"gif"}), ("*.so", {"elf"}), ("*.wav", {"wav"}),
    ("*_7.1_GLNX86.mat", {"matlab"}), ("*.sav", {"idl-sav"}),
])
def test_real_files_found_here(pattern: str, kinds: set[str]) -> None:
    files = _find(pattern)
    if not files:
        pytest.skip(f"no {pattern} file in this Python installation")
    got = {path.name: classify(path.read_bytes()) for path in files}
    assert all(r is not None and r[0] in kinds for r in got.values()), got
    assert all(r is not None and r[1] for r in got.values())


@pytest.mark.skipif(not (SAMPLES / "tensorflow_keras").is_dir(), reason="samples not found")
def test_samples() -> None:
    assert classify((SAMPLES / "tensorflow_keras" / "only.weights.h5").read_bytes())[0] == "hdf5"  # type: ignore[index]
    lam = classify((SAMPLES / "tensorflow_keras" / "model_with_lambda_legacy.h5").read_bytes())
    assert lam is not None and lam[0] == "keras-lambda" and "safe_mode=False" in lam[1]
    st = classify((SAMPLES / "mindspore" / "dense_with_adam.safetensors").read_bytes())
    assert st is not None and st[0] == "safetensors"
    for path in [*(SAMPLES / "pytorch").glob("*.pt"), *(SAMPLES / "joblib_sklearn").glob("*.pkl"),
                 SAMPLES / "tensorflow_keras" / "model_with_lambda.keras"]:
        assert classify(path.read_bytes()) is None, path  # pickles and zips are scanned, never classified


def _pb_varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([n & 0x7F | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _pb(field: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _pb_varint(field << 3) + _pb_varint(value)
    return _pb_varint(field << 3 | 2) + _pb_varint(len(value)) + value


def _gguf() -> bytes:  # GGUF v3: magic, version, tensor count, kv count, one kv (string)
    key, val = b"general.architecture", b"llama"
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
            + struct.pack("<Q", len(val)) + val)


def _onnx() -> bytes:  # ModelProto: ir_version 8, producer_name, graph {name}, opset_import {version 17}
    return _pb(1, 8) + _pb(2, b"pytorch") + _pb(3, b"2.1") + _pb(7, _pb(2, b"main_graph")) + _pb(8, _pb(2, 17))


def _pe() -> bytes:
    dos = bytearray(b"MZ" + b"\x00" * 62)
    struct.pack_into("<I", dos, 60, 64)
    return bytes(dos) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 18


HAND_BUILT = {
    "gguf": _gguf(), "onnx": _onnx(),
    "tflite": struct.pack("<I", 16) + b"TFL3" + b"\x00" * 24,
    "pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    "woff2": b"wOF2" + b"\x00\x01\x00\x00" + b"\x00" * 40,
    "pe": _pe(),
    "lfs-pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 123\n",
}


@pytest.mark.parametrize("kind", sorted(HAND_BUILT))
def test_hand_built(kind: str) -> None:
    got = classify(HAND_BUILT[kind])
    assert got is not None and got[0] == kind and got[1] == {**MODEL_KINDS, **OTHER_KINDS}[kind]


@pytest.mark.parametrize("data", [b"class Net:\n    pass\n", b"\x08\x07garbage-not-onnx-at-all", b"GGU",
                                  b"\x80\x04\x95" + b"\x00" * 20, b"", b"PK\x03\x04" + b"\x00" * 40])
def test_not_classified(data: bytes) -> None:
    assert classify(data) is None


def _zip_with(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, content)
    return buf.getvalue()


POLYGLOTS = {
    # GIF89a: 'G' is BINFLOAT (8 bytes), then the pickle runs
    "gif+pickle": (b"GIF89a\x01\x00" + b"0" + oracle.payload(0), ("pickle",)),
    # GGUF v3: 'G' BINFLOAT eats "GUF" + the version, then POP and the pickle
    "gguf+pickle": (b"GGUF\x03\x00\x00\x00\x00" + b"0" + oracle.payload(0), ("pickle",)),
    # a PNG with a zip appended: zipfile and unzip find the archive at the end
    "png+zip": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32 + _zip_with("model.pkl", oracle.payload(2)), ("zipfile",)),
}


@pytest.mark.parametrize("name", sorted(POLYGLOTS))
def test_polyglots_are_live_and_never_classified(name: str, tmp_path: Path) -> None:
    data, loaders = POLYGLOTS[name]
    path = tmp_path / name
    path.write_bytes(data)
    assert set(loaders) <= set(oracle.live(path, loaders)), f"{name} is not live under {loaders}"
    assert classify(data) is None


def test_reasons_and_kinds_are_disjoint() -> None:
    assert not (set(MODEL_KINDS) & set(OTHER_KINDS) or set(CODE_KINDS) & (set(MODEL_KINDS) | set(OTHER_KINDS)))
    assert all(reason and "\n" not in reason for reason in {**MODEL_KINDS, **CODE_KINDS, **OTHER_KINDS}.values())


def test_a_source_that_starts_like_a_protobuf_value_is_text_not_a_mindspore_checkpoint(tmp_path: Path) -> None:
    """``\\n#\\n#`` is a length-delimited field 1 holding a field 1 to a protobuf reader: CPython's own
    curses/has_key.py begins so. Only a file whose every top-level field is a Value reads as MindSpore."""
    import safeload
    from safeload._detect import detect

    source = b"\n#\n# Emulation of has_key() function for platforms that don't use ncurses\n#\n\nimport _curses\n"
    assert detect(source) != "mindspore"
    path = tmp_path / "has_key.py"
    path.write_bytes(source)
    report = safeload.scan(str(path))
    assert report.exit_code != 2 and report.files[0].status == "skipped", report.to_dict()
