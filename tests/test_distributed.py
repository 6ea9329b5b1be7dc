"""Distributed scans (safeload/_distributed.py) on a real ``dask.distributed.LocalCluster`` (two worker processes on
127.0.0.1), the ``--jobs`` process pool and the resumable results file.

The cluster tests carry the ``cluster`` mark (``-m 'not cluster'`` leaves them out); they run by default."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import oracle
from safeload import scan
from safeload._cli import main
from safeload._distributed import ResultsFile, scan_distributed

distributed = pytest.importorskip("distributed")
torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")

KILL = "KILLS-ITS-WORKER"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real files of every kind the scanner reports, and 40 small pickles so that batches matter."""
    root = tmp_path_factory.mktemp("dist")
    torch.save({"w": torch.arange(6.0)}, root / "model.pt")
    np.save(root / "array.npy", np.arange(4))
    joblib.dump({"coef": np.ones(3)}, root / "est.joblib")
    (root / "evil.pkl").write_bytes(oracle.payload(2))
    (root / "notes.txt").write_text("not a model\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "broken.pkl").write_bytes(pickle.dumps({"a": list(range(50))})[:-7])
    many = root / "many"
    many.mkdir()
    for i in range(40):
        (many / f"p{i:02}.pkl").write_bytes(pickle.dumps({"i": i, "name": f"layer{i}"}, protocol=i % 5 + 1))
    return root


def _json(report) -> str:
    d = report.to_dict()
    d["files"] = sorted(d["files"], key=lambda f: f["path"])
    return json.dumps(d, sort_keys=True)


def test_the_payload_is_live(folder: Path) -> None:
    assert oracle.live(folder / "evil.pkl", ("pickle",)) == ["pickle"]


@pytest.fixture(scope="module")
def client():
    import dask

    # a worker that dies twice on the same task: KilledWorker (the default allows 3 deaths; fewer keeps it quick)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=40)
        with distributed.Client(cluster) as c:
            yield c
        cluster.close()


@pytest.mark.cluster
def test_distributed_report_equals_the_local_report(folder: Path, client) -> None:
    local = scan(str(folder))
    remote = scan_distributed(client, [str(folder)], batch_size=7)
    assert len(remote.files) == 47
    assert {f.status for f in remote.files} == {"clean", "unsafe", "error", "skipped"}
    assert remote.exit_code == local.exit_code == 1
    assert _json(remote) == _json(local)


@pytest.mark.cluster
@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_cli_scheduler_gives_the_local_output_byte_for_byte(folder: Path, client, fmt: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code_local = main(["scan", "-q", "--format", fmt, "--root", str(folder), str(folder)])
    local = capsys.readouterr().out
    code = main(["scan", "-q", "--format", fmt, "--root", str(folder), "--scheduler", client.scheduler.address,
                 str(folder)])
    assert capsys.readouterr().out == local
    assert code == code_local == 1


class _KillOn(distributed.WorkerPlugin):
    """Test only: in each worker process, scanning a file whose name holds ``KILL`` ends the process at once, as
    the out-of-memory killer would."""

    name = "safeload-test-kill"

    def setup(self, worker) -> None:  # noqa: ANN001
        from safeload import _scan

        original = _scan.scan_file
        if getattr(original, "_test_kill", False):
            return

        def scan_file(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if KILL in os.fspath(path):
                os._exit(13)
            return original(path, *args, **kwargs)

        scan_file._test_kill = True  # type: ignore[attr-defined]
        _scan.scan_file = scan_file


@pytest.mark.cluster
def test_a_worker_killed_mid_scan_loses_no_file(folder: Path, client, tmp_path: Path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin travels by value to the workers
    (tmp_path / "a").mkdir()
    for i in range(30):
        (tmp_path / "a" / f"f{i:02}.pkl").write_bytes(pickle.dumps([i] * 3))
    (tmp_path / "a" / f"f15-{KILL}.pkl").write_bytes(pickle.dumps("never scanned"))
    client.register_plugin(_KillOn())
    try:
        report = scan_distributed(client, [str(tmp_path / "a")], batch_size=8)
    finally:
        client.unregister_worker_plugin(_KillOn.name)
    assert len(report.files) == 31
    dead = [f for f in report.files if KILL in f.path]
    assert len(dead) == 1 and dead[0].status == "error" and "could not be scanned" in dead[0].findings[0].message
    rest = [f for f in report.files if KILL not in f.path]
    assert all(f.status == "clean" for f in rest)
    os.remove(tmp_path / "a" / f"f15-{KILL}.pkl")
    assert _json(type(report)(files=rest)) == _json(scan(str(tmp_path / "a")))


@pytest.mark.cluster
def test_a_resumed_distributed_run_scans_only_what_was_left(folder: Path, client, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    full = scan(str(folder))
    first = [f for f in full.files if "/many/" in f.path][:25]
    # what an interrupted run left: 25 reports, one of them marked so that a rescan would show, and a cut line
    marked = first[0].to_dict() | {"reason": "from the results file"}
    lines = [json.dumps(marked)] + [json.dumps(f.to_dict()) for f in first[1:]]
    results.write_text("\n".join(lines) + "\n" + lines[-1][:40])
    report = scan_distributed(client, [str(folder)], results=str(results))
    assert len(report.files) == 47
    assert next(f for f in report.files if f.path == first[0].path).reason == "from the results file"
    written = results.read_text().splitlines()[25:]
    appended = [json.loads(line) for line in written if line.startswith("{") and line.endswith("}")]
    assert len(appended) == 47 - 25  # only the files not in the results file were scanned
    assert {d["path"] for d in appended}.isdisjoint(f.path for f in first)
    report.files = [f if f.path != first[0].path else first[0] for f in report.files]
    assert _json(report) == _json(full)


def test_results_file_resume_with_the_cli(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "r.jsonl"
    many = folder / "many"
    assert main(["scan", "-q", "--format", "json", "--results", str(results), str(many)]) == 0
    whole = capsys.readouterr().out
    lines = results.read_text().splitlines()
    assert len(lines) == 40
    results.write_text("\n".join(lines[:10]) + "\n")
    main(["scan", "-q", "--format", "json", "--results", str(results), str(many)])
    assert capsys.readouterr().out == whole
    assert len(results.read_text().splitlines()) == 40  # 10 kept, 30 scanned again


def test_jobs_pool_gives_the_sequential_report(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code1 = main(["scan", "--format", "json", "--jobs", "1", str(folder)])
    one = capsys.readouterr().out
    code2 = main(["scan", "--format", "json", "--jobs", "2", str(folder)])
    assert capsys.readouterr().out == one and code1 == code2 == 1


def test_a_pool_worker_that_dies_loses_no_file(tmp_path: Path) -> None:
    """A process of the --jobs pool that dies (here: a test-only hook installed in a forked worker) is reported as
    one file that could not be scanned; the rest are scanned."""
    from safeload import _distributed

    for i in range(12):
        (tmp_path / f"f{i:02}.pkl").write_bytes(pickle.dumps(i))
    (tmp_path / f"g-{KILL}.pkl").write_bytes(pickle.dumps(0))
    items = [(str(p), str(p)) for p in sorted(tmp_path.iterdir())]
    reports = list(_distributed.pool_scan(items, 2, start_method="fork", initializer=_pool_kill_hook))
    assert sorted(r.path for r in reports) == [p for p, _ in items]
    dead = [r for r in reports if KILL in r.path]
    assert dead[0].status == "error" and "could not be scanned" in dead[0].findings[0].message
    assert all(r.status == "clean" for r in reports if KILL not in r.path)


def test_a_pool_worker_that_dies_mid_stream_loses_no_file(tmp_path: Path) -> None:
    """A folder streamed into the pool (not a list): the killer is met while most files are not yet submitted; the
    batches in flight are rescanned one by one and the rest go to a fresh pool. Every file is reported once."""
    from safeload import _distributed

    items = []
    for i in range(1000):
        path = tmp_path / (f"f{i:04}-{KILL}.pkl" if i == 40 else f"f{i:04}.pkl")
        path.write_bytes(pickle.dumps({"i": i}))
        items.append((str(path), str(path)))
    in_flight = 2 * _distributed.FIRST_BATCH + (4 * 2 - 2) * _distributed.BATCH
    assert in_flight < 1000 - 40  # so the death leaves files never submitted
    taken: list[int] = []

    def stream():  # noqa: ANN202
        for n, item in enumerate(items, 1):
            taken.append(n)
            yield item

    reports = list(_distributed.pool_scan(stream(), 2, start_method="fork", initializer=_pool_kill_hook))
    assert sorted(r.path for r in reports) == [p for p, _ in items] and len(taken) == 1000
    assert [r.status for r in reports if KILL in r.path] == ["error"]
    assert all(r.status == "clean" for r in reports if KILL not in r.path)


def _pool_kill_hook() -> None:
    _KillOn().setup(None)


def test_resultsfile_ignores_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    report = scan(pickle.dumps([1])).files[0]
    path.write_text(json.dumps(report.to_dict()) + "\n" + '{"path": "x", "sta')
    state = ResultsFile(str(path))
    state.close()
    assert list(state.done) == ["<bytes>"] and state.done["<bytes>"] == report


@pytest.mark.cluster
def test_distributed_scan_of_an_http_folder_equals_the_local_scan(folder: Path, client) -> None:
    """The workers fetch the URLs themselves (ranged reads from a 127.0.0.1 server): the report is the local one
    with the URL in place of the folder."""
    import http.server
    import threading

    from test_remote import _Counting

    handler = lambda *a, **k: _Counting(*a, directory=str(folder.parent), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{folder.name}/"
        remote = scan_distributed(client, [url], batch_size=5)
    finally:
        httpd.shutdown()
    local = scan(str(folder))
    assert len(remote.files) == len(local.files) == 47 and remote.exit_code == 1
    assert _json(remote).replace(url.rstrip("/"), "<root>") == _json(local).replace(str(folder), "<root>")


def test_a_pool_worker_scanning_a_plain_pickle_imports_neither_numpy_nor_torch(tmp_path: Path) -> None:
    """Worker start-up stays cheap: scanning a plain pickle in a fresh interpreter loads no numpy and no torch."""
    import subprocess

    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=4))
    code = ("import sys; from safeload._distributed import scan_batch; "
            f"r = scan_batch([({str(tmp_path / 'p.pkl')!r}, 'p.pkl')]); "
            "print(r[0].status, 'numpy' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["clean", "False", "False"]


def test_report_to_dict_is_asdict(folder: Path) -> None:
    """FileReport.to_dict (used for every JSON line of a results file and every JSON report) is
    ``dataclasses.asdict`` without its deep copy: equal, keys in the same order, and no list shared with the report."""
    import dataclasses

    reports = scan(str(folder)).files + scan(str(folder), explain=True).files
    assert {r.status for r in reports} >= {"clean", "unsafe", "error", "skipped"}
    for report in reports:
        fast, slow = report.to_dict(), dataclasses.asdict(report)
        assert fast == slow and list(fast) == list(slow)
        assert [list(f) for f in fast["findings"]] == [list(f) for f in slow["findings"]]
        assert fast["notes"] is not report.notes and fast["findings"] is not report.findings
