"""Open captures for reading by magic; open outputs atomically, format and compression by name."""

from __future__ import annotations

import atexit
import errno
import fcntl
import gzip
import io
import os
import re
import shutil
import signal
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO

import zstandard

from anontrace.errors import OutputError, TraceFormatError
from anontrace.io.pcap import MAGICS, PcapReader, PcapWriter
from anontrace.io.pcapng import SHB, PcapngReader, PcapngWriter
from anontrace.io.stream import CHUNK, DamagedInput, open_input

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

Reader = PcapReader | PcapngReader
Writer = PcapWriter | PcapngWriter
FORMATS = {".pcap": "pcap", ".cap": "pcap", ".dmp": "pcap", ".pcapng": "pcapng", ".ntar": "pcapng"}
COMPRESSIONS = (".gz", ".zst")


def open_reader(path: str) -> Reader:
    """Open a pcap or pcapng capture (possibly compressed, `-` for stdin), found by its magic."""
    stream = open_input(path)
    try:
        head = stream.read(4)
    except DamagedInput as exc:
        stream.close()
        raise TraceFormatError(f"{stream.name}: byte 0", exc.what, exc.hint) from None
    if not head:
        stream.close()
        raise TraceFormatError(stream.name, "file is empty", "a capture starts with a pcap or pcapng header")
    magic = struct.unpack("<I", head.ljust(4, b"\0"))[0]
    try:
        if len(head) == 4 and magic in MAGICS:
            return PcapReader(stream, head)
        if len(head) == 4 and magic == SHB:
            return PcapngReader(stream, head)
    except TraceFormatError:
        stream.close()
        raise
    stream.close()
    raise TraceFormatError(f"{stream.name}: byte 0", f"not a pcap or pcapng file (starts with {head.hex()})",
                           "give a .pcap or .pcapng capture, optionally gzip or zstd compressed")


def output_format(path: str, input_format: str) -> tuple[str, str]:
    """(capture format, compression suffix) for an output path: by extension, else the input's."""
    name = Path(path).name.lower()
    compression = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    base = name.removesuffix(compression) if compression else name
    return FORMATS.get(Path(base).suffix, input_format), compression


def make_writer(out: BinaryIO, name: str, capture_format: str, reader: Reader) -> Writer:
    if capture_format == "pcapng":
        return PcapngWriter(out, name)
    link_field = reader.link_field if isinstance(reader, PcapReader) else None
    return PcapWriter(out, name, link_field)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PARTIAL = ".partial"
STDOUT_NAME = "anontrace-stdout"  # the staged name of an output bound for stdout, in the temporary directory
_UNPUBLISHED: set[StagedOutput] = set()  # removed at exit if nothing else removed them first
_holding: list[bool] = []  # not empty while `signals_held` holds them


class StagedOutput:
    """An output built in a hidden temporary file and published under its name only on request.

    The temporary file (`.<name>.<random>.partial`) sits beside `path`, so publishing is one atomic
    rename, or in the temporary directory for `-` (stdout gets a copy of it when published). Until
    `publish`, nothing exists under the final name; `discard` (or leaving the `with` block
    unpublished, by an error or an interruption) removes the temporary file, and so does the exit
    of the process as a last resort. `seal` finishes the file so it can be read back: the leakage
    report scans an output before deciding whether it may be published.

    Only SIGKILL (or a crash of the machine) leaves a temporary file behind. Each one is locked
    (`flock`, shared) by its process for as long as that process lives, and the kernel drops the
    lock when the process dies however it dies; so the next output staged under the same name
    removes the ones nobody holds any more, if they belong to the same user. Creating and locking a
    temporary happens under a shared lock on the directory, removing dead ones under an exclusive
    one, so a temporary is never seen before it is locked. A write that fails (disk full, file too
    large, I/O error) raises `OutputError` naming the output.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.published = False
        if path == "-":
            directory, name = tempfile.gettempdir(), STDOUT_NAME
        else:
            directory, name = str(Path(path).parent), Path(path).name
        with DirectoryLock(directory) as lock:
            if lock.acquire(fcntl.LOCK_EX | fcntl.LOCK_NB):
                self.abandoned = remove_abandoned(directory, name)
            else:  # another run is creating or publishing here; dead runs' files can wait
                self.abandoned = []
                lock.acquire(fcntl.LOCK_SH)
            with signals_held():  # no interruption between creating the file and taking note of it
                try:
                    fd, self.temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=PARTIAL)
                except OSError as exc:
                    raise OutputError(_where(path), f"cannot create output: {exc.strerror}",
                                      f"{directory} must exist and be writable by this user") from None
                self._raw = io.BufferedWriter(_Checked(fd, path))
                self._lock = _hold(self.temporary)
                _UNPUBLISHED.add(self)
        compression = output_format(path, "pcap")[1] if path != "-" else ""
        self.stream: BinaryIO = self._raw
        if compression == ".gz":
            self.stream = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)  # type: ignore[assignment]
        elif compression == ".zst":
            self.stream = zstandard.ZstdCompressor().stream_writer(self._raw, closefd=False)

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published:
            self.discard()

    def seal(self) -> None:
        """Finish writing: flush any compression and the file to disk, and close it."""
        if self._raw.closed:
            return
        try:
            if self.stream is not self._raw:
                self.stream.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
        except OSError as exc:
            raise write_error(self.path, exc) from None
        finally:
            if not self._raw.closed:
                with suppress(OSError, OutputError):  # the buffer cannot be written: drop it
                    self._raw.close()

    def publish(self) -> None:
        """Make the output appear under its final name (or on stdout), all at once. Several
        outputs that belong together are published inside one `publication`."""
        self.seal()
        try:
            if self.path == "-":
                try:
                    with open(self.temporary, "rb") as staged:
                        shutil.copyfileobj(staged, sys.stdout.buffer, CHUNK)
                    sys.stdout.buffer.flush()
                except BaseException as exc:  # an interruption, or stdout closed by its reader
                    exc.add_note("stdout got an incomplete copy of the trace: discard it")
                    raise
                os.unlink(self.temporary)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.temporary, 0o666 & ~umask)
                os.replace(self.temporary, self.path)
        except OSError as exc:
            where = "<stdout>" if self.path == "-" else self.path
            raise OutputError(where, f"cannot write output: {exc.strerror or exc}") from None
        self.published = True
        self._release()

    def discard(self) -> None:
        """Remove the temporary file; nothing is left behind. Safe to call again."""
        if not self._raw.closed:
            with suppress(OSError, OutputError):
                self._raw.close()
        with suppress(OSError):  # if it cannot be removed, it is a dead run's file to the next run
            os.unlink(self.temporary)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        _UNPUBLISHED.discard(self)


class _Checked(io.FileIO):
    """The staged file itself: a write that fails says which output could not be written."""

    def __init__(self, fd: int, path: str) -> None:
        super().__init__(fd, "wb")
        self.target = path

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise write_error(self.target, exc) from None


WRITE_HINTS = {
    errno.ENOSPC: "free space on the output's filesystem and run again",
    errno.EDQUOT: "the disk quota is used up: free space and run again",
    errno.EFBIG: "the file outgrew what its filesystem or the process's file size limit (ulimit -f) allows",
}


def write_error(path: str, exc: OSError) -> OutputError:
    """An output that could not be written (nothing is published under its name)."""
    return OutputError(_where(path), f"cannot write output: {exc.strerror or exc}",
                       WRITE_HINTS.get(exc.errno or 0, ""))


def _where(path: str) -> str:
    """How an error names an output: stdout's is staged in the temporary directory, whose
    filesystem is the one that can be full or read-only."""
    return path if path != "-" else f"<stdout> (staged in {tempfile.gettempdir()})"


def _hold(path: str) -> int | None:
    """Open and lock (shared) a temporary file for as long as this process lives or until it is
    published or discarded: the lock is what tells the next run this file is not abandoned."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    with suppress(OSError):  # no flock here: then no file is taken for abandoned either
        fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def remove_abandoned(directory: str, name: str) -> list[str]:
    """Remove the temporary files of outputs named `name` that no live process holds: those of
    runs killed by SIGKILL. Only this user's regular files whose lock can be taken are removed;
    call with the directory locked exclusively (so no file is seen between its creation and its
    lock). Returns the paths removed."""
    pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}" + re.escape(PARTIAL))
    removed = []
    try:
        entries = [entry.path for entry in os.scandir(directory) if pattern.fullmatch(entry.name)]
    except OSError:
        return []
    for path in entries:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(info, os.stat(path, follow_symlinks=False)):
                os.unlink(path)
                removed.append(path)
        except OSError:  # held by a live run (or gone, or not ours to remove)
            continue
        finally:
            os.close(fd)
    return removed


class DirectoryLock:
    """An advisory lock (`flock`) on a directory, taken by every anontrace process that writes
    there: shared to create a temporary file, exclusive to remove abandoned ones or to publish.
    Where the directory cannot be opened or locked (some network filesystems), `acquire` says so
    and the caller goes on unlocked: the lock orders anontrace runs, it guards no data."""

    def __init__(self, directory: str) -> None:
        try:
            self._fd: int | None = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            self._fd = None

    def acquire(self, operation: int) -> bool:
        if self._fd is None:
            return False
        try:
            fcntl.flock(self._fd, operation)
        except OSError:  # held (LOCK_NB), or not supported
            return False
        return True

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, then act as they would have: for steps that
    must not be cut in two. Python runs signal handlers in the main thread, whichever thread the
    signal reached (a progress bar may run one), so masking signals in this thread would not do:
    the handlers are swapped for ones that take note. In any other thread there is nothing to
    hold, as a handler's exception cannot reach it. Ignored signals stay ignored."""
    if _holding or threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    swapped: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int] = {}

    def take_note(number: int, frame: FrameType | None) -> None:
        arrived.append(number)

    _holding.append(True)
    try:
        for signum in STOP_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is not None and handler is not signal.SIG_IGN:
                swapped[signum] = handler  # noted first: whatever happens next, it is put back
                signal.signal(signum, take_note)
        yield
    finally:
        _holding.pop()
        for signum, handler in swapped.items():
            signal.signal(signum, handler)
        if arrived:
            signal.raise_signal(arrived[0])  # the handler restored above acts on it now


@contextmanager
def publication(paths: Iterable[str]) -> Iterator[None]:
    """Publish outputs that belong together (a trace and its bundle) as one step: the directories
    they go to are locked exclusively, in a fixed order, against other anontrace runs publishing
    there (so two runs writing the same names leave one run's files, not a mix), and SIGINT and
    SIGTERM wait until the block ends, so an interruption comes before the first rename or after
    the last. Waiting for the locks can be interrupted; stdout (`-`) is not locked."""
    directories: dict[tuple[int, int], str] = {}
    for path in paths:
        if path == "-":
            continue
        directory = str(Path(path).parent)
        with suppress(OSError):
            info = os.stat(directory)
            directories.setdefault((info.st_dev, info.st_ino), directory)
    with ExitStack() as stack:
        for identity in sorted(directories):
            stack.enter_context(DirectoryLock(directories[identity])).acquire(fcntl.LOCK_EX)
        stack.enter_context(signals_held())
        yield


@atexit.register
def _discard_unpublished() -> None:
    """The last resort: whatever is still staged when the process exits is removed, and a
    signal arriving now does not cut that short (the process is ending anyway)."""
    if not _UNPUBLISHED:
        return
    with suppress(ValueError):  # not the main thread: signals cannot be set from here
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    for staged in list(_UNPUBLISHED):
        staged.discard()


@contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A binary stream that appears under `path` (or on stdout for `-`) only if the block finishes
    without an error; see `StagedOutput`."""
    with StagedOutput(path) as staged:
        yield staged.stream
        with publication([path]) if path != "-" else nullcontext():
            staged.publish()
