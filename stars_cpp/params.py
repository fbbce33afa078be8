"""The keyword parameters of the public API, typed. Generated from the core's table
by ``make generated``: do not edit (tests/test_settings.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict


class GenerationParams(TypedDict, total=False):
    """Engine.generate, stream and submit's keywords."""

    mode: Literal['plain', 'best_of_n', 'stars', 'cards']
    """plain decoding, best_of_n (N whole responses, the best by reward), stars (segments
    accepted by reward) or cards (stars with segments that end where the policy's next-token
    entropy rises). Default stars; one of 'plain', 'best_of_n', 'stars', 'cards'."""
    segment_tokens: int
    """K: tokens per segment; a candidate ends early at end-of-generation or a stop string.
    Default 16; >= 1."""
    entropy_threshold: float
    """mode cards: a segment ends before a token whose distribution has more entropy than this,
    in nats (segment_tokens caps it). Default 3.0; > 0."""
    candidates: int
    """N: the widest a round may be: candidates sampled side by side (one batched decode per
    step). Default 4; >= 1."""
    max_attempts: int
    """M: attempts considered per segment before the best is taken (a fallback). Default 16; >=
    1."""
    threshold: float | Literal['auto']
    """tau*: a float in the reward's units, or auto: set from the prompt's own recent attempts.
    Default auto; a finite number or 'auto'."""
    target_attempts: float
    """with threshold auto: about how many attempts a segment takes, i.e. how selective STARS is
    (1 accepts everything). Default 4.0; >= 1."""
    alpha: float
    """where the threshold's ramp starts. Default 0.5; in [0, 1]."""
    beta: float | Literal['auto']
    """temperature of the soft rule, accept with probability exp(min(0, (R - tau) / beta)); auto
    is half the spread of the recent attempts' rewards. Default auto; > 0 or 'auto'."""
    acceptance: Literal['soft', 'hard']
    """soft (the rule above) or hard (accept when R >= tau). Default soft; one of 'soft',
    'hard'."""
    width: Literal['adaptive', 'fixed']
    """adaptive: each round as wide as pays off, up to N, from measured costs; fixed: always
    min(N, attempts left). The output is the same either way. Default adaptive; one of
    'adaptive', 'fixed'."""
    max_tokens: int
    """T: the response's length cap, never exceeded. Default 256; >= 1."""
    temperature: float
    """proposal sampling through llama.cpp's sampler chain (0 is greedy). Default 0.8; >= 0."""
    top_k: int
    """proposal sampling: the k likeliest tokens. Default 40; >= 0 (0 switches it off)."""
    top_p: float
    """proposal sampling: nucleus (1 switches it off). Default 1.0; in (0, 1]."""
    min_p: float
    """proposal sampling: tokens at least min_p times the likeliest's probability (0 switches it
    off). Default 0.0; in [0, 1]."""
    typical_p: float
    """proposal sampling: locally typical (1 switches it off; below 1 a request samples on the
    host). Default 1.0; in (0, 1]."""
    repeat_penalty: float
    """proposal sampling: llama.cpp's repetition penalty over the response's last 64 tokens (1
    switches it off; other values sample on the host). Default 1.0; > 0."""
    seed: int | None
    """the same seed, parameters and engine settings give the same tokens. Default random; an
    integer in [0, 2**64) or random."""
    logprobs: bool
    """return each emitted token's log-probability under the policy: the log-softmax of its raw
    logits, before temperature and truncation (the request samples on the host). Default false;
    true or false."""
    top_logprobs: int
    """the likeliest alternatives given with each token's log-probability (needs logprobs).
    Default 0; in [0, 20]."""
    stop: str | Sequence[str]
    """stop strings, matched on the whole response; the text ends before the first one (a flag
    per string on the command line). Default []; a list of non-empty strings."""

class EngineOptions(TypedDict, total=False):
    """Engine's keywords (beside model, reward, seed, verbose)."""

    n_ctx: int
    """isolated layout: the most KV cells one request's prompt plus max_tokens may take; shared:
    the cells all requests share. Default 4096; >= 16."""
    n_gpu_layers: int
    """layers of the policy (and of a GGUF reward) offloaded to a GPU. Default 0; >= -1 (-1:
    every layer)."""
    n_threads: int
    """threads of the policy's and the rewards' decodes, at most the machine's hardware threads.
    Default 0; in [0, hardware threads] (0: every hardware thread)."""
    kv_type: Literal['f16', 'q8_0', 'f32']
    """the KV cache type of the policy and of a judge or causal reward (q8_0: half of f16's
    memory, needs flash attention). Default f16; one of 'f16', 'q8_0', 'f32'."""
    sampling: Literal['auto', 'backend', 'host']
    """where candidates draw their tokens: backend (inside llama.cpp's graph), host, or auto
    (backend when the model is offloaded to a GPU). Default auto; one of 'auto', 'backend',
    'host'."""
    kv_layout: Literal['isolated', 'shared']
    """isolated: a KV stream per sequence, so that a text never depends on what else runs;
    shared: one pool of cells (less memory for long contexts). Default isolated; one of
    'isolated', 'shared'."""
    max_queue: int
    """requests waiting for admission before a submit is refused (QueueFullError; the server
    answers 503). Default 0; >= 0 (0: no limit)."""
    n_seq_max: int
    """sequence ids of the policy context from the start; it grows when the engine is idle and
    its queue needs more (a server expects concurrent requests). Default 0; >= 0 (0: sized to
    the first requests)."""


class GenerateOptions(GenerationParams, EngineOptions, total=False):
    """stars_cpp.generate's keywords: an Engine's options and the generation
    parameters."""
