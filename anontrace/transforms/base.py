"""The transform contract: a declared config, `apply(batch) -> batch`, counters for the summary."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from anontrace.keys import Key
from anontrace.packet.batch import Batch

Check = Callable[[Any], str | None]
T = TypeVar("T")


def setting(default: Any, help: str, *, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[str, ...] | None = None,
            check: Check | None = None) -> Any:
    """Declare one config field: its default, its user help, and how a value is checked
    (`minimum`/`maximum` for numbers and each number of a list, `choices` for text, `check` for
    anything else: it returns a problem, or None)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "minimum": minimum, "maximum": maximum, "choices": choices, "check": check})


class Context:
    """What every transform of a run shares: the key, every step's settings, and the mappings
    built from them (so the `ip` transform's IPv6 interface ids agree with the `mac` transform's
    MACs, and a DNS reverse name maps like the address it names)."""

    def __init__(self, key: Key, configs: Mapping[str, Any] | None = None) -> None:
        self.key = key
        self._configs = dict(configs or {})
        self._shared: dict[str, Any] = {}

    def config(self, name: str, default: T) -> T:
        """The settings of the step using transform `name`, or `default` when no step does."""
        found: T = self._configs.get(name, default)
        return found

    def shared(self, name: str, build: Callable[[], T]) -> T:
        """One object per run under `name`, built on first use."""
        if name not in self._shared:
            self._shared[name] = build()
        found: T = self._shared[name]
        return found


@dataclass(frozen=True, slots=True)
class NoConfig:
    """A transform without settings."""


class Transform(ABC):
    """Base of every transform. Subclasses set `name` (the YAML key) and `Config`, and a docstring
    that is their user documentation."""

    name: ClassVar[str]
    Config: ClassVar[type[Any]] = NoConfig

    def __init__(self, config: Any, context: Context) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def apply(self, batch: Batch) -> Batch:
        """Transform the batch's output bytes in place (or drop frames) and return it."""

    def reset(self) -> None:  # noqa: B027 - most transforms carry no state
        """Forget state carried from frame to frame: a new capture file starts."""

    @property
    def columnar(self) -> bool:
        """Whether `apply` rewrites the rows of `batch.table` (see `packet.table`) with columns
        and goes frame by frame through `batch.others()` only, never reading `batch.data`."""
        return False

    @property
    def carries_state(self) -> bool:
        """Whether a frame's output depends on the frames before it in its file (beyond its
        index and bytes): such a file cannot be split between workers."""
        return False

    def stats(self) -> dict[str, int]:
        """Run-wide figures for the summary, beyond the per-batch counts."""
        return {}
