"""payload: keep at most N bytes after the last header understood, and no identifier in them."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from anontrace.crypto.macs import MacMapper
from anontrace.crypto.mapping import AddressMapper
from anontrace.packet.batch import Batch
from anontrace.packet.layers import Layers
from anontrace.transforms.base import Context, Transform, setting
from anontrace.transforms.ip import address_mapper
from anontrace.transforms.mac import mac_mapper

MODES = ("cut", "rewrite")
SEEN_LIMIT = 1 << 20
DOTTED = re.compile(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
COLONS = re.compile(rb"(?<![0-9A-Fa-f:])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
MAC_TEXT = re.compile(
    rb"(?<![0-9A-Fa-f])[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}(?![0-9A-Fa-f])")
REVERSE = re.compile(rb"in-addr[.\x04]arpa|ip6[.\x04]arpa", re.IGNORECASE)
Hit = tuple[int, int, bytes | None]  # start, end, replacement of the same length (None: cut here)


@dataclass(frozen=True, slots=True)
class PayloadConfig:
    keep: int = setting(0, "Bytes of payload kept after the last header the dissector "
                        "understood; 0 keeps headers only.", minimum=0)
    identifiers: str = setting(
        "cut", "What happens to kept payload holding an address or MAC (in binary, as dotted or "
        "colon text, or a reverse-DNS name): `cut` ends the payload just before it; `rewrite` "
        "replaces binary ones and same-length text with their mapping, and cuts before the rest.",
        choices=MODES)


class Payload(Transform):
    """Cut application payload to at most `keep` bytes, like a capture snap length: the frame's
    original length and the IP and UDP length fields stay as they were, so packet sizes remain
    analysable. Payloads are cut to 0 bytes when no rule keeps any. Kept payload is searched for
    identifiers: every IPv4/IPv6 address and MAC seen in the run's headers, in binary, and any
    address, MAC or reverse-DNS name written as text; see `identifiers`."""

    name = "payload"
    Config = PayloadConfig

    def __init__(self, config: PayloadConfig, context: Context) -> None:
        super().__init__(config, context)
        self.addresses: AddressMapper = address_mapper(context)
        self.macs: MacMapper = mac_mapper(context)
        # Identifiers seen in headers so far, in stream order (so what is searched for in a frame
        # never depends on how frames were batched), by size: 4, 16 (addresses), 6 (MACs).
        self._seen: set[bytes] = set()

    @property
    def columnar(self) -> bool:
        return bool(self.config.keep == 0)  # kept payload is searched frame by frame

    def apply(self, batch: Batch) -> Batch:
        keep = self.config.keep
        cut = 0
        table = batch.table
        if table is not None:  # keep is 0
            longer = table.length > table.header
            cut += int(longer.sum())
            table.length[longer] = table.header[longer]
        for position, frame, layers, out in batch.others():
            limit = layers.payload + keep
            if len(out) > limit:
                del out[limit:]
                cut += 1
            if keep:
                self._learn(frame.data, layers)
            if len(out) > layers.payload:
                self._scrub(batch, position, frame.data, layers.payload)
        batch.counts["payloads cut"] += cut
        return batch

    def _learn(self, source: bytes, layers: Layers) -> None:
        if len(self._seen) > SEEN_LIMIT:
            self._seen.clear()  # bound memory; restarts at the same frame however frames are batched
        for size, offsets in ((4, layers.ipv4), (16, layers.ipv6), (6, layers.macs)):
            self._seen.update(source[o:o + size] for o in offsets)

    def _scrub(self, batch: Batch, position: int, source: bytes, start: int) -> None:
        out = batch.data[position]
        # By where they begin; at one place a hit that cannot be rewritten comes first (the frame
        # is cut there), then the longest. Hits never compare by replacement (bytes or None).
        hits = sorted(self._hits(source, start, len(out)), key=lambda h: (h[0], h[2] is not None, -h[1]))
        rewrite = self.config.identifiers == "rewrite"
        done = start
        for begin, end, replacement in hits:
            if end <= done:
                continue  # inside a hit already rewritten: its bytes are gone
            if replacement is None or not rewrite or begin < done:
                # not rewritable, or it runs on past a rewritten hit: what follows would be kept
                batch.cut_at(position, begin, "payload holds an identifier")
                return
            out[begin:end] = replacement
            batch.counts["payload identifiers rewritten"] += 1
            done = end

    def _hits(self, source: bytes, start: int, end: int) -> list[Hit]:
        region = source[start:end]
        hits: list[Hit] = []
        seen = self._seen
        for size, mapper in ((4, self.addresses.map), (16, self.addresses.map), (6, self.macs.map)):
            for i in range(len(region) - size + 1):
                window = region[i:i + size]
                if window in seen:
                    mapped = mapper(window)
                    if mapped != window:  # a kept address or MAC names no host
                        hits.append((start + i, start + i + size, mapped))
        for match in DOTTED.finditer(region):
            hits += self._text(match, start, 4)
        for match in COLONS.finditer(region):
            hits += self._text(match, start, 16)
        for match in MAC_TEXT.finditer(region):
            hits += self._mac_text(match, start)
        hits += [(start + m.start(), start + m.end(), None) for m in REVERSE.finditer(region)]
        return hits

    def _text(self, match: re.Match[bytes], start: int, size: int) -> list[Hit]:
        text = match.group()
        try:
            address = ipaddress.ip_address(text.decode("ascii"))
        except ValueError:
            return []
        if len(address.packed) != size:
            return []
        mapped = self.addresses.map(address.packed)
        if mapped == address.packed:
            return []  # a kept address (loopback, multicast, ...) names no host
        replacement = str(ipaddress.ip_address(mapped)).encode()
        same = replacement if len(replacement) == len(text) else None
        return [(start + match.start(), start + match.end(), same)]

    def _mac_text(self, match: re.Match[bytes], start: int) -> list[Hit]:
        text = match.group()
        separator = text[2:3]
        mac = bytes.fromhex(text.decode("ascii").replace(separator.decode(), ""))
        mapped = self.macs.map(mac)
        if mapped == mac:
            return []  # a kept group address
        formatted = separator.join(f"{b:02x}".encode() for b in mapped)
        replacement = formatted.upper() if text.isupper() else formatted
        return [(start + match.start(), start + match.end(), replacement)]
