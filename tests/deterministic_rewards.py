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


class RecordingReward:
    """hash_reward that keeps the responses of every call, in order, in ``calls``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, prompts, responses):
        self.calls.append(list(responses))
        return hash_reward(prompts, responses)


def boom_reward(prompts, responses):
    """hash_reward, except that it raises for any prompt that mentions BOOM, and for a call that
    mixes a prompt that mentions SOLO with other prompts (as a reward that takes one prompt per
    call would). SOLO calls take 20 ms, so that concurrent SOLO requests share rounds."""
    if any("BOOM" in prompt for prompt in prompts):
        raise RuntimeError("the reward exploded on a BOOM prompt")
    if any("SOLO" in prompt for prompt in prompts):
        import time

        time.sleep(0.02)
        if len(set(prompts)) > 1:
            raise RuntimeError("the reward takes a SOLO prompt only on its own")
    return hash_reward(prompts, responses)


def slow_hash_reward(prompts, responses):
    """hash_reward, 20 ms per call: slow enough to kill a run between records."""
    import time

    time.sleep(0.02)
    return hash_reward(prompts, responses)
