"""Container traversal for :func:`safeload.scan`: what the scanner opens, and how it watches the loader.

The scanner does not parse pickles itself. Every checkpoint format goes through ``_load.load_buffer``, the code
:func:`safeload.load` runs, with ``tensors="none"`` (storages are size-checked, never read) and an *observer*
(:class:`_Observer`) that the VM tells about every global it resolves and every one it refuses. Around that,
:class:`Scanner` opens the generic containers a checkpoint can arrive in, by content and never by name (zip,
tar, gzip, bz2, xz/lzma, zstd, 7z), member by member, within a decompression budget, and scans the members of a
checkpoint zip that ``load`` never reads. What it finds goes into the report model, safeload/_report.py.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable

from ._hints import Any
from ._detect import BUNDLES, COMPRESSED, cpython_reach, detect, kind_reason
from ._load import Options, load_buffer
from ._report import ALLOWED, DANGEROUS, ERROR, UNKNOWN, UNSAFE, Finding, GlobalRef, finding_from_error, join
from .errors import (
    FormatError,
    InternalError,
    LimitExceededError,
    SafeLoadError,
    TrailingDataError,
    UnsafeGlobalError,
    UnsupportedFormatError,
    third_party,
)
from ._record import replace
from ._types import Entry
from .policy import Policy, canonical_name, danger_of

__all__ = ["MAX_NESTING", "Scanner", "sniff"]

#: Containers inside containers, at most this deep.
MAX_NESTING = 8
_UNJUDGED: Any = object()  # a member load did not read
#: Protocol-0 pickles are text: a file is set aside as "text, not a checkpoint" only if the walker saw no global.
#: In UTF-8 text, the C0 controls but tab, LF, FF and CR are those single bytes (no other character's encoding holds
#: a byte below 0x80), and the C1 controls U+0080-U+009F are 0xC2 then 0x80-0x9F (0xC2 only ever starts a two-byte
#: character): so valid UTF-8 is checked as bytes, without decoding it to a str or running a regex over all of it.
_C0_BYTES = bytes(range(0x00, 0x09)) + b"\x0b" + bytes(range(0x0E, 0x20))
_C1_BYTES = re.compile(b"\xc2[\x80-\x9f]")


# ---- observing the loader ------------------------------------------------------------------------------------------

class _Observer:
    """Receives the VM's reports for one blob (a file, or one member of an archive)."""

    def __init__(self, scanner: Scanner, chain: tuple[str, ...]) -> None:
        self.scanner = scanner
        self.chain = chain
        self.member: str | None = join(chain)
        self.pickle = -1
        self.starts: list[tuple[str | None, int]] = []
        self.flagged: set[int] = set()
        self.seen_globals = 0
        self.global_offsets: set[tuple[str | None, int]] = set()
        self.findings: list[Finding] = []
        self.error: SafeLoadError | None = None
        #: members of a checkpoint zip that load read and judged (``unread_member``): the content and its format
        #: for those the scanner opens, None for data no native reader acts on
        self.unread: dict[str, tuple[bytes, str | SafeLoadError] | None] = {}
        self._kept = 0

    def begin_pickle(self, member: str | None, start: int) -> None:
        self.scanner.pickles += 1
        self.pickle += 1
        self.starts.append((member, start))
        self.member = join(self.chain + ((member,) if member else ()))

    def on_global(self, qualname: str, entry: Entry | None, offset: int, opcode: str) -> None:
        self.seen_globals += 1
        self.global_offsets.add((self.member, offset))
        if entry is not None:
            verdict, reason = ALLOWED, entry.reason
        else:
            danger = danger_of(qualname)
            verdict, reason = (DANGEROUS, danger) if danger else (UNKNOWN, "")
        self.scanner.globals.append(GlobalRef(qualname, verdict, reason, self.member, max(self.pickle, 0), offset,
                                              opcode))

    def on_refusal(self, err: UnsafeGlobalError) -> None:
        self.flagged.add(max(self.pickle, 0))
        self.findings.append(finding_from_error(self.scanner.path, err, self.member, max(self.pickle, 0)))

    def unread_member(self, name: str, content: bytes, refused: bool) -> None:
        """Load read a member of a checkpoint zip that torch.load never reads, and judged it (``refused``: an
        .npy, a zip, or bytes CPython's unpickler could act on). The scanner keeps what it will open, within its
        decompression budget, so each member is read, walked and detected once."""
        sniffed = _sniff(content)
        if not refused and _plain(sniffed, content):
            self.unread[name] = None
        elif self._kept + len(content) <= self.scanner.budget.left():
            self._kept += len(content)
            self.unread[name] = (content, sniffed)


def _refine(kind: str, observer: _Observer) -> str:
    """A more exact format name, from the pickle streams the loader ran."""
    members = [m or "" for m, _ in observer.starts]
    if any(m.endswith("data.pkl") for m in members):
        return "torch-zip"
    if any(m.startswith("legacy") for m in members):
        return "torch-legacy"
    if kind == "tar":
        return "torch-tar"
    return "npz" if kind == "zip" else kind


def _without_frames(err: SafeLoadError) -> SafeLoadError:
    """Drop the tracebacks of an error and of the exceptions chained to it; the structured fields stay."""
    seen: set[int] = set()
    exc: BaseException | None = err
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
    return err


# ---- containers the scanner opens itself ---------------------------------------------------------------------------

_COMPRESSED = ("gzip", "bz2", "xz", "zstd", "lzma", "lz4")


def sniff(data: Any) -> str:
    """The registry's format (``safeload._detect.detect``, the one ``load`` dispatches on); raises a FormatError
    for a polyglot."""
    return detect(data)


def _sniff(data: Any) -> str | SafeLoadError:
    """:func:`sniff`, with the polyglot error returned: it is reported where the blob is scanned."""
    try:
        return sniff(data)
    except SafeLoadError as err:
        return err


def _plain(sniffed: str | SafeLoadError, content: Any) -> bool:
    """A member in no format, or a pickle without a protocol header: data or text, unless CPython's unpickler
    could act on it (the caller's test)."""
    return sniffed in ("unknown", "pickle", "empty") and bytes(content[:1]) != b"\x80"


class _Budget:
    """Bytes that decompression and archive extraction may produce for one top-level file."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.used = 0

    def left(self) -> int:
        return self.maximum - self.used

    def charge(self, n: int, what: str) -> None:
        self.used += n
        if self.used > self.maximum:
            raise LimitExceededError("max_decompressed", self.used, self.maximum,
                                     what=f"{what} inflates past the scanner's limit of {self.maximum} bytes",
                                     why="a small file that inflates without bound is a decompression bomb",
                                     fix="If the file is trusted and really this large, pass a larger "
                                         "max_decompressed to safeload.scan (or --max-decompressed)")


def _archive(kind: str) -> contextlib.AbstractContextManager[None]:
    """tarfile and py7zr behind the one boundary for third-party parsers (safeload.errors.third_party): whatever
    they raise on bad input (py7zr raises AssertionError and TypeError on fuzzed files) becomes a FormatError.
    Only their calls run inside it; safeload's own zip reader raises SafeLoadError itself."""
    return third_party(f"the {kind} container", (Exception,),
                       fix="The file is damaged or crafted; unpack it with a trusted tool if you trust it")


def _decompress(kind: str, data: Any, budget: _Budget) -> bytes:
    """Inflate a stream with the loader's own decompression (so scan and load read it alike), within the budget.
    The input is passed as it is (a mapped file is not copied)."""
    from ._containers.compressed import decompress

    out = decompress(kind, data if kind == "zstd" or isinstance(data, bytes) else memoryview(data), budget.left())
    budget.charge(len(out), f"A {kind} stream")
    return out


# ---- the scanner ------------------------------------------------------------------------------------------------

class Scanner:
    """Scans one top-level file (or bytes) and everything nested in it."""

    def __init__(self, path: str, policy: Policy, max_decompressed: int, explain: bool) -> None:
        self.path = path
        self.policy = policy
        self.budget = _Budget(max_decompressed)
        self.explain = explain
        self.findings: list[Finding] = []
        self.globals: list[GlobalRef] = []
        self.notes: list[str] = []
        self.pickles = 0
        self.members = 0
        self.skip_reason = ""  # a top-level file of a kind that holds no pickle (safeload/_kinds.py)
        self._parsed: tuple[Any, Any] | None = None  # (data, ZipArchive) of the checkpoint zip being scanned
        #: ``safeload info``: called with (blob, chain, member, start) for each pickle stream the loader ran
        self.stream_hook: Callable[[Any, tuple[str, ...], str | None, int], None] | None = None

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def error(self, err: SafeLoadError, chain: tuple[str, ...]) -> None:
        self.add(finding_from_error(self.path, err, join(chain), None))

    # one blob: a file, or a member of an archive
    def blob(self, data: Any, chain: tuple[str, ...], depth: int = 0,
             sniffed: str | SafeLoadError | None = None) -> str:
        """Scan ``data`` and what it holds; return its format name: "text" for a text file set aside, and
        ``<kind>-bundle`` for what ``load`` never opens but the scanner opens member by member (generic zip, tar,
        7z, a compressed stream around one of them or around another compressed stream). ``sniffed``: what
        :func:`_sniff` returned for ``data``, when the caller has run it."""
        kind = _sniff(data) if sniffed is None else sniffed
        if isinstance(kind, SafeLoadError):  # a polyglot: reported, and what a pickle reader would import is named
            self.error(kind, chain)
            self._name_globals(data, 0, chain, set(), None)
            return "polyglot"
        if depth > MAX_NESTING:
            self.error(LimitExceededError("max_nesting", depth, MAX_NESTING, what="Archives nested too deep",
                                          fix="Unpack the outer archives with a trusted tool and scan the inside"),
                       chain)
            return kind
        known = kind_reason(kind)
        if known is not None:  # a model format without pickles, or a file of no model format (safeload/_kinds.py)
            group, reason = known
            if group == "code":
                self.error(UnsupportedFormatError(kind, why=reason,
                                                  fix="Re-save the model without the layer that holds code"), chain)
            elif depth:
                self.notes.append(f"{join(chain)}: {reason}, not scanned")
            else:
                self.skip_reason = reason
            return kind
        name = kind
        try:
            if kind in _COMPRESSED:
                inner = self.blob(_decompress(kind, data, self.budget), chain + (f"[{kind}]",), depth + 1)
                if inner == "text" or inner.endswith("-bundle") or inner in COMPRESSED:
                    name = f"{kind}-bundle"  # load opens one compression layer around a checkpoint, no more
            elif kind == "tar" and self._tar_is_checkpoint(data):
                return self._checkpoint(data, chain, kind, depth)
            elif kind in BUNDLES:
                name = f"{kind}-bundle"
                (self._tar if kind == "tar" else self._7z)(data, chain, depth)
            elif kind == "zip" and not self._zip_is_checkpoint(data):
                name = "zip-bundle"
                self._zip(data, chain, depth)
            else:
                return self._checkpoint(data, chain, kind, depth)
        except SafeLoadError as err:
            self.error(err, chain)
        except Exception as exc:  # a bug in safeload's own code: reported as load reports it, never called clean
            self.error(InternalError.wrap(exc, where=f"while scanning a {kind} file"), chain)
        return name

    def _checkpoint(self, data: Any, chain: tuple[str, ...], kind: str, depth: int) -> str:
        """Everything ``load`` opens goes through ``load``'s own code, observed."""
        known = len(self.globals)
        observer = self._observe(data, chain, kind)
        error = observer.error
        if (error is not None or observer.seen_globals) and kind in ("pickle", "unknown") and _is_text(data) \
                and not cpython_reach(data):
            # A README, a config.json, a Python source (``class Net:`` is GLOBAL ``lass Net:``, which no import
            # can find): CPython's unpickler fails before it could import or call anything. Text, not a pickle.
            del self.globals[known:]
            if depth:
                self.notes.append(f"{join(chain)}: text, not a checkpoint")
            return "text"
        if error is not None and not observer.seen_globals:
            if kind == "pickle" and bytes(data[:3]) == b"\x5d\x00\x00":
                # ']' is EMPTY_LIST in protocol 0, and also how an lzma-alone stream (joblib .lzma) begins
                try:
                    inner = _decompress("lzma", data, self.budget)
                except SafeLoadError:
                    pass
                else:
                    self.blob(inner, chain + ("[lzma]",), depth + 1)
                    return "lzma"
        if error is not None:
            observer.findings.append(finding_from_error(self.path, error, observer.member,
                                                         observer.pickle if observer.pickle >= 0 else None))
            if observer.starts:
                # the VM stopped; a plain walk over the rest of the stream names what a native reader would import
                self.findings.extend(observer.findings)
                observer.findings = []
                if not observer.unread:  # else load ran every pickle to its end and then refused a member
                    self._walk_refused(data, chain, kind, observer)
            elif not observer.starts and kind in ("pickle", "unknown"):
                self.findings.extend(observer.findings)
                observer.findings = []
                self._name_globals(data, 0, chain, observer.global_offsets, None)
            hidden = error.offset
            if isinstance(error, TrailingDataError) and hidden and not error.member and observer.pickle == 0:
                # load stops here; the scanner looks on, to name what the bytes after STOP would run
                self.findings.extend(observer.findings)
                observer.findings = []
                self.blob(bytes(data[hidden:]), chain + (f"[after STOP at byte {hidden}]",), depth + 1)
        if self.explain and observer.flagged:
            self._explain(data, observer)
        if self.stream_hook is not None:
            for member, start in observer.starts:
                self.stream_hook(data, chain, member, start)
        self.findings.extend(observer.findings)
        if kind == "zip":
            self._unread_members(data, chain, depth, observer)
        return _refine(kind, observer)

    def _walk_refused(self, data: Any, chain: tuple[str, ...], kind: str, observer: _Observer) -> None:
        """The plain walk over the stream the VM refused: in the blob itself (a plain pickle, or a part of a
        legacy torch file), or in the zip member it came from (a torch zip's data.pkl)."""
        member, start = observer.starts[-1]
        stream = data
        if member is not None and kind == "zip":
            try:
                stream = self._archive_of(data).read(member, max_size=self.policy.limits.max_decompressed,
                                                     limit="max_decompressed")
            except SafeLoadError:
                return
        elif member is not None and not member.startswith("legacy"):
            return
        where = chain + ((member,) if member else ())
        self._name_globals(stream, start, where, observer.global_offsets, observer.pickle)

    def _name_globals(self, data: Any, start: int, chain: tuple[str, ...], seen: set[tuple[str | None, int]],
                      pickle: int | None) -> None:
        """After the VM refused a stream: every GLOBAL, INST and STACK_GLOBAL (of literal strings) in the rest of
        it, walked as CPython reads it, reported with its verdict; those outside the policy are findings."""
        member = join(chain)
        for reach in cpython_reach(data, start, every=True):
            if reach.module is None or (member, reach.offset) in seen:
                continue
            seen.add((member, reach.offset))
            module, name = canonical_name(reach.module, reach.name or "")
            qualname = f"{module}.{name}"
            entry = self.policy.lookup(module, name)
            if entry is not None:
                self.globals.append(GlobalRef(qualname, ALLOWED, entry.reason, member, pickle or 0, reach.offset,
                                              reach.opcode))
                continue
            danger = danger_of(qualname)
            verdict, rule = (DANGEROUS, "dangerous-global") if danger else (UNKNOWN, "unknown-global")
            self.globals.append(GlobalRef(qualname, verdict, danger or "", member, pickle or 0, reach.offset,
                                          reach.opcode))
            self.add(Finding(self.path, rule, UNSAFE, f"{qualname} named after the loader stopped reading",
                             why=(f"{qualname} is known to be dangerous: it {danger}" if danger else
                                  f"{qualname} is not in the allowlist") + "; pickle.load reads on where safeload "
                                 "refused the stream, and would import it",
                             fix="Do not open this file with pickle, torch.load or joblib.load",
                             member=member, pickle=pickle, offset=reach.offset, opcode=reach.opcode,
                             qualname=qualname, verdict=verdict))

    def _unread_members(self, data: Any, chain: tuple[str, ...], depth: int, observer: _Observer) -> None:
        """Members of a checkpoint zip that ``load`` never read are scanned by content: ``np.load(file)[key]``,
        ``zipfile`` and ``unzip`` open every member. Storage records (``<prefix>/data/<key>``) are data, size-checked
        by the loader; any other member that holds something CPython's unpickler would act on is a finding."""
        try:
            zf = self._archive_of(data)
        except SafeLoadError:
            return  # load's own reader has reported it
        finally:
            self._parsed = None
        names = [n for n in zf.members if not n.endswith("/")]
        torch = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        read = {m for m, _ in observer.starts if m}
        if isinstance(observer.error, LimitExceededError) and observer.error.member:
            read.add(observer.error.member)  # load stopped on its size and reported it: not inflated a second time
        if torch:
            prefix = torch[0][: -len("data.pkl")]
            unread = [n for n in names if n not in read and not (n.startswith(prefix + "data/")
                                                                 and "/" not in n[len(prefix) + 5:])]
        elif observer.error is not None:  # an npz that load stopped reading: the rest are scanned here
            unread = [n for n in names if n not in read and n != observer.error.member]
        else:
            return  # an npz that load read whole
        for name in unread:
            member = zf.members[name]
            self.budget.charge(member.size, f"Zip member {name!r}")
            judged = observer.unread.get(name, _UNJUDGED)
            if judged is None:
                continue  # load read it: data or text that every pickle reader fails on
            if judged is _UNJUDGED:  # load stopped before this member
                try:
                    content = zf.read(name, max_size=self.policy.limits.max_decompressed, limit="max_decompressed")
                except SafeLoadError as err:
                    self.error(err, chain + (name,))
                    continue
                sniffed = _sniff(content)
                if _plain(sniffed, content) and not cpython_reach(content):
                    continue  # data or text that every pickle reader fails on before it could import anything
            else:
                content, sniffed = judged
            before = self.pickles + len(self.findings)
            self.blob(content, chain + (name,), depth + 1, sniffed)
            if torch and self.pickles + len(self.findings) > before:
                self.add(Finding(self.path, "unexpected-member", ERROR,
                                 f"Checkpoint member {name!r} holds a pickle that torch.load never reads",
                                 why="np.load(file)[key], zipfile and unzip open every member of the archive; a "
                                     "pickle where a checkpoint has none is a payload or a mistake",
                                 fix="Remove the member with a trusted tool, or re-save the checkpoint with "
                                     "torch.save", member=join(chain + (name,))))

    def _observe(self, data: Any, chain: tuple[str, ...], kind: str) -> _Observer:
        observer = _Observer(self, chain)
        opts = Options(self.policy, "raise", "latin1", "strict", "none", None, False, observer=observer)
        if kind != "zip" and not isinstance(data, bytes):
            data = bytes(data)  # only the zip reader works on a mapped file; the other readers expect bytes
        try:
            # load's own wrapper: MemoryError, RecursionError, ... as load reports them; neither detect nor the
            # zip's central directory is read again
            archive = self._parsed[1] if self._parsed is not None and self._parsed[0] is data else None
            load_buffer(data, opts, kind, archive)
        except UnsafeGlobalError as err:  # allowed as a value but called: raised, not observed
            observer.flagged.add(max(observer.pickle, 0))
            observer.findings.append(finding_from_error(self.path, err, observer.member, max(observer.pickle, 0)))
        except SafeLoadError as err:
            # Kept without its traceback: the frames would hold views of a mapped file, and the cycle
            # (error -> frame -> observer -> error) would keep the map from closing (BufferError in scan_file).
            observer.error = _without_frames(err)
        return observer

    def _archive_of(self, data: Any) -> Any:
        """The ZipArchive of the checkpoint zip ``data``: the one :meth:`_zip_is_checkpoint` made, not a second."""
        from ._containers.zip import ZipArchive

        parsed = self._parsed
        return parsed[1] if parsed is not None and parsed[0] is data else ZipArchive(data,
                                                                                      self.policy.limits.max_members)

    def _zip_is_checkpoint(self, data: Any) -> bool:
        """Zips that ``load`` reads (torch, npz) go through it; other zips are opened member by member."""
        from ._containers.zip import ZipArchive

        try:
            zf = ZipArchive(data, self.policy.limits.max_members)
        except SafeLoadError:
            return True  # let load's own reader report the problem, as load would
        checkpoint = any(n.endswith("data.pkl") or n.endswith(".npy") for n in zf.members)
        if checkpoint:
            self._parsed = (data, zf)  # reused by _unread_members
        return checkpoint

    @staticmethod
    def _tar_is_checkpoint(data: Any) -> bool:
        """A torch < 0.4 tar checkpoint (its four members) goes through ``load``; other tars are bundles."""
        import tarfile

        try:
            with _archive("tar"), tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as tf:
                names = set()
                for info in tf:
                    names.add(info.name)
                    if len(names) > 4:
                        return False
        except SafeLoadError:
            return False
        return names == {"sys_info", "storages", "tensors", "pickle"}

    def _count(self, n: int = 1) -> None:
        self.members += n
        limit = self.policy.limits.max_members
        if self.members > limit:
            raise LimitExceededError("max_members", self.members, limit,
                                     what=f"The archives in this file hold more than {limit} members")

    def _zip(self, data: Any, chain: tuple[str, ...], depth: int) -> None:
        from ._containers.zip import ZipArchive

        zf = ZipArchive(data, self.policy.limits.max_members)
        self._count(len(zf.members))
        for name, member in zf.members.items():
            if name.endswith("/"):
                continue
            self.budget.charge(member.size, f"Zip member {name!r}")
            content = zf.read(name, max_size=self.budget.left() + member.size, limit="max_decompressed")
            if name == "config.json" and b'"class_name": "__lambda__"' in content:
                # a Keras v3 .keras archive: the Lambda layer's marshalled bytecode is in its config
                self.error(UnsupportedFormatError("keras-lambda", member=name,
                                                  why=(kind_reason("keras-lambda") or ("", ""))[1],
                                                  fix="Re-save the model without Lambda layers"), chain)
            self.blob(content, chain + (name,), depth + 1)

    def _tar(self, data: Any, chain: tuple[str, ...], depth: int) -> None:
        """A tar, member by member (the registry has already refused a tar that is also another format)."""
        import tarfile

        seen: set[str] = set()
        with _archive("tar"):
            tf = tarfile.open(fileobj=io.BytesIO(data if isinstance(data, bytes) else bytes(data)), mode="r:")
        with tf:
            while True:
                with _archive("tar"):
                    info = tf.next()
                if info is None:
                    break
                self._count()
                if info.name in seen:
                    raise FormatError(f"Duplicate tar member {info.name!r}", member=info.name,
                                      why="two members with one name are read differently by different tools")
                seen.add(info.name)
                if info.isdir():
                    continue
                if not info.isreg():
                    self.notes.append(f"{join(chain + (info.name,))}: {_tar_kind(info)}, not scanned")
                    continue
                self.budget.charge(info.size, f"Tar member {info.name!r}")
                with _archive("tar"):
                    fh = tf.extractfile(info)
                    content = fh.read() if fh is not None else b""
                if len(content) != info.size:
                    raise FormatError(f"Tar member {info.name!r} is truncated", member=info.name)
                self._member(content, chain + (info.name,), depth)

    def _7z(self, data: Any, chain: tuple[str, ...], depth: int) -> None:
        try:
            import py7zr
        except ImportError:
            raise UnsupportedFormatError("7z", what="Unsupported format: 7z (py7zr is not installed)",
                                         why="the scanner cannot read what it cannot unpack, and never calls it "
                                             "clean",
                                         fix="pip install py7zr, then scan again") from None
        with _archive("7z"), py7zr.SevenZipFile(io.BytesIO(bytes(data)), mode="r") as archive:
            if archive.needs_password():
                raise FormatError("Encrypted 7z archive", why="safeload cannot check what it cannot read",
                                  fix="Decrypt the archive with a trusted tool first")
            infos = [i for i in archive.list() if not i.is_directory]
            self._count(len(infos))
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise FormatError("Duplicate 7z member names",
                                  why="two members with one name are read differently by different tools")
            self.budget.charge(sum(int(i.uncompressed or 0) for i in infos), "A 7z archive")
            contents = _read_7z(archive, self.budget)
        for name in names:
            self._member(contents.pop(name, b""), chain + (name,), depth)

    def _member(self, content: bytes, chain: tuple[str, ...], depth: int) -> None:
        if not content:
            self.notes.append(f"{join(chain)}: empty, not scanned")
            return
        self.blob(content, chain, depth + 1)

    def _explain(self, data: Any, observer: _Observer) -> None:
        from ._format.explain import decompile

        texts = {}
        for index in sorted(observer.flagged):
            if index < len(observer.starts):
                texts[index] = decompile(data, *observer.starts[index])
        observer.findings = [
            replace(f, explanation=texts[f.pickle])
            if f.severity == UNSAFE and f.pickle is not None and texts.get(f.pickle) else f
            for f in observer.findings
        ]


def _read_7z(archive: Any, budget: _Budget) -> dict[str, bytes]:
    """Every member of a 7z archive in memory (py7zr >= 1.0 has no readall: write through a memory factory)."""
    from py7zr.io import BytesIOFactory

    factory = BytesIOFactory(limit=max(budget.left(), 0) + 1)
    archive.extractall(factory=factory)
    out: dict[str, bytes] = {}
    for name, handle in factory.products.items():
        buffer = getattr(handle, "_buffer", None)  # py7zr's Py7zBytesIO wraps an io.BytesIO: take it, no copy
        if isinstance(buffer, io.BytesIO):
            out[name] = buffer.getvalue()
        else:
            handle.seek(0)
            out[name] = handle.read()
    return out


def _tar_kind(info: Any) -> str:
    if info.issym() or info.islnk():
        return f"a link to {info.linkname!r}"
    return "a special file"


def _is_text(data: Any) -> bool:
    """The first MiB of ``data`` is UTF-8 text (a character cut at the MiB boundary allowed) with no C0 control but
    tab, LF, FF and CR, and no C1 control."""
    raw = bytes(data[: 1 << 20])
    if not raw.isascii():  # ASCII is valid UTF-8 and holds no C1 control
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            if len(data) <= len(raw):
                return False
            raw = raw[:-4]  # a cut in the middle of a character at the 1 MiB boundary
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return False
        if b"\xc2" in raw and _C1_BYTES.search(raw) is not None:
            return False
    return len(raw.translate(None, _C0_BYTES)) == len(raw)
