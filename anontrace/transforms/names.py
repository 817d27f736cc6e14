"""names: host and domain names in DNS, DHCP, DHCPv6 and neighbour discovery."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from anontrace.crypto.mapping import AddressMapper
from anontrace.keys import subkey
from anontrace.packet.batch import Batch
from anontrace.packet.layers import Name
from anontrace.transforms.base import Context, Transform, setting
from anontrace.transforms.ip import address_mapper

POLICIES = ("hash", "keep", "remove")
ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"
MAX_LABELS = 128
REVERSE_V4, REVERSE_V6 = (b"in-addr", b"arpa"), (b"ip6", b"arpa")
HEX = b"0123456789abcdef"
Label = tuple[int, bytes]  # where a label's text starts in the frame, and the text


@dataclass(frozen=True, slots=True)
class NamesConfig:
    policy: str = setting("hash", "What becomes of host and domain names: `hash` replaces each "
                          "label by a keyed hash of the same length (the same label always gives "
                          "the same hash, so names stay distinguishable and their structure "
                          "stays visible); `keep` keeps them; `remove` cuts each frame at its "
                          "first name.", choices=POLICIES)
    keep_labels: tuple[str, ...] = setting(
        ("arpa", "in-addr", "ip6", "local"), "Labels kept wherever they appear (compared without "
        "case). Labels starting with an underscore (service names such as _http._tcp) are kept "
        "too.")
    keep_top_level: bool = setting(True, "Keep the last label of a name of several labels "
                                   "(com, org, local): it tells little about a host.")


class Names(Transform):
    """Rewrite the host and domain names the dissector finds: DNS questions, record owners and
    names inside records (mDNS and LLMNR included), DHCP host name, domain name and client FQDN,
    DHCPv6 FQDN and domain lists, neighbour-discovery DNS search lists. Reverse-lookup names
    (`4.3.2.1.in-addr.arpa`, `….ip6.arpa`) are addresses: they are always rewritten with the
    address mapping, consistently with the headers; where the mapped address does not fit the
    labels' lengths the frame is cut at that name, since lengths are never changed."""

    name = "names"
    Config = NamesConfig

    def __init__(self, config: NamesConfig, context: Context) -> None:
        super().__init__(config, context)
        self.addresses: AddressMapper = address_mapper(context)
        self._key = subkey(context.key, "names")
        self._kept = {label.lower().encode() for label in config.keep_labels}
        self._hashes: dict[bytes, bytes] = {}

    @property
    def columnar(self) -> bool:
        return True  # the table's frames carry no names

    def apply(self, batch: Batch) -> Batch:
        for position, frame, layers, out in batch.others():
            for name in layers.names:
                if name.end > len(out):
                    continue  # not (all) in the output: nothing of it to rewrite or to leak
                problem = self._rewrite(frame.data, out, name)
                if problem is not None:
                    batch.cut_at(position, name.offset, problem)
                    break
                batch.counts["names rewritten"] += 1
        return batch

    def _rewrite(self, source: bytes, out: bytearray, name: Name) -> str | None:
        """Rewrite one name in `out`; a reason when it cannot be, and the frame must be cut there."""
        labels = name_labels(source, name)
        if labels is None:
            return "name not readable"
        texts = [text.lower() for _, text in labels]
        reverse = self._reverse(texts)
        for index, (start, text) in enumerate(labels):
            if not name.offset <= start < name.end:
                continue  # reached through a compression pointer: rewritten where it stands
            if index in reverse:
                replacement = reverse[index]
                if len(replacement) != len(text):
                    return "reverse DNS name: the mapped address does not fit its labels"
            elif self._keeps(texts, index):
                continue
            elif self.config.policy == "remove":
                return "host name removed (names: remove)"
            else:
                replacement = self._hash(texts[index], len(text))
            out[start:start + len(text)] = replacement
        return None

    def _keeps(self, texts: list[bytes], index: int) -> bool:
        text = texts[index]
        if self.config.policy == "keep" or text in self._kept or text.startswith(b"_"):
            return True
        return self.config.keep_top_level and index == len(texts) - 1 and len(texts) > 1

    def _hash(self, label: bytes, length: int) -> bytes:
        found = self._hashes.get(label)
        if found is None:
            digest = b""
            counter = 0
            while len(digest) < length:
                digest += hmac.new(self._key, bytes([counter]) + label, hashlib.sha256).digest()
                counter += 1
            found = bytes(ALPHABET[b % len(ALPHABET)] for b in digest[:max(length, 1)])
            if len(self._hashes) < 1 << 16:
                self._hashes[label] = found
        return found[:length]

    def _reverse(self, texts: list[bytes]) -> dict[int, bytes]:
        """For a reverse-lookup name, the mapped text of each label holding address bits."""
        if tuple(texts[-2:]) == REVERSE_V4:
            run = _run(texts, lambda t: t.isdigit() and len(t) <= 3 and int(t) <= 255, 4)
            if not run:
                return {}
            octets = bytes(int(texts[i]) for i in run)
            mapped = self.addresses.map(octets.ljust(4, b"\0"))
            return {i: str(mapped[k]).encode() for k, i in enumerate(run)}
        if tuple(texts[-2:]) == REVERSE_V6:
            run = _run(texts, lambda t: len(t) == 1 and t in HEX, 32)
            if not run:
                return {}
            nibbles = [HEX.index(texts[i]) for i in run]
            value = int("".join(f"{n:x}" for n in nibbles).ljust(32, "0"), 16)
            mapped = self.addresses.map(value.to_bytes(16, "big")).hex().encode()
            return {i: mapped[k:k + 1] for k, i in enumerate(run)}
        return {}



def _run(texts: list[bytes], is_part: Any, limit: int) -> list[int]:
    """Indices of the address labels before the two-label reverse suffix, most significant
    (the one next to the suffix) first."""
    run: list[int] = []
    index = len(texts) - 3
    while index >= 0 and len(run) < limit and is_part(texts[index]):
        run.append(index)
        index -= 1
    return run


def name_labels(source: bytes, name: Name) -> list[Label] | None:
    """Every label of `name` with where its text starts, following compression pointers."""
    if name.base < 0:
        labels, start = [], name.offset
        for text in source[name.offset:name.end].split(b"."):
            labels.append((start, text))
            start += len(text) + 1
        if len(labels) > 1 and not labels[-1][1]:
            labels.pop()  # a fully qualified name's trailing dot
        return labels
    labels, position, hops = [], name.offset, 0
    while len(labels) < MAX_LABELS and position < len(source):
        length = source[position]
        if length == 0:
            return labels
        if length >= 0xC0:
            if position + 1 >= len(source) or hops > MAX_LABELS:
                return None
            position = name.base + ((length & 0x3F) << 8 | source[position + 1])
            hops += 1
            continue
        if length > 63 or position + 1 + length > len(source):
            return None
        labels.append((position + 1, source[position + 1:position + 1 + length]))
        position += 1 + length
    return None
