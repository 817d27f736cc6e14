"""Keyed field maps: values are pure functions of key and input (clearing the caches changes
nothing), permutations are one-to-one within each class, and the whole-table build walks the
same cycles as the value-by-value one."""

from __future__ import annotations

import hashlib
import hmac
import random

import numpy as np
import pytest

from anontrace.crypto import fields
from anontrace.crypto.fields import Permuted, Prf

KEY = bytes(range(16))


def test_the_prf_is_hmac_sha256_cut_to_its_bits_and_survives_cache_restarts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields, "CACHE_LIMIT", 2)
    prf = Prf(KEY, 20)
    messages = [bytes([i]) * 5 for i in range(10)] * 2
    expected = [int.from_bytes(hmac.new(KEY, m, hashlib.sha256).digest()[:8], "big") & 0xFFFFF
                for m in messages]
    assert [prf(m) for m in messages] == expected


def test_a_wide_permutation_is_the_same_after_its_cache_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    values = random.Random(3).sample(range(1 << 32), 50)
    reference = Permuted(KEY, 4).mapping(set(values))
    monkeypatch.setattr(fields, "CACHE_LIMIT", 4)
    small = Permuted(KEY, 4)
    for start in range(0, 50, 5):  # each call finds the cache over its limit and restarts it
        found = small.mapping(set(values[start:start + 5]))
        assert all(found[v] == reference[v] for v in values[start:start + 5])
    assert len(set(reference.values())) == 50


def test_the_whole_table_walks_the_same_cycles_and_keeps_classes() -> None:
    rng = random.Random(5)
    classes = np.array([rng.choice((-1, 0, 0, 1, 1, 2)) for _ in range(1 << 16)], np.int64)
    permuted = Permuted(KEY, 2, classes)
    asked = {v for v in range(1 << 16) if classes[v] >= 0}
    walked = Permuted(KEY, 2, classes).mapping(asked)
    full = permuted.full()
    assert all(int(full[v]) == walked[v] for v in asked)
    assert all(classes[int(full[v])] == classes[v] for v in asked)
    assert sorted(full[classes >= 0].tolist()) == sorted(asked)  # one-to-one within the classes
    assert all(int(full[v]) == v for v in range(1 << 16) if classes[v] < 0)
