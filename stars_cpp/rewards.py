"""Rewards for the engine: batched callables ``fn(prompts, responses) -> list[float]``."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Callable

_WORD = re.compile(r"[A-Za-z']+")


def lexical_diversity(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """A dependency-free demo reward: distinct words per word, times a log-length bonus.

    It favours responses that keep saying new things over ones that repeat themselves or stop
    short. It knows nothing about helpfulness; use a GGUF reward model for real alignment.
    """
    scores = []
    for response in responses:
        words = [w.lower() for w in _WORD.findall(response)]
        if not words:
            scores.append(0.0)
            continue
        distinct = len(set(words)) / len(words)
        scores.append(distinct * (1.0 + 0.1 * len(words) ** 0.5))
    return scores


def load_python_reward(spec: str) -> Callable[[list, list], Sequence[float]]:
    """Resolves ``MODULE:FUNCTION`` to a callable, with errors that name the part that failed."""
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise ValueError(f"python reward must be MODULE:FUNCTION, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import reward module {module_name!r}: {error}") from None
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise ValueError(f"{module_name}.{function_name} is not a callable in {module_name!r}")
    return fn
