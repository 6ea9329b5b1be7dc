"""The differential oracle applied to the attacks of issue 10 (tests/corpus_attacks.py) and to the whole corpus.

For every attack: (a) it is live, i.e. its native loaders really create the oracle's marker (proved here, in capped
children, by tests/oracle.py); (b) ``safeload.load`` refuses it, with torch tensors and with numpy tensors; (c)
``safeload scan`` of the file (or of the folder, for the folder cases) does not exit 0. An attack with no native
loader is an agreement case: load refuses it, so the scan must not call it clean.

Then every case of tests/corpus.py and tests/corpus_containers.py goes through the oracle's property: scan exit 0
or load accepting => no native loader runs the payload (safeload's verdict first, the natives when it accepts), and
the corpus pickles marked live are proved live. Liveness of an attack is computed once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import corpus
import corpus_attacks
import corpus_containers
import oracle
import safeload
from safeload._detect import detect
from safeload._scan import sniff

_built: dict[str, tuple[Path, Path, list[str]]] = {}
_unbuildable: dict[str, str] = {}  # attacks whose real base file needs a framework this Python lacks


@pytest.fixture(scope="module")
def attack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attacks")


def built(name: str, folder: Path) -> tuple[Path, Path, list[str]]:
    """(target, scan path, loaders that run the payload), once per session."""
    if name in _unbuildable:
        pytest.skip(_unbuildable[name])
    if name not in _built:
        attack = corpus_attacks.BY_NAME[name]
        where = folder / name
        where.mkdir(exist_ok=True)
        try:
            target, scan_path = attack.build(where)
        except ModuleNotFoundError as exc:  # torch or joblib writes the real file this attack is built around
            _unbuildable[name] = f"{name}: {exc.name} is not installed"
            pytest.skip(_unbuildable[name])
        hits = oracle.live(target, attack.loaders) if attack.loaders else []
        _built[name] = (target, scan_path, hits)
    return _built[name]


NAMES = [a.name for a in corpus_attacks.ATTACKS]
LIVE_NAMES = [a.name for a in corpus_attacks.ATTACKS if a.loaders]


def test_every_class_has_several_cases() -> None:
    for cls in range(1, 9):
        cases = [a for a in corpus_attacks.ATTACKS if a.cls == cls]
        assert len(cases) >= 2, f"class {cls} has {len(cases)} case(s)"
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("name", LIVE_NAMES)
def test_attack_is_live(name: str, attack_dir: Path) -> None:
    attack = corpus_attacks.BY_NAME[name]
    _target, _scan, hits = built(name, attack_dir)
    assert sorted(hits) == sorted(l for l in attack.loaders if oracle.available(l)), (
        f"{name}: the payload ran under {hits}, expected {attack.loaders}")


@pytest.mark.parametrize("tensors", ["auto", "numpy"])
@pytest.mark.parametrize("name", NAMES)
def test_attack_refused_by_load(name: str, tensors: str, attack_dir: Path) -> None:
    target, _scan, _hits = built(name, attack_dir)
    with pytest.raises(safeload.SafeLoadError) as info:
        safeload.load(str(target), tensors=tensors)
    assert "Internal error" not in str(info.value), f"{name}: {info.value}"


@pytest.mark.parametrize("name", NAMES)
def test_attack_flagged_by_scan(name: str, attack_dir: Path) -> None:
    target, scan_path, hits = built(name, attack_dir)
    report = safeload.scan(str(scan_path))
    assert report.exit_code != 0, (
        f"{name}: scan of {scan_path.name} exits 0 ({report.summary()}) while {hits or 'load refuses it'}")


def test_marker_needs_the_payload(tmp_path: Path) -> None:
    """The oracle can tell: the same real file without the payload runs nothing."""
    import numpy as np

    clean = tmp_path / "clean.npy"
    np.save(clean, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert oracle.live(clean, ("numpy",)) == []
    evil = tmp_path / "evil.npy"
    evil.write_bytes(corpus_attacks.npy_object(oracle.payload(2)))
    assert oracle.live(evil, ("numpy",)) == ["numpy"]


# ---- the whole corpus through the oracle ---------------------------------------------------------------------------

def _loaders_for(data: bytes) -> tuple[str, ...]:
    """The native loaders that matter for a file of this kind (each child costs a second or more)."""
    kind = sniff(data)
    if kind == "zip":
        return ("zipfile", "unzip")
    if kind == "tar":
        return ("tarfile",)
    if kind == "npy":
        return ("numpy",)
    if kind in {"gzip", "bz2", "xz", "lzma", "zstd"}:
        return ("decompress",)
    if kind in {"pickle", "unknown", "zlib"}:
        return ("pickle",)
    return ()


CORPUS_FILES = ([(f"corpus:{c.name}", c.data, c.real and not c.extensions and not any(m.startswith("torch")
                                                                                   for m in c.imports))
                 for c in corpus.CORPUS]
                + [(f"containers:{c.name}", c.data, c.proof is not None) for c in corpus_containers.CONTAINER_CORPUS])


@pytest.mark.parametrize("name,data,real", CORPUS_FILES, ids=[n for n, _d, _r in CORPUS_FILES])
def test_corpus_through_oracle(name: str, data: bytes, real: bool, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    loaders = _loaders_for(data)
    if not loaders:
        pytest.skip(f"no native loader of the oracle reads a {sniff(data)} file")
    # the corpus payloads run `touch MARKER` (tests/corpus.py): the oracle looks for that name
    monkeypatch.setattr(oracle, "MARKER", corpus.MARKER)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    code, accepted = oracle.safeload_verdict(path)
    if real and detect(data) == "pickle":  # a pickle the corpus marks live (not one that imports torch: slow)
        assert oracle.live(path, loaders), f"{name} is marked live but no native loader ran it"
    if code == 0 or accepted:  # safeload accepts: the natives are the judge (oracle.check, its verdict reused)
        hits = oracle.live(path, loaders)
        assert not hits, f"{name}: scan exit {code}, load accepts={accepted}, but {hits} run the payload"


def test_oracle_sees_a_corpus_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus check above can fail: a live corpus payload is seen by the oracle."""
    monkeypatch.setattr(oracle, "MARKER", corpus.MARKER)
    path = tmp_path / "evil.pkl"
    path.write_bytes(corpus_containers.EVIL2)
    assert oracle.live(path, ("pickle",)) == ["pickle"]
    assert os.path.exists(path)
