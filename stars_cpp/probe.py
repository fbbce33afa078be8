"""Probes: fit a small head on the policy's own hidden states (``stars-cpp fit-probe``).

A probe reads a reward off the hidden state the policy computed anyway: for a response y to a
prompt x, the state at the last token the engine decodes, y's second-to-last (the engine never
decodes a candidate's last sampled token), or the prompt's last token for a y of at most one
token. :func:`extract_features` reads those states in batched decodes; :func:`fit_probe` fits
ridge regression on scores, or a Bradley-Terry logistic regression on (chosen, rejected) pairs,
in numpy, reports a held-out correlation or pairwise accuracy and writes the probe file that
``ProbeReward`` and ``--reward probe:PATH`` read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stars_cpp import _core
from stars_cpp.engine import load_model
from stars_cpp.errors import DatasetError, ParameterError

Prompt = Any  # a string, or a list of chat messages
# Inputs per extraction call: the progress bar moves after each.
_CHUNK = 64
_STD_FLOOR = 1e-6


def _messages(prompt: Prompt, chat: bool) -> tuple[str, list[tuple[str, str]]]:
    """(text, messages) as the core renders a prompt: messages through the chat template."""
    if isinstance(prompt, str):
        return ("", [("user", prompt)]) if chat else (prompt, [])
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
        try:
            return "", [(str(m["role"]), str(m["content"])) for m in prompt]
        except KeyError as error:
            raise ParameterError(f"a chat message lacks {error}") from None
    raise ParameterError(f"a prompt must be a string or chat messages, got {prompt!r:.80}")


def prompt_text(prompt: Prompt) -> str:
    """The prompt as a reward sees it: the text, or the last user message's content."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else prompt[-1]["content"]


def probe_inputs(model: _core.Model, prompts: Sequence[Prompt], responses: Sequence[str], *,
                 chat: bool = True) -> list[list[int]]:
    """The tokens a probe decodes for each (prompt, response): prompt + response[:-1], the
    prompt rendered as the engine renders it (a string as a user chat message when ``chat``
    and the model has a chat template, else as it is)."""
    if len(prompts) != len(responses):
        raise ParameterError(f"{len(prompts)} prompts but {len(responses)} responses")
    chat = chat and _has_template(model)
    cache: dict[str, list[int]] = {}
    inputs = []
    for prompt, response in zip(prompts, responses):
        key = json.dumps(prompt)
        if key not in cache:
            cache[key] = _core.prompt_tokens(model, *_messages(prompt, chat))
        tokens = model.tokenize(response, add_special=False, parse_special=False)
        inputs.append(_core.probe_input(cache[key], tokens))
    return inputs


def _has_template(model: _core.Model) -> bool:
    try:
        model.apply_chat_template([("user", "x")])
    except Exception:  # noqa: BLE001 - no template, or one llama.cpp cannot apply
        return False
    return True


def extract_features(model: object, prompts: Sequence[Prompt], responses: Sequence[str], *,
                     layer: int | None = None, chat: bool = True, progress: bool = True,
                     n_threads: int = 0, kv_type: str = "f16") -> np.ndarray:
    """The policy's hidden states (an (n, n_embd) float32 array) for (prompt, response) rows, at
    ``layer`` (default: the last layer's output, ``n_layer``; a smaller one reads that layer's
    input), in batched decodes."""
    model = load_model(model)
    layer = model.n_layer if layer is None else layer
    inputs = probe_inputs(model, prompts, responses, chat=chat)
    extractor = _core.make_feature_extractor(model, layer, n_threads, kv_type)
    return _extract(extractor, inputs, progress)


def _extract(extractor: Any, inputs: list[list[int]], progress: bool) -> np.ndarray:
    bar = _bar(len(inputs), "features", progress)
    parts = []
    try:
        for start in range(0, len(inputs), _CHUNK):
            chunk = inputs[start:start + _CHUNK]
            parts.append(extractor.extract(chunk))
            bar.update(len(chunk))
    finally:
        bar.close()
    if not parts:
        return np.zeros((0, extractor.n_embd), np.float32)
    return np.concatenate(parts)


def _bar(total: int, what: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="row", disable=not enabled, leave=False)


# ---- fitting, in numpy ----

def _normalisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    # A constant feature (std 0) is left as it is: its weight then fits nothing.
    std = np.where(std > _STD_FLOOR, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def fit_ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression on normalised features: (weight, bias), the bias unpenalised."""
    bias = float(y.mean())
    gram = z.T @ z + alpha * np.eye(z.shape[1])
    weight = np.linalg.solve(gram, z.T @ (y - bias))
    return weight, bias


# The penalties "auto" chooses among, by cross-validation on the training rows: hidden states
# have hundreds of dimensions, and a few hundred rows overfit a light penalty.
RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def choose_ridge(z: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> float:
    """The penalty of RIDGE_GRID with the best mean Pearson r over ``folds`` folds."""
    k = min(folds, len(y))
    if k < 2:
        return 1.0
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), k)
    best, best_r = 1.0, -np.inf
    for alpha in RIDGE_GRID:
        rs = []
        for i in range(k):
            fit = np.concatenate(parts[:i] + parts[i + 1:])
            weight, bias = fit_ridge(z[fit], y[fit], alpha)
            rs.append(_pearson(z[parts[i]] @ weight + bias, y[parts[i]]))
        r = float(np.nanmean(rs)) if not np.isnan(rs).all() else -np.inf
        if r > best_r:
            best, best_r = alpha, r
    return best


def fit_bradley_terry(d: np.ndarray, alpha: float, iterations: int = 50) -> np.ndarray:
    """Logistic regression without intercept on chosen - rejected differences (Newton's method,
    L2 penalty ``alpha``): P(chosen beats rejected) = sigmoid(w . d)."""
    w = np.zeros(d.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(d @ w)))
        grad = d.T @ (p - 1.0) + alpha * w
        hess = (d * (p * (1.0 - p))[:, None]).T @ d + alpha * np.eye(d.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class FitReport:
    """What fit_probe did: the kind ("scores" or "pairs"), rows, the held-out metric."""

    path: str
    kind: str
    layer: int
    n_train: int
    n_holdout: int
    holdout_correlation: float | None = None  # scores: Pearson r on the held-out rows
    train_correlation: float | None = None
    holdout_accuracy: float | None = None  # pairs: P(score(chosen) > score(rejected))
    train_accuracy: float | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        if self.kind == "scores":
            metric = (f"held-out Pearson r {self.holdout_correlation:.4f} "
                      f"(train {self.train_correlation:.4f})")
        else:
            metric = (f"held-out pairwise accuracy {self.holdout_accuracy:.4f} "
                      f"(train {self.train_accuracy:.4f})")
        ridge = f", ridge {self.extra['ridge']:g}" if "ridge" in self.extra else ""
        return (f"{self.path}: {self.kind}, layer {self.layer}, {self.n_train} train / "
                f"{self.n_holdout} held out{ridge}: {metric}")


def _split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_holdout = int(round(n * holdout))
    if holdout > 0 and n_holdout == 0 and n > 1:
        n_holdout = 1
    return order[n_holdout:], order[:n_holdout]


def _read_records(data: str | os.PathLike | Iterable[Mapping]) -> list[dict]:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise DatasetError(f"no such file: '{path}'")
        records = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(f"'{path}' line {number}: not JSON ({error})") from None
                if not isinstance(record, dict):
                    raise DatasetError(f"'{path}' line {number}: not a JSON object")
                records.append(record)
        return records
    return [dict(r) for r in data]


def reward_of_spec(spec: str | Callable, model: _core.Model) -> Callable:
    """A callable ``fn(prompts, responses)`` for ``--score-with``: a callable as it is,
    ``python:MODULE:FUNCTION`` or ``MODULE:FUNCTION``, or a GGUF reward spec (``judge:``,
    ``causal:``, ``classifier:``, ``probe:``) bound to ``model``."""
    from stars_cpp.rewards import SpecReward, load_python_reward

    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ParameterError(f"score_with must be a spec or a callable, got {spec!r}",
                             "score_with")
    kind, _, rest = spec.partition(":")
    if kind == "python":
        return load_python_reward(rest)
    if kind in ("judge", "causal", "classifier", "probe"):
        reward = SpecReward({"reward": spec})
        reward._bind(model)
        return reward
    return load_python_reward(spec)


def generate_responses(model: object, prompts: Sequence[Prompt], n: int, *, chat: bool = True,
                       seed: int = 0, progress: bool = True,
                       **params: Any) -> tuple[list[Prompt], list[str]]:
    """``n`` plain-mode responses per prompt from the policy, each with its own seed:
    (prompts repeated, responses)."""
    from stars_cpp.engine import Engine

    params.setdefault("max_tokens", 64)
    rendered = [[{"role": "user", "content": p}] if chat and isinstance(p, str) else p
                for p in prompts]
    out_prompts: list[Prompt] = []
    out_responses: list[str] = []
    bar = _bar(n * len(prompts), "generate", progress)
    try:
        with Engine(model, None) as engine:
            for k in range(n):
                results = engine.generate(list(rendered), mode="plain", seed=seed + k, **params)
                for prompt, result in zip(prompts, results):
                    out_prompts.append(prompt)
                    out_responses.append(result.text)
                bar.update(len(prompts))
    finally:
        bar.close()
    return out_prompts, out_responses


def fit_probe(data: str | os.PathLike | Iterable[Mapping], output: str | os.PathLike, *,
              model: object = None, layer: int | None = None, ridge: float | str = "auto",
              holdout: float = 0.2, seed: int = 0, chat: bool = True,
              score_with: str | Callable | None = None, generate: int = 0,
              max_tokens: int = 64, progress: bool = True, n_threads: int = 0,
              kv_type: str = "f16", scored_output: str | os.PathLike | None = None) -> FitReport:
    """Fits a linear probe on ``model``'s hidden states and writes it to ``output``.

    ``data``: a JSONL path or records of ``{prompt, response, score}`` (ridge regression with
    penalty ``ridge``; ``"auto"`` picks it from RIDGE_GRID by 5-fold cross-validation on the
    training rows, 1.0 for pairs) or ``{prompt, chosen, rejected}`` (Bradley-Terry logistic
    regression).
    With ``score_with`` (a callable, ``python:MODULE:FUNCTION``, ``MODULE:FUNCTION`` or a GGUF
    reward spec) records of ``{prompt, response}`` are scored first; with ``generate`` N, records
    of ``{prompt}`` get N plain-mode responses each from the policy first (then ``score_with``
    is needed). A seeded ``holdout`` fraction is held out and reported on; the normalisation
    comes from the training features. ``scored_output`` writes the scored training set as JSONL.
    """
    if ridge != "auto" and (not isinstance(ridge, (int, float)) or ridge < 0):
        raise ParameterError(f"ridge must be >= 0 or 'auto', got {ridge!r}", "ridge")
    if not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
        raise ParameterError(f"holdout must be in [0, 1), got {holdout!r}", "holdout")
    if not isinstance(generate, int) or generate < 0:
        raise ParameterError(f"generate must be an int >= 0, got {generate!r}", "generate")
    if model is None:
        from stars_cpp.models import default_model_path

        model = str(default_model_path())
    policy = load_model(model)
    layer = policy.n_layer if layer is None else layer
    extractor = _core.make_feature_extractor(policy, layer, n_threads, kv_type)
    records = _read_records(data)
    if not records:
        raise DatasetError("no records to fit on")
    for i, record in enumerate(records):
        if "prompt" not in record:
            raise DatasetError(f"record {i} has no 'prompt'")

    if generate:
        prompts, responses = generate_responses(
            policy, [r["prompt"] for r in records], generate, chat=chat, seed=seed,
            progress=progress, max_tokens=max_tokens)
        records = [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]
    pairs = all("chosen" in r and "rejected" in r for r in records)
    if not pairs:
        if score_with is not None:
            missing = [i for i, r in enumerate(records) if "response" not in r]
            if missing:
                raise DatasetError(f"record {missing[0]} has no 'response' to score")
            reward = reward_of_spec(score_with, policy)
            scores = reward([prompt_text(r["prompt"]) for r in records],
                            [r["response"] for r in records])
            for record, score in zip(records, scores):
                record["score"] = float(score)
        bad = [i for i, r in enumerate(records) if "response" not in r or "score" not in r]
        if bad:
            raise DatasetError(
                f"record {bad[0]} needs 'response' and 'score' (or 'chosen' and 'rejected'; or "
                "score them with --score-with)")
    if scored_output is not None:
        with open(scored_output, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")

    if pairs:
        report = _fit_pairs(records, policy, extractor, ridge, holdout, seed, chat, progress)
    else:
        report = _fit_scores(records, policy, extractor, ridge, holdout, seed, chat, progress)
    weight, bias, mean, std = report.extra.pop("head")
    identity = _core.identify_policy(policy)
    _core.write_probe(os.fspath(output), {
        "layer": layer, "n_hidden": 0, "mean": mean.tolist(), "std": std.tolist(),
        "weight": np.asarray(weight, np.float32).tolist(), "bias": float(bias),
        "output_scale": 1.0, "output_offset": 0.0, "policy": identity})
    report.path = os.fspath(output)
    report.layer = layer
    return report


def _fit_scores(records, policy, extractor, ridge, holdout, seed, chat, progress) -> FitReport:
    inputs = probe_inputs(policy, [r["prompt"] for r in records],
                          [r["response"] for r in records], chat=chat)
    features = _extract(extractor, inputs, progress).astype(np.float64)
    y = np.array([float(r["score"]) for r in records])
    if not np.isfinite(y).all():
        raise DatasetError("a score is not a finite number")
    train, held = _split(len(records), holdout, seed)
    mean, std = _normalisation(features[train])
    z = (features - mean) / std
    if ridge == "auto":
        ridge = choose_ridge(z[train], y[train], seed)
    weight, bias = fit_ridge(z[train], y[train], ridge)
    predicted = z @ weight + bias
    return FitReport(
        path="", kind="scores", layer=0, n_train=len(train), n_holdout=len(held),
        holdout_correlation=_pearson(predicted[held], y[held]) if len(held) else None,
        train_correlation=_pearson(predicted[train], y[train]),
        extra={"head": (weight, bias, mean, std), "ridge": ridge})


def _fit_pairs(records, policy, extractor, ridge, holdout, seed, chat, progress) -> FitReport:
    prompts = [r["prompt"] for r in records]
    inputs = probe_inputs(policy, prompts + prompts,
                          [r["chosen"] for r in records] + [r["rejected"] for r in records],
                          chat=chat)
    features = _extract(extractor, inputs, progress).astype(np.float64)
    n = len(records)
    chosen, rejected = features[:n], features[n:]
    train, held = _split(n, holdout, seed)
    mean, std = _normalisation(np.concatenate([chosen[train], rejected[train]]))
    d = (chosen - rejected) / std
    weight = fit_bradley_terry(d[train], max(1.0 if ridge == "auto" else ridge, 1e-6))
    margin = d @ weight
    return FitReport(
        path="", kind="pairs", layer=0, n_train=len(train), n_holdout=len(held),
        holdout_accuracy=float((margin[held] > 0).mean()) if len(held) else None,
        train_accuracy=float((margin[train] > 0).mean()),
        extra={"head": (weight, 0.0, mean, std)})
