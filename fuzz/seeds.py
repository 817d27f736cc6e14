"""Build the fuzz targets' seed corpora: frames of real captures, and real rule files.

    python fuzz/seeds.py [--captures DIR] [--out DIR]

writes OUT/dissect (a link type byte + a captured frame), OUT/protocols (a wrapper byte + the
bytes a protocol parser read in a captured frame), OUT/readers (whole capture files of at most
MAX_CAPTURE bytes, and `sample_pcaps/`), OUT/rules (the shipped rule files and the
rule snippets written in the test suite) and OUT/rules.dict (a libFuzzer dictionary of the
words rule files are made of, taken from the transforms' declarations). Captures are read with
anontrace's own reader; one that cannot be read is skipped and named. Each seed file is named
by its SHA-1, as libFuzzer names what it adds, so building twice gives the same directory.
Defaults: captures from `../shared/corpus` beside the repository, seeds into `fuzz/corpus/`
(ignored by git).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anontrace.errors import AnontraceError  # noqa: E402 - after the repository is on the path
from anontrace.io.capture import open_reader  # noqa: E402
from anontrace.leakage.gates import FIGURES  # noqa: E402
from anontrace.packet.dissect import dissect  # noqa: E402
from anontrace.rules.compile import LABEL_KEYS, REPORT_KEYS, TOP_LEVEL, WHEN_KEYS  # noqa: E402
from anontrace.rules.filters import DIRECTIONS, PROTOCOLS  # noqa: E402
from anontrace.transforms import registry  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import LINKTYPES  # noqa: E402
from wrappers import WRAPPERS, payloads_of  # noqa: E402

CAPTURES = ROOT.parent / "shared" / "corpus"
OUT = ROOT / "fuzz" / "corpus"
FRAMES_PER_CAPTURE = 64  # distinct frames taken from one capture: enough variety, a small corpus
MAX_SEED = 4096  # libFuzzer's default -max_len: longer seeds would be cut anyway
MAX_CAPTURE = 16384  # whole files for the readers target: the longest seed sets libFuzzer's -max_len
RULE_WORDS = ("version:", "use:", "steps:", "extends:")
YAML_WORDS = ("- ", "\n  ", "\n    ", "[", "]", "{", "}", "? ", "---", "...", "&a ", "*a", "!!int ",
              "!!binary ", "!!set ", "0x", ".inf", ".nan", "~", "true", "false", "null", "'", '"', "#",
              "10.0.0.0/8", "2001:db8::/32", "2000-01-01T00:00:00Z")


def frames(path: Path) -> Iterator[tuple[bytes, int]]:
    """(data, link type) of up to FRAMES_PER_CAPTURE distinct frames of one capture."""
    reader = open_reader(str(path))
    seen: set[bytes] = set()
    try:
        for frame in reader:
            if frame.data not in seen:
                seen.add(frame.data)
                yield frame.data, frame.linktype
            if len(seen) >= FRAMES_PER_CAPTURE:
                break
    finally:
        reader.stream.close()


def write(directory: Path, seed: bytes, limit: int = MAX_SEED) -> bool:
    """Write one seed (its first `limit` bytes) under its SHA-1; False when it was already there."""
    seed = seed[:limit]
    target = directory / hashlib.sha1(seed).hexdigest()
    if target.exists():
        return False
    target.write_bytes(seed)
    return True


def frame_seeds(captures: Path, out: Path) -> tuple[int, int]:
    dissect_dir, protocols_dir = out / "dissect", out / "protocols"
    dissect_dir.mkdir(parents=True, exist_ok=True)
    protocols_dir.mkdir(parents=True, exist_ok=True)
    selectors = {w.name: i for i, w in enumerate(WRAPPERS)}
    counts = [0, 0]
    for path in sorted(p for p in captures.iterdir() if p.is_file()):
        try:
            for data, linktype in frames(path):
                if linktype in LINKTYPES:
                    counts[0] += write(dissect_dir, bytes([LINKTYPES.index(linktype)]) + data)
                for name, payload in payloads_of(data, linktype, dissect(data, linktype)):
                    counts[1] += write(protocols_dir, bytes([selectors[name]]) + payload)
        except AnontraceError as error:
            print(f"skipped {path.name}: {error}", file=sys.stderr)
    return counts[0], counts[1]


def capture_seeds(captures: Path, out: Path) -> int:
    """Small capture files as they are stored (the readers target reads whole files)."""
    directory = out / "readers"
    directory.mkdir(parents=True, exist_ok=True)
    paths = sorted((*captures.iterdir(), *(ROOT / "sample_pcaps").iterdir()))
    return sum(write(directory, path.read_bytes(), MAX_CAPTURE) for path in paths
               if path.is_file() and path.suffix != ".md" and path.suffix != ".py"
               and path.stat().st_size <= MAX_CAPTURE)


def rule_texts() -> Iterator[str]:
    """The shipped rule files, and every string constant in the tests that reads like a rule file."""
    for path in sorted((ROOT / "rules").rglob("*.yaml")):
        yield path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and any(word in node.value for word in RULE_WORDS):
                yield node.value


def rule_seeds(out: Path) -> int:
    directory = out / "rules"
    directory.mkdir(parents=True, exist_ok=True)
    return sum(write(directory, text.encode("utf-8")) for text in rule_texts())


def rule_words() -> list[str]:
    """Keys, transform names, setting names and choices, filter words, report figures."""
    words = {f"{key}:" for key in (*TOP_LEVEL, *WHEN_KEYS, *REPORT_KEYS, *LABEL_KEYS, "use", "default")}
    for name, transform in registry().items():
        words.add(name)
        for declared in dataclasses.fields(transform.Config):
            words.add(f"{declared.name}:")
            words.update(declared.metadata.get("choices") or ())
    words.update((*PROTOCOLS, *DIRECTIONS, *FIGURES, *YAML_WORDS))
    return sorted(words)


def write_dictionary(path: Path) -> int:
    quoted = (word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\x0a") for word in rule_words())
    lines = [f'"{word}"' for word in quoted]
    header = "# libFuzzer dictionary for fuzz/rules.py, written by fuzz/seeds.py"
    path.write_text("\n".join([header, *lines]) + "\n")
    return len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=Path, default=CAPTURES, help="directory of pcap/pcapng files")
    parser.add_argument("--out", type=Path, default=OUT, help="where the seed directories go")
    options = parser.parse_args()
    dissected, protocols = frame_seeds(options.captures, options.out)
    captures = capture_seeds(options.captures, options.out)
    rules = rule_seeds(options.out)
    words = write_dictionary(options.out / "rules.dict")
    print(f"seeds written to {options.out}: dissect {dissected}, protocols {protocols}, "
          f"readers {captures}, rules {rules}; {words} words in rules.dict")


if __name__ == "__main__":
    main()
