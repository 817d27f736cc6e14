"""Keyed maps of header field values: a PRF of a field's context, and a one-to-one permutation
of a field's values that keeps each value within its class. Both are pure functions of the key
and the value, so their caches may be cleared (or whole tables built ahead) without changing
any output."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from anontrace.crypto.permutation import Permutation

CACHE_LIMIT = 1 << 16


class Prf:
    """HMAC-SHA256 of a message as a `bits`-bit integer, cached. The values are pure functions of
    the message, so clearing the full cache never changes the output."""

    __slots__ = ("_cache", "_key", "_mask")

    def __init__(self, key: bytes, bits: int) -> None:
        self._key, self._mask = key, (1 << bits) - 1
        self._cache: dict[bytes, int] = {}

    def __call__(self, message: bytes) -> int:
        value = self._cache.get(message)
        if value is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            value = int.from_bytes(hmac.digest(self._key, message, "sha256")[:8], "big") & self._mask
            self._cache[message] = value
        return value


class Permuted:
    """A keyed permutation of `width`-byte field values, cycle-walked so a value maps inside its own
    class (`same(value, candidate)`). Values not yet known are mapped together at `flush`."""

    def __init__(self, key: bytes, width: int, classes: npt.NDArray[np.int64] | None = None) -> None:
        self._permutation = Permutation(key, width * 8)
        self._width = width
        self._classes = classes  # a value maps within its class (16-bit fields): every value's class
        self._same: Callable[[int, int], bool] = (
            (lambda value, candidate: True) if classes is None
            else (lambda value, candidate: bool(classes[value] == classes[candidate])))
        self._table: dict[int, int] = {}
        self._pending: list[tuple[bytearray, int, int]] = []
        self._full: npt.NDArray[np.int64] | None = None
        self._encoded: list[bytes] | None = None  # `full`, as 2-byte strings

    def write(self, out: bytearray, offset: int, value: int) -> None:
        if self._full is not None:  # the column path built it: no walk left to do
            if self._encoded is None:
                self._encoded = [int(mapped).to_bytes(2, "big") for mapped in self._full]
            out[offset:offset + 2] = self._encoded[value]
            return
        mapped = self._table.get(value)
        if mapped is None:
            self._pending.append((out, offset, value))
        else:
            out[offset:offset + self._width] = mapped.to_bytes(self._width, "big")

    def flush(self) -> None:
        if not self._pending:
            return
        table = self.mapping({value for _, _, value in self._pending})
        for out, offset, value in self._pending:
            out[offset:offset + self._width] = table[value].to_bytes(self._width, "big")
        self._pending.clear()

    def full(self) -> npt.NDArray[np.int64]:
        """Every value's mapping, as an array indexed by value (16-bit fields only), built once
        with the same cycle walk as `mapping`, over arrays; a value of class -1 maps to itself."""
        if self._full is None:
            values = np.arange(1 << (8 * self._width), dtype=np.uint64)
            mapped = self._permutation.forward_array(values)
            walking = np.arange(len(values))
            if self._classes is not None:  # class -1 (a kept port) is never mapped: left as it is
                mapped[self._classes < 0] = values[self._classes < 0]
                walking = walking[self._classes >= 0]
            while self._classes is not None:
                walking = walking[self._classes[mapped[walking]] != self._classes[walking]]
                if not len(walking):
                    break
                mapped[walking] = self._permutation.forward_array(mapped[walking])
            self._full = mapped.astype(np.int64)
        return self._full

    def mapping(self, values: set[int]) -> dict[int, int]:
        """The table of mapped values, holding at least `values`."""
        table, same = self._table, self._same
        if len(table) >= CACHE_LIMIT and self._width > 2:  # 16-bit fields: the whole table fits
            table.clear()
        todo = sorted(values - table.keys())
        current = todo
        while todo:
            current = self._permutation.forward(current)
            walking = [(v, c) for v, c in zip(todo, current, strict=True) if not same(v, c)]
            table.update((v, c) for v, c in zip(todo, current, strict=True) if same(v, c))
            todo, current = [v for v, _ in walking], [c for _, c in walking]
        return table
