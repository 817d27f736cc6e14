"""mac: map MAC addresses with a keyed one-to-one permutation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anontrace.crypto.macs import MacMapper
from anontrace.keys import subkey
from anontrace.packet.batch import Batch
from anontrace.transforms.base import Context, Transform, setting


@dataclass(frozen=True, slots=True)
class MacConfig:
    keep_oui: bool = setting(False, "Keep the first three bytes (the vendor's OUI) and map only "
                             "the rest. The vendor narrows down which device a host is.")
    keep_group: bool = setting(True, "Pass broadcast and multicast MACs through: they name "
                               "groups, not hosts (solicited-node 33:33:ff:… MACs still change, "
                               "they carry 24 bits of a host's IPv6 address).")


def mac_mapper(context: Context, config: MacConfig | None = None) -> MacMapper:
    """The run's MAC mapping, shared by every transform that meets a MAC; built from `config`,
    or the `mac` step's settings, by whichever transform asks first."""
    settings = config or context.config(Mac.name, MacConfig())
    return context.shared("mac", lambda: MacMapper(subkey(context.key, "mac"),
                                                    keep_oui=settings.keep_oui,
                                                    keep_group=settings.keep_group))


class Mac(Transform):
    """Map every MAC address the dissector finds (Ethernet source and destination, inner
    Ethernet of tunnels, ARP, neighbour-discovery link-layer options, DHCP client hardware
    address and client id, DHCPv6 DUIDs, 802.11 addresses) with a keyed permutation: one-to-one,
    the same in every file and run with the same key, reversible by the key holder. The
    unicast/multicast and universal/local bits are kept, so the output stays meaningful; IPv6
    interface ids built from a MAC (EUI-64) follow the same mapping (see `ip`)."""

    name = "mac"
    Config = MacConfig

    def __init__(self, config: MacConfig, context: Context) -> None:
        super().__init__(config, context)
        self.mapper = mac_mapper(context, config)

    @property
    def columnar(self) -> bool:
        return True

    def apply(self, batch: Batch) -> Batch:
        table = batch.table
        fields = None
        others = list(batch.others())
        seen = {frame.data[o:o + 6] for _, frame, layers, _ in others for o in layers.macs}
        if table is not None:  # every row's frame is Ethernet: destination and source first
            rows = np.arange(len(table))
            fields = table.values(rows, np.zeros(len(table), np.int64), 6, 2)
            seen.update(fields.distinct)
        self.mapper.map_many(seen)
        mapped = self.mapper.lookup()
        rewritten = 0
        if fields is not None:
            fields.put(mapped)
            rewritten += 2 * len(rows)
        for _, frame, layers, out in others:
            source, length = frame.data, len(out)
            for offset in layers.macs:
                if offset + 6 <= length:
                    out[offset:offset + 6] = mapped[source[offset:offset + 6]]
                    rewritten += 1
        batch.counts["MAC fields rewritten"] += rewritten
        return batch

    def stats(self) -> dict[str, int]:
        return {"distinct MACs mapped": self.mapper.distinct}
