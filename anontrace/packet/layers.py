"""What dissection finds in a frame: layer offsets, address fields, checksum scopes, where it stopped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Checksum:
    """A 16-bit Internet checksum at `field` covering bytes [start, end) plus pseudo-header addresses."""

    field: int
    start: int
    end: int
    pseudo: tuple[int, ...] = ()  # offsets of the pseudo-header's source and destination address
    address_size: int = 4
    zero_is_none: bool = False  # UDP: 0 means "no checksum" and must stay 0


@dataclass(frozen=True, slots=True)
class Prefix:
    """An address prefix: `length` bits of an IPv4 (`family` 4) or IPv6 (16) address at `offset`,
    of which `size` bytes are present (EDNS client subnet sends only the prefix's bytes)."""

    offset: int
    size: int
    family: int
    length: int


@dataclass(frozen=True, slots=True)
class Header:
    """Where one IP or transport header starts: `kind` is ipv4, ipv6, tcp, udp, icmp or icmpv6.
    `quoted` marks headers inside the packet an ICMP error quotes (they describe the flow the
    error is about, seen from the other side). Headers are listed outermost first."""

    kind: str
    offset: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Name:
    """A host or domain name at [offset, end).

    `base` >= 0: DNS wire labels, whose compression pointers count from `base` (the message's
    first byte). `base` == -1: plain text, such as a DHCP host name option.
    """

    offset: int
    end: int
    base: int = -1


@dataclass(frozen=True, slots=True)
class Layers:
    """Offsets into one frame's bytes, found without copying them.

    `payload` is the first byte after the last header understood; `parsed_to` is how far the frame
    may be kept at all: past it lies what the dissector did not understand (`cut` says why).
    """

    network: int = -1
    ethertype: int = 0
    transport: int = -1
    protocol: int = -1
    payload: int = 0
    parsed_to: int = 0
    ipv4: tuple[int, ...] = ()
    ipv6: tuple[int, ...] = ()
    checksums: tuple[Checksum, ...] = ()
    cut: str | None = None
    macs: tuple[int, ...] = ()  # offsets of 6-byte MAC addresses
    prefixes: tuple[Prefix, ...] = ()
    names: tuple[Name, ...] = ()
    headers: tuple[Header, ...] = ()


class Builder:
    """Mutable state while one frame is dissected; `freeze` turns it into `Layers`."""

    __slots__ = ("checksums", "cut", "data", "depth", "end", "ethertype", "headers", "ipv4", "ipv6",
                 "macs", "names", "network", "payload", "prefixes", "protocol", "quoted", "transport")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.end = len(data)  # where the innermost datagram ends, as far as captured
        self.network = -1
        self.ethertype = 0
        self.transport = -1
        self.protocol = -1
        self.payload = 0
        self.ipv4: list[int] = []
        self.ipv6: list[int] = []
        self.checksums: list[Checksum] = []
        self.cut: str | None = None
        self.macs: list[int] = []
        self.prefixes: list[Prefix] = []
        self.names: list[Name] = []
        self.depth = 0  # tunnels and quoted packets entered so far
        self.headers: list[Header] = []
        self.quoted = False  # inside an ICMP error's quoted packet

    def header(self, kind: str, offset: int) -> None:
        """Note an IP or transport header starting at `offset`."""
        self.headers.append(Header(kind, offset, self.quoted))

    def _unsplit(self, limit: int) -> int:
        """Lower `limit` to the start of any identifier it would split: a part of an address left
        in the output would be a part not rewritten."""
        spans = [(o, o + 4) for o in self.ipv4] + [(o, o + 16) for o in self.ipv6]
        spans += [(o, o + 6) for o in self.macs] + [(n.offset, n.end) for n in self.names]
        spans += [(p.offset, p.offset + p.size) for p in self.prefixes]
        moved = True
        while moved:
            moved = False
            for start, end in spans:
                if start < limit < end:
                    limit, moved = start, True
        return limit

    def stop(self, offset: int, reason: str) -> None:
        """Understanding ends at `offset`; nothing after it may be kept."""
        self.payload = offset
        if offset < self.end:
            self.end = offset
            self.cut = reason

    def freeze(self) -> Layers:
        parsed_to = self._unsplit(self.end)
        if parsed_to < self.end:
            self.cut = self.cut or "identifier cut short"
        cut = self.cut
        if cut is None and parsed_to < len(self.data):
            cut = "link-layer padding or trailer after the datagram"
        return Layers(self.network, self.ethertype, self.transport, self.protocol,
                      min(self.payload, parsed_to), parsed_to, tuple(self.ipv4), tuple(self.ipv6),
                      tuple(self.checksums), cut, tuple(self.macs), tuple(self.prefixes),
                      tuple(self.names), tuple(self.headers))


MAX_DEPTH = 8  # tunnels and quoted packets nested deeper than this are cut


def enter(b: Builder, offset: int, what: str) -> bool:
    """Count one more level of nesting; False (and the frame cut) when it is too deep."""
    b.depth += 1
    if b.depth > MAX_DEPTH:
        b.stop(offset, f"{what} nested more than {MAX_DEPTH} deep")
        return False
    return True
