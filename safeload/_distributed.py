"""Scans that outgrow one process: batches on a local process pool (``--jobs N``) or on a Dask cluster
(``--scheduler tcp://HOST:PORT``, :func:`scan_distributed`), and a results file to resume an interrupted run.

Every file is scanned by the code a local scan runs (:func:`safeload._scan.scan_file`, or
:func:`safeload._scan.scan_url` for a URL), in a worker, and the reports are merged into one
:class:`safeload._scan.Report`, sorted by path as a local scan's is. So the JSON and SARIF of a distributed scan
and its exit status are those of a local scan of the same files.

A worker that dies while it scans (killed, out of memory, a crash in a native library) takes its batch with it:
the batch is resubmitted split into single files, and a single file whose worker dies again (after Dask's own
``distributed.scheduler.allowed-failures`` reruns) is tried once more at the end, alone on the cluster; if its worker
dies then too, it becomes an ``error`` entry, "could not be scanned". No other file is lost or blamed.

The results file (``--results FILE``) holds one JSON object per line, a file's report as ``to_dict`` gives it,
written as each batch finishes. A run given a results file first reads it: files already in it are not scanned
again, and their reports join the merged report. A last line cut short by the interruption is ignored.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator

from ._hints import Any
from . import _scan

__all__ = ["ResultsFile", "scan_batch", "scan_distributed", "scan_items", "pool_scan", "report_from_dict"]

#: files per task: enough that task overhead (~1 ms on Dask, a pickle round trip on a pool) is small next to
#: the scans, few enough that a lost batch costs little
BATCH = 64
#: files per Dask task: a task costs a scheduler round trip (measured ~20 ms on a loaded 2-core machine against
#: 0.6 ms a small pickle), so tasks are larger there; a lost task is resubmitted file by file
DASK_BATCH = 256


def report_from_dict(d: dict[str, Any]) -> Any:
    """A :class:`FileReport` back from its ``to_dict``."""
    from ._scan import FileReport, Finding, GlobalRef

    d = dict(d)
    d["findings"] = [Finding(**f) for f in d.get("findings", [])]
    d["globals"] = [GlobalRef(**g) for g in d.get("globals", [])]
    return FileReport(**d)


def could_not_scan(display: str, why: str) -> Any:
    from ._scan import ERROR, FileReport, Finding

    report = FileReport(display, ERROR)
    report.findings.append(Finding(display, "unreadable", ERROR, f"{display} could not be scanned: {why}",
                                   why="a file the scanner cannot read could be a model; it is never called clean",
                                   fix="Scan the file alone on a machine with more memory (`safeload scan FILE`); "
                                       "do not load it until it scans clean"))
    return report


class ResultsFile:
    """Reports already written (read at start) and the writer for new ones (one JSON line each, flushed)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.done: dict[str, Any] = {}
        self._out: Any = None
        if path is None:
            return
        import json

        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        d = json.loads(line)
                        self.done[d["path"]] = report_from_dict(d)
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by an interruption: that file is scanned again
        self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if self._out.tell() > 0:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self._out.write("\n")  # after a line cut short, new lines start on their own

    def write(self, reports: Iterable[Any]) -> None:
        if self._out is None:
            return
        import json

        for report in reports:
            self._out.write(json.dumps(report.to_dict(), sort_keys=True) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


# ---- the work of one task ----------------------------------------------------------------------------------------

_POLICIES: dict[tuple[str, ...], Any] = {}


def _policy(allow: tuple[str, ...], policy: Any) -> Any:
    if policy is not None:
        return policy
    if allow not in _POLICIES:
        from ._scan import policy_for

        _POLICIES[allow] = policy_for(None, allow)
    return _POLICIES[allow]


def scan_one(item: tuple[str, str], allow: tuple[str, ...] = (), max_decompressed: int | None = None,
             explain: bool = False, policy: Any = None) -> Any:
    """One file or URL, as a local scan scans it."""
    target, display = item
    pol = _policy(tuple(allow), policy)
    if "://" in target:  # is_url (a scheme, then "://") is asked only of what could be a URL
        from ._remote import is_url

        if is_url(target):
            from ._scan import scan_url

            return scan_url(target, pol, max_decompressed=max_decompressed, explain=explain, display=display)
    return _scan.scan_file(target, pol, max_decompressed=max_decompressed, explain=explain, display=display)


def scan_batch(items: list[tuple[str, str]], allow: tuple[str, ...] = (), max_decompressed: int | None = None,
               explain: bool = False, policy: Any = None) -> list[Any]:
    """A task: the reports of ``items``, in order."""
    return [scan_one(item, allow, max_decompressed, explain, policy) for item in items]


def _batches(items: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---- a local process pool ----------------------------------------------------------------------------------------

#: the first batches of a pool are small, so that every worker is busy within milliseconds of the start even while
#: the listing is still being read; later ones are :data:`BATCH` files
FIRST_BATCH = 8


def _pool_batches(items: Iterable[tuple[str, str]], jobs: int) -> Iterator[list[tuple[str, str]]]:
    """``items`` in batches: a known number of files in about 4 batches per worker (at most :data:`BATCH` files
    each); a stream (a folder still being listed) in :data:`FIRST_BATCH`-file batches for the first ``jobs``, then
    :data:`BATCH`."""
    if isinstance(items, (list, tuple)):
        yield from _batches(items, max(1, min(BATCH, len(items) // (jobs * 4) or 1)))
        return
    stream = iter(items)
    first = list(itertools.islice(stream, FIRST_BATCH * jobs))
    yield from _batches(first, FIRST_BATCH)
    yield from _batches(stream, BATCH)


def _start_context(start_method: str | None) -> Any:
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if start_method is not None:
        method = start_method
    elif "fork" in methods and threading.active_count() == 1:
        method = "fork"  # a copy of this process, scanner imported: a worker starts in milliseconds
    else:  # a process with threads (a Dask client, a server) must not fork
        method = "forkserver" if "forkserver" in methods else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["safeload._distributed", "safeload._scan"])  # imported once, not per worker
    return ctx


def pool_scan(items: Iterable[tuple[str, str]], jobs: int, allow: Iterable[str] = (),
              max_decompressed: int | None = None, explain: bool = False, *, start_method: str | None = None,
              initializer: Callable[[], None] | None = None) -> Iterator[Any]:
    """``--jobs N``: the reports of ``items`` (a list, or an iterable consumed lazily, such as a folder being
    walked), scanned in batches on N processes, yielded as each batch finishes.

    Workers are forked from this process when it runs a single thread (the command line: the scanner is already
    imported, nothing else is), else started by ``forkserver`` (which imports the scanner once) or ``spawn``. A task
    carries file names and the allowlist only; its answer is the batch's reports. At most 4 batches per worker are
    in flight, so a long listing never sits in memory as tasks, and the first results arrive while it is still
    being read.

    A worker that dies breaks the pool, and every batch not finished then becomes a suspect: the suspects are
    scanned again one file at a time on a pool of one worker, where the file that kills it is the one it was
    scanning. That file is reported as could not be scanned; no other file is lost, and the files not yet
    submitted go to a fresh pool."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    allow = tuple(allow)
    ctx = _start_context(start_method)
    source = _pool_batches(items, jobs)
    limit = 4 * jobs
    more = True
    while more:
        suspects: list[tuple[str, str]] = []
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=initializer) as pool:
            pending: dict[Any, list[tuple[str, str]]] = {}
            broken = False
            while True:
                while not broken and len(pending) < limit:
                    batch = next(source, None)
                    if batch is None:
                        more = False
                        break
                    try:
                        pending[pool.submit(scan_batch, batch, allow, max_decompressed, explain)] = batch
                    except BrokenProcessPool:
                        suspects.extend(batch)
                        broken = True
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    batch = pending.pop(fut)
                    try:
                        yield from fut.result()
                    except BrokenProcessPool:
                        suspects.extend(batch)
                        broken = True
        yield from _one_by_one(suspects, ctx, initializer, allow, max_decompressed, explain)


def _one_by_one(suspects: list[tuple[str, str]], ctx: Any, initializer: Callable[[], None] | None,
                allow: tuple[str, ...], max_decompressed: int | None, explain: bool) -> Iterator[Any]:
    """Files whose batch died with its worker, each alone on a pool of one: the one that kills it again is
    reported as could not be scanned."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    while suspects:
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=initializer) as pool:
            left: list[tuple[str, str]] = []
            singles = []
            for item in suspects:
                try:
                    singles.append(pool.submit(scan_one, item, allow, max_decompressed, explain))
                except BrokenProcessPool:  # broken already: the rest wait for the next pool
                    break
            for i, fut in enumerate(singles):
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    yield could_not_scan(suspects[i][1], "the worker process scanning it died (out of memory or a "
                                                         "crash)")
                    left = suspects[i + 1 :]
                    break
            else:
                left = suspects[len(singles) :]
        suspects = left


# ---- Dask ---------------------------------------------------------------------------------------------------------

def scan_items(client: Any, items: Iterable[tuple[str, str]], allow: Iterable[str] = (),
               max_decompressed: int | None = None, explain: bool = False, policy: Any = None,
               batch_size: int = DASK_BATCH, retries: int = 1, max_in_flight: int | None = None) -> Iterator[Any]:
    """The reports of ``items`` (an iterable, consumed lazily) scanned on ``client``'s workers, as they finish.

    ``retries`` reruns a task that raised (Dask's ``retries``); a worker's death is handled by the scheduler
    (``allowed-failures``) and then here: the batch is split into single files, and a single file whose worker
    still dies is tried once more at the end, alone on the cluster (so that no file queued beside the culprit is
    blamed); if its worker dies then too, it is reported as could not be scanned."""
    import distributed

    as_completed: Any = distributed.as_completed  # untyped

    allow = tuple(allow)
    if max_in_flight is None:
        try:
            cores = sum(client.nthreads().values())
        except Exception:  # noqa: BLE001 - a client without workers yet
            cores = 1
        max_in_flight = max(4, 4 * cores)

    def submit(batch: list[tuple[str, str]]) -> Any:
        return client.submit(scan_batch, batch, allow, max_decompressed, explain, policy, pure=False,
                             retries=retries, key=f"safeload-scan-{next(counter)}")

    counter = itertools.count()
    source = _batches(items, batch_size)
    batch_of: dict[Any, list[tuple[str, str]]] = {}
    suspects: list[tuple[str, str]] = []  # single files whose worker died while others ran beside them
    queue = as_completed()
    for batch in itertools.islice(source, max_in_flight):
        fut = submit(batch)
        batch_of[fut] = batch
        queue.add(fut)
    for fut in queue:
        batch = batch_of.pop(fut)
        try:
            reports = fut.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, or an exception the task raised after retries
            reports = None
            if len(batch) > 1:
                for item in batch:
                    single = submit([item])
                    batch_of[single] = [item]
                    queue.add(single)
            elif type(exc).__name__ == "KilledWorker":
                # A worker also holds tasks queued beside the one it runs: when the file that kills it comes
                # back, a clean file queued on the same worker dies with it and is counted as a failure too.
                # Which one killed it is settled at the end, one file alone on the cluster at a time.
                suspects.append(batch[0])
            else:
                reports = [could_not_scan(batch[0][1], f"the task failed ({type(exc).__name__})")]
        fut.release()
        if reports is not None:
            yield from reports
        nxt = next(source, None)
        if nxt is not None:
            new = submit(nxt)
            batch_of[new] = nxt
            queue.add(new)
    for item in suspects:
        fut = submit([item])
        try:
            yield from fut.result()
        except Exception as exc:  # noqa: BLE001
            killed = type(exc).__name__ == "KilledWorker"
            yield could_not_scan(item[1], "the worker scanning it died (out of memory or a crash), every time it "
                                 "was tried, alone on the cluster" if killed else
                                 f"the task failed ({type(exc).__name__})")
        finally:
            fut.release()


def scan_distributed(client: Any, paths: Iterable[Any], policy: Any = None, *, allow: Iterable[str] = (),
                     max_decompressed: int | None = None, explain: bool = False, results: str | None = None,
                     batch_size: int = DASK_BATCH, retries: int = 1) -> Any:
    """Scan files, folders and URLs on a Dask cluster (``distributed.Client``); return the one
    :class:`safeload._scan.Report` a local scan of the same paths returns. ``results``: a JSON-lines file to resume
    from and to append to."""
    from ._collect import iter_any
    from ._scan import Report

    skipped: list[Any] = []
    listing = iter_any(paths, skipped)  # lazily: the first tasks start while folders are still being walked
    state = ResultsFile(results)
    report = Report()

    def todo() -> Iterator[tuple[str, str]]:
        for item in listing:
            if item[1] in state.done:
                report.files.append(state.done[item[1]])
            else:
                yield item

    try:
        for result in scan_items(client, todo(), allow, max_decompressed, explain, policy, batch_size, retries):
            state.write([result])
            report.files.append(result)
    finally:
        state.close()
    report.files.extend(skipped)
    report.files.sort(key=lambda f: f.path)
    return report
