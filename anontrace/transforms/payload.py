"""payload: keep at most N bytes after the last header understood."""

from __future__ import annotations

from dataclasses import dataclass

from anontrace.packet.batch import Batch
from anontrace.transforms.base import Transform, setting


@dataclass(frozen=True, slots=True)
class PayloadConfig:
    keep: int = setting(0, "Bytes of payload kept after the last header the dissector "
                        "understood; 0 keeps headers only.", minimum=0)


class Payload(Transform):
    """Cut application payload to at most `keep` bytes, like a capture snap length: the frame's
    original length and the IP and UDP length fields stay as they were, so packet sizes remain
    analysable. Payloads are cut to 0 bytes when no rule keeps any."""

    name = "payload"
    Config = PayloadConfig

    def apply(self, batch: Batch) -> Batch:
        keep = self.config.keep
        cut = 0
        for layers, out in zip(batch.layers, batch.data, strict=True):
            limit = layers.payload + keep
            if len(out) > limit:
                del out[limit:]
                cut += 1
        batch.counts["payloads cut"] += cut
        return batch
