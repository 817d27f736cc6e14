"""Faults an unattended export job meets, shown on real `anontrace scrub` processes and real
signals: SIGINT, SIGTERM and SIGKILL part way through a run and while it publishes; a missing or
read-only output directory, a full disk, an unreadable input; bad key files, and the key never
written anywhere; several runs writing into one directory at once.

Root ignores permission bits, so the permission faults run the command as root without the two
capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, dropped from the child's bounding
set before exec): it then meets EACCES like any user. (Running it as `nobody` would not do where
the interpreter lives under a home directory only root may enter.) A full disk is a file size limit
(RLIMIT_FSIZE) in the child: its writes fail with EFBIG part way through, as they would with ENOSPC.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import hashlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anontrace.io.capture import StagedOutput
from anontrace.keys import Key, generate, write_key_file
from anontrace.manifest import verify
from anontrace.rules.compile import read_rules
from anontrace.scrub import plan, scrub

ROOT = Path(__file__).parent.parent
MAKE_TRACE = ROOT / "benchmarks" / "make_trace.py"
BUNDLE = ("", ".labels.csv", ".flows.csv", ".report.json", ".report.html", ".manifest.json")
RULES = "version: 1\n"  # no gates: every run here publishes, whatever its residual scan finds
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
NOBODY = 65534
TIMEOUT = 300


@dataclass(frozen=True)
class Inputs:
    big: Path  # 200,000 frames: any run of it is still reading when a signal arrives
    medium: Path  # 30,000 frames: still running a moment after it starts, quick to run in full
    small: tuple[Path, ...]  # three different captures of 8,000 frames
    rules: Path
    key: Path
    secret: bytes


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    directory = tmp_path_factory.mktemp("inputs")

    def make(name: str, packets: int, seed: int) -> Path:
        path = directory / name
        subprocess.run([sys.executable, str(MAKE_TRACE), "--packets", str(packets), "--seed", str(seed),
                        "-o", str(path), "-q"], check=True, timeout=TIMEOUT)
        return path

    rules = directory / "rules.yaml"
    rules.write_text(RULES)
    key = generate()
    write_key_file(directory / "key", key)
    return Inputs(make("big.pcap", 200_000, 1), make("medium.pcap", 30_000, 2),
                  tuple(make(f"small{n}.pcap", 8_000, 10 + n) for n in range(3)), rules,
                  directory / "key", key.secret)


def start(*args: str, env: dict[str, str] | None = None,
          prepare: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
    """`anontrace ARGS` as a child process, with SIGINT at its default as in a foreground
    command (a shell starts background jobs with SIGINT ignored, and the child would inherit that)."""
    def before_exec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if prepare is not None:
            prepare()

    return subprocess.Popen([sys.executable, "-m", "anontrace", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=before_exec,
                            env={**os.environ, **(env or {})})


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: bytes
    stderr: str


def finish(process: subprocess.Popen[bytes]) -> Finished:
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return Finished(process.returncode, stdout, stderr.decode())


def run(*args: str, env: dict[str, str] | None = None,
        prepare: Callable[[], None] | None = None) -> Finished:
    return finish(start(*args, env=env, prepare=prepare))


def scrub_args(source: Path, target: Path | str, inputs: Inputs, *more: str) -> list[str]:
    return ["scrub", str(source), "-o", str(target), "-r", str(inputs.rules), "-q", *more]


def wait_for(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    """Poll until `ready()`, failing if the process ends first."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        assert process.poll() is None, f"the run ended before {what}: {finish(process)}"
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
        time.sleep(0.01)


def partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


def listing(directory: Path) -> list[str]:
    """Every entry, hidden ones included."""
    return sorted(p.name for p in directory.iterdir())


def bundle_names(trace: str) -> list[str]:
    return sorted(trace + suffix for suffix in BUNDLE)


def error(result: Finished, code: int, message: str, hint: str | None = None,
          note: str | None = None) -> None:
    """The run failed with `code` and exactly one located line (and its hint or note), no traceback."""
    expected = f"Error: {message}\n" + (f"  hint: {hint}\n" if hint is not None else "")
    expected += f"  note: {note}\n" if note is not None else ""
    assert (result.code, result.stderr) == (code, expected)


def verified(trace: Path) -> dict[str, Any]:
    """The bundle's manifest, after checking every file it lists against it."""
    result = verify(Path(f"{trace}.manifest.json"), None, [])
    assert result.problems == [], result.problems
    manifest: dict[str, Any] = json.loads(Path(f"{trace}.manifest.json").read_text())
    listed = sorted(entry["name"] for entry in manifest["files"])
    assert listed == [name for name in bundle_names(trace.name) if not name.endswith(".manifest.json")]
    return manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# 1. Interruption ------------------------------------------------------------------------------------

STOPS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]


@pytest.mark.parametrize(("signum", "code", "word"), STOPS, ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_exits_with_its_code_and_leaves_nothing(
        tmp_path: Path, inputs: Inputs, signum: int, code: int, word: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    process = start(*scrub_args(inputs.big, out / "big.pcap", inputs))
    wait_for(process, lambda: bool(partials(out)), "a .partial file")
    assert process.poll() is None
    process.send_signal(signum)
    result = finish(process)
    error(result, code, f"{word}; no partial output was left behind")
    assert listing(out) == []


@pytest.mark.parametrize(("signum", "code", "word"), STOPS, ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_to_stdout_writes_nothing_and_leaves_no_staged_file(
        tmp_path: Path, inputs: Inputs, signum: int, code: int, word: str) -> None:
    staging = tmp_path / "tmp"
    staging.mkdir()
    process = start(*scrub_args(inputs.big, "-", inputs), env={"TMPDIR": str(staging)})
    wait_for(process, lambda: bool(partials(staging)), "a .partial file")
    process.send_signal(signum)
    result = finish(process)
    error(result, code, f"{word}; no partial output was left behind")
    assert result.stdout == b""
    assert listing(staging) == []


def test_a_signal_while_copying_to_stdout_says_the_copy_is_incomplete(tmp_path: Path, inputs: Inputs) -> None:
    """The trace goes to stdout only once it passed; a reader that stops reading holds the copy
    up, and a signal then stops it part way: the run says so, and removes its staged file."""
    staging = tmp_path / "tmp"
    staging.mkdir()
    process = start(*scrub_args(inputs.medium, "-", inputs), env={"TMPDIR": str(staging)})
    assert process.stdout is not None
    poller = select.poll()
    poller.register(process.stdout, select.POLLIN)
    assert poller.poll(TIMEOUT * 1000), "nothing came on stdout"
    time.sleep(0.5)  # the pipe is full: the copy waits for its reader
    assert process.poll() is None and partials(staging) != []
    process.send_signal(signal.SIGTERM)
    result = finish(process)
    error(result, 143, "terminated; no partial output was left behind",
          note="stdout got an incomplete copy of the trace: discard it")
    assert 0 < len(result.stdout) < 1 << 20  # what the pipe held; the whole trace is over 2 MB
    assert listing(staging) == []


def test_an_interruption_names_the_outputs_already_finished(tmp_path: Path, inputs: Inputs) -> None:
    out = tmp_path / "out"
    process = start("scrub", str(inputs.small[0]), str(inputs.big), "-o", str(out), "-r", str(inputs.rules),
                    "-q")
    wait_for(process, lambda: out.exists() and any(n.startswith(".big.pcap.") for n in partials(out)),
             "the second output staged")
    process.send_signal(signal.SIGINT)
    result = finish(process)
    error(result, 130, "interrupted; no partial output was left behind",
          note=f"finished before it stopped: {out / 'small0.pcap'}")
    assert listing(out) == bundle_names("small0.pcap")
    verified(out / "small0.pcap")


def test_an_interrupted_run_leaves_an_earlier_bundle_as_it_was(tmp_path: Path, inputs: Inputs) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert run(*scrub_args(inputs.small[0], out / "big.pcap", inputs)).code == 0
    before = {name: (out / name).read_bytes() for name in listing(out)}
    process = start(*scrub_args(inputs.big, out / "big.pcap", inputs))
    wait_for(process, lambda: bool(partials(out)), "a .partial file")
    process.send_signal(signal.SIGINT)
    assert finish(process).code == 130
    assert {name: (out / name).read_bytes() for name in listing(out)} == before
    verified(out / "big.pcap")


class Stop(BaseException):
    """What the test's SIGTERM handler raises."""


def test_a_signal_during_the_renames_waits_until_the_bundle_is_whole(
        tmp_path: Path, inputs: Inputs, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM sent right after the first of the six renames that publish a bundle: it acts only
    after the last one (the bundle is whole), not between them."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / "small.pcap"
    renames: list[str] = []
    stopped_after: list[int] = []
    replace = os.replace

    def renaming(source: str, destination: str) -> None:
        replace(source, destination)
        renames.append(Path(destination).name)
        if len(renames) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(signum: int, frame: object) -> None:
        stopped_after.append(len(renames))
        raise Stop

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(os, "replace", renaming)
    try:
        with pytest.raises(Stop) as caught:
            scrub(plan([str(inputs.small[0])], str(target)), read_rules(str(inputs.rules)),
                  Key(inputs.secret))
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.undo()
    assert stopped_after == [6]
    assert sorted(renames) == bundle_names("small.pcap") and renames[-1] == "small.pcap"  # the trace last
    assert caught.value.__notes__ == [f"finished before it stopped: {target}"]
    assert listing(out) == bundle_names("small.pcap")
    verified(target)


def hold_directory(directory: Path) -> int:
    """Take a shared lock on a directory, as a run creating a temporary file there does: a run
    that wants to publish there must wait for it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def staged_everything(out: Path, trace: str) -> Callable[[], bool]:
    """Whether the manifest, the last file a scrub stages, has been staged: the run then only has
    to publish."""
    return lambda: any(name.startswith(f".{trace}.manifest.json.") for name in partials(out))


def test_a_signal_while_waiting_to_publish_publishes_nothing(tmp_path: Path, inputs: Inputs) -> None:
    out = tmp_path / "out"
    out.mkdir()
    held = hold_directory(out)
    try:
        process = start(*scrub_args(inputs.medium, out / "medium.pcap", inputs))
        wait_for(process, staged_everything(out, "medium.pcap"), "the manifest staged")
        time.sleep(0.5)
        assert process.poll() is None  # waiting for the directory
        assert [name for name in listing(out) if not name.startswith(".")] == []
        process.send_signal(signal.SIGTERM)
        result = finish(process)
    finally:
        os.close(held)
    error(result, 143, "terminated; no partial output was left behind")
    assert listing(out) == []


def test_publishing_waits_for_the_directory_lock_then_completes(tmp_path: Path, inputs: Inputs) -> None:
    out = tmp_path / "out"
    out.mkdir()
    held = hold_directory(out)
    try:
        process = start(*scrub_args(inputs.medium, out / "medium.pcap", inputs))
        wait_for(process, staged_everything(out, "medium.pcap"), "the manifest staged")
        time.sleep(0.5)
        assert process.poll() is None
        assert [name for name in listing(out) if not name.startswith(".")] == []
    finally:
        os.close(held)
    result = finish(process)
    assert result.code == 0, result.stderr
    assert listing(out) == bundle_names("medium.pcap")
    verified(out / "medium.pcap")


def without_created(text: str, created: str) -> str:
    return text.replace(created, "<created>")


def test_after_sigkill_the_next_run_removes_what_it_left_and_matches_an_uninterrupted_run(
        tmp_path: Path, inputs: Inputs) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir()
    clean.mkdir()
    args = ["--key-file", str(inputs.key)]
    process = start(*scrub_args(inputs.medium, killed / "medium.pcap", inputs, *args))
    wait_for(process, lambda: bool(partials(killed)), "a .partial file")
    process.kill()
    assert finish(process).code == -signal.SIGKILL
    left = partials(killed)
    assert left and listing(killed) == left  # nothing under a final name; the temporaries stay
    for name in left:  # and nobody holds them any more: the next run may tell they are abandoned
        with (killed / name).open("rb") as stream:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    again = run(*scrub_args(inputs.medium, killed / "medium.pcap", inputs, *args))
    reference = run(*scrub_args(inputs.medium, clean / "medium.pcap", inputs, *args))
    assert (again.code, reference.code) == (0, 0), again.stderr + reference.stderr
    assert listing(killed) == listing(clean) == bundle_names("medium.pcap")
    for suffix in ("", ".labels.csv", ".flows.csv"):
        assert (killed / f"medium.pcap{suffix}").read_bytes() == (clean / f"medium.pcap{suffix}").read_bytes()
    # The report and manifest say when they were made; otherwise they are the same too.
    mine, theirs = (json.loads((d / "medium.pcap.report.json").read_text()) for d in (killed, clean))
    for suffix in (".report.json", ".report.html"):
        assert without_created((killed / f"medium.pcap{suffix}").read_text(), mine["created"]) == \
            without_created((clean / f"medium.pcap{suffix}").read_text(), theirs["created"])
    manifests = [verified(d / "medium.pcap") for d in (killed, clean)]
    for manifest in manifests:
        del manifest["created"]
        manifest["files"] = [entry for entry in manifest["files"] if not entry["role"].startswith("report")]
    assert manifests[0] == manifests[1]


def test_only_abandoned_temporaries_of_the_same_output_are_removed(tmp_path: Path) -> None:
    """A run staging `a.pcap` removes `.a.pcap.XXXXXXXX.partial` files nobody holds, and nothing
    else: not one a live run holds, not another user's, not another output's, not other names."""
    names = {"abandoned": ".a.pcap.abcd1234.partial", "held": ".a.pcap.held_567.partial",
             "foreign": ".a.pcap.nobody00.partial", "other output": ".b.pcap.abcd1234.partial",
             "labels": ".a.pcap.labels.csv.abcd1234.partial", "no random part": ".a.pcap.partial",
             "not hidden": "a.pcap.abcd1234.partial", "directory": ".a.pcap.dir12345.partial"}
    for key, name in names.items():
        if key == "directory":
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(b"x")
    if os.geteuid() == 0:
        os.chown(tmp_path / names["foreign"], NOBODY, NOBODY)
    else:
        del names["foreign"]
        (tmp_path / ".a.pcap.nobody00.partial").unlink()
    with (tmp_path / names["held"]).open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_SH)
        with StagedOutput(str(tmp_path / "a.pcap")) as staged:
            assert staged.abandoned == [str(tmp_path / names["abandoned"])]
            mine = Path(staged.temporary).name
    left = set(listing(tmp_path))
    assert mine not in left  # discarded, not published
    assert left == {name for key, name in names.items() if key != "abandoned"}


def test_a_live_runs_temporaries_are_not_taken_for_abandoned(tmp_path: Path) -> None:
    with StagedOutput(str(tmp_path / "a.pcap")) as first:
        first.stream.write(b"first")
        with StagedOutput(str(tmp_path / "a.pcap")) as second:
            assert second.abandoned == []
            assert Path(first.temporary).exists()
            second.stream.write(b"second")
            second.publish()
        first.publish()
    assert listing(tmp_path) == ["a.pcap"]
    assert (tmp_path / "a.pcap").read_bytes() == b"first"


def test_what_is_still_staged_when_the_process_exits_is_removed(tmp_path: Path) -> None:
    """The last resort, for a temporary file no `with` block owns when the process ends."""
    code = ("import sys; from anontrace.io.capture import StagedOutput; "
            "staged = StagedOutput(sys.argv[1]); staged.stream.write(b'x'); print(staged.temporary)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.pcap")], capture_output=True,
                            text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent == tmp_path  # it was staged there
    assert listing(tmp_path) == []


# 2. Disk and permission faults ----------------------------------------------------------------------


def drop_override() -> None:
    """In the child, before exec: root gives up the capabilities that let it ignore permission
    bits, keeping its uid (it owns what it creates, as a user would). Any other user has none."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def file_size_limit(limit: int) -> Callable[[], None]:
    def prepare() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG

    return prepare


def test_a_missing_output_directory_is_refused_before_any_work(tmp_path: Path, inputs: Inputs) -> None:
    target = tmp_path / "missing" / "out.pcap"
    result = run(*scrub_args(inputs.medium, target, inputs))
    error(result, 1, f"{target}: the output's directory does not exist", f"create {target.parent} first")
    assert listing(tmp_path) == []


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    yield directory
    directory.chmod(0o755)


@pytest.mark.parametrize("name", ["out.pcap", "out.pcapng.gz"])
def test_a_read_only_output_directory_fails_cleanly(read_only: Path, inputs: Inputs, name: str) -> None:
    target = read_only / name
    result = run(*scrub_args(inputs.medium, target, inputs), prepare=drop_override)
    error(result, 1, f"{target}: cannot create output: Permission denied",
          f"{read_only} must exist and be writable by this user")
    assert listing(read_only) == []


def test_several_inputs_into_a_directory_that_cannot_be_made(read_only: Path, inputs: Inputs) -> None:
    target = read_only / "outputs"
    result = run("scrub", str(inputs.small[0]), str(inputs.small[1]), "-o", str(target), "-r",
                 str(inputs.rules), "-q", prepare=drop_override)
    error(result, 1, f"{target}: cannot create output directory: Permission denied",
          "its parent directory must exist and be writable")
    assert listing(read_only) == []


LIMIT = 200_000  # bytes: the medium capture's output is ten times that


@pytest.mark.parametrize("name", ["out.pcap", "out.pcap.gz", "out.pcapng.zst"])
def test_a_full_disk_fails_with_a_located_message_and_leaves_nothing(
        tmp_path: Path, inputs: Inputs, name: str) -> None:
    target = tmp_path / name
    result = run(*scrub_args(inputs.medium, target, inputs), prepare=file_size_limit(LIMIT))
    error(result, 1, f"{target}: cannot write output: File too large",
          "the file outgrew what its filesystem or the process's file size limit (ulimit -f) allows")
    assert listing(tmp_path) == []


def test_a_full_disk_under_stdout_staging_writes_nothing(tmp_path: Path, inputs: Inputs) -> None:
    staging = tmp_path / "tmp"
    staging.mkdir()
    result = run(*scrub_args(inputs.medium, "-", inputs), env={"TMPDIR": str(staging)},
                 prepare=file_size_limit(LIMIT))
    error(result, 1, f"<stdout> (staged in {staging}): cannot write output: File too large",
          "the file outgrew what its filesystem or the process's file size limit (ulimit -f) allows")
    assert result.stdout == b""
    assert listing(staging) == []


def test_the_size_limit_lets_a_small_enough_run_through(tmp_path: Path, inputs: Inputs) -> None:
    """The limit above fails runs because of their size: the smallest capture fits under a limit
    only a little larger than its largest output file."""
    reference = tmp_path / "reference"
    reference.mkdir()
    assert run(*scrub_args(inputs.small[0], reference / "small.pcap", inputs)).code == 0
    largest = max(path.stat().st_size for path in reference.iterdir())
    out = tmp_path / "out"
    out.mkdir()
    result = run(*scrub_args(inputs.small[0], out / "small.pcap", inputs), prepare=file_size_limit(largest))
    assert result.code == 0, result.stderr
    verified(out / "small.pcap")


@pytest.fixture
def unreadable(tmp_path: Path, inputs: Inputs) -> Path:
    """A copy of a capture that the user running anontrace may not read: another user's file with
    mode 0600 (under root), or the user's own file with mode 0000."""
    path = tmp_path / "secret.pcap"
    path.write_bytes(inputs.small[0].read_bytes())
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o600)
    else:
        path.chmod(0)
    return path


def test_an_unreadable_input_fails_cleanly(tmp_path: Path, inputs: Inputs, unreadable: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run(*scrub_args(unreadable, out / "secret.pcap", inputs), prepare=drop_override)
    error(result, 1, f"{unreadable}: cannot open: Permission denied",
          "the user running anontrace needs read permission on it")
    assert listing(out) == []


def test_an_unreadable_input_among_several_is_refused_before_any_output(
        tmp_path: Path, inputs: Inputs, unreadable: Path) -> None:
    out = tmp_path / "out"
    result = run("scrub", str(inputs.small[1]), str(unreadable), "-o", str(out), "-r", str(inputs.rules),
                 "-q", prepare=drop_override)
    error(result, 1, f"{unreadable}: cannot open: Permission denied",
          "the user running anontrace needs read permission on it")
    assert not out.exists()


# 3. Keys ----------------------------------------------------------------------------------------------


def key_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_a_key_file_others_can_reach_is_refused_with_the_chmod_to_run(
        tmp_path: Path, inputs: Inputs, mode: int) -> None:
    path = key_file(tmp_path / "key", inputs.secret.hex() + "\n", mode)
    out = tmp_path / "out"
    out.mkdir()
    result = run(*scrub_args(inputs.small[0], out / "small.pcap", inputs, "--key-file", str(path)))
    error(result, 2, f"{path}: key file is accessible to others (mode {mode:o})", f"run `chmod 600 {path}`")
    assert listing(out) == []


BAD_KEYS = {
    "empty": ("", "key file is empty"),
    "blank": ("  \n\n", "key file is empty"),
    "short": ("5e" * 31, "key file holds 62 characters"),
    "one more": ("5e" * 32 + "0", "key file holds 65 characters"),
    "not hex": ("5e" * 31 + "5g", "key file holds characters that are not hex digits"),
    "0x prefix": ("0x" + "5e" * 31, "key file holds characters that are not hex digits"),
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_a_malformed_key_is_refused(tmp_path: Path, inputs: Inputs, case: str) -> None:
    text, what = BAD_KEYS[case]
    path = key_file(tmp_path / "key", text)
    out = tmp_path / "out"
    out.mkdir()
    result = run(*scrub_args(inputs.small[0], out / "small.pcap", inputs, "--key-file", str(path)))
    error(result, 2, f"{path}: {what}; a key file holds exactly 64 hex characters",
          "make one with `anontrace keygen -o FILE`")
    assert listing(out) == []


def forms(secret: bytes) -> dict[str, bytes]:
    """Every way a key could be written out."""
    return {"hex": secret.hex().encode(), "HEX": secret.hex().upper().encode(), "raw": secret,
            "base64": base64.b64encode(secret).rstrip(b"="),
            "base64url": base64.urlsafe_b64encode(secret).rstrip(b"="),
            "base64 of hex": base64.b64encode(secret.hex().encode()).rstrip(b"="),
            "hex prefix": secret.hex()[:16].encode()}


class Outputs:
    """Everything the commands of one test wrote: their stdout and stderr, and every file in the
    directories they wrote to (key files excepted: the key is what they hold)."""

    def __init__(self, *directories: Path) -> None:
        self.streams: dict[str, bytes] = {}
        self.directories = directories

    def add(self, label: str, result: Finished) -> Finished:
        self.streams[f"{label}: stdout"] = result.stdout
        self.streams[f"{label}: stderr"] = result.stderr.encode()
        return result

    def everything(self, keys: set[Path]) -> dict[str, bytes]:
        found = dict(self.streams)
        for directory in self.directories:
            for path in sorted(directory.rglob("*")):
                if path.is_file() and path not in keys:
                    found[str(path)] = path.read_bytes()
        return found


def no_key_in(written: dict[str, bytes], secret: bytes) -> None:
    leaks = [(where, form) for where, data in written.items() for form, needle in forms(secret).items()
             if needle in data or needle.lower() in data.lower()]
    assert leaks == []


def test_the_key_is_never_written_by_any_command(tmp_path: Path, inputs: Inputs) -> None:
    out, aside, keys = tmp_path / "out", tmp_path / "aside", tmp_path / "keys"
    for directory in (out, aside, keys):
        directory.mkdir()
    secret = inputs.secret
    key = key_file(keys / "key", inputs.key.read_text())
    outputs = Outputs(out, aside, keys)
    trace = out / "medium.pcap"
    keyed = ["--key-file", str(key)]

    succeeded = [
        outputs.add("scrub", run(*scrub_args(inputs.medium, trace, inputs, *keyed, "--json"))),
        outputs.add("scrub to stdout", run(*scrub_args(inputs.small[0], "-", inputs, *keyed, "--report",
                                                       str(aside / "stdout.report.json")))),
        outputs.add("report", run("report", str(inputs.medium), str(trace), *keyed, "--report",
                                  str(aside / "again.report.json"))),
        outputs.add("verify", run("verify", str(trace))),
        outputs.add("explain", run("explain", str(inputs.small[0]), *keyed, "--json", "-n", "20")),
        outputs.add("map", run("map", "10.0.0.1", "2001:db8::1", "00:11:22:33:44:55", *keyed)),
        outputs.add("map back", run("map", "--reverse", "10.0.0.1", *keyed)),
        outputs.add("keygen", run("keygen", "-o", str(aside / "new.key"), "--shares", "3",
                                  "--threshold", "2")),
        outputs.add("split", run("key", "split", str(key), "--shares", "3", "--threshold", "2"))]
    shares = sorted(keys.glob("key.share-*"))
    succeeded.append(outputs.add("combine", run("key", "combine", *map(str, shares[:2]),
                                                 "-o", str(keys / "rebuilt"))))
    for result in succeeded:
        assert result.code == 0, result.stderr
    assert len(shares) == 3 and (keys / "rebuilt").read_text().strip() == secret.hex()

    loose = key_file(keys / "loose.key", secret.hex() + "\n", 0o644)
    longer = key_file(keys / "longer.key", secret.hex() + "0\n")
    wrong = key_file(keys / "wrong.key", secret.hex()[:-1] + "g\n")
    for label, path in (("loose", loose), ("longer", longer), ("not hex", wrong)):
        for command in (scrub_args(inputs.small[0], out / "refused.pcap", inputs, "--key-file", str(path)),
                        ["report", str(inputs.medium), str(trace), "--key-file", str(path), "--report", "-"],
                        ["explain", str(inputs.small[0]), "--key-file", str(path)],
                        ["map", "10.0.0.1", "--key-file", str(path)],
                        ["key", "split", str(path), "--shares", "2", "--threshold", "2"],
                        ["--debug", "map", "10.0.0.1", "--key-file", str(path)]):
            result = outputs.add(f"{label}: {' '.join(command[:2])}", run(*command))
            assert result.code in (1, 2) and str(path) in result.stderr, result.stderr
    from_environment = outputs.add("environment", run(*scrub_args(inputs.small[0], out / "env.pcap", inputs),
                                                      env={"ANONTRACE_KEY_FILE": str(loose)}))
    assert from_environment.code == 2 and str(loose) in from_environment.stderr

    key_files = {key, keys / "rebuilt", loose, longer, wrong, aside / "new.key"}
    written = outputs.everything(key_files)
    assert len(written) > 60 and sum(map(len, written.values())) > 1_000_000  # the search covered it all
    no_key_in(written, secret)
    no_key_in(written, bytes.fromhex((aside / "new.key").read_text()))  # keygen told its fingerprint only

    manifest = verified(trace)
    report = json.loads((out / "medium.pcap.report.json").read_text())
    fingerprint = Key(secret).fingerprint
    assert manifest["key_fingerprint"] == report["key_fingerprint"] == fingerprint
    assert fingerprint.lower() not in secret.hex()


# 4. Concurrent runs ----------------------------------------------------------------------------------


def test_concurrent_runs_into_one_directory_each_complete(tmp_path: Path, inputs: Inputs) -> None:
    out = tmp_path / "out"
    out.mkdir()
    processes = [start(*scrub_args(source, out / source.name, inputs)) for source in inputs.small]
    results = [finish(process) for process in processes]
    assert [r.code for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert listing(out) == sorted(name for s in inputs.small for name in bundle_names(s.name))
    for source in inputs.small:
        manifest = verified(out / source.name)
        assert [entry["sha256"] for entry in manifest["inputs"]] == [sha256(source)]


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_runs_to_one_output_leave_one_runs_whole_bundle(
        tmp_path: Path, inputs: Inputs, attempt: int) -> None:
    """Three runs of three different captures, all to `out/shared.pcap`: each publishes its whole
    bundle in turn, so the last to publish owns every file."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / "shared.pcap"
    processes = [start(*scrub_args(source, target, inputs)) for source in inputs.small]
    results = [finish(process) for process in processes]
    assert [r.code for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert listing(out) == bundle_names("shared.pcap")
    manifest = verified(target)
    digests = {sha256(source): source.name for source in inputs.small}
    (source_digest,) = [entry["sha256"] for entry in manifest["inputs"]]
    assert source_digest in digests
    report = json.loads((out / "shared.pcap.report.json").read_text())
    assert report["original"][0]["path"] == digests[source_digest]  # the report is the same run's
