"""Deterministic reward callables for tests."""

from __future__ import annotations

import hashlib


def hash_reward(prompts, responses):
    """A deterministic pseudo-random reward in [0, 1) of (prompt, response)."""
    out = []
    for prompt, response in zip(prompts, responses):
        digest = hashlib.blake2b(f"{prompt}\x00{response}".encode(), digest_size=8).digest()
        out.append(int.from_bytes(digest, "little") / 2**64)
    return out
