"""Every value a real checkpoint's pickle pushes, replaced by a value the file may legally build but that
misbehaves when compared: a two-element ndarray (``==`` is elementwise, its truth value raises), a list and a set
(cannot be hashed), a signalling-NaN Decimal (hashing and ``==`` raise), an int too long to convert to text (a
message that shows it raises ValueError), NaNs, a 0-d array, strings.

Contract: safeload.load (torch and numpy tensors, mmap, unknown="stub"), safeload.scan and
torch.load(pickle_module=safeload)
end in a result or a SafeLoadError that is not an InternalError. A rebuilder or container that compares a file's
value with a constant without checking its type first (``pid[0] != "storage"`` on an ndarray) is an internal
error here; the fuzz smoke in CI found the first such case (tests/test_fuzz_regressions.py) and this test
finds the rest of the kind deterministically: the rule is in safeload/_types.py, ``is_one_of``.

Streams: the pickles of the real samples (../shared/samples: torch zip data.pkl, megengine, paddle, mxnet, sklearn,
numpy pickles and object .npy), pickles of every builtin and numpy type safeload rebuilds, and checkpoints written
by torch.save here (sparse, quantized, nested, Parameter attributes, optimizer state) when torch is installed.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import fractions
import io
import os
import pathlib
import pickle
import pickletools
import struct
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

safeload = pytest.importorskip("safeload")
np = pytest.importorskip("numpy")

from samples_path import SAMPLES  # noqa: E402

_MEMO_BASE = 1_000_000  # memo slots of a spliced fragment: far above any slot the host pickle uses


def fragment(obj: Any) -> bytes:
    """``obj`` as protocol-2 opcodes without PROTO and STOP, its memo slots moved above the host's."""
    raw = pickletools.optimize(pickle.dumps(obj, protocol=2))
    ops = list(pickletools.genops(raw))
    out = bytearray()
    for i in range(1, len(ops) - 1):
        op, arg, pos = ops[i]
        if op.name in ("BINPUT", "LONG_BINPUT"):
            out += b"r" + struct.pack("<I", arg + _MEMO_BASE)
        elif op.name in ("BINGET", "LONG_BINGET"):
            out += b"j" + struct.pack("<I", arg + _MEMO_BASE)
        else:
            out += raw[pos : ops[i + 1][2]]
    return bytes(out)


HOSTILE = {
    "ndarray2": fragment(np.array([1, 2])),
    "ndarray_str": fragment(np.array(["a", "b"])),
    "ndarray_obj": fragment(np.array([None, 1], dtype=object)),
    "ndarray0": fragment(np.array(3)),
    "list": b"]K\x01a",
    "dict": b"}",
    "set": fragment({1}),
    "snan": fragment(decimal.Decimal("sNaN")),
    "nan": fragment(float("nan")),
    "npnan": fragment(np.float64("nan")),
    "bigint": fragment(2**70),
    "hugeint": fragment(2**16000),  # 4,817 digits: over CPython's limit on converting an int to text (4,300)
    "deep": fragment(((((((((((1,),),),),),),),),),)),
    "negint": fragment(-1),
    "bytes": fragment(b"xx"),
    "tuple": fragment((1, 2)),
    "none": b"N",
    "str": fragment("storage"),
    "stub": b"cunknown.module\nthing\n)R",  # a call of a global no policy allows: a Stub in unknown="stub" mode
}
#: opcodes that push one value: each is replaced in turn
_PUSH = {"BININT", "BININT1", "BININT2", "LONG1", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES",
         "SHORT_BINBYTES", "BINSTRING", "SHORT_BINSTRING", "NONE", "NEWTRUE", "NEWFALSE", "BINFLOAT", "EMPTY_TUPLE",
         "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "INT", "LONG", "FLOAT", "UNICODE", "STRING", "BINGET", "LONG_BINGET"}

Wrap = Callable[[bytes], bytes]
#: values replaced per stream at most (SAFELOAD_HOSTILE_POSITIONS=100000 replaces every one: about 6 minutes)
MAX_POSITIONS = int(os.environ.get("SAFELOAD_HOSTILE_POSITIONS", "120"))


def _unframed(raw: bytes) -> bytes:
    """The same pickle without FRAME opcodes (framing is optional: every unpickler reads the unframed stream)."""
    ops = list(pickletools.genops(raw))
    return b"".join(raw[pos : ops[i + 1][2] if i + 1 < len(ops) else len(raw)]
                    for i, (op, _arg, pos) in enumerate(ops) if op.name != "FRAME")


def _zip_wrap(data: bytes) -> tuple[bytes, Wrap]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
        members = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]

    def wrap(new: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for name, body in members:
                dst.writestr(name, new if name == pkl else body)
        return out.getvalue()

    return members[[n for n, _ in members].index(pkl)][1], wrap


def _sample_streams() -> Iterator[tuple[str, bytes, Wrap]]:
    for path in sorted((SAMPLES / "pytorch").glob("*.pt")):
        if zipfile.is_zipfile(path):
            yield (path.name, *_zip_wrap(path.read_bytes()))
    for pattern in ("megengine/*.pkl", "paddle/*.pdparams", "paddle/*.pdopt", "mxnet/*.pkl", "mxnet/*.states",
                    "joblib_sklearn/*.pkl", "numpy/*.pkl"):
        for path in sorted(SAMPLES.glob(pattern)):
            raw = path.read_bytes()
            try:
                last = list(pickletools.genops(raw))[-1]
            except Exception:  # noqa: BLE001 -- not a single pickle (pickletools cannot walk it): not a host
                continue
            if last[2] + 1 == len(raw):
                yield path.name, raw, lambda b: b
    for path in sorted((SAMPLES / "numpy").glob("*object*.npy")):
        raw = path.read_bytes()
        head = 10 + int.from_bytes(raw[8:10], "little") if raw[6] == 1 else 12 + int.from_bytes(raw[8:12], "little")
        yield path.name, raw[head:], lambda b, h=raw[:head]: h + b


def _made_streams() -> Iterator[tuple[str, bytes, Wrap]]:
    objs = {
        "builtins": [complex(1, 2), slice(1, 5, 2), range(1, 9, 2), bytearray(b"ab"), {1, 2}, frozenset({3}),
                     collections.OrderedDict(a=1), collections.defaultdict(list, {"a": [1]}),
                     collections.Counter(a=2), collections.deque([1, 2]), argparse.Namespace(lr=0.1, name="x"),
                     types.SimpleNamespace(a=1), datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
                     datetime.date(2020, 1, 1), datetime.time(1, 2), datetime.timedelta(days=1, seconds=3),
                     decimal.Decimal("1.5"), fractions.Fraction(1, 3), pathlib.PurePosixPath("/a/b"), 2**80],
        "numpy": [np.array([1.0, 2.0], dtype=">f4"), np.zeros((2, 3), order="F"),
                  np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), np.array(["2020-01-01"], dtype="M8[D]"),
                  np.array([1], dtype="m8[s]"), np.float32(1.5), np.int64(3), np.bool_(True),
                  np.array([b"ab"], dtype="S2"), np.array(["ab"], dtype="U2"), np.dtype("f8"),
                  np.array([1, None], dtype=object), np.complex64(1j), np.array([[1, 2]], dtype="u2")[:, ::-1]],
    }
    for name, obj in objs.items():
        for proto in (2, 4):
            yield f"{name}-p{proto}", pickle.dumps(obj, protocol=proto), lambda b: b
    try:
        import torch
    except ImportError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's beta and deprecation notices for sparse CSR and quantized tensors
        t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
        square = torch.arange(16.0).reshape(4, 4)
        param = torch.nn.Parameter(torch.ones(2))
        param.note = "x"  # type: ignore[attr-defined]
        made = {
            "torch-basic": {"a": t, "b": t[:, 1], "p": torch.nn.Parameter(t.clone()), "bf": t.to(torch.bfloat16),
                            "i": torch.tensor([1, 2], dtype=torch.int8), "size": torch.Size([2, 3]),
                            "dtype": torch.float16, "dev": torch.device("cpu"), "layout": torch.strided,
                            "conj": torch.tensor([1 + 1j]).conj(), "neg": torch._neg_view(torch.tensor([1.0]))},
            "torch-sparse": {"coo": t.to_sparse(), "csr": t.to_sparse_csr(), "csc": t.to_sparse_csc(),
                             "bsr": square.to_sparse_bsr((2, 2)), "bsc": square.to_sparse_bsc((2, 2))},
            "torch-quantized": {"q": torch.quantize_per_tensor(t, 0.1, 3, torch.quint8),
                                "qc": torch.quantize_per_channel(t, torch.tensor([0.1, 0.2]), torch.tensor([1, 2]), 0,
                                                                 torch.qint8)},
            "torch-nested": {"nt": torch.nested.nested_tensor([torch.arange(3.0), torch.arange(2.0)],
                                                              layout=torch.jagged)},
            "torch-adam": torch.optim.Adam([torch.nn.Parameter(torch.ones(2))]).state_dict(),
            "torch-attrs": {"p": param},
        }
        for name, obj in made.items():
            buf = io.BytesIO()
            torch.save(obj, buf)
            yield (name, *_zip_wrap(buf.getvalue()))


STREAMS = [(name, _unframed(raw), wrap) for name, raw, wrap in [*_sample_streams(), *_made_streams()]]


def _readers(data: bytes) -> list[Callable[[], Any]]:
    readers: list[Callable[[], Any]] = [lambda: safeload.loads(data), lambda: safeload.loads(data, tensors="numpy"),
                                        lambda: safeload.scan(data), lambda: safeload.loads(data, unknown="stub")]
    if data[:2] == b"PK":
        readers.append(lambda: safeload.loads(data, mmap=True))
    return readers


def _torch_pickle_module(data: bytes) -> None:
    """torch.load driving safeload's Unpickler: torch's own errors on a file safeload accepts are torch's."""
    import torch

    try:
        torch.load(io.BytesIO(data), pickle_module=safeload, weights_only=False)
    except safeload.SafeLoadError:
        raise
    except Exception:  # noqa: BLE001 -- torch's own checks after safeload handed it a checked object
        pass


def _internal(exc: BaseException) -> bool:
    return isinstance(exc, safeload.InternalError) or not isinstance(exc, safeload.SafeLoadError)


def _substitutions(raw: bytes) -> Iterator[tuple[int, str, str, bytes]]:
    """(opcode index, opcode, hostile name, mutated pickle): the two-element ndarray at every pushed value (the
    kind that finds most), and one other hostile value per position, in rotation."""
    ops = list(pickletools.genops(raw))
    others = [n for n in HOSTILE if n != "ndarray2"]
    pushes = [i for i, (op, _arg, _pos) in enumerate(ops) if op.name in _PUSH]
    step = -(-len(pushes) // MAX_POSITIONS)  # the long pickles: every step-th value (the kinds repeat)
    for i in pushes[::step]:
        op, _arg, pos = ops[i]
        end = ops[i + 1][2]
        for name in ("ndarray2", others[i % len(others)]):
            yield i, op.name, name, raw[:pos] + HOSTILE[name] + raw[end:]


@pytest.mark.parametrize("stream", STREAMS, ids=[s[0] for s in STREAMS])
def test_hostile_value_at_every_position_is_never_an_internal_error(stream: tuple[str, bytes, Wrap]) -> None:
    name, raw, wrap = stream
    has_torch = False
    try:
        import torch  # noqa: F401

        has_torch = True
    except ImportError:
        pass
    failures = []
    count = 0
    for index, opname, hostile, mutated in _substitutions(raw):
        data = wrap(mutated)
        readers = _readers(data)
        if has_torch and data[:2] == b"PK":
            readers.append(lambda d=data: _torch_pickle_module(d))
        for read in readers:
            count += 1
            try:
                read()
            except BaseException as exc:  # noqa: BLE001
                if _internal(exc):
                    failures.append(f"opcode {index} ({opname}) <- {hostile}: {type(exc).__name__}: {str(exc)[:300]}")
    assert count > 0, f"{name}: no value to replace"
    assert not failures, f"{name}: {len(failures)} of {count} reads:\n" + "\n".join(failures[:10])


def test_hostile_value_kinds_misbehave_as_described() -> None:
    """The values are hostile for the reasons the module says: if numpy or decimal changed, this test would."""
    with pytest.raises(ValueError):
        bool(np.array([1, 2]) == "storage")
    with pytest.raises(TypeError):
        hash(decimal.Decimal("sNaN"))
    with pytest.raises(TypeError):
        hash([1])
    for name, frag in HOSTILE.items():  # each fragment alone is a well-formed pickle of one value
        assert list(pickletools.genops(b"\x80\x02" + frag + b"."))[-1][0].name == "STOP"
        if name != "stub":  # (the stub's global is one that CPython would import)
            pickle.loads(b"\x80\x02" + frag + b".")


def test_an_int_too_long_for_text_is_a_limit_where_it_is_shown_and_data_elsewhere() -> None:
    """A 4,817-digit int is plain data (CPython's pickle reads it, and so does safeload); where a rebuilder checks it
    or a message shows it, CPython's int-to-text limit is hit, and the file is refused as over that limit."""
    huge = 2**16000
    assert safeload.loads(pickle.dumps({"n": huge}, protocol=2)) == {"n": huge}
    splice = b"\x80\x02c_codecs\nencode\n(X\x01\x00\x00\x00a" + HOSTILE["hugeint"] + b"tR."  # encode('a', <huge>)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(splice)
    assert info.value.limit == "int_max_str_digits" and not isinstance(info.value, safeload.InternalError)
    assert "digits" in str(info.value)
