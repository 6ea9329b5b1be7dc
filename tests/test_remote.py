"""Remote sources through fsspec (safeload/_remote.py): fsspec's memory filesystem and a local HTTP server on
127.0.0.1 with ranged reads, serving real files. A remote scan's report is the local one with the URL as path."""

from __future__ import annotations

import http.server
import json
import os
import pickle
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import oracle
from safeload import _remote, _scan, scan
from safeload._cli import main

fsspec = pytest.importorskip("fsspec")
torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real files: torch.save, np.save, np.savez, joblib.dump, a benign pickle, a text file and a live payload."""
    root = tmp_path_factory.mktemp("remote")
    (root / "sub").mkdir()
    torch.save({"w": torch.arange(12.0).reshape(3, 4), "step": 3}, root / "model.pt")
    np.save(root / "sub" / "array.npy", np.arange(10, dtype=np.int16))
    np.savez(root / "sub" / "arrays.npz", a=np.ones(3), b=np.zeros((2, 2)))
    joblib.dump({"coef": np.arange(5.0)}, root / "est.joblib")
    (root / "plain.pkl").write_bytes(pickle.dumps({"lr": 0.1, "names": ["a", "b"]}, protocol=4))
    (root / "README.md").write_text("weights for a small model\n")
    (root / "evil.pkl").write_bytes(oracle.payload(2))
    return root


def _relative(report_dict: dict, prefix: str) -> str:
    """The report as JSON with ``prefix`` taken out of every path: remote and local reports compare equal."""
    text = json.dumps(report_dict, sort_keys=True)
    return text.replace(prefix, "<root>")


def test_the_payload_is_live(folder: Path) -> None:
    assert oracle.live(folder / "evil.pkl", ("pickle",)) == ["pickle"]


@pytest.fixture()
def memfs(folder: Path):
    fs = fsspec.filesystem("memory")
    base = "/safeload-test"
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe(f"{base}/{path.relative_to(folder)}", path.read_bytes())
    yield f"memory://{base}"
    fs.rm(base, recursive=True)


def test_memory_filesystem_report_equals_the_local_one(folder: Path, memfs: str) -> None:
    local = scan(str(folder))
    remote = scan(memfs)
    assert [f.path for f in remote.files] == sorted(f.path for f in remote.files)
    assert len(remote.files) == 7
    assert remote.exit_code == local.exit_code == 1
    evil = next(f for f in remote.files if f.path.endswith("evil.pkl"))
    assert evil.status == "unsafe" and evil.path.startswith("memory://")
    shown = evil.path[: -len("/evil.pkl")]
    assert _relative(remote.to_dict(), shown) == _relative(local.to_dict(), str(folder))


def test_cli_scans_a_url_and_a_path_together(folder: Path, memfs: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["scan", "--format", "json", "-q", memfs + "/plain.pkl", str(folder / "evil.pkl")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["summary"]["scanned"] == 2 and out["summary"]["unsafe"] == 1
    code = main(["scan", "--format", "json", memfs + "/model.pt"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["files"][0]["path"].startswith("memory://") and out["files"][0]["format"] == "torch-zip"


def test_a_missing_url_is_a_usage_error(memfs: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", memfs + "/no-such-file.pt"]) == 4
    assert "no such file" in capsys.readouterr().err


def test_credentials_never_reach_the_report() -> None:
    assert _remote.redact("s3://KEY:SECRET@bucket/m.pt") == "s3://bucket/m.pt"
    assert _remote.redact("https://user:pw@host/a/b.pt") == "https://host/a/b.pt"
    assert _remote.redact("https://host/a@b.pt") == "https://host/a@b.pt"  # an @ in the path is not userinfo
    report = _scan.scan_url("memory://user:secret@nowhere/x.pt")
    assert report.status == "error" and "secret" not in json.dumps(report.to_dict())


def test_a_file_over_the_download_limit_is_an_error_not_a_partial_scan(memfs: str) -> None:
    report = _scan.scan_url(memfs + "/plain.pkl", max_download=10)
    assert report.status == "error" and report.findings[0].rule == "limit-exceeded"


# ---- HTTP with ranged reads -----------------------------------------------------------------------------------

class _Counting(http.server.SimpleHTTPRequestHandler):
    """http.server with Range requests (RFC 7233, one range) and a count of the body bytes sent."""

    sent = 0
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # noqa: ANN201 - http.server's own signature
        path = self.translate_path(self.path)
        rng = self.headers.get("Range")
        if os.path.isdir(path) or not rng:
            return super().send_head()
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
        size = os.path.getsize(path)
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1 if m.group(2) else size, size)
        fh = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._left = end - start
        return fh

    def copyfile(self, source, outputfile) -> None:  # noqa: ANN001
        left = getattr(self, "_left", None)
        data = source.read() if left is None else source.read(left)
        outputfile.write(data)
        with _Counting.lock:
            _Counting.sent += len(data)


@pytest.fixture(scope="module")
def server(folder: Path):
    big = folder.parent / (folder.name + "-big")
    big.mkdir()
    # a real checkpoint of 40 MB, almost all of it one storage record
    torch.save({"w": torch.zeros(10_000_000), "b": torch.ones(5)}, big / "big.pt")
    handler = lambda *a, **k: _Counting(*a, directory=str(folder.parent), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", big
    httpd.shutdown()


def test_http_report_equals_the_local_one(folder: Path, server) -> None:
    base, _ = server
    url = f"{base}/{folder.name}/"
    remote = scan(url)
    local = scan(str(folder))
    assert len(remote.files) == 7 and remote.exit_code == 1
    assert _relative(remote.to_dict(), url.rstrip("/")) == _relative(local.to_dict(), str(folder))


def test_a_big_zip_over_http_is_read_by_ranges(server) -> None:
    base, big = server
    size = (big / "big.pt").stat().st_size
    _Counting.sent = 0
    remote = _scan.scan_url(f"{base}/{big.name}/big.pt")
    sent = _Counting.sent
    local = scan(str(big / "big.pt")).files[0]
    assert remote.status == "clean" and remote.format == "torch-zip"
    assert json.dumps(remote.to_dict()).replace(f"{base}/{big.name}", "<r>") == \
        json.dumps(local.to_dict()).replace(str(big), "<r>")
    assert sent < size / 10, (sent, size)  # the directory, the headers and data.pkl, not the 40 MB storage


def test_a_payload_in_a_big_zip_over_http_is_found(server, tmp_path: Path) -> None:
    """The storage records set aside are only those a local scan never reads: a payload in any other member, or
    in data.pkl, is fetched and found."""
    import zipfile

    base, big = server
    target = big / "big-evil.pt"
    with zipfile.ZipFile(big / "big.pt") as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr("big/extra.pkl", oracle.payload(2))
    with zipfile.ZipFile(target) as zf:
        (tmp_path / "extra.pkl").write_bytes(zf.read("big/extra.pkl"))
    assert oracle.live(tmp_path / "extra.pkl", ("pickle",)) == ["pickle"]
    _Counting.sent = 0
    remote = _scan.scan_url(f"{base}/{big.name}/big-evil.pt")
    assert _Counting.sent < target.stat().st_size / 10
    local = scan(str(target)).files[0]
    assert remote.status == local.status != "clean"
    assert [f.rule for f in remote.findings] == [f.rule for f in local.findings]


def test_a_storage_record_that_overlaps_the_next_member_is_fetched_whole(tmp_path: Path) -> None:
    """The ranged plan trusts nothing: a directory whose storage record runs into the next member's header is not
    planned around (the whole file is fetched), and the report is the local one."""
    import struct
    import zipfile

    path = tmp_path / "overlap.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("m/data.pkl", pickle.dumps({"x": 1}, protocol=2))
        zf.writestr("m/data/0", bytes(5 * 1024 * 1024))
        zf.writestr("m/data/1", pickle.dumps("hidden", protocol=2) * 100)
    raw = bytearray(path.read_bytes())
    entry = raw.find(b"m/data/0", raw.find(b"PK\x01\x02")) - 46
    assert raw[entry : entry + 4] == b"PK\x01\x02"
    csize = struct.unpack_from("<I", raw, entry + 20)[0]
    struct.pack_into("<I", raw, entry + 20, csize + 200)  # now it runs into data/1's local header
    path.write_bytes(bytes(raw))
    fs = fsspec.filesystem("memory")
    fs.pipe("/overlap/overlap.pt", bytes(raw))
    try:
        fs_, p = fsspec.core.url_to_fs("memory://overlap/overlap.pt")
        rd = _remote._Ranged(fs_, p, len(raw))
        assert _remote._zip_skips(rd) is None
        remote = _scan.scan_url("memory://overlap/overlap.pt", display=str(path))
        local = scan(str(path)).files[0]
        assert remote.status == local.status != "clean"
        assert json.dumps(remote.to_dict()) == json.dumps(local.to_dict())
    finally:
        fs.rm("/overlap", recursive=True)


# ---- S3 (a moto server on 127.0.0.1, through s3fs) ------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(folder: Path):
    """A moto S3 server in its own process on a free 127.0.0.1 port, a bucket holding ``folder`` under ``models/``
    and a 20 MB torch checkpoint under ``big/``; fsspec's configuration points s3fs at it."""
    pytest.importorskip("moto", reason="the S3 test needs moto[server]: pip install 'moto[server]' s3fs")
    s3fs = pytest.importorskip("s3fs", reason="the S3 test needs s3fs: pip install s3fs")
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()  # noqa: S310 - 127.0.0.1
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.skip("the moto server did not start")
                time.sleep(0.1)
        conf = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint,
                                                                         "region_name": "us-east-1"}}
        old = fsspec.config.conf.get("s3")
        fsspec.config.conf["s3"] = conf
        import boto3

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket="safeload-test")
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **conf)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                fs.pipe(f"safeload-test/models/{path.relative_to(folder).as_posix()}", path.read_bytes())
        big = folder.parent / (folder.name + "-s3big")
        big.mkdir()
        torch.save({"w": torch.zeros(5_000_000), "b": torch.ones(5)}, big / "big.pt")
        fs.put_file(str(big / "big.pt"), "safeload-test/big/big.pt")
        fs.invalidate_cache()
        yield "s3://safeload-test", big
    finally:
        if "old" in locals():
            if old is None:
                fsspec.config.conf.pop("s3", None)
            else:
                fsspec.config.conf["s3"] = old
        proc.terminate()
        proc.wait(timeout=30)


def test_s3_report_equals_the_local_one(folder: Path, s3, capsys: pytest.CaptureFixture[str]) -> None:
    """``safeload scan s3://bucket/models`` gives the local scan's report (the URL in place of the folder) and exit
    status, clean files and the live payload alike."""
    base, _ = s3
    remote = scan(f"{base}/models")
    local = scan(str(folder))
    assert len(remote.files) == 7 and remote.exit_code == local.exit_code == 1
    assert {f.path.rpartition("/")[2]: f.status for f in remote.files}["evil.pkl"] == "unsafe"
    assert _relative(remote.to_dict(), f"{base}/models") == _relative(local.to_dict(), str(folder))
    assert main(["scan", "--format", "json", f"{base}/models/"]) == 1
    from_cli = json.loads(capsys.readouterr().out)
    assert main(["scan", "--format", "json", str(folder)]) == 1
    from_local = json.loads(capsys.readouterr().out)
    assert _relative(from_cli, f"{base}/models") == _relative(from_local, str(folder))


def test_a_big_zip_on_s3_is_read_by_ranges(s3, monkeypatch: pytest.MonkeyPatch) -> None:
    """The central directory, the headers and data.pkl are fetched with ranged GETs; the 20 MB storage record is
    not: fewer than a tenth of the object's bytes are read, and the report is the local one."""
    base, big = s3
    fetched: list[tuple[int, int]] = []
    get = _remote._Ranged.get

    def counted(self: _remote._Ranged, start: int, end: int) -> bytes:
        fetched.append((start, end))
        return get(self, start, end)

    monkeypatch.setattr(_remote._Ranged, "get", counted)
    size = (big / "big.pt").stat().st_size
    remote = _scan.scan_url(f"{base}/big/big.pt")
    local = scan(str(big / "big.pt")).files[0]
    assert remote.status == "clean" and remote.format == "torch-zip"
    assert json.dumps(remote.to_dict()).replace(f"{base}/big", "<r>") == \
        json.dumps(local.to_dict()).replace(str(big), "<r>")
    total = sum(end - start for start, end in fetched)
    assert 0 < total < size / 10, (total, size)
    assert any(end == size for _, end in fetched)  # the end record and central directory, read from the tail
