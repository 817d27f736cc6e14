"""Incremental Internet-checksum updates (RFC 1624, eqn. 3) from the bytes that changed.

Only the difference between the original and the rewritten bytes is folded into the checksum
found in the frame, so this works on frames cut by a snap length (the uncaptured bytes did not
change), and a checksum that was wrong in the input stays wrong by the same amount.
"""

from __future__ import annotations

from anontrace.packet.layers import Checksum


def ones_sum(chunk: bytes | bytearray) -> int:
    """One's-complement sum of big-endian 16-bit words (odd tail padded), in 0..0xFFFE."""
    if len(chunk) % 2:
        chunk = bytes(chunk) + b"\0"
    return int.from_bytes(chunk, "big") % 0xFFFF


def update(checksum: int, old_sum: int, new_sum: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')."""
    total = (~checksum & 0xFFFF) + (~old_sum & 0xFFFF) + new_sum
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_checksums(original: bytes, out: bytearray, checksums: tuple[Checksum, ...]) -> None:
    """Fold every change between `original` and `out` into the checksums that cover it.

    Inner checksums come later in `checksums` and are fixed first, so an outer checksum that
    covers them sees their new value.
    """
    length = len(out)
    for scope in reversed(checksums):
        field = scope.field
        if field + 2 > length:
            continue
        start, end = scope.start, min(scope.end, length)
        before, after = original[start:end], out[start:end]
        if (end - start) & 1:
            before, after = before + b"\0", after + b"\0"
        if scope.pseudo:
            size = scope.address_size
            for offset in scope.pseudo:
                before += original[offset:offset + size]
                after += out[offset:offset + size]
        if before == after:
            continue
        current = (out[field] << 8) | out[field + 1]
        if scope.zero_is_none and current == 0:
            continue
        value = update(current, int.from_bytes(before, "big") % 0xFFFF, int.from_bytes(after, "big") % 0xFFFF)
        if scope.zero_is_none and value == 0:
            value = 0xFFFF
        out[field], out[field + 1] = value >> 8, value & 0xFF
