"""An independent judge of identifier leaks: does any original IPv4/IPv6/MAC address survive a scrub?

anontrace's own dissector decides what to rewrite, so it must not also decide what there was to
rewrite. Here tshark finds the identifiers and plain byte/text search finds them again:

- `original_identifiers(capture)` runs `tshark -T pdml` once over the capture and keeps the value of
  EVERY field whose type (learnt once from `tshark -G fields`) is FT_IPv4, FT_IPv6 or FT_ETHER,
  wherever tshark found it: headers, ARP bodies, ICMP-quoted packets, tunnels, DNS answers, DHCP,
  NDP, routing protocols, tshark's own generated fields (SLAAC MAC, 6to4/Teredo IPv4, ...). From
  those it derives the MAC inside every EUI-64 interface id, and every MAC's EUI-64 interface id.
  `KeepPolicy` says which of them may stay (addresses that name no host); all others are secret.
- `find_leaks(original, output)` looks for the secret identifiers in the output in three ways:
  (a) tshark's dissection of the output: any FT_IPv4/FT_IPv6/FT_ETHER field equal to one;
  (b) the raw bytes of every output frame (read with scapy's raw pcap/pcapng readers, not with
  anontrace): binary forms (4/6/8/16 bytes) and, case-insensitively, text forms (dotted IPv4, IPv6
  in any form `ipaddress` parses, so compressed and exploded; MAC with ':', '-', '.' and none;
  `in-addr.arpa` / `ip6.arpa` reverse names as dotted text and as DNS wire labels);
  (c) the same byte search over what the file holds besides frames and numbers (pcapng option
  values such as comments and if_MACaddr, name resolution records).
  A byte hit that lies inside a field tshark already reported in (a) is not reported twice.

Each tshark run is cached per file (path, size, mtime) and is safe to call from threads: a test
session can warm the cache in a thread pool while tests consume the results.
"""

from __future__ import annotations

import io
import ipaddress
import re
import struct
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from scapy.utils import RawPcapReader

# tshark field types that hold an address, and the identifier kind each gives.
ADDRESS_TYPES = {"FT_IPv4": "ipv4", "FT_IPv6": "ipv6", "FT_ETHER": "mac"}
# Binary width of each identifier kind; the widths differ, so an identifier's bytes say its kind.
WIDTHS = {"ipv4": 4, "mac": 6, "eui64": 8, "ipv6": 16}
KINDS = {width: kind for kind, width in WIDTHS.items()}

LINKTYPE_ETHERNET = 1
LINKTYPE_USER0 = 147
# Link types tshark 4.0 cannot read whose frames are Ethernet with a switch tag of this many bytes
# right after the source MAC (tcpdump's linktypes list): a copy without the tag is read as Ethernet.
TAG_AFTER_SOURCE_MAC = {281: 4,   # LINKTYPE_DSA_TAG_BRCM
                        284: 4,   # LINKTYPE_DSA_TAG_DSA
                        285: 8}   # LINKTYPE_DSA_TAG_EDSA
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
               b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}


# --------------------------------------------------------------------------------------------
# Identifiers and the keep policy


def kind_of(raw: bytes) -> str:
    return KINDS[len(raw)]


def to_text(raw: bytes) -> str:
    """The identifier as people write it: dotted IPv4, compressed IPv6, MAC with ':', and an
    EUI-64 interface id as the low half of an IPv6 address (`214:22ff:fe01:2317`)."""
    kind = kind_of(raw)
    if kind == "ipv4":
        return str(ipaddress.IPv4Address(raw))
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(raw))
    if kind == "mac":
        return ":".join(f"{byte:02x}" for byte in raw)
    return ":".join(f"{int.from_bytes(raw[i:i + 2], 'big'):x}" for i in range(0, 8, 2))


def eui64_of_mac(mac: bytes) -> bytes:
    """The modified EUI-64 interface id of a MAC (RFC 4291 appendix A): ff:fe in the middle and
    the universal/local bit flipped."""
    return bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def mac_of_eui64(interface_id: bytes) -> bytes:
    return bytes([interface_id[0] ^ 0x02]) + interface_id[1:3] + interface_id[5:8]


def eui64_interface_id(ipv6: bytes) -> bytes | None:
    """The interface id (bytes 8..16) of an IPv6 address if it is EUI-64 formed (ff:fe at 11..12)."""
    return ipv6[8:16] if ipv6[11:13] == b"\xff\xfe" else None


@dataclass(frozen=True, slots=True)
class KeepPolicy:
    """Identifiers that may stay in an output because they name no host: the default rules keep these
    IPv4/IPv6 ranges, and all-zero MACs and group MACs of the registered multicast blocks are
    not anyone's (a group-bit MAC outside them may be a damaged host address: not kept).
    Exceptions inside them still carry host bits and must change: IPv6 solicited-node multicast
    ff02::1:ffXX:XXXX (the low 24 bits of a host's address) and its MAC 33:33:ff:XX:XX:XX.
    Link-local 169.254/16 and fe80::/64 addresses are NOT kept: only their prefix may stay,
    their host part must change. An EUI-64 interface id is kept exactly when the MAC it holds
    is."""

    ipv4: tuple[ipaddress.IPv4Network, ...]
    ipv6: tuple[ipaddress.IPv6Network, ...]
    ipv6_exceptions: tuple[ipaddress.IPv6Network, ...]
    mac_exception_prefixes: tuple[bytes, ...]
    mac_group_blocks: tuple[bytes, ...]

    def keeps(self, raw: bytes) -> bool:
        kind = kind_of(raw)
        if kind == "ipv4":
            address4 = ipaddress.IPv4Address(raw)
            return any(address4 in network for network in self.ipv4)
        if kind == "ipv6":
            address6 = ipaddress.IPv6Address(raw)
            return (any(address6 in network for network in self.ipv6)
                    and not any(address6 in network for network in self.ipv6_exceptions))
        if kind == "eui64":
            return self.keeps(mac_of_eui64(raw))
        if raw == bytes(6):
            return True
        group = bool(raw[0] & 0x01)  # the I/G bit: broadcast and multicast
        return (group and raw.startswith(self.mac_group_blocks)
                and not raw.startswith(self.mac_exception_prefixes))


DEFAULT_POLICY = KeepPolicy(
    ipv4=tuple(ipaddress.IPv4Network(n) for n in (
        "0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8", "224.0.0.0/4")),
    ipv6=tuple(ipaddress.IPv6Network(n) for n in ("::/128", "::1/128", "ff00::/8")),
    ipv6_exceptions=(ipaddress.IPv6Network("ff02::1:ff00:0/104"),),
    mac_exception_prefixes=(b"\x33\x33\xff",),
    # IEEE/IANA multicast blocks: broadcast, IPv4 and IPv6 multicast, IEEE 802.1 reserved, PTP,
    # Cisco, IEC 61850, DEC, AppleTalk, 802.5 functional, DEC MOP, Nortel autodiscovery
    mac_group_blocks=(b"\xff" * 6, b"\x01\x00\x5e", b"\x33\x33", b"\x01\x80\xc2", b"\x01\x1b\x19",
                      b"\x01\x00\x0c", b"\x01\x0c\xcd", b"\x09\x00\x2b", b"\x09\x00\x07",
                      b"\x03\x00\x00", b"\xab\x00\x00", b"\x01\x00\x81"),
)


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where tshark showed an identifier: frame number, field name, protocol chain; `derived`
    says how it was computed from that field's value (EUI-64), if it was."""

    frame: int
    field: str
    path: str
    derived: str = ""

    def __str__(self) -> str:
        return f"frame {self.frame} {self.field}" + (f" ({self.derived})" if self.derived else "")


SIGHTINGS_KEPT = 4  # per identifier, enough to say where it came from


@dataclass(slots=True)
class Identifiers:
    """Every identifier tshark showed in one capture (binary form -> where it was seen), and the
    policy that splits them into kept and secret."""

    seen: dict[bytes, list[Sighting]] = field(default_factory=dict)
    policy: KeepPolicy = DEFAULT_POLICY
    _secret: dict[bytes, list[Sighting]] | None = field(default=None, repr=False, compare=False)

    def add(self, raw: bytes, sighting: Sighting) -> None:
        sightings = self.seen.setdefault(raw, [])
        if len(sightings) < SIGHTINGS_KEPT:
            sightings.append(sighting)
        self._secret = None

    @property
    def secret(self) -> dict[bytes, list[Sighting]]:
        if self._secret is None:
            self._secret = {raw: where for raw, where in self.seen.items() if not self.policy.keeps(raw)}
        return self._secret

    @property
    def kept(self) -> dict[bytes, list[Sighting]]:
        return {raw: where for raw, where in self.seen.items() if self.policy.keeps(raw)}

    def texts(self, secret_only: bool = True) -> set[str]:
        return {to_text(raw) for raw in (self.secret if secret_only else self.seen)}


# --------------------------------------------------------------------------------------------
# tshark


@cache
def address_fields() -> dict[str, str]:
    """Every tshark field of an address type, name -> identifier kind (from `tshark -G fields`:
    `F`, description, name, type, ...)."""
    process = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True, check=True)
    kinds = {}
    for line in process.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) > 3 and parts[0] == "F" and parts[3] in ADDRESS_TYPES:
            kinds[parts[2]] = ADDRESS_TYPES[parts[3]]
    return kinds


@dataclass(frozen=True, slots=True)
class AddressField:
    """One occurrence of an address-typed field in a dissection."""

    frame: int
    field: str
    path: str        # protocol chain, outermost first: `eth>ip>icmp>ip` for an ICMP-quoted header
    pos: int | None  # byte offset tshark gives (in the frame, unless a reassembled data source)
    size: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Dissection:
    """What tshark showed of one capture: its exit status, the address-typed fields, and per frame
    the (pos, size, name) of every protocol (with `every_field`, of every field too), to say
    where a byte hit lies. `note` says how the file had to be adapted for tshark, if it had to."""

    returncode: int
    stderr: str
    frames: int
    addresses: list[AddressField]
    spans: dict[int, list[tuple[int, int, str]]]
    note: str = ""

    def field_at(self, frame: int, offset: int, length: int) -> str | None:
        """The smallest field or protocol whose bytes cover [offset, offset + length)."""
        best: tuple[int, str] | None = None
        for pos, size, name in self.spans.get(frame, ()):
            if pos <= offset and offset + length <= pos + size and (best is None or size <= best[0]):
                best = (size, name)
        return None if best is None else best[1]


def parse_address(show: str | None, value: str | None, kind: str) -> bytes | None:
    """The address a pdml field holds. Its `show` text is tshark's decoding and is used when it
    parses (it is right where the raw `value` is not the address itself: a BGP prefix's 1..4
    bytes, a PIM encoded address, the 8-byte interface id behind `ipv6.src_slaac_mac`, a generated
    field without bytes); else the hex `value`, if it is exactly the kind's width."""
    if show:
        try:
            if kind == "ipv4":
                return ipaddress.IPv4Address(show).packed
            if kind == "ipv6":
                return ipaddress.IPv6Address(show).packed
            if re.fullmatch(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}", show):
                return bytes.fromhex(show.replace(":", ""))
        except ValueError:
            pass
    if value and len(value) == 2 * WIDTHS[kind]:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


SPANLESS = ("geninfo", "frame", "fake-field-wrapper")  # whole-frame pseudo protocols


def parse_pdml(stream: io.BytesIO, shift: tuple[int, int] = (0, 0), every_field: bool = False,
               ) -> tuple[int, list[AddressField], dict[int, list[tuple[int, int, str]]], str]:
    """Stream-parse pdml: (frames, address fields, spans, error). Spans are the protocols', and
    with `every_field` the fields' too (slower). `shift` = (from, by): positions at or after
    `from` move by `by` (for a copy with bytes taken out of every frame)."""
    kinds = address_fields()
    frames = 0
    addresses: list[AddressField] = []
    spans: dict[int, list[tuple[int, int, str]]] = {}
    layers: list[str] = []  # protocols seen so far in the frame, outermost first
    nested: list[int] = []  # for each open <proto>, how many layers there were when it opened
    frame_spans: list[tuple[int, int, str]] = []
    root = None
    try:
        for event, element in ET.iterparse(stream, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if tag == "proto":
                    name = element.get("name", "")
                    nested.append(len(layers))
                    if name not in SPANLESS:
                        layers.append(name)
                elif tag == "packet":
                    frames += 1
                    layers, nested, frame_spans = [], [], []
                    spans[frames] = frame_spans
                elif root is None:
                    root = element
                continue
            if tag == "field":
                name = element.get("name", "")
                kind = kinds.get(name)
                if kind is not None:
                    raw = parse_address(element.get("show"), element.get("value"), kind)
                    if raw is not None:
                        pos, size = _position(element, shift)
                        addresses.append(AddressField(frames, name, ">".join(layers), pos, size, raw))
                if every_field and layers:  # not geninfo's/frame's whole-frame fields
                    pos, size = _position(element, shift)
                    if pos is not None and size:
                        frame_spans.append((pos, size, sys.intern(name)))
            elif tag == "proto":
                name = element.get("name", "")
                if name not in SPANLESS:
                    pos, size = _position(element, shift)
                    if pos is not None and size:
                        frame_spans.append((pos, size, sys.intern(name)))
                # a protocol nested in another (ICMP's quoted packet) closes with it; flat layers
                # after it (a tunnel's inner headers) stay in the chain
                opened = nested.pop() if nested else 0
                if nested:
                    del layers[opened:]
            elif tag == "packet":
                element.clear()
                if root is not None:
                    root.clear()
    except ET.ParseError as error:
        return frames, addresses, spans, f"pdml parse error: {error}"
    return frames, addresses, spans, ""


def _position(element: ET.Element, shift: tuple[int, int]) -> tuple[int | None, int]:
    try:
        pos, size = int(element.get("pos", "")), int(element.get("size", "0"))
    except ValueError:
        return None, 0
    return (pos + shift[1] if pos >= shift[0] else pos), size


_CACHE: dict[tuple[str, int, int, bool], Future[Dissection]] = {}
_CACHE_LOCK = threading.Lock()


def dissect(path: Path, every_field: bool = False) -> Dissection:
    """tshark's dissection of `path`, computed once per file version, from any thread."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, every_field)
    with _CACHE_LOCK:
        future = _CACHE.get(key)
        mine = future is None
        if future is None:
            future = _CACHE[key] = Future()
    if mine:
        try:
            future.set_result(_dissect(path, every_field))
        except BaseException as error:
            future.set_exception(error)
            raise
    return future.result()


TSHARK_PREFS = ()  # tshark's defaults: reassembly on, heuristic dissectors as shipped


def _tshark_pdml(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["tshark", "-n", "-r", str(path), *TSHARK_PREFS, "-T", "pdml"],
                          capture_output=True, check=False)


def _dissect(path: Path, every_field: bool) -> Dissection:
    process = _tshark_pdml(path)
    note, shift = "", (0, 0)
    unsupported = re.search(rb"network type (\d+) unknown or unsupported", process.stderr)
    if process.returncode != 0 and unsupported is not None:
        linktype = int(unsupported.group(1))
        tag = TAG_AFTER_SOURCE_MAC.get(linktype)
        with tempfile.TemporaryDirectory(prefix="leakcheck-") as workdir:
            copy = Path(workdir) / path.name
            if tag is not None:
                _write_untagged_copy(path, copy, tag)
                note, shift = f"link type {linktype} read as Ethernet without its {tag}-byte tag", (12, tag)
            else:
                _write_relabelled_copy(path, copy, LINKTYPE_USER0)
                note = f"link type {linktype} unknown to tshark: no fields, bytes searched only"
            process = _tshark_pdml(copy)
    frames, addresses, spans, error = parse_pdml(io.BytesIO(process.stdout), shift, every_field)
    stderr = process.stderr.decode(errors="replace") + (f"\n{error}" if error else "")
    return Dissection(process.returncode, stderr.strip(), frames, addresses, spans, note)


def _pcap_header(data: bytes | bytearray) -> str:
    order = PCAP_MAGICS.get(bytes(data[:4]))
    if order is None:
        raise ValueError("not a classic pcap file: cannot adapt its link type for tshark")
    return order


def _write_relabelled_copy(source: Path, copy: Path, linktype: int) -> None:
    data = bytearray(source.read_bytes())
    struct.pack_into(_pcap_header(data) + "I", data, 20, linktype)
    copy.write_bytes(data)


def _write_untagged_copy(source: Path, copy: Path, tag: int) -> None:
    """An Ethernet copy of a classic pcap whose frames carry `tag` bytes after the source MAC."""
    data = source.read_bytes()
    order = _pcap_header(data)
    header = bytearray(data[:24])
    struct.pack_into(order + "I", header, 20, LINKTYPE_ETHERNET)
    out = [bytes(header)]
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, caplen, length = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) >= 12 + tag:
            frame, caplen, length = frame[:12] + frame[12 + tag:], caplen - tag, max(length - tag, 0)
        out.append(struct.pack(order + "IIII", seconds, fraction, caplen, length) + frame)
    copy.write_bytes(b"".join(out))


# --------------------------------------------------------------------------------------------
# The identifiers of a capture


# Address-typed fields whose values are not identifiers, and why. Kept narrow: a field by name, or
# a field kind together with the value that makes it a non-address.
NOT_AN_IDENTIFIER = {
    # the DHCP/BOOTP magic cookie 99.130.83.99 (RFC 2131), a protocol constant typed FT_IPv4
    "dhcp.cookie": "protocol constant",
}
MASK_FIELD = re.compile(r"mask", re.IGNORECASE)  # dhcp.option.subnet_mask, ospf.hello.network_mask...


def is_netmask_value(name: str, raw: bytes) -> bool:
    """An IPv4 netmask (contiguous ones, then zeros) in a field named as a mask: it names no
    host, and a scrub rightly keeps it (it says nothing once the addresses are mapped)."""
    if len(raw) != 4 or not MASK_FIELD.search(name):
        return False
    value = int.from_bytes(raw, "big")
    ones = bin(value).count("1")
    return value == (0xFFFFFFFF << (32 - ones)) & 0xFFFFFFFF


def original_identifiers(path: Path, policy: KeepPolicy = DEFAULT_POLICY) -> Identifiers:
    """Every FT_IPv4/FT_IPv6/FT_ETHER value tshark shows in `path`, with the MACs inside EUI-64
    interface ids and the EUI-64 interface ids of the MACs (but for NOT_AN_IDENTIFIER fields and
    netmask values of mask fields)."""
    identifiers = Identifiers(policy=policy)
    for found in dissect(path).addresses:
        if found.field in NOT_AN_IDENTIFIER or is_netmask_value(found.field, found.raw):
            continue
        add_with_derived(identifiers, found.raw, Sighting(found.frame, found.field, found.path))
    return identifiers


def add_with_derived(identifiers: Identifiers, raw: bytes, sighting: Sighting) -> None:
    identifiers.add(raw, sighting)
    mac = raw if len(raw) == 6 else None
    if len(raw) == 16:
        interface_id = eui64_interface_id(raw)
        if interface_id is not None:
            mac = mac_of_eui64(interface_id)
            identifiers.add(mac, Sighting(sighting.frame, sighting.field, sighting.path,
                                          f"MAC in the EUI-64 of {to_text(raw)}"))
    if mac is not None:
        identifiers.add(eui64_of_mac(mac), Sighting(sighting.frame, sighting.field, sighting.path,
                                                    f"EUI-64 of {to_text(mac)}"))


# --------------------------------------------------------------------------------------------
# Byte and text search


@dataclass(frozen=True, slots=True)
class Hit:
    raw: bytes
    offset: int
    length: int
    how: str


def _octets(groups: Iterable[bytes]) -> bytes | None:
    values = [int(group) for group in groups]
    return bytes(values) if all(value <= 255 for value in values) else None


DOTTED = re.compile(rb"(?<![0-9])(?=([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9]))")
REVERSE4_TEXT = re.compile(
    rb"(?<![0-9])([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.in-addr\.arpa")
REVERSE6_TEXT = re.compile(rb"(?<![0-9a-z])((?:[0-9a-f]\.){32})ip6\.arpa")
# DNS wire labels: the address's labels, then `in-addr`/`ip6` or a compression pointer to them
REVERSE4_WIRE = re.compile(rb"(?=((?:\x01[0-9]|\x02[0-9]{2}|\x03[0-9]{3}){4})(?:\x07in-addr|[\xc0-\xff]))")
REVERSE6_WIRE = re.compile(rb"(?=((?:\x01[0-9a-f]){32})(?:\x03ip6|[\xc0-\xff]))")
MAC_SEPARATED = re.compile(rb"(?<![0-9a-f])(?=([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2"
                           rb"([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})(?![0-9a-f]))")
MAC_DOTTED = re.compile(rb"(?<![0-9a-f])([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})(?![0-9a-f])")
HEX_DIGITS = b"0123456789abcdef"
IPV6_RUN = re.compile(rb"[0-9a-f:.]*:[0-9a-f.]*:[0-9a-f:.]*")  # at least two ':'


@dataclass(slots=True)
class Searcher:
    """Finds the binary and text forms of a set of identifiers in bytes: binary forms by a
    sliding window per width, text forms by generic patterns whose matches are normalised to
    binary and looked up (so any spelling `ipaddress` accepts, and any case, is found)."""

    secret: set[bytes]
    widths: list[int] = field(init=False)
    by_width: dict[int, set[bytes]] = field(init=False)
    bare_macs: dict[bytes, bytes] = field(init=False)
    ipv6_texts: list[tuple[bytes, bytes]] = field(init=False)

    def __post_init__(self) -> None:
        self.widths = sorted({len(raw) for raw in self.secret})
        self.by_width = {width: {raw for raw in self.secret if len(raw) == width} for width in self.widths}
        self.bare_macs = {raw.hex().encode(): raw for raw in self.secret if len(raw) == 6}
        self.ipv6_texts = [(form.encode(), raw) for raw in self.secret if len(raw) == 16
                           for form in (str(ipaddress.IPv6Address(raw)),
                                        ipaddress.IPv6Address(raw).exploded)]

    def search(self, data: bytes) -> Iterator[Hit]:
        if not self.secret:
            return
        for width in self.widths:
            for raw, offset in _occurrences(data, self.by_width[width], width):
                yield Hit(raw, offset, width, "binary")
        text = data.lower()  # ASCII letters only: binary bytes keep their offsets
        yield from self._text(text)

    def _found(self, raw: bytes | None, start: int, end: int, how: str) -> Iterator[Hit]:
        if raw is not None and raw in self.secret:
            yield Hit(raw, start, end - start, how)

    def _text(self, text: bytes) -> Iterator[Hit]:
        if 4 in self.widths:
            for match in DOTTED.finditer(text):
                end = match.end(4)
                yield from self._found(_octets(match.groups()), match.start(1), end, "text: dotted IPv4")
            for match in REVERSE4_TEXT.finditer(text):
                yield from self._found(_octets(reversed(match.groups())), match.start(), match.end(),
                                       "text: in-addr.arpa name")
            for match in REVERSE4_WIRE.finditer(text):
                labels = _labels(match.group(1))
                yield from self._found(_octets(reversed(labels)), match.start(1), match.end(1),
                                       "DNS labels: in-addr.arpa name")
        if 16 in self.widths:
            for match in REVERSE6_TEXT.finditer(text):
                nibbles = match.group(1).replace(b".", b"")[::-1]
                yield from self._found(bytes.fromhex(nibbles.decode()), match.start(), match.end(),
                                       "text: ip6.arpa name")
            for match in REVERSE6_WIRE.finditer(text):
                nibbles = b"".join(_labels(match.group(1)))[::-1]
                yield from self._found(bytes.fromhex(nibbles.decode()), match.start(1), match.end(1),
                                       "DNS labels: ip6.arpa name")
            for match in IPV6_RUN.finditer(text):
                yield from self._ipv6_run(match.group(), match.start())
        if 6 in self.widths:
            for match in MAC_SEPARATED.finditer(text):
                groups = match.groups()
                raw = bytes.fromhex(b"".join(groups[:1] + groups[2:]).decode())
                yield from self._found(raw, match.start(1), match.end(7), "text: MAC")
            for match in MAC_DOTTED.finditer(text):
                raw = bytes.fromhex(b"".join(match.groups()).decode())
                yield from self._found(raw, match.start(), match.end(), "text: MAC")
            for hexadecimal, offset in _occurrences(text, set(self.bare_macs), 12):
                yield Hit(self.bare_macs[hexadecimal], offset, 12, "text: MAC as bare hex")

    def _ipv6_run(self, run: bytes, start: int) -> Iterator[Hit]:
        """A run of [0-9a-f:.] with two colons or more: an IPv6 address in any textual form, or
        one glued to neighbouring text (then found by its compressed or exploded form)."""
        candidate = run.rstrip(b".")
        if candidate.endswith(b":") and not candidate.endswith(b"::"):
            candidate = candidate[:-1]
        if candidate.startswith(b":") and not candidate.startswith(b"::"):
            candidate, start = candidate[1:], start + 1
        try:
            raw: bytes | None = ipaddress.IPv6Address(candidate.decode()).packed
        except ValueError:
            raw = None
        if raw is not None and raw in self.secret:
            yield Hit(raw, start, len(candidate), "text: IPv6")
            return
        for form, secret in self.ipv6_texts:
            at = run.find(form)
            if at < 0 or secret == raw or (at > 0 and run[at - 1] in HEX_DIGITS):
                continue
            end = at + len(form)
            after = run[end:end + 2]  # not the start of more address: a digit, or ':' and a digit
            if after[:1] and (after[0] in HEX_DIGITS
                              or (after[:1] == b":" and after[1:] and after[1] in HEX_DIGITS)):
                continue
            yield Hit(secret, start + at, len(form), "text: IPv6")


def _occurrences(data: bytes, needles: set[bytes], width: int) -> Iterator[tuple[bytes, int]]:
    """Every (needle, offset) of same-width needles in data, overlapping ones included: by
    bytes.find for a few needles, by one set lookup per offset for many."""
    if len(needles) <= 32:
        for needle in needles:
            at = data.find(needle)
            while at >= 0:
                yield needle, at
                at = data.find(needle, at + 1)
        return
    for offset in range(len(data) - width + 1):
        window = data[offset:offset + width]
        if window in needles:
            yield window, offset


def _labels(wire: bytes) -> list[bytes]:
    labels, offset = [], 0
    while offset < len(wire):
        length = wire[offset]
        labels.append(wire[offset + 1:offset + 1 + length])
        offset += 1 + length
    return labels


# --------------------------------------------------------------------------------------------
# Leaks


@dataclass(frozen=True, slots=True)
class Leak:
    """An original identifier found in an output: what (text, kind), where (output frame, and the
    tshark field holding it or the byte offset in the frame and the field covering those bytes;
    frame 0 for bytes of the file outside any frame), how it was found, and where the input had
    it."""

    identifier: str
    kind: str
    frame: int
    how: str
    field: str | None
    offset: int | None
    path: str
    seen: str

    def __str__(self) -> str:
        where = f"frame {self.frame}" if self.frame else "outside the frames"
        if self.offset is not None:
            where += f" @{self.offset}"
        within = f" {self.field}" if self.field else ""
        chain = f" [{self.path}]" if self.path else ""
        return f"{where}: {self.identifier} ({self.kind}) {self.how}{within}{chain}; input: {self.seen}"


def read_frames(path: Path) -> list[bytes]:
    """The raw bytes of every frame (scapy's RawPcapReader; pcapng through RawPcapNgReader)."""
    with RawPcapReader(str(path)) as reader:
        return [bytes(data) for data, _ in reader]


def _hit_length(leak: Leak) -> int:
    return WIDTHS[leak.kind] if leak.how == "binary" else 1


def is_zero_padded(raw: bytes) -> bool:
    """An IPv4 address or MAC that is one byte and zeros (0.0.0.1, 10.0.0.0, 02:00:00:00:00:00)."""
    return len(raw) in (4, 6) and raw.count(0) >= len(raw) - 1


def is_chance_hit(dissection: Dissection, frame: int, hit: Hit, kept: list[tuple[int, int]]) -> bool:
    """Classes of false positives of the binary search, excluded narrowly (text hits never are):

    - The identifier is one byte and zeros: zero runs are everywhere (unset fields, padding, the
      all-zero target MAC of an ARP request), so any byte next to one makes such a value. None of
      them names a host (0/8 and x.0.0.0 are not host addresses, 00:00:00:00:00:xx is no NIC's);
      they come from fuzzed frames (arp-oobr) or are router ids, and stay checked where tshark
      shows them as addresses and as text.
    - The match lies wholly inside a TCP header, or the fixed 8 bytes of an ARP header (hardware
      and protocol types and lengths, opcode), as tshark dissects the output: those are numbers
      (sequence numbers, urgent pointer then NOP NOP = 00 00 01 01 = 0.0.1.1, timestamps), not
      addresses; the only addresses a TCP header carries are in options tshark types FT_IPv4/
      FT_IPv6 (MPTCP ADD_ADDR), which the tshark channel checks.
    - The match overlaps (shares bytes with) an address the policy keeps, as tshark shows it in
      the output: a kept address may stay, and a window straddling it is not a copy of another
      identifier (arp-oobr: kept multicast 224.168.1.104 then zeros matches 168.1.104.0)."""
    if hit.how != "binary":
        return False
    if is_zero_padded(hit.raw):
        return True
    start, end = hit.offset, hit.offset + hit.length
    if any(pos < end and start < stop for pos, stop in kept):
        return True
    for pos, size, name in dissection.spans.get(frame, ()):
        if (name == "tcp" and pos <= start and end <= pos + size) or (
                name == "arp" and pos <= start and end <= pos + min(size, 8)):
            return True
    return False


def find_leaks(original: Path, output: Path, identifiers: Identifiers | None = None,
               channels: Iterable[str] = ("tshark", "frames", "file"), describe: bool = True) -> list[Leak]:
    """Every place in `output` that still holds a secret identifier of `original`.

    channels: `tshark` compares the output's address-typed fields with the identifiers; `frames`
    searches the bytes of each output frame; `file` searches what the file holds besides frames
    and numbers (pcapng option values, name resolution records). `describe` names the tshark
    field around each byte hit (one more tshark run, keeping every field's position), else only
    the protocol."""
    identifiers = original_identifiers(original) if identifiers is None else identifiers
    secret = identifiers.secret
    channels = set(channels)
    leaks: list[Leak] = []
    if not secret:
        return leaks

    def seen(raw: bytes) -> str:
        return str(secret[raw][0])

    dissection = dissect(output) if channels & {"tshark", "frames"} else None
    covered: dict[int, list[tuple[int, int]]] = {}  # per frame, byte ranges already reported
    kept: dict[int, list[tuple[int, int]]] = {}  # per frame, byte ranges of kept addresses
    keeps: dict[bytes, bool] = {}
    for found in dissection.addresses if dissection is not None else ():
        if found.raw not in keeps:
            keeps[found.raw] = identifiers.policy.keeps(found.raw)
        if found.pos is not None and keeps[found.raw]:
            kept.setdefault(found.frame, []).append((found.pos, found.pos + found.size))
    if dissection is not None and "tshark" in channels:
        for found in dissection.addresses:
            if found.raw in secret:
                leaks.append(Leak(to_text(found.raw), kind_of(found.raw), found.frame, "tshark field",
                                  found.field, None, found.path, seen(found.raw)))
                if found.pos is not None:
                    covered.setdefault(found.frame, []).append((found.pos, found.pos + found.size))
    searcher = Searcher(set(secret))
    if dissection is not None and "frames" in channels:
        hits_from = len(leaks)
        for number, data in enumerate(read_frames(output), start=1):
            for hit in searcher.search(data):
                end = hit.offset + hit.length
                if any(start <= hit.offset and end <= stop for start, stop in covered.get(number, ())):
                    continue  # inside a field the tshark channel reported
                if is_chance_hit(dissection, number, hit, kept.get(number, [])):
                    continue
                leaks.append(Leak(to_text(hit.raw), kind_of(hit.raw), number, hit.how,
                                  dissection.field_at(number, hit.offset, hit.length), hit.offset,
                                  "", seen(hit.raw)))
        if describe and len(leaks) > hits_from:
            fields = dissect(output, every_field=True)
            leaks[hits_from:] = [replace(leak, field=fields.field_at(leak.frame, leak.offset or 0,
                                                                     _hit_length(leak)))
                                 for leak in leaks[hits_from:]]
    if "file" in channels:
        for where, offset, data in metadata(output.read_bytes()):
            for hit in searcher.search(data):
                leaks.append(Leak(to_text(hit.raw), kind_of(hit.raw), 0, hit.how, where,
                                  offset + hit.offset, "", seen(hit.raw)))
    return leaks


PCAPNG_BLOCKS = {0x0A0D0D0A: "SHB", 1: "IDB", 2: "PB", 3: "SPB", 4: "NRB", 5: "ISB", 6: "EPB",
                 0x0A: "DSB"}
# bytes of fixed numeric fields after the block header, before the options (or the packet data)
PCAPNG_FIXED = {"SHB": 16, "IDB": 8, "ISB": 12}


def metadata(data: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(what, file offset, bytes) of everything a capture file holds besides its frames and
    numbers: nothing for a classic pcap (its headers are magic, version, lengths, link type and
    timestamps); for pcapng each option value, each name resolution record, and the body of any
    block type not understood here. If the pcapng structure is broken, the rest of the file."""
    if data[:4] != b"\x0a\x0d\x0d\x0a":
        return
    offset, order = 0, "<"
    while offset + 12 <= len(data):
        if data[offset:offset + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[offset + 8:offset + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        kind, length = struct.unpack_from(order + "II", data, offset)
        if length < 12 or length % 4 or offset + length > len(data):
            yield "pcapng (unparsable from here)", offset, data[offset:]
            return
        body, start = data[offset + 8:offset + length - 4], offset + 8
        name = PCAPNG_BLOCKS.get(kind, f"block 0x{kind:x}")
        options: int | None = PCAPNG_FIXED.get(name)
        if name in ("EPB", "PB") and len(body) >= 20:  # both: 20 bytes, caplen at 12, then the data
            options = 20 + _padded(struct.unpack_from(order + "I", body, 12)[0])
        elif name == "NRB":
            options = 0
        if name == "SPB":  # original length, then the packet data: nothing else
            pass
        elif options is None:
            yield f"pcapng {name} body", start, body
        else:
            yield from _tlvs(body, options, start, order, name)
        offset += length


def _padded(length: int) -> int:
    return (length + 3) & ~3


def _tlvs(body: bytes, offset: int, start: int, order: str, block: str) -> Iterator[tuple[str, int, bytes]]:
    """The values of a run of (code, length, value, padding) records: options, or an NRB's
    records then its options (each run ends with code 0)."""
    runs = ["record", "option"] if block == "NRB" else ["option"]
    while runs and offset + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, offset)
        offset += 4
        if code == 0 and length == 0:
            runs.pop(0)
            continue
        yield f"pcapng {block} {runs[0]} {code}", start + offset, body[offset:offset + length]
        offset += _padded(length)


def channel(leak: Leak) -> str:
    """A short name for where a leak was: `eth.src`, `icmp>ip ip.src`, `binary in data.data`..."""
    if leak.how == "tshark field":
        layers = leak.path.split(">")
        nested = ">".join(layers[-2:]) + " " if len(layers) > 1 and layers.count(layers[-1]) > 1 else ""
        return f"{nested}{leak.field}"
    return f"{leak.how} in {leak.field or 'frame'}"


def format_leaks(original: Path, leaks: list[Leak], limit: int = 20) -> str:
    """A failure message: counts per channel, then the first `limit` leaks."""
    counts = Counter(channel(leak) for leak in leaks)
    identifiers = {leak.identifier for leak in leaks}
    lines = [f"{len(leaks)} leaks of {len(identifiers)} original identifiers of {original.name}:"]
    lines += [f"  {count:5} x {name}" for name, count in counts.most_common()]
    lines += [f"  {leak}" for leak in leaks[:limit]]
    if len(leaks) > limit:
        lines.append(f"  ... and {len(leaks) - limit} more")
    return "\n".join(lines)
