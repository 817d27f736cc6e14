"""A keyed permutation of n-bit integers: a balanced Feistel network with AES as round function.

Used where a mapping must be one-to-one and reversible but not prefix-preserving: the host bits
of MAC addresses, the 24 host bits of solicited-node multicast addresses. Each round encrypts
all values of a call in one AES-ECB pass, so mapping a batch costs `ROUNDS` AES calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROUNDS = 10  # comfortably above the 4 Luby-Rackoff needs; the domains are small (24-46 bits)


class Permutation:
    """A keyed bijection on the integers 0 .. 2**bits - 1 (`bits` even, 2..64)."""

    def __init__(self, key: bytes, bits: int) -> None:
        if bits % 2 or not 2 <= bits <= 64:
            raise ValueError(f"a Feistel permutation needs an even width of 2..64 bits, not {bits}")
        self.bits = bits
        self._half = bits // 2
        self._mask = (1 << self._half) - 1
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())

    def _round(self, number: int, halves: Sequence[int]) -> list[int]:
        tag = bytes([number, self.bits])
        blocks = b"".join(tag + half.to_bytes(8, "big") + bytes(6) for half in halves)
        encryptor = self._cipher.encryptor()
        out = encryptor.update(blocks) + encryptor.finalize()
        mask = self._mask
        return [int.from_bytes(out[i:i + 8], "big") & mask for i in range(0, len(out), 16)]

    def forward(self, values: Sequence[int]) -> list[int]:
        half, mask = self._half, self._mask
        left = [v >> half for v in values]
        right = [v & mask for v in values]
        for number in range(ROUNDS):
            mixed = self._round(number, right)
            left, right = right, [a ^ b for a, b in zip(left, mixed, strict=True)]
        return [(a << half) | b for a, b in zip(left, right, strict=True)]

    def backward(self, values: Sequence[int]) -> list[int]:
        half, mask = self._half, self._mask
        left = [v >> half for v in values]
        right = [v & mask for v in values]
        for number in reversed(range(ROUNDS)):
            mixed = self._round(number, left)
            left, right = [a ^ b for a, b in zip(right, mixed, strict=True)], left
        return [(a << half) | b for a, b in zip(left, right, strict=True)]
