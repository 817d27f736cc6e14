"""Crypto-PAn (Xu, Fan, Ammar, Moon) for 32-bit and 128-bit addresses, batched over many addresses.

Bit i of the output is bit i of the input XOR the top bit of AES(first i input bits followed by
the pad's bits from i on). The key is used as the reference implementation uses it: AES-128 with
its first 16 bytes, pad = AES(its last 16 bytes), so outputs match the published vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BITS = 128
_CHUNK = 512  # addresses per AES call: bounds the (chunk, bits, 128) bit array to 8 MiB


class CryptoPAn:
    """Encrypt and decrypt IPv4 (4-byte) and IPv6 (16-byte) addresses with one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("Crypto-PAn needs a 32-byte key")
        self._encryptor = Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor()
        pad = self._aes(key[16:])
        self._pad_bits = np.unpackbits(np.frombuffer(pad, dtype=np.uint8))
        self._masks = {bits: np.tri(bits, BLOCK_BITS, -1, dtype=bool) for bits in (32, 128)}

    def _aes(self, blocks: bytes) -> bytes:
        return self._encryptor.update(blocks)

    def _top_bits(self, blocks: np.ndarray) -> np.ndarray:
        """AES-encrypt rows of 128 bits each; return the top bit of each ciphertext."""
        packed = np.packbits(blocks, axis=-1)
        out = np.frombuffer(self._aes(packed.tobytes()), dtype=np.uint8)
        return out.reshape(*blocks.shape[:-1], 16)[..., 0] >> 7

    def encrypt(self, addresses: Sequence[bytes]) -> list[bytes]:
        """Encrypt addresses of one family (all 4 or all 16 bytes) in as few AES calls as possible."""
        result: list[bytes] = []
        for start in range(0, len(addresses), _CHUNK):
            result.extend(self._encrypt_chunk(addresses[start:start + _CHUNK]))
        return result

    def _encrypt_chunk(self, addresses: Sequence[bytes]) -> list[bytes]:
        if not addresses:
            return []
        size = len(addresses[0])
        bits = size * 8
        raw = np.frombuffer(b"".join(addresses), dtype=np.uint8).reshape(len(addresses), size)
        address_bits = np.unpackbits(raw, axis=1)
        padded = np.zeros((len(addresses), BLOCK_BITS), dtype=np.uint8)
        padded[:, :bits] = address_bits
        # Row p of each address's block set: its first p bits, then the pad's bits from p on.
        blocks = np.where(self._masks[bits][None, :, :], padded[:, None, :], self._pad_bits)
        flipped = address_bits ^ self._top_bits(blocks)
        out = np.packbits(flipped, axis=1)
        return [bytes(row) for row in out]

    def decrypt(self, addresses: Sequence[bytes], known_bits: int = 0) -> list[bytes]:
        """Invert `encrypt`; the first `known_bits` of each address are taken as already original."""
        if not addresses:
            return []
        size = len(addresses[0])
        bits = size * 8
        raw = np.frombuffer(b"".join(addresses), dtype=np.uint8).reshape(len(addresses), size)
        anonymized = np.unpackbits(raw, axis=1)
        original = np.zeros((len(addresses), BLOCK_BITS), dtype=np.uint8)
        original[:, :known_bits] = anonymized[:, :known_bits]
        for position in range(known_bits, bits):
            block = np.concatenate(
                [original[:, :position],
                 np.broadcast_to(self._pad_bits[position:], (len(addresses), BLOCK_BITS - position))],
                axis=1)
            original[:, position] = anonymized[:, position] ^ self._top_bits(block)
        out = np.packbits(original[:, :bits], axis=1)
        return [bytes(row) for row in out]
