"""Rewards for the engine.

Any callable ``fn(prompts, responses) -> list[float]`` is a reward. ``ClassifierReward`` and
``JudgeReward`` run GGUF reward models natively (no Python in the loop, KV caching for the
judge); they are callables too, scoring from scratch.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Union

from stars_cpp import _core, settings
from stars_cpp.engine import load_model
from stars_cpp.errors import ParameterError

DEFAULT_JUDGE_QUESTION = settings.default("judge_question")
# question_first asks before the exchange (a candidate costs its segment plus a few closing
# tokens); question_last asks after the response (the whole question per candidate).
JUDGE_LAYOUTS = settings.choices("judge_layout")
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
    settings.check({"n_gpu_layers": n_gpu_layers}, ("engine",))
    # A reward's own context: 0 (None) or any size; the core checks what fits.
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or not 0 <= n_ctx < 2**31:
        raise ParameterError(f"n_ctx must be None or an int in [0, 2**31), got {n_ctx!r}",
                             "n_ctx")


def _layout(asked: str | None, engine_layout: str) -> str:
    """A reward's kv_layout: what was asked, else its Engine's (standalone: isolated)."""
    return asked if asked is not None else engine_layout


def _check_layout(kv_layout: object) -> None:
    if kv_layout is not None:
        settings.check({"kv_layout": kv_layout}, ("engine",))

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
        settings.check({"kv_type": kv_type}, ("engine",))
        _check_layout(kv_layout)
        self.kv_type = kv_type
        self.kv_layout = kv_layout
        for name, value in (("question", question), ("yes", yes), ("no", no)):
            if not isinstance(value, str) or not value:
                raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
        if layout not in JUDGE_LAYOUTS:
            raise ParameterError(
                f"layout must be one of {', '.join(map(repr, JUDGE_LAYOUTS))}, got {layout!r}",
                "layout")
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
        settings.check({"kv_type": kv_type}, ("engine",))
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


class ProbeReward:
    """A probe: a small head over the policy's own hidden state, from a probe file that
    ``stars-cpp fit-probe`` (:func:`stars_cpp.probe.fit_probe`) writes.

    ``policy`` is ``"policy"`` (the Engine's model, bound when an Engine takes the reward), a
    GGUF path or a ``llama_cpp.Llama``. The probe must have been fitted on that model: another
    one is refused with ``ModelLoadError`` naming both files. A row's feature is the hidden
    state at its last decoded token (the response's second-to-last). Scored on its own (a
    call), a row is decoded from scratch on a context of the probe's own, its prompt rendered
    as a user chat message (``chat=True``, when the model has a chat template) or as plain text.
    """

    def __init__(self, path: str | os.PathLike, policy: object = "policy", *,
                 chat: bool = True, kv_type: str = "f16") -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ParameterError(f"path must be a probe file path, got {type(path).__name__}")
        settings.check({"kv_type": kv_type}, ("engine",))
        self.path, self.chat, self.kv_type = os.fspath(path), bool(chat), kv_type
        self.model = (None if isinstance(policy, str) and policy == "policy"
                      else load_model(policy, 0, "policy"))
        self._native = None if self.model is None else self._make(self.model)

    def _make(self, policy: _core.Model, n_threads: int = 0) -> _core.ProbeReward:
        return _core.make_probe_reward(self.path, policy, self.chat, n_threads, self.kv_type)

    def _bind(self, policy: _core.Model, n_threads: int = 0, n_ctx: int = 0,
              kv_layout: str = "isolated") -> _core.Reward:
        # A probe given its own policy decodes with it; "policy" binds to the Engine's model.
        native = self._make(self.model if self.model is not None else policy, n_threads)
        if self._native is None:
            self._native = native
        return native

    @property
    def native(self) -> _core.ProbeReward:
        if self._native is None:
            raise ParameterError("ProbeReward(path) scores on its own only after an Engine "
                                 "bound it to a policy model, or given policy=")
        return self._native

    @property
    def layer(self) -> int:
        return self.native.layer

    @property
    def n_embd(self) -> int:
        return self.native.n_embd

    def score_features(self, features: Any) -> list[float]:
        """The head's score of each row of an (n, n_embd) array of hidden states."""
        import numpy as np

        return self.native.score_features(np.ascontiguousarray(features, dtype=np.float32))

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self.native.score_texts(list(prompts), list(responses))


class SpecReward:
    """A GGUF reward named by a spec (``judge:PATH|policy``, ``classifier:PATH[:LABEL]``,
    ``causal:PATH``, ``probe:PATH``), built by the core's one factory, as stars-cli builds it,
    when an Engine binds it to its policy. ``values``: the reward and engine settings by name
    (stars_cpp.settings)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = dict(values)
        self._native: _core.GgufReward | None = None

    def _bind(self, policy: _core.Model, n_threads: int = 0, n_ctx: int = 0,
              kv_layout: str = "isolated") -> _core.Reward:
        values = {**self.values, "n_threads": n_threads, "n_ctx": n_ctx, "kv_layout": kv_layout}
        self._native = _core.make_reward(policy, values)
        return self._native

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if self._native is None:
            raise ParameterError(f"the reward {self.values['reward']!r} scores only after an "
                                 "Engine bound it to a policy model", "reward")
        return self._native.score_texts(list(prompts), list(responses))


def reward_from_settings(values: Mapping[str, Any]) -> Any:
    """The reward ``values["reward"]`` names, with the reward and engine settings among
    ``values``: None for ``none``, the callable of ``python:MODULE:FUNCTION``, and for a GGUF
    spec a SpecReward that the core's factory builds (the spec is checked then, when an
    Engine binds it)."""
    spec = values.get("reward", settings.default("reward"))
    settings.check({k: v for k, v in values.items() if k in settings.PARAMS},
                   ("engine", "reward"))
    kind, _, rest = spec.partition(":")
    if spec == "none":
        return None
    if kind == "python":
        judge = [name for name in settings.REWARD
                 if name != "reward" and name in values
                 and values[name] != settings.default(name)]
        if judge:
            raise ParameterError("--judge-* options need a judge reward (--reward "
                                 "judge:PATH|policy)", judge[0])
        return load_python_reward(rest)
    return SpecReward({k: v for k, v in values.items() if k in settings.PARAMS})
