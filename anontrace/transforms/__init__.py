"""The transforms: BUILTINS in pipeline order, plus third-party ones from entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

from anontrace.transforms.base import Transform
from anontrace.transforms.generalize import Generalize
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.names import Names
from anontrace.transforms.payload import Payload
from anontrace.transforms.timing import Timing

BUILTINS: tuple[type[Transform], ...] = (Ip, Mac, Names, Generalize, Timing, Payload)
# Identifiers are rewritten whether or not a rule file names these: a rule keeps an identifier
# only by saying so in a step's settings. The payload cut runs last.
ALWAYS: tuple[type[Transform], ...] = (Ip, Mac, Names)
ENTRY_POINT_GROUP = "anontrace.transforms"


def registry() -> dict[str, type[Transform]]:
    """Every available transform by name; a name registered twice is refused."""
    found: dict[str, type[Transform]] = {}
    plugins = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for transform in (*BUILTINS, *plugins):
        if transform.name in found:
            raise ValueError(f"transform name {transform.name!r} is registered twice")
        found[transform.name] = transform
    return found
