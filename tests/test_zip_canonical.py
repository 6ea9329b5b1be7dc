"""The canonical zip reader (safeload/_containers/zip.py): a zip is read the one way CPython's ``zipfile``
(``numpy.load``), miniz (``torch.load``) and Info-ZIP ``unzip`` all read it, or refused.

Every attack is built around a real file written here by ``torch.save`` / ``numpy.savez`` / ``zipfile``, with a
payload that only creates the oracle's marker file (tests/oracle.py). Where a native loader reads the file
differently from safeload, the oracle first proves the payload live under it; then ``safeload.load`` must raise a
``FormatError`` that names where (offset or member) and ``safeload.scan`` must not exit 0. Files the real writers
produce (zip64 included) must still load, and give what the native loaders give.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

import oracle

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
safeload = pytest.importorskip("safeload")
from safeload import FormatError  # noqa: E402
from safeload._containers.zip import ZipArchive  # noqa: E402

# the attacks write duplicate names on purpose; CPython's writer warns about each
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


# ---------------------------------------------------------------------------------------------------- builders

def torch_file(obj: object = None, **kw: object) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(4.0), "n": torch.ones(2, 3, dtype=torch.int64)} if obj is None else obj, buf, **kw)
    return buf.getvalue()


def npz_file(compressed: bool = False, **arrays: object) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **(arrays or {"x": np.arange(6.0), "y": np.eye(2)}))
    return buf.getvalue()


def evil_npy() -> bytes:
    """An object-array .npy whose pickle is the oracle's payload: ``np.load(allow_pickle=True)`` runs it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buf.getvalue() + oracle.payload(2)


EVIL_TORCH = [("archive/data.pkl", oracle.payload(2)), ("archive/version", b"3\n"), ("archive/byteorder", b"little")]


def append_archive(prefix: bytes, members: list[tuple[str, bytes]]) -> bytes:
    """``prefix`` followed by a complete archive whose offsets count from byte 0 of the whole file (CPython's
    append mode on a file that is not a zip writes it so; miniz needs absolute offsets)."""
    buf = io.BytesIO(b"\0" * len(prefix))
    with zipfile.ZipFile(buf, "a") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return prefix + buf.getvalue()[len(prefix):]


def add_members(base: bytes, members: list[tuple[str, bytes]]) -> bytes:
    """``base`` with more members, written by CPython's append mode (its old members' headers kept as they are)."""
    buf = io.BytesIO(base)
    with zipfile.ZipFile(buf, "a") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def zip_of(members: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def eocd_at(data: bytes) -> int:
    return data.rfind(b"PK\x05\x06")


def central_at(data: bytes, name: bytes) -> int:
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + nlen] == name:
            return pos
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"no central entry {name!r}")


def local_at(data: bytes, name: bytes) -> int:
    return struct.unpack_from("<I", data, central_at(data, name) + 42)[0]


def put(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path, match: str) -> FormatError:
    """``safeload.load`` raises a FormatError naming where; ``safeload.scan`` does not exit 0."""
    with pytest.raises(FormatError, match=match) as info:
        safeload.load(str(path), tensors="numpy")
    err = info.value
    assert err.offset is not None or err.member is not None, str(err)
    assert err.fix, str(err)
    assert safeload.scan(str(path)).exit_code != 0
    return err


def assert_live(path: Path, loaders: tuple[str, ...]) -> None:
    """The oracle: every one of ``loaders`` that this machine has runs the payload (creates the marker). With none
    of them here (no unzip), the refusal is still tested, without the proof."""
    want = {loader for loader in loaders if oracle.available(loader)}
    if not want:
        return
    hits = set(oracle.live(path, tuple(want)))
    assert want <= hits, f"payload not live under {sorted(want - hits)} (live under {sorted(hits)})"


# ---------------------------------------------------------------------------- rule 1: one end record, at the end

def hide_in_comment(outer: bytes, members: list[tuple[str, bytes]]) -> bytes:
    """A second, complete archive after ``outer``'s end record, inside its comment, plus one trailing byte: the
    outer comment length still reaches exactly the end of the file, the inner end record does not."""
    eocd = eocd_at(outer)
    assert outer[eocd + 20 : eocd + 22] == b"\0\0"
    whole = append_archive(outer, members) + b"\0"
    return put(whole, eocd + 20, "<H", len(whole) - (eocd + 22))


def test_archive_hidden_in_the_comment_of_a_torch_file(tmp_path: Path) -> None:
    outer = torch_file()
    path = write(tmp_path, "model.pt", hide_in_comment(outer, EVIL_TORCH))
    assert_live(path, ("torch", "zipfile", "unzip"))
    err = refused(path, "second zip end-of-central-directory signature after the end record")
    assert err.offset is not None and err.offset > len(outer)


def test_archive_hidden_in_the_comment_of_an_npz(tmp_path: Path) -> None:
    path = write(tmp_path, "arrays.npz", hide_in_comment(npz_file(), [("x.npy", evil_npy())]))
    assert_live(path, ("numpy",))
    refused(path, "second zip end-of-central-directory signature after the end record")


def test_hidden_archive_whose_comment_ends_the_file_exactly(tmp_path: Path) -> None:
    """Without the trailing byte both end records end the file; still two signatures."""
    outer = torch_file()
    whole = append_archive(outer, EVIL_TORCH)
    eocd = eocd_at(outer)
    path = write(tmp_path, "model.pt", put(whole, eocd + 20, "<H", len(whole) - (eocd + 22)))
    assert_live(path, ("torch",))
    refused(path, "Several zip end-of-central-directory records end the file|Unexplained bytes")


def test_end_signature_in_member_data_is_read_as_natives_read_it(tmp_path: Path) -> None:
    """A signature before the end record (a stored zip inside a member) is passed over by every native reader,
    which takes the last one: the archive is read, and reads as CPython reads it."""
    inner = zip_of([("notes.txt", b"plain")])
    data = zip_of([("x.npy", npz_member(np.arange(4))), ("inner.zip", inner)])
    assert data.count(b"PK\x05\x06") == 2
    zf = ZipArchive(data)
    with zipfile.ZipFile(io.BytesIO(data)) as native:
        assert list(zf.members) == native.namelist()
        assert zf.read("inner.zip") == native.read("inner.zip") == inner


def test_signature_inside_the_end_record_with_a_comment(tmp_path: Path) -> None:
    """A signature among the end record's own fields, then a comment: CPython and miniz read the record that
    starts at that later signature, not the real one."""
    data = npz_file()
    eocd = eocd_at(data)
    data = put(data, eocd + 12, "<4s", b"PK\x05\x06")  # the directory size field spells a signature
    data = put(data, eocd + 20, "<H", 30) + bytes(30)
    refused(write(tmp_path, "a.npz", data), "after the end record")


@pytest.mark.parametrize("delta", [-1, 1])
def test_comment_length_must_reach_the_end_of_the_file(tmp_path: Path, delta: int) -> None:
    data = torch_file()
    eocd = eocd_at(data)
    if delta < 0:
        data = put(data + b"\0", eocd + 20, "<H", 0)  # one byte after a comment-less end record
    else:
        data = put(data, eocd + 20, "<H", 1)  # a comment length past the end of the file
    refused(write(tmp_path, "m.pt", data), "does not end the file")


# --------------------------------------------------------------------------------------------- rule 2: zip64

def zip64_end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)


def test_zip64_record_before_the_locator_is_what_numpy_reads(tmp_path: Path) -> None:
    """A real torch file keeps its zip64 end record (where its locator points: miniz and the old reader follow it);
    a second archive and a second zip64 record are placed right before the locator, where CPython reads it."""
    base = torch_file()
    loc = base.rfind(b"PK\x06\x07")
    assert struct.unpack_from("<Q", base, loc + 8)[0] == loc - 56  # torch writes it adjacent
    body = append_archive(base[:loc], [("x.npy", evil_npy())])[loc:]
    eocd = eocd_at(body)
    count, cd_size, cd_offset = struct.unpack_from("<HII", body, eocd + 10)
    data = base[:loc] + body[:eocd] + zip64_end_record(count, cd_size, cd_offset) + base[loc:]
    path = write(tmp_path, "model.pt", data)
    assert_live(path, ("numpy",))
    refused(path, "locator does not point at a zip64 end record right before it")


def _torch_zip64(data: bytes) -> tuple[int, int]:
    loc = data.rfind(b"PK\x06\x07")
    return loc - 56, loc


def test_zip64_record_with_extensible_data(tmp_path: Path) -> None:
    data = torch_file()
    record, _ = _torch_zip64(data)
    refused(write(tmp_path, "m.pt", put(data, record + 4, "<Q", 52)), "declares 52 bytes instead of 44")


@pytest.mark.parametrize("field,offset,fmt", [("entries", 32, "<Q"), ("directory size", 40, "<Q"),
                                              ("directory offset", 48, "<Q")])
def test_zip64_and_32_bit_end_records_must_agree(tmp_path: Path, field: str, offset: int, fmt: str) -> None:
    data = torch_file()
    record, _ = _torch_zip64(data)
    value = struct.unpack_from(fmt, data, record + offset)[0]
    data = put(data, record + offset, fmt, value + 1)
    if field == "entries":
        data = put(data, record + 24, "<Q", value + 1)  # entries on this disk too
    refused(write(tmp_path, "m.pt", data), f"disagree on the {field}")


def test_zip64_entries_on_this_disk_must_equal_the_total(tmp_path: Path) -> None:
    data = torch_file()
    record, _ = _torch_zip64(data)
    value = struct.unpack_from("<Q", data, record + 24)[0]
    data = put(data, record + 24, "<Q", value - 1)
    data = put(data, eocd_at(data) + 8, "<H", 0xFFFF)  # the 32-bit field says "see zip64"
    refused(write(tmp_path, "m.pt", data), "entries on this disk")


def test_zip64_locator_names_one_disk(tmp_path: Path) -> None:
    data = torch_file()
    _, loc = _torch_zip64(data)
    refused(write(tmp_path, "m.pt", put(data, loc + 16, "<I", 2)), "Multi-disk")


def test_sentinels_without_a_zip64_locator(tmp_path: Path) -> None:
    data = npz_file()
    refused(write(tmp_path, "a.npz", put(data, eocd_at(data) + 12, "<I", 0xFFFFFFFF)), "zip64 .*locator is missing")


# ---------------------------------------------------------------------------------------------- rule 3: names

def case_variant_file(variant: str) -> bytes:
    """A real torch file plus a payload member whose name differs from ``archive/data.pkl`` only in case. miniz
    finds a name by binary search over the case-folded sorted directory, so which of the two equal names it lands
    on depends on the other names: like an attacker, add filler members until it lands on the payload (probed
    with ``weights_only=True``, which refuses the payload's global instead of running it)."""
    base = torch_file()
    for fill in range(12):
        data = add_members(base, [(f"archive/extra{i}", b"x") for i in range(fill)] + [(variant, oracle.payload(2))])
        try:
            torch.load(io.BytesIO(data), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - the probe only looks for the refused global
            if "open" in str(exc):
                return data
    raise AssertionError("miniz never lands on the payload member")


@pytest.mark.parametrize("variant", ["archive/DATA.PKL", "archive/Data.pkl"])
def test_member_name_differing_only_in_case_runs_under_torch(tmp_path: Path, variant: str) -> None:
    path = write(tmp_path, "model.pt", case_variant_file(variant))
    assert_live(path, ("torch",))
    err = refused(path, "Duplicate zip member")
    assert err.member == variant


@pytest.mark.parametrize("variant", ["archive//data.pkl", "archive/./data.pkl", "./archive/data.pkl"])
def test_member_names_equal_after_normalisation(tmp_path: Path, variant: str) -> None:
    """unzip extracts ``a//b``, ``a/./b`` and ``./a/b`` to ``a/b``, the later member winning: the payload lands on
    disk as ``archive/data.pkl`` in place of the real one."""
    path = write(tmp_path, "model.pt", add_members(torch_file(), [(variant, oracle.payload(2))]))
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-o", "-qq", str(path), "-d", str(tmp_path / "x")], check=False, capture_output=True)
        assert (tmp_path / "x" / "archive" / "data.pkl").read_bytes() == oracle.payload(2)
        assert_live(path, ("unzip",))
    err = refused(path, "Duplicate zip member")
    assert err.member == variant


def test_member_name_differing_only_in_case_of_the_prefix(tmp_path: Path) -> None:
    path = write(tmp_path, "model.pt", add_members(torch_file(), [("ARCHIVE/data.pkl", oracle.payload(2))]))
    refused(path, "Duplicate zip member")


def test_npz_keys_differing_only_in_case_are_refused_with_a_fix(tmp_path: Path) -> None:
    """The price of the rule: a real ``np.savez`` with keys ``w`` and ``W`` (two members to CPython, one path on a
    case-insensitive file system, one name to miniz) is refused, and the error says how to save it again."""
    buf = io.BytesIO()
    np.savez(buf, w=np.ones(2), W=np.zeros(2))
    path = write(tmp_path, "a.npz", buf.getvalue())
    assert sorted(np.load(path).files) == ["W", "w"]
    err = refused(path, "Duplicate zip member 'W.npy' \\(same as 'w.npy'\\)")
    assert "differ in more than case" in err.fix


def _rename_raw(data: bytes, old: bytes, new: bytes, utf8: bool | None = None) -> bytes:
    """Replace a member's raw name bytes (same length) in its local header and central entry."""
    assert len(old) == len(new)
    cen = central_at(data, old)
    loc = local_at(data, old)
    out = bytearray(data)
    out[cen + 46 : cen + 46 + len(old)] = new
    out[loc + 30 : loc + 30 + len(old)] = new
    if utf8 is not None:
        for flag_at in (cen + 8, loc + 6):
            flags = struct.unpack_from("<H", out, flag_at)[0]
            struct.pack_into("<H", out, flag_at, (flags | 0x800) if utf8 else (flags & ~0x800))
    return bytes(out)


def test_two_raw_names_that_decode_equal(tmp_path: Path) -> None:
    """``b'\\x82.npy'`` (cp437) and ``'é.npy'`` in UTF-8 are one name to CPython (the later wins) and two to miniz.
    A non-ASCII name without the UTF-8 flag is refused before the two are compared."""
    data = zip_of([("\u00e9.npy", evil_npy()), ("X.npy", npz_member(np.arange(3)))])
    data = _rename_raw(data, b"X.npy", b"\x82.npy", utf8=False)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert [i.filename for i in zf.infolist()] == ["\u00e9.npy", "\u00e9.npy"]
    err = refused(write(tmp_path, "a.npz", data), "neither ASCII nor flagged UTF-8")
    assert err.offset is not None


def test_one_raw_name_that_decodes_two_ways(tmp_path: Path) -> None:
    """The same raw bytes with and without the UTF-8 flag: two names to CPython, one to miniz."""
    data = zip_of([("\u00e9.npy", npz_member(np.arange(3))), ("XY.npy", evil_npy())])
    data = _rename_raw(data, b"XY.npy", "\u00e9.npy".encode(), utf8=False)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len({i.filename for i in zf.infolist()}) == 2
    refused(write(tmp_path, "a.npz", data), "neither ASCII nor flagged UTF-8")


def test_names_equal_after_unicode_normalisation(tmp_path: Path) -> None:
    """``é`` precomposed and decomposed (both UTF-8 flagged): two raw names to CPython and miniz, one file on a
    file system that normalises names (macOS), where unzip's later member replaces the earlier."""
    data = zip_of([("\u00e9.npy", npz_member(np.arange(3))), ("e\u0301.npy", evil_npy())])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.namelist()) == 2
    err = refused(write(tmp_path, "a.npz", data), "Duplicate zip member")
    assert err.member == "e\u0301.npy"


def test_local_name_flag_must_match_the_central_entry(tmp_path: Path) -> None:
    data = zip_of([("\u00e9.npy", npz_member(np.arange(3)))])
    loc = local_at(data, "\u00e9.npy".encode())
    data = put(data, loc + 6, "<H", 0)  # local header now says cp437
    refused(write(tmp_path, "a.npz", data), "local header disagrees")


def npz_member(array: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def unicode_path_field(header_name: bytes, path: str) -> bytes:
    body = b"\x01" + struct.pack("<I", zlib.crc32(header_name)) + path.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


def test_info_zip_unicode_path_field_is_refused(tmp_path: Path) -> None:
    """unzip extracts a member under the name in its Unicode Path field: ``archive/notes`` lands on disk as
    ``archive/data.pkl``, replacing the real one."""
    info = zipfile.ZipInfo("archive/notes")
    info.extra = unicode_path_field(b"archive/notes", "archive/data.pkl")
    buf = io.BytesIO(torch_file())
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(info, oracle.payload(2))
    path = write(tmp_path, "model.pt", buf.getvalue())
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-o", "-qq", str(path), "-d", str(tmp_path / "x")], check=False, capture_output=True)
        assert (tmp_path / "x" / "archive" / "data.pkl").read_bytes() == oracle.payload(2)
        assert not (tmp_path / "x" / "archive" / "notes").exists()
        assert_live(path, ("unzip",))
    err = refused(path, "Unicode Path")
    assert err.member == "archive/notes"


# ---------------------------------------------------------------------------------------- rule 4: extra fields

def test_torch_writer_extra_fields_are_its_padding_only() -> None:
    """What torch 2.x really writes: an ``FB`` field of ``Z`` bytes in each local header, none in the directory."""
    data = torch_file()
    zf = ZipArchive(data)
    for name, member in zf.members.items():
        nlen, elen = struct.unpack_from("<HH", data, member.header_offset + 26)
        extra = data[member.header_offset + 30 + nlen : member.header_offset + 30 + nlen + elen]
        assert extra[:2] == b"FB" and struct.unpack_from("<H", extra, 2)[0] == elen - 4, name
        assert set(extra[4:]) <= {ord("Z")}, name
        assert member.flags & 0x8  # sizes in a data descriptor
        assert struct.unpack_from("<H", data, central_at(data, name.encode()) + 30)[0] == 0


def test_tar_header_hidden_in_torch_padding(tmp_path: Path) -> None:
    """The padding's content is fixed; anything else there (here ``ustar``, a tar's magic) is refused."""
    data = torch_file()
    loc = local_at(data, b"archive/data.pkl")
    nlen = struct.unpack_from("<H", data, loc + 26)[0]
    start = loc + 30 + nlen + 4
    size = struct.unpack_from("<H", data, start - 2)[0]
    assert size >= 5
    data = data[:start] + b"ustar" + data[start + 5 :]
    err = refused(write(tmp_path, "m.pt", data), "malformed torch alignment padding")
    assert err.member == "archive/data.pkl"


@pytest.mark.parametrize("extra,match", [
    (struct.pack("<HH", 0xCAFE, 0), "unknown extra field 0xcafe"),
    (struct.pack("<HH", 0x5455, 5) + bytes(5) + struct.pack("<HH", 0x5455, 5) + bytes(5), "appears twice"),
    (struct.pack("<HH", 0x5455, 5) + bytes(5) + b"\x01", "trailing bytes"),
    (struct.pack("<HH", 0x5455, 9) + bytes(5), "runs past"),
    (struct.pack("<HH", 0x7875, 11) + b"\x01\x04" + bytes(4) + b"\x05" + bytes(4), "malformed Unix uid/gid"),
    (struct.pack("<HH", 0x000A, 8) + bytes(8), "malformed NTFS"),
    (struct.pack("<HH", 0x4246, 3) + b"ZZZ", "unknown extra field 0x4246 in the central entry"),
], ids=["unknown-id", "duplicate-id", "trailing-bytes", "overrun", "bad-ux", "bad-ntfs", "torch-padding-in-central"])
def test_extra_fields_exact_and_known(tmp_path: Path, extra: bytes, match: str) -> None:
    info = zipfile.ZipInfo("x.npy")
    info.extra = extra  # CPython writes it in both the local header and the central entry
    data = zip_of([(info, npz_member(np.arange(3)))])
    refused(write(tmp_path, "a.npz", data), match)


def test_info_zip_fields_are_read(tmp_path: Path) -> None:
    """Info-ZIP zip writes UT and ux fields and directory entries; its archives open (the scanner's generic zip)."""
    if not shutil.which("zip"):
        pytest.skip("Info-ZIP zip is not installed")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "config.json").write_text('{"hidden": 4}')
    (src / "d" / "notes.txt").write_text("plain text\n")
    subprocess.run(["zip", "-q", "-r", str(tmp_path / "a.zip"), "config.json", "d"], cwd=src, check=True)
    data = (tmp_path / "a.zip").read_bytes()
    assert b"UT" in data and b"ux" in data
    assert sorted(ZipArchive(data).members) == ["config.json", "d/", "d/notes.txt"]
    assert safeload.scan(str(tmp_path / "a.zip")).exit_code == 0


# --------------------------------------------------------------------------- rule 5: sizes, descriptors, deflate

def test_stored_member_whose_sizes_disagree(tmp_path: Path) -> None:
    """issue 11: a stored record whose size is larger than its stored bytes, every copy of the size forged
    (central entry and data descriptor) so that the old local/central comparison passes."""
    data = torch_file()
    name = b"archive/data/0"
    cen = central_at(data, name)
    csize, usize = struct.unpack_from("<II", data, cen + 20)
    assert csize == usize == 16
    data = put(data, cen + 24, "<I", 1 << 20)
    loc = local_at(data, name)
    desc = loc + 30 + sum(struct.unpack_from("<HH", data, loc + 26)) + csize
    assert data[desc : desc + 4] == b"PK\x07\x08"
    data = put(data, desc + 12, "<I", 1 << 20)
    path = write(tmp_path, "m.pt", data)
    err = refused(path, "Stored zip member .* compressed size")
    assert err.member == "archive/data/0"
    with pytest.raises(FormatError, match="Stored zip member"):
        safeload.load(str(path), tensors="numpy", mmap=True)


def test_data_descriptor_must_agree(tmp_path: Path) -> None:
    data = torch_file()
    loc = local_at(data, b"archive/data.pkl")
    csize = struct.unpack_from("<I", data, central_at(data, b"archive/data.pkl") + 20)[0]
    desc = loc + 30 + sum(struct.unpack_from("<HH", data, loc + 26)) + csize
    refused(write(tmp_path, "m.pt", put(data, desc + 4, "<I", 0)), "data descriptor disagrees")
    refused(write(tmp_path, "n.pt", put(data, desc, "<4s", b"PK\x07\x09")), "data descriptor disagrees")


def _with_trailing_deflate_data(monkeypatch: pytest.MonkeyPatch, junk: bytes) -> bytes:
    real = zipfile._get_compressor  # type: ignore[attr-defined]

    class Padded:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def compress(self, data: bytes) -> bytes:
            return self.inner.compress(data)  # type: ignore[attr-defined]

        def flush(self) -> bytes:
            return self.inner.flush() + junk  # type: ignore[attr-defined]

    monkeypatch.setattr(zipfile, "_get_compressor", lambda *a, **k: Padded(real(*a, **k)))
    try:
        return zip_of([("x.npy", npz_member(np.arange(6.0)))], zipfile.ZIP_DEFLATED)
    finally:
        monkeypatch.setattr(zipfile, "_get_compressor", real)


def test_bytes_after_the_deflate_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _with_trailing_deflate_data(monkeypatch, oracle.payload(2))
    path = write(tmp_path, "a.npz", data)
    assert np.array_equal(np.load(path)["x"], np.arange(6.0))  # CPython stops at the end of the stream
    err = refused(path, "bytes after the end of its deflate stream")
    assert err.member == "x.npy"


def test_deflated_member_must_inflate_to_its_size(tmp_path: Path) -> None:
    data = npz_file(compressed=True)
    cen = central_at(data, b"x.npy")
    usize = struct.unpack_from("<I", data, cen + 24)[0]
    loc = local_at(data, b"x.npy")
    data = put(put(data, cen + 24, "<I", usize - 1), loc + 30 + 5 + 4, "<Q", usize - 1)  # central + local zip64
    refused(write(tmp_path, "a.npz", data), "inflates to a size other than")


def test_directory_attribute_on_a_file(tmp_path: Path) -> None:
    """miniz reads an entry with the DOS directory attribute as empty; CPython reads its data."""
    data = torch_file()
    cen = central_at(data, b"archive/data.pkl")
    refused(write(tmp_path, "m.pt", put(data, cen + 38, "<I", 0x10)), "directory")


def _unzip(path: Path, out: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["unzip", "-o", "-qq", str(path), "-d", str(out)], check=False, capture_output=True)


def test_symbolic_link_member(tmp_path: Path) -> None:
    """A Unix symlink mode in the external attributes: unzip creates a link whose target is the member's data
    (here a path outside the folder), CPython and miniz read the same bytes as the member's content."""
    data = torch_file()
    cen = central_at(data, b"archive/version")
    data = put(data, cen + 4, "<H", 0x031E)  # made by Unix
    data = put(data, cen + 38, "<I", 0o120777 << 16)
    path = write(tmp_path, "m.pt", data)
    if shutil.which("unzip"):
        _unzip(path, tmp_path / "x")
        assert (tmp_path / "x" / "archive" / "version").is_symlink()
    with zipfile.ZipFile(path) as zf:
        assert zf.read("archive/version") == b"3\n"
    err = refused(path, "not a plain file")
    assert err.member == "archive/version"


def test_volume_label_member(tmp_path: Path) -> None:
    """The DOS volume-label attribute: unzip skips the member, CPython and miniz read it."""
    data = torch_file()
    cen = central_at(data, b"archive/data.pkl")
    path = write(tmp_path, "m.pt", put(data, cen + 38, "<I", 0x08))
    if shutil.which("unzip"):
        _unzip(path, tmp_path / "x")
        assert not (tmp_path / "x" / "archive" / "data.pkl").exists()
        assert (tmp_path / "x" / "archive" / "version").exists()
    refused(path, "not a plain file")


def test_member_needing_a_later_zip_version(tmp_path: Path) -> None:
    """unzip 6.0 skips a member that needs version 4.7 or later; CPython (up to 6.3) and miniz read it."""
    data = npz_file()
    path = write(tmp_path, "a.npz", put(data, central_at(data, b"y.npy") + 6, "<H", 47))
    if shutil.which("unzip"):
        assert _unzip(path, tmp_path / "x").returncode != 0
        assert not (tmp_path / "x" / "y.npy").exists()
    assert sorted(np.load(path).files) == ["x", "y"]
    refused(path, "needs zip version 4.7")


# ------------------------------------------------------------------------ rule 6: directory by size and count

def test_directory_walked_by_size_and_by_count(tmp_path: Path) -> None:
    """One entry left out of the count: miniz never sees the last member, CPython (numpy) reads it."""
    data = add_members(npz_file(), [("z.npy", evil_npy())])
    eocd = eocd_at(data)
    count = struct.unpack_from("<H", data, eocd + 10)[0]
    data = put(data, eocd + 8, "<HH", count - 1, count - 1)
    path = write(tmp_path, "a.npz", data)
    assert_live(path, ("numpy",))
    refused(path, "holds more than its entry count")


def test_directory_shorter_than_its_count(tmp_path: Path) -> None:
    data = npz_file()
    eocd = eocd_at(data)
    count = struct.unpack_from("<H", data, eocd + 10)[0]
    refused(write(tmp_path, "a.npz", put(data, eocd + 8, "<HH", count + 1, count + 1)), "shorter than its entry")


def test_entries_on_this_disk_must_equal_the_total(tmp_path: Path) -> None:
    data = npz_file()
    eocd = eocd_at(data)
    refused(write(tmp_path, "a.npz", put(data, eocd + 8, "<H", 1)), "entries on this disk")


# ---------------------------------------------------------------------------- real writers' files still load

def _same(a: object, b: object) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b)
        for k in a:
            _same(a[k], b[k])
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kw", [{}, {"_use_new_zipfile_serialization": True}, {"_use_new_zipfile_serialization": False}])
def test_torch_save_files_load(tmp_path: Path, kw: dict[str, object]) -> None:
    obj = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.zeros(5, dtype=torch.int16), "s": [1, "two", 3.0]}
    path = write(tmp_path, "m.pt", torch_file(obj, **kw))
    got = safeload.load(str(path), tensors="numpy")
    want = torch.load(path, weights_only=True)
    _same({k: got[k] for k in ("w", "b")}, {k: want[k].numpy() for k in ("w", "b")})
    assert got["s"] == want["s"]
    assert safeload.scan(str(path)).exit_code == 0


def test_torch_save_many_records_loads(tmp_path: Path) -> None:
    obj = {f"t{i}": torch.full((i + 1,), float(i)) for i in range(40)}
    path = write(tmp_path, "m.pt", torch_file(obj))
    got = safeload.load(str(path), tensors="numpy")
    _same(got, {k: v.numpy() for k, v in obj.items()})


@pytest.mark.parametrize("compressed", [False, True])
def test_numpy_savez_files_load(tmp_path: Path, compressed: bool) -> None:
    arrays = {"x": np.arange(100.0), "y": np.eye(3, dtype=np.int32), "s": np.array(["a", "bc"])}
    path = write(tmp_path, "a.npz", npz_file(compressed, **arrays))
    got = safeload.load(str(path))
    with np.load(path) as want:
        _same(got, {k: want[k] for k in want.files})
    assert safeload.scan(str(path)).exit_code == 0


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zipfile_zip64_archives_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: int) -> None:
    """Real zip64 from CPython's writer, made cheap by lowering its limits: central zip64 fields with sentinels
    for sizes and offsets, and the zip64 end record and locator."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    arrays = {f"a{i}": np.arange(30.0) + i for i in range(4)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w", force_zip64=True) as f:
                f.write(npz_member(v))
    monkeypatch.undo()
    data = buf.getvalue()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    assert struct.unpack_from("<Q", data, data.rfind(b"PK\x06\x07") + 8)[0] == data.rfind(b"PK\x06\x06")
    path = write(tmp_path, "big.npz", data)
    got = safeload.load(str(path))
    with np.load(path) as want:
        _same(got, {k: want[k] for k in want.files})
    _same(got, arrays)
    assert safeload.scan(str(path)).exit_code == 0


def test_zipfile_streamed_members_with_descriptors_load(tmp_path: Path) -> None:
    """CPython writes a data descriptor (8-byte sizes under zip64) when the output cannot seek."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.buf += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            f.write(npz_member(np.arange(9)))
        with zf.open("y.npy", "w") as f:
            f.write(npz_member(np.ones(3)))
    data = bytes(out.buf)
    assert b"PK\x07\x08" in data
    _same(safeload.load(write(tmp_path, "s.npz", data)), {"x": np.arange(9), "y": np.ones(3)})


# ------------------------------------------------------------ differential: accepted mutants read the same natively

def test_accepted_mutants_read_the_same_in_cpython_and_miniz() -> None:
    """Random byte mutations of real torch and numpy archives (fixed seed): every mutant the reader accepts has the
    same members with the same bytes in CPython's zipfile, and, for torch archives, in torch's miniz reader."""
    import random

    seeds = [torch_file(), npz_file(), npz_file(compressed=True)]
    rng = random.Random(20260)
    accepted = 0
    for _ in range(20_000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[i] = rng.randrange(256)
            else:
                del data[i : i + rng.randint(1, 8)]
        try:
            zf = ZipArchive(bytes(data))
            ours = {name: zf.read(name) for name in zf.members}
        except safeload.SafeLoadError:
            continue
        accepted += 1
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as native:
            assert {i.filename: native.read(i) for i in native.infolist()} == ours
        if "archive/data.pkl" in ours:
            reader = torch._C.PyTorchFileReader(io.BytesIO(bytes(data)))
            assert {"archive/" + k: bytes(reader.get_record(k)) for k in reader.get_all_records()} == ours
    assert accepted >= 50, accepted


def _native_members(data: bytes) -> dict[str, bytes] | str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as native:
            return {i.filename: native.read(i) for i in native.infolist()}
    except Exception as exc:  # noqa: BLE001 - any refusal is a disagreement with an accepted archive
        return repr(exc)


def _miniz_members(data: bytes, prefix: str) -> dict[str, bytes] | str:
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        return {prefix + k: bytes(reader.get_record(k)) for k in reader.get_all_records()}
    except Exception as exc:  # noqa: BLE001
        return repr(exc)


def test_accepted_structural_mutants_read_the_same_in_cpython_and_miniz() -> None:
    """The attacks above as random operators, combined (fixed seed): archives hidden in comments or appended,
    name variants, external attributes, counts, prepended and appended bytes, flag bits, extra fields, comments.
    Whatever the reader accepts, CPython's zipfile and torch's miniz read with the same members and bytes."""
    import random

    rng = random.Random(7)
    pay = oracle.payload(2)

    def variant(d: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(d)) as zf:
            name = rng.choice(zf.namelist())
        new = rng.choice([name.upper(), name.swapcase(), name.replace("/", "//", 1), "./" + name, name + "/"])
        return add_members(d, [(new, pay)])

    def extra(d: bytes) -> bytes:
        info = zipfile.ZipInfo("archive/extra")
        body = bytes(rng.choice([0, 1, 5, 8, 11, 16, 32]))
        info.extra = struct.pack("<HH", rng.choice([0x5455, 0x7875, 0x000A, 0x0001, 0x7075, 0x4246, 0xCAFE]),
                                 len(body)) + body
        return add_members(d, [(info, pay)])  # type: ignore[list-item]

    def last_entry(d: bytes) -> int:
        return d.rfind(b"PK\x01\x02")

    ops = [
        lambda d: hide_in_comment(d, EVIL_TORCH),
        lambda d: append_archive(d, [("x.npy", evil_npy())]),
        variant,
        extra,
        lambda d: put(d, last_entry(d) + 38, "<I", rng.choice([0x10, 0x08, 0o120777 << 16, 0o40755 << 16, 0x21])),
        lambda d: put(d, last_entry(d) + 8, "<H", struct.unpack_from("<H", d, last_entry(d) + 8)[0]
                      ^ rng.choice([0x1, 0x8, 0x20, 0x800])),
        lambda d: put(d, eocd_at(d) + 8, "<HH", *[struct.unpack_from("<H", d, eocd_at(d) + 10)[0]
                                                  + rng.choice([-1, 1])] * 2),
        lambda d: rng.choice([b"\0" * 7, pay, b"PK00"]) + d,
        lambda d: d + rng.choice([b"\0", pay, b"PK\x05\x06" + bytes(18)]),
        lambda d: put(d, eocd_at(d) + 20, "<H", len(pay)) + pay,
    ]
    seeds = [torch_file(), npz_file(), npz_file(compressed=True)]
    accepted = 0
    for _ in range(6000):
        data = rng.choice(seeds)
        for _ in range(rng.randint(1, 2)):
            try:
                data = rng.choice(ops)(data)
            except (struct.error, ValueError, IndexError, AssertionError, zipfile.BadZipFile):
                pass  # the operator does not apply to this archive
        try:
            zf = ZipArchive(data)
            ours = {name: zf.read(name) for name in zf.members}
        except safeload.SafeLoadError:
            continue
        accepted += 1
        assert _native_members(data) == ours
        if "archive/data.pkl" in ours:
            assert _miniz_members(data, "archive/") == ours
    assert accepted >= 200, accepted


def test_zip_member_fields_are_those_the_type_checker_sees() -> None:
    """safeload/_containers/zip.py declares ZipMember twice: a typed NamedTuple for the type checker and a
    ``collections.namedtuple`` at run time (no typing import at start-up). Same fields, same order."""
    import ast

    from safeload._containers import zip as zipmod

    tree = ast.parse(Path(zipmod.__file__).with_name("zip.py").read_text(encoding="utf-8"))  # either build
    typed = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "ZipMember")
    names = tuple(stmt.target.id for stmt in typed.body if isinstance(stmt, ast.AnnAssign)
                  and isinstance(stmt.target, ast.Name))
    assert names and zipmod.ZipMember._fields == names
