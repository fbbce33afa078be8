"""Rewards for the engine.

Any callable ``fn(prompts, responses) -> list[float]`` is a reward. ``ClassifierReward`` and
``JudgeReward`` run GGUF reward models natively (no Python in the loop, KV caching for the
judge); they are callables too, scoring from scratch.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from typing import Any, Callable, Union

from stars_cpp import _core
from stars_cpp.engine import _check_int32, check_kv_layout, check_kv_type, load_model
from stars_cpp.errors import ParameterError

DEFAULT_JUDGE_QUESTION = "Is the assistant's response helpful, harmless and on-topic?"
# question_first asks before the exchange (a candidate costs its segment plus a few closing
# tokens); question_last asks after the response (the whole question per candidate).
JUDGE_LAYOUTS = ("question_first", "question_last")
Label = Union[int, str, tuple]

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
        raise ParameterError(f"python reward must be MODULE:FUNCTION, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ParameterError(f"cannot import reward module {module_name!r}: {error}") from None
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise ParameterError(f"{module_name}.{function_name} is not a callable in {module_name!r}")
    return fn



def _reward_n_ctx(asked: int | None, policy_n_ctx: int) -> int:
    """A KV-cached reward's context: what was asked, else the policy's n_ctx plus room for the
    reward's own template (the judge's question, the chat markup), as the C++ factories give."""
    return asked if asked is not None else policy_n_ctx + _core.reward_template_room


def _check_sizes(n_gpu_layers: object, n_ctx: object) -> None:
    _check_int32("n_gpu_layers", n_gpu_layers)
    _check_int32("n_ctx", n_ctx)


def _layout(asked: str | None, engine_layout: str) -> str:
    """A reward's kv_layout: what was asked, else its Engine's (standalone: isolated)."""
    return asked if asked is not None else engine_layout


def _check_layout(kv_layout: object) -> None:
    if kv_layout is not None:
        check_kv_layout(kv_layout)

class ClassifierReward:
    """A GGUF sequence classifier or reranker, run by llama.cpp with RANK pooling.

    ``label`` picks the score: an output index, a label name from the GGUF, or a pair
    ``(pos, neg)`` for ``out[pos] - out[neg]``. Rerankers (a ``rerank`` template in the GGUF, or
    a single output) read (query = prompt, document = response) pairs; classifiers read the
    response alone (``pair`` overrides). A row longer than ``n_ctx`` tokens (default: the
    model's training context) is truncated, keeping the prompt's start and the response's end;
    ``Result.stats.reward_rows_truncated`` counts them. ``kv_layout`` (default: the Engine's)
    ``"isolated"`` encodes each row alone, so that no score depends on the rows beside it;
    ``"shared"`` encodes several rows per decode.
    """

    def __init__(self, path: object, *, label: Label = 0, n_gpu_layers: int = 0,
                 n_ctx: int | None = None, pair: bool | None = None,
                 kv_layout: str | None = None) -> None:
        _check_sizes(n_gpu_layers, 0 if n_ctx is None else n_ctx)
        _check_layout(kv_layout)
        self.kv_layout = kv_layout
        self.model = load_model(path, n_gpu_layers, "path")
        self.labels = self._resolve(label)
        self._options = dict(pair=-1 if pair is None else int(pair), n_ctx=n_ctx or 0)
        self._native = self._bind()

    def _resolve(self, label: Label) -> list[int]:
        names = self.model.classifier_labels
        parts = list(label) if isinstance(label, (tuple, list)) else [label]
        if not 1 <= len(parts) <= 2:
            raise ParameterError(
                f"label must be an index, a name or a (pos, neg) pair, got {label!r}")
        out = []
        for part in parts:
            if isinstance(part, str):
                if part not in names:
                    raise ParameterError(f"label {part!r} is not one of this classifier's labels "
                                     f"{names} ({self.model.description})")
                out.append(names.index(part))
            elif isinstance(part, int) and not isinstance(part, bool):
                out.append(part)
            else:
                raise ParameterError(f"label must be an int or a str, got {part!r}")
        return out

    def _bind(self, policy: _core.Model | None = None, n_threads: int = 0, n_ctx: int = 0,
              kv_layout: str = "isolated") -> _core.ClassifierReward:
        return _core.make_classifier_reward(self.model, self.labels, n_threads=n_threads,
                                            kv_layout=_layout(self.kv_layout, kv_layout),
                                            **self._options)

    @property
    def pair(self) -> bool:
        return self._native.pair

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self._native.score_texts(list(prompts), list(responses))


class JudgeReward:
    """A causal instruct GGUF model asked a yes/no question about each response.

    reward = logit(yes) - logit(no) at the answer position. ``model`` is a GGUF path, a
    ``llama_cpp.Llama``, or ``"policy"``: the Engine's own loaded weights in a second context,
    with token ids passed straight through. In an Engine the judge keeps each prompt's
    accepted response in its KV cache and decodes only each candidate's new tokens plus the
    question. ``kv_layout`` (default: the Engine's) is its KV cache's layout, as the Engine's.
    """

    def __init__(self, model: object = "policy", *, question: str = DEFAULT_JUDGE_QUESTION,
                 yes: str = " Yes", no: str = " No", layout: str = "question_first",
                 n_gpu_layers: int = 0, n_ctx: int | None = None,
                 kv_type: str = "f16", kv_layout: str | None = None) -> None:
        _check_sizes(n_gpu_layers, 0 if n_ctx is None else n_ctx)
        check_kv_type(kv_type)
        _check_layout(kv_layout)
        self.kv_type = kv_type
        self.kv_layout = kv_layout
        for name, value in (("question", question), ("yes", yes), ("no", no)):
            if not isinstance(value, str) or not value:
                raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
        if layout not in JUDGE_LAYOUTS:
            raise ParameterError(
                f"layout must be one of {', '.join(map(repr, JUDGE_LAYOUTS))}, got {layout!r}")
        self.question, self.yes, self.no, self.n_ctx = question, yes, no, n_ctx
        self.layout = layout
        self.model = None if model == "policy" else load_model(model, n_gpu_layers, "model")
        self._policy: _core.Model | None = None
        # A standalone judge for direct calls; it also checks yes/no against the vocabulary.
        self._native = None if self.model is None else self._make(self.model, None, 2048)

    def _make(self, judge: _core.Model, policy: _core.Model | None, n_ctx: int,
              n_threads: int = 0, kv_layout: str = "isolated") -> _core.KvCachedReward:
        return _core.make_judge_reward(judge, policy, self.question, self.yes, self.no,
                                       n_ctx=n_ctx, n_threads=n_threads, layout=self.layout,
                                       kv_type=self.kv_type,
                                       kv_layout=_layout(self.kv_layout, kv_layout))

    def _bind(self, policy: _core.Model, n_threads: int = 0, n_ctx: int = 0,
              kv_layout: str = "isolated") -> _core.Reward:
        judge = self.model if self.model is not None else policy
        native = self._make(judge, policy, _reward_n_ctx(self.n_ctx, n_ctx), n_threads,
                            kv_layout)
        if self._policy is None:
            self._policy = policy
        return native

    @property
    def native(self) -> _core.KvCachedReward:
        if self._native is None:
            if self._policy is None:
                raise ParameterError("JudgeReward('policy') scores on its own only after an "
                                     "Engine bound it to a policy model")
            # Made on the first direct call only: an Engine's self-judge holds one context.
            self._native = self._make(self._policy, self._policy, 2048)
        return self._native

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self.native.score_texts(list(prompts), list(responses))


class CausalReward:
    """A decoder reward model with a scalar head (``LlamaForSequenceClassification``,
    ``Qwen2ForSequenceClassification``, ``Qwen3ForSequenceClassification``), converted to GGUF
    with :func:`stars_cpp.convert_reward`.

    reward = head . h + bias, where h is the final hidden state of the input's last token.
    The input is the model's chat template (user = prompt, assistant = response), or
    ``template``, a format with ``{prompt}`` and ``{response}`` once each. In an Engine it keeps
    each prompt's accepted response in its KV cache and decodes only each candidate's new
    tokens plus the template's tail. ``kv_type="f32"`` keeps keys and values in float32
    (llama.cpp's F16 cache alone moves scores by about 1e-3 relative). ``kv_layout`` (default:
    the Engine's) is its KV cache's layout, as the Engine's.
    """

    def __init__(self, path: str | os.PathLike, *, template: str | None = None,
                 n_gpu_layers: int = 0, n_ctx: int | None = None,
                 kv_type: str = "f16", kv_layout: str | None = None) -> None:
        _check_sizes(n_gpu_layers, 0 if n_ctx is None else n_ctx)
        _check_layout(kv_layout)
        self.kv_layout = kv_layout
        if not isinstance(path, (str, os.PathLike)):
            raise ParameterError(f"path must be a GGUF path, got {type(path).__name__}")
        if template is not None and not isinstance(template, str):
            raise ParameterError(f"template must be a string or None, got {template!r}")
        check_kv_type(kv_type)
        self.path, self.template, self.n_ctx = os.fspath(path), template or "", n_ctx
        self.kv_type = kv_type
        self.model = load_model(self.path, n_gpu_layers, "path")
        # A standalone scorer for direct calls; it also checks the head at construction.
        self._native = self._make(None, 2048)

    def _make(self, policy: _core.Model | None, n_ctx: int, n_threads: int = 0,
              kv_layout: str = "isolated") -> _core.KvCachedReward:
        return _core.make_causal_reward(self.model, self.path, policy, template=self.template,
                                        n_ctx=n_ctx, n_threads=n_threads, kv_type=self.kv_type,
                                        kv_layout=_layout(self.kv_layout, kv_layout))

    def _bind(self, policy: _core.Model, n_threads: int = 0, n_ctx: int = 0,
              kv_layout: str = "isolated") -> _core.Reward:
        if not self._native.shares_vocabulary:  # so score_policy_tokens takes this policy's ids
            self._native = self._make(policy, 2048)
        return self._make(policy, _reward_n_ctx(self.n_ctx, n_ctx), n_threads, kv_layout)

    @property
    def native(self) -> _core.KvCachedReward:
        return self._native

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self._native.score_texts(list(prompts), list(responses))


def _parse_label(text: str) -> Label:
    def one(part: str) -> int | str:
        return int(part) if part.lstrip("-").isdigit() else part

    if not text:
        return 0
    pos, comma, neg = text.partition(",")
    return (one(pos), one(neg)) if comma else one(text)


def parse_reward_spec(spec: str, kv_type: str = "f16", **judge_options: str) -> Any:
    """The CLI's ``--reward``: ``classifier:PATH[:LABEL]`` (LABEL an index, a name or
    ``POS,NEG``), ``judge:PATH|policy``, ``causal:PATH`` or ``python:MODULE:FUNCTION``.
    ``judge_options`` are JudgeReward's ``question``, ``yes``, ``no`` and ``layout``;
    ``kv_type`` is the judge's or the causal reward's KV cache type."""
    kind, sep, rest = spec.partition(":")
    if judge_options and kind != "judge":
        raise ParameterError("--judge-* flags need a judge reward (--reward judge:PATH|policy)")
    if not sep or not rest:
        raise ParameterError(f"--reward must be classifier:PATH[:LABEL], judge:PATH|policy, "
                         f"causal:PATH or python:MODULE:FUNCTION, got {spec!r}")
    if kind == "python":
        return load_python_reward(rest)
    if kind == "classifier":
        # PATH[:LABEL], unless the whole of it names a file: a path may hold colons, a label
        # never does (stars-cli splits the same way).
        path, label = rest, ""
        if ":" in rest and not os.path.exists(rest):
            path, label = rest.rsplit(":", 1)
        return ClassifierReward(path, label=_parse_label(label))
    if kind == "judge":
        return JudgeReward(rest, kv_type=kv_type, **judge_options)
    if kind == "causal":
        return CausalReward(rest, kv_type=kv_type)
    raise ParameterError(f"--reward kind must be classifier, judge, causal or python, got {kind!r}")
