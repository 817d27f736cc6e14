"""Fuzz target: bytes placed where one protocol parser reads them - DNS (UDP, TCP, mDNS, LLMNR),
DHCP, DHCPv6, ICMP and ICMPv6 (quoted packets, neighbour discovery options), GRE, IP-in-IP,
VXLAN, VXLAN-GPE, Geneve, MPLS, PPPoE, 802.11 (bare, radiotap, PPI) - then through the whole
per-frame path like the dissect target.

Input: the first byte picks the wrapper (`wrappers.WRAPPERS[byte % n]`), the rest is what it carries.
Run: `python fuzz/protocols.py [libFuzzer options] [corpus directories]` (see fuzz/README.md).
"""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["anontrace"]):
    from harness import check_frame, fuzz
    from wrappers import WRAPPERS


def test_one_input(data: bytes) -> None:
    if not data:
        return
    wrapper = WRAPPERS[data[0] % len(WRAPPERS)]
    check_frame(wrapper.build(data[1:]), wrapper.linktype)


if __name__ == "__main__":
    fuzz(test_one_input)
