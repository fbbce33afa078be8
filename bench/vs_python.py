"""Benchmark: stars_cpp against the same STARS loop written in pure Python.

Two comparisons (``--task lexical|judge|all``, default all).

``lexical``: three implementations of one algorithm (``acceptance="hard"``: a candidate segment
is kept once its reward reaches the threshold, else the best of ``max_attempts`` is; a fixed
float threshold) run on the same model, reward, parameters and prompts:

- ``stars_cpp``: the package, one ``Engine.generate`` call per prompt (and, as an extra row,
  one call for the whole batch of prompts, which runs them in lockstep).
- ``ctypes``: a BASELINE, not part of the package. llama-cpp-python's low-level bindings,
  laid out as stars_cpp lays out its decoding: one unified KV cache, the trunk forked into N
  candidate sequences with ``llama_memory_seq_cp``, one ``llama_decode`` per step for all
  candidates, the chosen candidate adopted as the trunk. The best a Python user could write.
- ``naive``: a BASELINE, not part of the package. llama-cpp-python's high-level
  ``Llama.create_completion``, one candidate segment at a time from prompt + accepted text,
  relying on llama-cpp-python's own KV prefix reuse. What a typical Python user would write.

Its reward is ``stars_cpp.rewards.lexical_diversity``, a cheap Python function, so that the
comparison is about the decoding machinery. Sampling differs between implementations, so
accepted token counts differ too: compare time per accepted token and candidate tokens/s.

``judge``: the reward is ``JudgeReward("policy")``, SmolLM2 asked whether its own response is
helpful (logit(yes) - logit(no)), with soft acceptance. The baseline is ``naive`` with a judge
over the high-level API too: a second ``Llama`` on the same GGUF that keeps its evaluated tokens
and evaluates only what follows the longest common prefix with the next input. stars_cpp runs
with N=4 (adaptive round width) and N=1, per prompt and as one batched call. Compare time per
accepted token and policy tokens sampled per accepted token.

    python bench/vs_python.py [--task all|lexical|judge] [--quick] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import llama_cpp
import numpy as np

import stars_cpp
from stars_cpp.models import smollm2_path
from stars_cpp.rewards import lexical_diversity

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

RESULTS = _common.RESULTS

PROMPTS = [
    "Give me three tips for staying focused while studying.",
    "Explain how a rainbow forms, in simple words.",
    "Write a short story about a lighthouse keeper and a storm.",
    "What are the benefits of learning a second language?",
]

# Parameters shared by all three implementations. Two fixed thresholds: with the lenient one
# most segments pass on their first candidate (the batched implementations then waste N-1
# candidates a round); with the strict one several attempts are the rule.
# Each (method, prompt) reruns with the same seed (same tokens) and the fastest run counts:
# on a busy 2-core machine llama.cpp's OpenMP threads stall when descheduled, and one run in
# a few took 10-30x longer. A method is rerun until its two fastest runs agree within
# SETTLE_TOLERANCE, at least `repeats` and at most `max_repeats` times.
FULL = dict(prompts=4, max_tokens=96, thresholds=[1.2, 1.6], repeats=2, max_repeats=4)
QUICK = dict(prompts=1, max_tokens=32, thresholds=[1.2], repeats=2, max_repeats=2)
SETTLE_TOLERANCE = 0.10
PARAMS: dict[str, Any] = dict(
    segment_tokens=16, candidates=4, max_attempts=8, alpha=0.5, acceptance="hard",
    temperature=0.8, top_k=40, top_p=1.0, min_p=0.0,
)
# The judge comparison: SmolLM2 judging its own helpfulness with the question asked first (the
# default layout) scores these prompts' responses roughly 0.8 to 2.2, and at tau* =
# JUDGE_THRESHOLD with soft acceptance (beta 0.7) segments need a few attempts, so that an N=4
# round has rejections to absorb. (The question_last layout scores about -1.5 to 0: a float
# threshold is tied to one reward's units, which is what threshold="auto" removes.)
# Settling as for the lexical task, with fewer repeats: a judge run costs more.
JUDGE_THRESHOLD = 1.6
JUDGE_FULL = dict(prompts=3, max_tokens=96, repeats=2, max_repeats=3)
JUDGE_QUICK = dict(prompts=1, max_tokens=32, repeats=2, max_repeats=2)
JUDGE_PARAMS: dict[str, Any] = {**PARAMS, "acceptance": "soft", "beta": 0.7}
JUDGE_CHECK_ROWS = 4  # rows on which the baseline's judge must match stars_cpp's
JUDGE_CHECK_TOLERANCE = 0.1
N_CTX = 2048
N_THREADS = os.cpu_count() or 1
SEED = 1234

Reward = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


@dataclass
class PromptStats:
    """What one implementation did for one prompt; counts as stars_cpp's Stats defines them."""

    wall_s: float = 0.0
    wall_s_runs: list[float] = field(default_factory=list)  # every repeat; wall_s is the least
    repeats_identical: bool = True  # the same seed gave the same text in every repeat
    settled: bool = True  # two fastest repeats agreed within SETTLE_TOLERANCE
    tokens_accepted: int = 0
    candidate_tokens: int = 0  # policy tokens sampled, end-of-generation samples included
    segments: int = 0
    attempts: int = 0
    fallbacks: int = 0
    rounds: int = 0  # rounds of candidates; the naive baseline's have one candidate each
    mean_round_width: float = 0.0  # candidates per round
    text: str = ""


@dataclass
class Candidate:
    """One candidate segment of the ctypes baseline, on its own KV sequence."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    ends: bool = False  # sampled an end-of-generation token


# ----------------------------------------------------------------------------------------------
# The algorithm's two pieces, shared by both Python baselines (stars_cpp has them in C++).


def threshold_schedule(reward_empty: float, tau_star: float, alpha: float,
                       max_tokens: int) -> Callable[[int], float]:
    """tau(t) = min(tau*, r0 + t (tau* - r0) / T), r0 = (1 - alpha) r(x, empty) + alpha tau*."""
    r0 = (1.0 - alpha) * reward_empty + alpha * tau_star
    return lambda t: min(tau_star, r0 + t * (tau_star - r0) / max_tokens)


def hard_rule(reward: float, tau: float) -> bool:
    return reward >= tau


def soft_rule(beta: float, rng: random.Random) -> Callable[[float, float], bool]:
    """Accepts with probability exp(min(0, (R - tau) / beta)), one uniform draw per attempt."""
    return lambda reward, tau: rng.random() < math.exp(min(0.0, (reward - tau) / beta))


class SegmentSearch:
    """Considers candidates in index order; the best after M attempts."""

    def __init__(self, max_attempts: int,
                 accept: Callable[[float, float], bool] = hard_rule) -> None:
        self.max_attempts = max_attempts
        self.accept = accept
        self.attempts = 0
        self.best: Any = None
        self.best_reward = float("-inf")

    def round_size(self, candidates: int) -> int:
        return min(candidates, self.max_attempts - self.attempts)

    def consider(self, items: Sequence[Any], rewards: Sequence[float],
                 thresholds: Sequence[float]) -> tuple[Any, bool]:
        """Returns (chosen, fallback); chosen is None while the search goes on."""
        for item, reward, tau in zip(items, rewards, thresholds):
            self.attempts += 1
            # Strictly greater keeps the earliest of equal rewards, as stars_cpp does.
            if reward > self.best_reward:
                self.best, self.best_reward = item, reward
            if self.accept(reward, tau):
                return item, False
        if self.attempts >= self.max_attempts:
            return self.best, True
        return None, False


def derive_seed(*parts: int) -> int:
    """A 32-bit seed per (prompt, segment, slot); any fixed mix will do for a benchmark."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ part) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return (h >> 32) % 0xFFFFFFFF  # never LLAMA_DEFAULT_SEED (random)


# ----------------------------------------------------------------------------------------------
# Baseline (a), not part of the package: the high-level API, one candidate at a time.


def run_naive(llm: llama_cpp.Llama, rendered: str, user_text: str, reward: Reward, tau: float,
              p: dict[str, Any], seed: int) -> PromptStats:
    """STARS over ``create_completion``: each candidate is a fresh completion of prompt +
    accepted text, and the reward sees the full response text every time. Soft acceptance
    draws from a Python RNG seeded with ``seed``."""
    stats = PromptStats()
    llm.reset()  # no prefix reuse from an earlier prompt or repeat: every method starts cold
    start = time.perf_counter()
    k, m, t_max = p["segment_tokens"], p["max_attempts"], p["max_tokens"]
    accept = (soft_rule(p["beta"], random.Random(seed)) if p["acceptance"] == "soft"
              else hard_rule)
    tau_at = threshold_schedule(reward([user_text], [""])[0], tau, p["alpha"], t_max)
    accepted, n_accepted, finished = "", 0, False
    while n_accepted < t_max and not finished:
        search = SegmentSearch(m, accept)
        chosen = None
        while chosen is None:
            out = llm.create_completion(
                rendered + accepted, max_tokens=min(k, t_max - n_accepted),
                temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"],
                min_p=p["min_p"], repeat_penalty=1.0,
                seed=derive_seed(seed, stats.segments, search.attempts))
            choice = out["choices"][0]
            n = out["usage"]["completion_tokens"]
            cand = (choice["text"], n, choice["finish_reason"] == "stop")
            stats.candidate_tokens += n + cand[2]  # the end-of-generation sample counts too
            score = reward([user_text], [accepted + cand[0]])[0]
            chosen, fallback = search.consider([cand], [score], [tau_at(n_accepted + n)])
        text, n, finished = chosen
        accepted += text
        n_accepted += n
        stats.segments += 1
        stats.attempts += search.attempts
        stats.fallbacks += fallback
    stats.wall_s = time.perf_counter() - start
    stats.tokens_accepted, stats.text = n_accepted, accepted
    stats.rounds, stats.mean_round_width = stats.attempts, 1.0
    return stats


class HighLevelJudge:
    """A BASELINE judge, not part of the package: stars_cpp's judge written over the high-level
    ``Llama`` API, prefix-cached by hand.

    Its input token ids come from stars_cpp's own judge (``input_tokens``), so that both score
    the same tokens whatever the judge's layout; the model runs in llama-cpp-python.
    """

    def __init__(self, llm: llama_cpp.Llama, native: Any, yes: str, no: str) -> None:
        self.llm, self.native = llm, native
        self.yes, self.no = (self._single_token(text) for text in (yes, no))

    def _single_token(self, text: str) -> int:
        # As stars_cpp tokenizes yes/no: no BOS, no special tokens; it must be one token.
        tokens = self.llm.tokenize(text.encode(), add_bos=False, special=False)
        if len(tokens) != 1:
            raise RuntimeError(f"judge answer {text!r} is {len(tokens)} tokens, not one")
        return tokens[0]

    def reset(self) -> None:
        self.llm.reset()

    def score(self, prompt: str, response: str) -> float:
        tokens = self.native.input_tokens(prompt, response)
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens]
        head = np.asarray(tokens[: len(cached)], dtype=cached.dtype)
        differ = np.flatnonzero(cached[: len(head)] != head)
        common = int(differ[0]) if len(differ) else len(head)
        # Evaluate at least the last token: the logits read below are the last eval's.
        llm.n_tokens = min(common, len(tokens) - 1)
        llm.eval(tokens[llm.n_tokens:])
        # Llama.eval keeps no scores without logits_all: read the context's last output row.
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        return float(logits[self.yes]) - float(logits[self.no])

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [self.score(p, r) for p, r in zip(prompts, responses)]


# ----------------------------------------------------------------------------------------------
# Baseline (b), not part of the package: the low-level bindings, N candidates per batch.


def _quiet_logs() -> None:
    # llama.cpp logs through one global callback; keep a reference or ctypes frees it.
    global _LOG_CALLBACK
    _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, data: None)
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p())


_LOG_CALLBACK = None


class CtypesStars:
    """STARS over llama.cpp through ctypes: one unified KV cache, N candidates per decode."""

    def __init__(self, model_path: str, n_ctx: int, n_threads: int, candidates: int) -> None:
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama_model_load_from_file failed for {model_path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = n_ctx
        cparams.n_ubatch = min(512, n_ctx)
        # Trunk + this round's candidates + the best of an earlier round (for the fallback).
        cparams.n_seq_max = candidates + 2
        cparams.n_outputs_max = max(n_ctx, candidates + 2)
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.kv_unified = True  # forks share the trunk's cells instead of copying them
        cparams.swa_full = True
        cparams.no_perf = True
        # Same as stars_cpp on the CPU: flash attention off.
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        if not self.mem:
            raise RuntimeError("llama_get_memory returned NULL")
        self.n_seq = candidates + 2
        self.batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
        self.capacity = n_ctx
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        # Scratch for sampling from saved logits, laid out as llama_token_data.
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._data = np.zeros(self.n_vocab, dtype=np.dtype(
            [("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True))

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)

    # -- small checked wrappers ------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """As stars_cpp tokenizes a rendered chat: special tokens parsed, BOS as the model says."""
        data = text.encode()
        buf = (llama_cpp.llama_token * (len(data) + 8))()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, len(buf), True, True)
        if n < 0:
            raise RuntimeError(f"llama_tokenize failed ({n})")
        tokens = list(buf[:n])
        bos = llama_cpp.llama_vocab_bos(self.vocab)
        return tokens[1:] if len(tokens) >= 2 and tokens[0] == tokens[1] == bos else tokens

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf,
                                               len(self._piece_buf), 0, False)
            if n < 0:
                raise RuntimeError(f"llama_token_to_piece failed for token {token} ({n})")
            cached = self._pieces[token] = self._piece_buf.raw[:n]
        return cached

    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) rows."""
        if len(entries) > self.capacity:
            raise RuntimeError(f"batch of {len(entries)} exceeds capacity {self.capacity}")
        b = self.batch
        _common.fill_batch(b, entries)
        code = llama_cpp.llama_decode(self.ctx, b)
        if code != 0:
            reason = {1: "no KV slot", 2: "aborted", -1: "invalid batch"}.get(code, "error")
            raise RuntimeError(f"llama_decode failed: {code} ({reason}) on {len(entries)} tokens")

    def logits(self, row: int) -> np.ndarray:
        """A copy of one output row, which the next llama_decode would overwrite."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, row)
        if not ptr:
            raise RuntimeError(f"llama_get_logits_ith returned NULL for row {row}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def sample_saved(self, chain: llama_cpp.llama_sampler_p, logits: np.ndarray) -> int:
        """llama_sampler_sample, but from saved logits (what stars_cpp's SampleFromLogits does)."""
        data = self._data
        data["id"], data["logit"], data["p"] = self._ids, logits, 0.0
        array = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=self.n_vocab,
            selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(array))
        if not 0 <= array.selected < array.size:
            raise RuntimeError(f"sampler selected no token ({array.selected})")
        token = array.data[array.selected].id
        llama_cpp.llama_sampler_accept(chain, token)
        return token

    def release(self, seq: int) -> None:
        if not llama_cpp.llama_memory_seq_rm(self.mem, seq, -1, -1):
            raise RuntimeError(f"llama_memory_seq_rm failed for sequence {seq}")

    def sampler(self, p: dict[str, Any], seed: int) -> llama_cpp.llama_sampler_p:
        """The chain stars_cpp builds: top-k, top-p, min-p, temperature, dist."""
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(params)
        if not chain:
            raise RuntimeError("llama_sampler_chain_init failed")
        parts = []
        if p["top_k"] > 0:
            parts.append(llama_cpp.llama_sampler_init_top_k(p["top_k"]))
        if p["top_p"] < 1.0:
            parts.append(llama_cpp.llama_sampler_init_top_p(p["top_p"], 1))
        if p["min_p"] > 0.0:
            parts.append(llama_cpp.llama_sampler_init_min_p(p["min_p"], 1))
        parts.append(llama_cpp.llama_sampler_init_temp(p["temperature"]))
        parts.append(llama_cpp.llama_sampler_init_dist(seed))
        for part in parts:
            if not part:
                raise RuntimeError("llama_sampler_init_* failed")
            llama_cpp.llama_sampler_chain_add(chain, part)  # the chain owns it now
        return chain

    # -- the loop ------------------------------------------------------------------------

    def run(self, prompt_tokens: list[int], user_text: str, reward: Reward, tau: float,
            p: dict[str, Any], seed: int) -> PromptStats:
        stats = PromptStats()
        start = time.perf_counter()
        k, n_cand, m, t_max = (p["segment_tokens"], p["candidates"], p["max_attempts"],
                               p["max_tokens"])
        llama_cpp.llama_memory_clear(self.mem, True)
        # One chain per slot for the whole prompt: the dist RNG moves on, nothing else has state.
        samplers = [self.sampler(p, derive_seed(seed, slot)) for slot in range(n_cand)]
        try:
            tau_at = threshold_schedule(reward([user_text], [""])[0], tau, p["alpha"], t_max)
            trunk, free = 0, list(range(1, self.n_seq))
            n_past, pending = 0, list(prompt_tokens)
            accepted, n_accepted, finished = b"", 0, False
            while not finished:
                # Step 0: the trunk's undecoded tokens (the prompt, or last segment's last
                # token), so that every first candidate token comes from these logits.
                self.decode([(tok, n_past + i, trunk, i == len(pending) - 1)
                             for i, tok in enumerate(pending)])
                # Saved: a rejected round's decodes overwrite it, and the next round needs it.
                trunk_logits = self.logits(len(pending) - 1)
                n_past += len(pending)
                search = SegmentSearch(m)
                held = None  # an earlier round's best, its sequence kept for the fallback
                chosen = None
                while chosen is None:
                    cap = min(k, t_max - n_accepted)
                    cands = [Candidate(seq=free.pop()) for _ in range(search.round_size(n_cand))]
                    stats.rounds += 1
                    stats.mean_round_width += len(cands)  # a sum until the end
                    for cand in cands:
                        llama_cpp.llama_memory_seq_cp(self.mem, trunk, cand.seq, -1, -1)
                    live = list(range(len(cands)))
                    rows: dict[int, int] = {}  # slot -> output row of the last decode
                    step = 0
                    while live:
                        still = []
                        for slot in live:
                            if step == 0:  # every first token comes from the trunk's logits
                                tok = self.sample_saved(samplers[slot], trunk_logits)
                            else:
                                tok = llama_cpp.llama_sampler_sample(samplers[slot], self.ctx,
                                                                     rows[slot])
                            stats.candidate_tokens += 1
                            cand = cands[slot]
                            if llama_cpp.llama_vocab_is_eog(self.vocab, tok):
                                cand.ends = True
                                continue
                            cand.tokens.append(tok)
                            if len(cand.tokens) < cap:
                                still.append(slot)
                        live = still
                        if not live:
                            break
                        # Steps 1..K-1: one decode for every live candidate; a candidate's
                        # last token is decoded only if it is accepted (next round's step 0).
                        self.decode([(cands[s].tokens[-1], n_past + step, cands[s].seq, True)
                                     for s in live])
                        rows = {s: i for i, s in enumerate(live)}
                        step += 1
                    for cand in cands:
                        cand.text = b"".join(self.piece(t) for t in cand.tokens)
                    # One reward call per round, on the full response text of each candidate.
                    scores = reward([user_text] * len(cands),
                                    [(accepted + c.text).decode("utf-8", "replace")
                                     for c in cands])
                    chosen, fallback = search.consider(
                        cands, scores, [tau_at(n_accepted + len(c.tokens)) for c in cands])
                    keep = chosen if chosen is not None else search.best
                    for cand in cands + ([held] if held is not None else []):
                        if cand is not keep:
                            self.release(cand.seq)
                            free.append(cand.seq)
                    held = keep
                # Adopt the chosen sequence as the trunk; the old trunk's cells live on in it.
                self.release(trunk)
                free.append(trunk)
                trunk = chosen.seq
                n_tokens = len(chosen.tokens)
                # It decoded all its tokens but the last, unless it ended at EOG.
                n_decoded = n_tokens if chosen.ends else max(0, n_tokens - 1)
                pending = chosen.tokens[n_decoded:]
                n_past += n_decoded
                accepted += chosen.text
                n_accepted += n_tokens
                stats.segments += 1
                stats.attempts += search.attempts
                stats.fallbacks += fallback
                finished = chosen.ends or n_accepted >= t_max
                if not finished and not pending:
                    raise RuntimeError("internal: nothing to decode for the next round")
        finally:
            for chain in samplers:
                llama_cpp.llama_sampler_free(chain)
        stats.wall_s = time.perf_counter() - start
        stats.tokens_accepted = n_accepted
        stats.mean_round_width /= max(stats.rounds, 1)
        stats.text = accepted.decode("utf-8", "replace")
        return stats


# ----------------------------------------------------------------------------------------------
# The package itself.


def run_stars_cpp(engine: stars_cpp.Engine, user_texts: list[str], tau: float,
                  p: dict[str, Any], seed: int) -> list[PromptStats]:
    """One Engine.generate call for the given prompts (one prompt, or a lockstep batch)."""
    messages = [[{"role": "user", "content": text}] for text in user_texts]
    start = time.perf_counter()
    results = engine.generate(messages, threshold=tau, seed=seed, **p)
    wall = time.perf_counter() - start
    out = []
    for result in results:
        s = result.stats
        out.append(PromptStats(
            wall_s=wall / len(results), tokens_accepted=s.tokens_accepted,
            candidate_tokens=s.policy_tokens_sampled, segments=len(result.segments),
            attempts=sum(seg.attempts for seg in result.segments),
            fallbacks=sum(seg.fallback for seg in result.segments), rounds=s.rounds,
            mean_round_width=s.mean_round_width, text=result.text))
    return out


# ----------------------------------------------------------------------------------------------
# Driver, records and report.


def summarize(runs: list[PromptStats]) -> dict[str, Any]:
    wall = sum(r.wall_s for r in runs)
    accepted = sum(r.tokens_accepted for r in runs)
    sampled = sum(r.candidate_tokens for r in runs)
    segments = sum(r.segments for r in runs)
    rounds = sum(r.rounds for r in runs)
    return {
        "wall_s": wall,
        "tokens_accepted": accepted,
        "ms_per_accepted_token": 1000.0 * wall / max(accepted, 1),
        "candidate_tokens": sampled,
        "candidate_tokens_per_s": sampled / wall if wall > 0 else 0.0,
        "sampled_per_accepted_token": sampled / max(accepted, 1),
        "rounds": rounds,
        "mean_round_width": sum(r.rounds * r.mean_round_width for r in runs) / max(rounds, 1),
        "segments": segments,
        "attempts_per_segment": sum(r.attempts for r in runs) / max(segments, 1),
        "fallbacks": sum(r.fallbacks for r in runs),
        "repeats_identical": all(r.repeats_identical for r in runs),
        "settled": all(r.settled for r in runs),
        "prompts": [asdict(r) for r in runs],
    }


def machine_record() -> dict[str, Any]:
    # n_gpu_layers=0 everywhere, whatever libllama was built with.
    return {**_common.machine(), "backend": "cpu", "loadavg_at_start": list(os.getloadavg())}


def settled(walls: list[float], config: dict[str, Any]) -> bool:
    if len(walls) < max(2, config["repeats"]):
        return False
    first, second = sorted(walls)[:2]
    return second <= first * (1.0 + SETTLE_TOLERANCE)


def fastest(calls: dict[str, Callable[[], list[PromptStats]]], label: str,
            config: dict[str, Any]) -> dict[str, list[PromptStats]]:
    """Reruns every call, interleaved in a rotating order so that a noisy stretch hits all
    alike, until each is settled; returns each call's fastest run."""
    names = list(calls)
    tries: dict[str, list[list[PromptStats]]] = {name: [] for name in names}
    for rep in range(config["max_repeats"]):
        for j in range(len(names)):
            name = names[(rep + j) % len(names)]
            if not settled([sum(r.wall_s for r in run) for run in tries[name]], config):
                tries[name].append(calls[name]())
                wall = sum(r.wall_s for r in tries[name][-1])
                print(f"  {label} {name}: {wall:.2f} s", file=sys.stderr, flush=True)
    best = {}
    for name, runs in tries.items():
        walls = [sum(r.wall_s for r in run) for run in runs]
        best[name] = runs[walls.index(min(walls))]
        for r in best[name]:
            r.wall_s_runs = walls
            r.repeats_identical = len({tuple(x.text for x in run) for run in runs}) == 1
            r.settled = settled(walls, config)
    return best


def benchmark(config: dict[str, Any]) -> dict[str, Any]:
    machine = machine_record()
    _quiet_logs()
    p = {**PARAMS, "max_tokens": config["max_tokens"]}
    path = str(smollm2_path())
    user_texts = PROMPTS[: config["prompts"]]
    reward = lexical_diversity

    engine = stars_cpp.Engine(path, reward, n_ctx=N_CTX, n_threads=N_THREADS)
    _quiet_logs()  # stars_cpp's import of llama_cpp may have installed its own logger
    llm = llama_cpp.Llama(path, n_ctx=N_CTX, n_threads=N_THREADS, n_threads_batch=N_THREADS,
                          seed=SEED, verbose=False)
    low = CtypesStars(path, N_CTX, N_THREADS, p["candidates"])
    rendered = [engine.model.apply_chat_template([("user", t)]) for t in user_texts]
    prompt_tokens = [low.tokenize(r) for r in rendered]
    n_llm = [len(llm.tokenize(r.encode(), special=True)) for r in rendered]
    if n_llm != [len(t) for t in prompt_tokens]:
        raise RuntimeError(f"prompt token counts differ: {n_llm} vs {prompt_tokens}")

    # One untimed segment each: first-decode allocations and page faults out of the way.
    warm = {**p, "max_tokens": p["segment_tokens"]}
    run_stars_cpp(engine, user_texts[:1], 0.0, warm, SEED)
    low.run(prompt_tokens[0], user_texts[0], reward, 0.0, warm, SEED)
    run_naive(llm, rendered[0], user_texts[0], reward, 0.0, warm, SEED)

    runs = []
    for tau in config["thresholds"]:
        per: dict[str, list[PromptStats]] = {"stars_cpp": [], "ctypes": [], "naive": []}
        for i in range(len(user_texts)):
            calls: dict[str, Callable[[], list[PromptStats]]] = {
                "stars_cpp": lambda i=i, tau=tau: run_stars_cpp(
                    engine, [user_texts[i]], tau, p, SEED + i),
                "ctypes": lambda i=i, tau=tau: [low.run(
                    prompt_tokens[i], user_texts[i], reward, tau, p, SEED + i)],
                "naive": lambda i=i, tau=tau: [run_naive(
                    llm, rendered[i], user_texts[i], reward, tau, p, SEED + i)],
            }
            for name, best in fastest(calls, f"tau*={tau} prompt {i}", config).items():
                per[name] += best
        if len(user_texts) > 1:
            # Extra row: the engine's lockstep batch, which neither baseline attempts.
            batch_name = f"stars_cpp_batch{len(user_texts)}"
            run_stars_cpp(engine, user_texts, 0.0, warm, SEED)  # warm the larger context
            calls = {batch_name: lambda tau=tau: run_stars_cpp(engine, user_texts, tau, p, SEED)}
            per.update(fastest(calls, f"tau*={tau}", config))
        summary = {name: summarize(stats) for name, stats in per.items()}
        ref = summary["stars_cpp"]
        ratios = {
            name: {
                "speedup_time_per_accepted_token":
                    m["ms_per_accepted_token"] / ref["ms_per_accepted_token"],
                "speedup_candidate_tokens_per_s":
                    ref["candidate_tokens_per_s"] / max(m["candidate_tokens_per_s"], 1e-9),
            }
            for name, m in summary.items() if name != "stars_cpp"
        }
        runs.append({"threshold": tau, "methods": summary, "stars_cpp_vs": ratios})
    low.close()
    machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "benchmark": "vs_python",
        "machine": machine,
        "parameters": {**p, "n_ctx": N_CTX, "n_threads": N_THREADS, "seed": SEED,
                       "prompts": user_texts, "thresholds": config["thresholds"],
                       "repeats": [config["repeats"], config["max_repeats"]],
                       "settle_tolerance": SETTLE_TOLERANCE, "reward": "lexical_diversity",
                       "model": Path(path).name},
        "runs": runs,
    }


def judge_benchmark(config: dict[str, Any]) -> dict[str, Any]:
    """The judge-rewarded comparison: naive Python STARS against stars_cpp at N=4 and N=1."""
    started = time.perf_counter()
    machine = machine_record()
    _quiet_logs()
    p = {**JUDGE_PARAMS, "max_tokens": config["max_tokens"]}
    p1 = {**p, "candidates": 1}
    tau = JUDGE_THRESHOLD
    path = str(smollm2_path())
    user_texts = PROMPTS[: config["prompts"]]

    judge = stars_cpp.JudgeReward("policy")
    engine = stars_cpp.Engine(path, judge, n_ctx=N_CTX, n_threads=N_THREADS)
    _quiet_logs()  # stars_cpp's import of llama_cpp may have installed its own logger
    native = judge.native  # bound by the Engine to its policy: the engine judge's layout
    llm = llama_cpp.Llama(path, n_ctx=N_CTX, n_threads=N_THREADS, n_threads_batch=N_THREADS,
                          seed=SEED, verbose=False)
    # Its own Llama, so that the policy's and the judge's prefix caches do not evict each other.
    py_judge = HighLevelJudge(
        llama_cpp.Llama(path, n_ctx=N_CTX, n_threads=N_THREADS, n_threads_batch=N_THREADS,
                        seed=SEED, verbose=False),
        native, judge.yes, judge.no)
    rendered = [engine.model.apply_chat_template([("user", t)]) for t in user_texts]

    def naive(i: int, params: dict[str, Any]) -> list[PromptStats]:
        py_judge.reset()  # cold, as the policy is
        return [run_naive(llm, rendered[i], user_texts[i], py_judge, tau, params, SEED + i)]

    # One untimed segment each: first-decode allocations and page faults out of the way.
    warm = {**p, "max_tokens": p["segment_tokens"]}
    run_stars_cpp(engine, user_texts[:1], tau, warm, SEED)
    naive(0, warm)

    # stars_cpp keys a prompt's samples by its tokens, not its position, so one seed for every
    # stars_cpp call starts per-prompt and batched calls alike; their KV layouts differ, which
    # moves quantized logits, so their texts can still drift apart.
    per: dict[str, list[PromptStats]] = {"naive": [], "stars_cpp": [], "stars_cpp_n1": []}
    for i in range(len(user_texts)):
        calls: dict[str, Callable[[], list[PromptStats]]] = {
            "naive": lambda i=i: naive(i, p),
            "stars_cpp": lambda i=i: run_stars_cpp(engine, [user_texts[i]], tau, p, SEED),
            "stars_cpp_n1": lambda i=i: run_stars_cpp(engine, [user_texts[i]], tau, p1, SEED),
        }
        for name, best in fastest(calls, f"judge prompt {i}", config).items():
            per[name] += best
    n1_of = {"stars_cpp": "stars_cpp_n1"}
    if len(user_texts) > 1:
        n = len(user_texts)
        batch, batch_n1 = f"stars_cpp_batch{n}", f"stars_cpp_n1_batch{n}"
        run_stars_cpp(engine, user_texts, tau, warm, SEED)  # warm the larger context
        per.update(fastest({
            batch: lambda: run_stars_cpp(engine, user_texts, tau, p, SEED),
            batch_n1: lambda: run_stars_cpp(engine, user_texts, tau, p1, SEED),
        }, "judge", config))
        n1_of[batch] = batch_n1

    # The baseline's judge against the engine's, on responses both methods wrote: the empty
    # response (the threshold ramp's r(x, empty)), then finished texts, then half-texts.
    rows = [(user_texts[0], "")]
    rows += [(u, r.text) for u, r in zip(user_texts, per["stars_cpp"])]
    rows += [(u, r.text) for u, r in zip(user_texts, per["naive"])]
    rows += [(u, r.text[: len(r.text) // 2]) for u, r in zip(user_texts, per["stars_cpp"])]
    rows = rows[:JUDGE_CHECK_ROWS]
    prompts, responses = [u for u, _ in rows], [r for _, r in rows]
    ours = py_judge(prompts, responses)
    # One row per call: a multi-row call puts rows after the first behind other rows' cells in
    # the unified KV cache, and on quantized weights that layout alone moves a score by up to
    # ~0.3 here; one row per call decodes as the baseline's single-sequence context does.
    theirs = [native.score_texts([u], [r])[0] for u, r in rows]
    together = native.score_texts(prompts, responses)
    diffs = [abs(a - b) for a, b in zip(ours, theirs)]
    check = {
        "rows": [{"prompt": u, "response_chars": len(r), "baseline": a, "stars_cpp": b,
                  "stars_cpp_one_call": c}
                 for (u, r), a, b, c in zip(rows, ours, theirs, together)],
        "max_abs_diff": max(diffs), "tolerance": JUDGE_CHECK_TOLERANCE,
        "ok": max(diffs) <= JUDGE_CHECK_TOLERANCE,
        # For the record, not checked: the same rows scored in one multi-row call.
        "max_abs_diff_one_call": max(abs(a - c) for a, c in zip(ours, together)),
    }

    summary = {name: summarize(stats) for name, stats in per.items()}
    ratios = {}
    for name, m in summary.items():
        ratio = {"naive_ms_per_accepted_over_this":
                 summary["naive"]["ms_per_accepted_token"] / m["ms_per_accepted_token"]}
        if name in n1_of:
            ratio["sampled_per_accepted_over_n1"] = (
                m["sampled_per_accepted_token"]
                / summary[n1_of[name]]["sampled_per_accepted_token"])
        ratios[name] = ratio
    machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "benchmark": "vs_python_judge",
        "machine": machine,
        "parameters": {**p, "threshold": tau, "width": "adaptive", "n_ctx": N_CTX,
                       "n_threads": N_THREADS, "seed": SEED, "prompts": user_texts,
                       "repeats": [config["repeats"], config["max_repeats"]],
                       "settle_tolerance": SETTLE_TOLERANCE, "reward": 'JudgeReward("policy")',
                       "judge": {"question": judge.question, "yes": judge.yes, "no": judge.no},
                       "model": Path(path).name},
        "methods": summary,
        "ratios": ratios,
        "judge_check": check,
        "wall_s_total": time.perf_counter() - started,
    }


def markdown(payload: dict[str, Any]) -> str:
    lines = []
    for run in payload["runs"]:
        lines += [
            f"\ntau* = {run['threshold']}\n",
            "| method | wall s | accepted | ms / accepted tok | candidate tok | cand tok/s "
            "| attempts/seg | fallbacks | stars_cpp vs row: ms/tok | cand tok/s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in run["methods"].items():
            ratio = run["stars_cpp_vs"].get(name)
            speed = (f"{ratio['speedup_time_per_accepted_token']:.2f}x | "
                     f"{ratio['speedup_candidate_tokens_per_s']:.2f}x") if ratio else "1 | 1"
            lines.append(
                f"| {name} | {m['wall_s']:.2f} | {m['tokens_accepted']} | "
                f"{m['ms_per_accepted_token']:.1f} | {m['candidate_tokens']} | "
                f"{m['candidate_tokens_per_s']:.0f} | {m['attempts_per_segment']:.2f} | "
                f"{m['fallbacks']} | {speed} |")
    return "\n".join(lines)


def plot(payload: dict[str, Any], path: Path) -> None:
    plt = _common.pyplot()
    runs = payload["runs"]
    names = list(runs[0]["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(runs)
    for r, run in enumerate(runs):
        xs = [i + (r - (len(runs) - 1) / 2) * width for i in range(len(names))]
        label = f"tau* = {run['threshold']}"
        ms = [run["methods"][n]["ms_per_accepted_token"] for n in names]
        tps = [run["methods"][n]["candidate_tokens_per_s"] for n in names]
        axes[0].bar(xs, ms, width, label=label)
        axes[1].bar(xs, tps, width, label=label)
    for ax, title in zip(axes, ("ms per accepted token (lower is better)",
                                "candidate tokens / s (higher is better)")):
        ax.set_xticks(range(len(names)), names, rotation=15)
        ax.set_title(title)
        ax.legend()
    m = payload["machine"]
    fig.suptitle(f"STARS, SmolLM2-135M Q4_1, {m['cpu']} x{m['cores']} ({m['backend']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def judge_markdown(judge: dict[str, Any]) -> str:
    p = judge["parameters"]
    lines = [
        f"\njudge: JudgeReward(\"policy\"), tau* = {p['threshold']}, {p['acceptance']} "
        f"acceptance (beta {p['beta']}), K={p['segment_tokens']}, M={p['max_attempts']}, "
        f"T={p['max_tokens']}, {len(p['prompts'])} prompt(s)\n",
        "| method | N | wall s | accepted | ms / accepted tok | sampled | sampled / accepted "
        "| sampled tok/s | attempts/seg | rounds | mean round width | fallbacks "
        "| naive / row: ms/tok | row / N=1: sampled/acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in judge["methods"].items():
        ratio = judge["ratios"][name]
        n = 1 if name == "naive" or "_n1" in name else p["candidates"]
        over_n1 = ratio.get("sampled_per_accepted_over_n1")
        lines.append(
            f"| {name} | {n} | {m['wall_s']:.2f} | {m['tokens_accepted']} | "
            f"{m['ms_per_accepted_token']:.1f} | {m['candidate_tokens']} | "
            f"{m['sampled_per_accepted_token']:.2f} | {m['candidate_tokens_per_s']:.0f} | "
            f"{m['attempts_per_segment']:.2f} | "
            f"{m['rounds']} | {m['mean_round_width']:.2f} | {m['fallbacks']} | "
            f"{ratio['naive_ms_per_accepted_over_this']:.2f}x | "
            f"{'-' if over_n1 is None else f'{over_n1:.2f}x'} |")
    unsettled = [name for name, m in judge["methods"].items() if not m["settled"]]
    if unsettled:
        lines.append(f"\nnot settled within {p['repeats'][1]} repeats (the two fastest more "
                     f"than {p['settle_tolerance']:.0%} apart): {', '.join(unsettled)}")
    # The adaptive width follows measured costs, and a different width puts the candidates in
    # other KV cells, which moves quantized logits: the same seed can then give other text.
    differ = [name for name, m in judge["methods"].items() if not m["repeats_identical"]]
    if differ:
        lines.append(f"\nrepeats with the same seed gave different text: {', '.join(differ)}")
    check = judge["judge_check"]
    lines.append(f"\njudge check ({len(check['rows'])} rows, baseline vs stars_cpp score_texts): "
                 f"max |diff| {check['max_abs_diff']:.4f}, tolerance {check['tolerance']}: "
                 f"{'ok' if check['ok'] else 'FAILED'} (all rows in one score_texts call: "
                 f"max |diff| {check['max_abs_diff_one_call']:.4f}, not checked)")
    for row in check["rows"]:
        lines.append(f"  {row['response_chars']:4d} chars: baseline {row['baseline']:+.4f}, "
                     f"stars_cpp {row['stars_cpp']:+.4f} "
                     f"(in one call: {row['stars_cpp_one_call']:+.4f})")
    return "\n".join(lines)


def judge_plot(judge: dict[str, Any], path: Path) -> None:
    plt = _common.pyplot()
    names = list(judge["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in zip(axes, ("ms_per_accepted_token", "sampled_per_accepted_token"),
                              ("ms per accepted token (lower is better)",
                               "policy tokens sampled per accepted token")):
        ax.bar(range(len(names)), [judge["methods"][n][key] for n in names])
        ax.set_xticks(range(len(names)), names, rotation=15)
        ax.set_title(title)
    m, p = judge["machine"], judge["parameters"]
    fig.suptitle(f"STARS, SmolLM2 self-judge, tau* = {p['threshold']}, {m['cpu']} x{m['cores']} "
                 f"({m['backend']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("all", "lexical", "judge"), default="all",
                        help="which comparison to run (default both)")
    parser.add_argument("--quick", action="store_true", help="1 prompt, max_tokens 32")
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/...)")
    args = parser.parse_args()
    out = args.out or RESULTS / ("vs_python_quick.json" if args.quick else "vs_python.json")
    # One file for both comparisons: a task run alone keeps the other's stored results.
    payload: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if args.task in ("all", "lexical"):
        payload = {**benchmark(QUICK if args.quick else FULL),
                   **({"judge": payload["judge"]} if "judge" in payload else {})}
    if args.task in ("all", "judge"):
        payload["judge"] = judge_benchmark(JUDGE_QUICK if args.quick else JUDGE_FULL)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    written = [out]
    if args.task in ("all", "lexical"):
        plot(payload, out.with_suffix(".png"))
        written.append(out.with_suffix(".png"))
        print(markdown(payload))
        sample = payload["runs"][0]["methods"]["ctypes"]["prompts"][0]["text"]
        print(f"\nctypes sample ({PROMPTS[0]!r}):\n{sample}")
    if args.task in ("all", "judge"):
        judge_path = out.with_name(out.stem + "_judge.png")
        judge_plot(payload["judge"], judge_path)
        written.append(judge_path)
        print(judge_markdown(payload["judge"]))
        print(f"\njudge task: {payload['judge']['wall_s_total']:.0f} s")
    print(f"\nwrote {', '.join(map(str, written))}")
    if args.task in ("all", "judge") and not payload["judge"]["judge_check"]["ok"]:
        sys.exit("the baseline's judge disagrees with stars_cpp's (see the judge check)")


if __name__ == "__main__":
    main()
