"""Link-type names, and the OS raw-IP values that are not in the registry."""

from __future__ import annotations

from anontrace.packet.linktypes import is_known, linktype_name


def test_names() -> None:
    assert linktype_name(1) == "ETHERNET"
    assert linktype_name(276) == "LINUX_SLL2"
    assert linktype_name(12) == "RAW (OS value 12)"
    assert linktype_name(65000) == "LINKTYPE 65000"


def test_known() -> None:
    assert is_known(101) and is_known(14)
    assert not is_known(65000) and not is_known(208)
