"""The transform contract: a declared config, `apply(batch) -> batch`, counters for the summary."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from anontrace.keys import Key
from anontrace.packet.batch import Batch

Check = Callable[[Any], str | None]


def setting(default: Any, help: str, *, minimum: int | None = None,
            check: Check | None = None) -> Any:
    """Declare one config field: its default, its user help, and how a value is checked."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "minimum": minimum, "check": check})


@dataclass(frozen=True, slots=True)
class Context:
    """What every transform of a run shares: the key."""

    key: Key


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

    def stats(self) -> dict[str, int]:
        """Run-wide figures for the summary, beyond the per-batch counts."""
        return {}
