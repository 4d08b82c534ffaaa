"""A/B assignment: sticky by a hashed request key, by weight otherwise; plus the shadow variant."""

from __future__ import annotations

import hashlib
import random

from forge.config import Variant


def _unit(key: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(variants: list[Variant], experiment_id: str, key: str | None, rng: random.Random | None = None) -> Variant:
    """The variant for one request: the same key always gets the same variant in one experiment."""
    if len(variants) == 1:
        return variants[0]
    total = sum(v.weight for v in variants)
    u = _unit(key, experiment_id) if key is not None else (rng or random).random()
    acc = 0.0
    for v in variants:
        acc += v.weight / total
        if u < acc:
            return v
    return variants[-1]
