"""The transform contract: declared settings carry help; every builtin declares its config."""

from __future__ import annotations

import dataclasses

import pytest

from anontrace.transforms import BUILTINS, registry
from anontrace.transforms.base import Transform


@pytest.mark.parametrize("transform", BUILTINS, ids=lambda t: t.name)
def test_every_setting_is_documented(transform: type[Transform]) -> None:
    assert transform.__doc__ and transform.name == transform.__module__.rsplit(".", 1)[-1]
    for field in dataclasses.fields(transform.Config):
        assert field.metadata["help"], f"{transform.name}.{field.name} has no help"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config = transform.Config()
        for field in dataclasses.fields(config):
            setattr(config, field.name, field.default)


def test_registry_lists_builtins_in_order() -> None:
    names = list(registry())
    assert names[:3] == ["ip", "mac", "names"] and names[-1] == "payload"


def test_duplicate_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import anontrace.transforms as transforms

    monkeypatch.setattr(transforms, "BUILTINS", (*BUILTINS, BUILTINS[0]))
    with pytest.raises(ValueError, match="registered twice"):
        transforms.registry()
