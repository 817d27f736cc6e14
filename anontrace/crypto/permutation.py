"""A keyed permutation of n-bit integers: a balanced Feistel network with AES as round function.

Used where a mapping must be one-to-one and reversible but not prefix-preserving: the host bits
of MAC addresses, the 24 host bits of solicited-node multicast addresses. Each round encrypts
all values of a call in one AES-ECB pass (the blocks built and read back with numpy), so mapping
a batch costs `ROUNDS` AES calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

Halves = npt.NDArray[np.uint64]
ROUNDS = 10  # comfortably above the 4 Luby-Rackoff needs; the domains are small (24-46 bits)


class Permutation:
    """A keyed bijection on the integers 0 .. 2**bits - 1 (`bits` even, 2..64)."""

    def __init__(self, key: bytes, bits: int) -> None:
        if bits % 2 or not 2 <= bits <= 64:
            raise ValueError(f"a Feistel permutation needs an even width of 2..64 bits, not {bits}")
        self.bits = bits
        self._half = bits // 2
        self._mask = np.uint64((1 << self._half) - 1)
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())

    def _round(self, number: int, halves: Halves) -> Halves:
        blocks = np.zeros((len(halves), 16), np.uint8)
        blocks[:, 0], blocks[:, 1] = number, self.bits
        blocks[:, 2:10] = halves.astype(">u8").view(np.uint8).reshape(-1, 8)
        encryptor = self._cipher.encryptor()
        out = np.frombuffer(encryptor.update(blocks.tobytes()) + encryptor.finalize(), np.uint8)
        mixed: Halves = out.reshape(-1, 16)[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        return mixed & self._mask

    def forward(self, values: Sequence[int]) -> list[int]:
        joined: list[int] = self.forward_array(np.array(values, np.uint64)).tolist()
        return joined

    def forward_array(self, values: Halves) -> Halves:
        """`forward` of an array of values."""
        left, right = self._split(values)
        for number in range(ROUNDS):
            left, right = right, left ^ self._round(number, right)
        joined: Halves = (left << np.uint64(self._half)) | right
        return joined

    def backward(self, values: Sequence[int]) -> list[int]:
        left, right = self._split(values)
        for number in reversed(range(ROUNDS)):
            left, right = right ^ self._round(number, left), left
        return self._join(left, right)

    def _split(self, values: Sequence[int] | Halves) -> tuple[Halves, Halves]:
        array = np.asarray(values, np.uint64).reshape(-1)
        return array >> np.uint64(self._half), array & self._mask

    def _join(self, left: Halves, right: Halves) -> list[int]:
        joined: list[int] = ((left << np.uint64(self._half)) | right).tolist()
        return joined
