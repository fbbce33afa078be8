"""The Python face of the engine: prompts, parameters and results in Pythonic form."""

from __future__ import annotations

import atexit
import json
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, Union

from stars_cpp import _core, llama_log
from stars_cpp.errors import ModelLoadError, ParameterError

Result = _core.Result
Segment = _core.Segment
Stats = _core.Stats

Message = Mapping[str, str]
PromptLike = Union[str, Sequence[Message]]
RewardFn = Callable[[list, list], Sequence[float]]

# The generation parameters with their defaults (README, "Parameters"); seed None draws a
# random seed.
DEFAULT_PARAMS: dict[str, Any] = {
    "segment_tokens": 16,
    "candidates": 4,
    "max_attempts": 16,
    "threshold": "auto",
    "alpha": 0.5,
    "beta": "auto",
    "target_attempts": 3.0,
    "acceptance": "soft",
    "width": "adaptive",
    "max_tokens": 256,
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 1.0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "seed": None,
    "stop": [],
}
MODES = ("plain", "best_of_n", "stars")
WIDTHS = ("adaptive", "fixed")
# The KV cache's element type, for the Engine and the KV-cached rewards (README, "Memory").
KV_TYPES = ("f16", "q8_0", "f32")
# Where the Engine's candidates draw their tokens (README, "Sampling on the backend").
SAMPLINGS = ("auto", "backend", "host")
# How the Engine's and its rewards' sequences lay out their KV cells (README, "Reproducible").
KV_LAYOUTS = ("isolated", "shared")
_INT_PARAMS = ("segment_tokens", "candidates", "max_attempts", "max_tokens", "top_k")
_FLOAT_PARAMS = ("alpha", "target_attempts", "temperature", "top_p", "min_p", "typical_p")
_AUTO_PARAMS = ("threshold", "beta")  # a float, or "auto"


# Engines not yet closed. Each is closed before the interpreter finalizes: a thread that takes
# the GIL after finalization began is ended by Python where it stands, and a C++ frame in the
# way (a loop thread freeing a finished request's callbacks, a caller returning from generate)
# aborts the process.
_OPEN_ENGINES: weakref.WeakSet = weakref.WeakSet()
# Threads inside a blocking core call (generate, with the GIL released).
_calls_lock = threading.Lock()
_calls_in_core = 0


def _blocking(call: Callable[..., Any], *args: Any) -> Any:
    global _calls_in_core
    with _calls_lock:
        _calls_in_core += 1
    try:
        return call(*args)
    finally:
        with _calls_lock:
            _calls_in_core -= 1


@atexit.register
def _close_open_engines() -> None:
    for engine in list(_OPEN_ENGINES):
        try:
            engine.close()
        except Exception:  # noqa: BLE001 - at exit there is nobody left to tell
            pass
    _core.join_abandoned_engines()
    # Callers woken by the close (daemon threads) get back into Python before it finalizes.
    deadline = time.monotonic() + 5.0
    while _calls_in_core > 0 and time.monotonic() < deadline:
        time.sleep(0.005)


def _is_chat(prompt: object) -> bool:
    return isinstance(prompt, Sequence) and not isinstance(prompt, str) and (
        len(prompt) == 0 or isinstance(prompt[0], Mapping)
    )


def _text(value: str, where: str) -> str:
    """``value``, checked to be encodable as UTF-8 (a lone surrogate is not), as the core needs."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ParameterError(
            f"{where} is not valid text: {value[error.start:error.end]!r} at position "
            f"{error.start} ({error.reason}); text must be encodable as UTF-8") from None
    return value


def _chat_pairs(messages: Sequence[Message], where: str) -> list[tuple[str, str]]:
    pairs = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ParameterError(
                f"{where}: message {i} must be a mapping with 'role' and 'content'")
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or not isinstance(content, str):
            raise ParameterError(f"{where}: message {i} role and content must be strings")
        pairs.append((_text(role, f"{where}: message {i} role"),
                      _text(content, f"{where}: message {i} content")))
    if not pairs:
        raise ParameterError(f"{where}: a chat prompt needs at least one message")
    return pairs


def _normalize_prompts(prompt: object) -> tuple[list, bool]:
    """Returns the prompts as the core takes them, and whether the caller passed a batch."""
    if isinstance(prompt, str):
        return [_text(prompt, "prompt")], False
    if _is_chat(prompt):
        return [_chat_pairs(prompt, "prompt")], False
    if isinstance(prompt, Sequence):
        items = []
        for i, item in enumerate(prompt):
            if isinstance(item, str):
                items.append(_text(item, f"prompt[{i}]"))
            elif _is_chat(item):
                items.append(_chat_pairs(item, f"prompt[{i}]"))
            else:
                raise ParameterError(
                    f"prompt[{i}] must be a string or a list of chat messages, "
                    f"got {type(item).__name__}"
                )
        if not items:
            raise ParameterError("prompt: the batch is empty")
        return items, True
    raise ParameterError(
        f"prompt must be a string, a list of chat messages, or a list of either, "
        f"got {type(prompt).__name__}"
    )


def _keys(keys: Sequence[str | int] | None, n_prompts: int) -> list[str] | None:
    """Explicit prompt keys as the core takes them: one str per prompt (ints as decimal)."""
    if keys is None:
        return None
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise ParameterError(f"keys must be a list with one key per prompt, got {keys!r}")
    if len(keys) != n_prompts:
        raise ParameterError(f"keys has {len(keys)} entries for {n_prompts} prompt(s)")
    out = []
    for i, key in enumerate(keys):
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise ParameterError(f"keys[{i}] must be a str or an int, got {type(key).__name__}")
        out.append(_text(str(key), f"keys[{i}]"))
    return out


def _check_number(name: str, value: object, kind: type) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        kind_name = "an int" if kind is int else "a number"
        raise ParameterError(f"{name} must be {kind_name}, got {value!r}")


def check_sampling(sampling: object) -> None:
    if sampling not in SAMPLINGS:
        raise ParameterError(
            f"sampling must be one of {', '.join(map(repr, SAMPLINGS))}, got {sampling!r}")


def check_kv_layout(kv_layout: object) -> None:
    if kv_layout not in KV_LAYOUTS:
        raise ParameterError(
            f"kv_layout must be one of {', '.join(map(repr, KV_LAYOUTS))}, got {kv_layout!r}")


def check_kv_type(kv_type: object) -> None:
    if kv_type not in KV_TYPES:
        raise ParameterError(
            f"kv_type must be one of {', '.join(map(repr, KV_TYPES))}, got {kv_type!r}")


def _check_int32(name: str, value: object) -> None:
    # The core holds int32: larger values would be nanobind's TypeError, naming nothing.
    _check_number(name, value, int)
    if not -2**31 <= value < 2**31:
        raise ParameterError(f"{name} must fit a 32-bit integer, got {value}")


def build_params(mode: str, params: Mapping[str, Any], default_seed: int | None):
    """Validates parameter names and types and fills a core GenerationParams.

    Range checks happen in C++ (GenerationParams::Validate), so every front end shares them.
    """
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_PARAMS)}"
        )
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    merged = {**DEFAULT_PARAMS, **params}
    core = _core.GenerationParams()
    core.mode = mode
    for name in _INT_PARAMS:
        _check_int32(name, merged[name])
        setattr(core, name, merged[name])
    for name in _FLOAT_PARAMS:
        _check_number(name, merged[name], float)
        setattr(core, name, float(merged[name]))
    for name in _AUTO_PARAMS:
        value = merged[name]
        if isinstance(value, str) and value == "auto":
            setattr(core, name, None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(core, name, float(value))
        else:
            raise ParameterError(f"{name} must be a float or 'auto', got {value!r}")
    acceptance = merged["acceptance"]
    if acceptance not in ("soft", "hard"):
        raise ParameterError(f"acceptance must be 'soft' or 'hard', got {acceptance!r}")
    core.acceptance = acceptance
    width = merged["width"]
    if width not in WIDTHS:
        raise ParameterError(f"width must be one of {', '.join(map(repr, WIDTHS))}, got {width!r}")
    core.width = width
    stop = merged["stop"]
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise ParameterError(f"stop must be a string or a list of strings, got {stop!r}")
    core.stop = [_text(s, "stop") for s in stop]
    seed = merged["seed"] if merged["seed"] is not None else default_seed
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    _check_number("seed", seed, int)
    if not 0 <= seed < 2**64:
        raise ParameterError(f"seed must be in [0, 2**64), got {seed}")
    core.seed = seed
    return core


def load_model(model: object, n_gpu_layers: int = 0, what: str = "model") -> _core.Model:
    """A GGUF path, a ``llama_cpp.Llama`` (weights borrowed) or a loaded model, as a model."""
    if isinstance(model, _core.Model):  # another Engine's weights, shared
        return model
    if isinstance(model, (str, os.PathLike)):
        return _core.Model.load(os.fspath(model), n_gpu_layers)
    import ctypes

    import llama_cpp

    if isinstance(model, llama_cpp.Llama):
        address = ctypes.cast(model.model, ctypes.c_void_p).value
        return _core.Model.borrow(address, model, f"llama_cpp.Llama({model.model_path})",
                                  model.model_params.n_gpu_layers)
    raise ParameterError(
        f"{what} must be a GGUF path or a llama_cpp.Llama, got {type(model).__name__}"
    )


def text_options(kv_type: str, sampling: str, kv_layout: str, n_gpu_layers: int
                 ) -> dict[str, Any]:
    """The engine options a response's text depends on (a dataset run records them for
    resume), by their parameter names."""
    return {"kv_type": kv_type, "sampling": sampling, "kv_layout": kv_layout,
            "n_gpu_layers": n_gpu_layers}


def _hold_weights(lender: Any, engine: Engine) -> None:
    """Defers the free of a borrowed llama_cpp.Llama's weights until every Engine that borrows
    them is closed: ``Llama.close()`` during a generate would free them under the loop thread.
    (Its own context is freed at once.) A llama_cpp without the expected internals is left as
    is; Engine._check_weights then refuses a closed lender."""
    inner = getattr(lender, "_model", None)
    free = getattr(type(inner), "close", None)
    if inner is None or free is None:
        return
    holders = inner.__dict__.get("_stars_cpp_holders")
    if holders is None:
        holders = weakref.WeakSet()
        closing = []  # the lender asked to close
        model = weakref.ref(inner)  # no cycle through the instance's own dict

        def close() -> None:
            closing.append(True)
            release()

        def release() -> None:
            target = model()
            if closing and target is not None and not any(not e._closed for e in holders):
                free(target)

        inner.__dict__.update(close=close, _stars_cpp_holders=holders,
                              _stars_cpp_release=release)
    holders.add(engine)


class Engine:
    """A policy model with an optional reward, ready for plain, best-of-N and STARS decoding.

    ``model`` is a GGUF path or a ``llama_cpp.Llama`` (its weights are shared, not reloaded).
    ``reward`` is None or a callable ``fn(prompts: list[str], responses: list[str]) ->
    list[float]``, called once per round with every candidate of every prompt.
    One loop thread runs every request: calls from several threads (``generate``, ``stream``,
    ``submit``) share its batches. A reward or callback must not call back into its own Engine
    (ReentrantCallError).
    ``n_seq_max`` is the policy context's first size in sequence ids (0: what the first requests
    need); it grows when the engine is idle and its queue needs more. ``kv_type`` is the
    policy's KV cache: ``"f16"``, ``"q8_0"`` or ``"f32"``. ``sampling`` is where candidates
    draw their tokens: ``"backend"`` inside llama.cpp's compute graph (only token ids come
    back), ``"host"`` on the CPU, ``"auto"`` (default) backend when the model is offloaded to a
    GPU. A request whose sampler chain has no backend form samples on the host and says why in
    ``Result.stats.sampling_fallback``. ``kv_layout`` ``"isolated"`` (default) gives each
    sequence a KV stream of its own, so that a request's text depends only on the model, the
    reward, its parameters, seed and key, never on what else runs; ``"shared"`` lets sequences
    share one pool of cells (less memory for long contexts, but on quantized models a text
    shifts with its neighbours). ``n_ctx`` is then the most one request's prompt plus
    ``max_tokens`` may take (isolated), or the cells all requests share (shared).
    ``verbose=True`` shows llama.cpp's whole log (logger ``stars_cpp.llama``); by default only
    its warnings and errors show.
    """

    def __init__(
        self,
        model: object,
        reward: RewardFn | None = None,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        seed: int | None = None,
        max_queue: int = 0,
        kv_type: str = "f16",
        n_seq_max: int = 0,
        sampling: str = "auto",
        kv_layout: str = "isolated",
        verbose: bool = False,
    ) -> None:
        if reward is not None and not callable(reward):
            raise ParameterError(
                f"reward must be None, a callable, ClassifierReward or JudgeReward, "
                f"got {type(reward).__name__}")
        _check_int32("n_ctx", n_ctx)
        _check_int32("n_gpu_layers", n_gpu_layers)
        _check_int32("max_queue", max_queue)
        check_kv_type(kv_type)
        check_sampling(sampling)
        check_kv_layout(kv_layout)
        _check_int32("n_seq_max", n_seq_max)
        if n_threads is not None:  # its range (0 or None: every hardware thread) is the core's
            _check_int32("n_threads", n_threads)
        if verbose:
            llama_log.set_verbose()
        self.model = load_model(model, n_gpu_layers)
        # A borrowed llama_cpp.Llama: its close() frees the weights only once this Engine is
        # closed too (_hold_weights).
        self._lender = model if type(model).__module__.startswith("llama_cpp") else None
        self._closed = False
        self.reward = reward
        self.seed = seed
        # GGUF rewards run natively: each Engine gets its own instance bound to its policy.
        native = (reward._bind(self.model, n_threads or 0, n_ctx, kv_layout)
                  if hasattr(reward, "_bind") else reward)
        self.options = text_options(kv_type, sampling, kv_layout, n_gpu_layers)
        self._core = _core.Engine(self.model, native, n_ctx, n_threads or 0, max_queue, kv_type,
                                  n_seq_max, sampling, kv_layout)
        _OPEN_ENGINES.add(self)
        if self._lender is not None:
            _hold_weights(self._lender, self)

    def _check_weights(self) -> None:
        lender = self._lender
        if lender is not None and getattr(getattr(lender, "_model", None), "model", 0) is None:
            raise ModelLoadError(
                f"the llama_cpp.Llama this Engine borrows its weights from "
                f"({getattr(lender, 'model_path', '?')}) was closed: its weights are freed; keep "
                "it open while the Engine is in use")

    def generate(self, prompt: PromptLike | Sequence[PromptLike], *, mode: str = "stars",
                 on_segment: Callable[[int, Segment], None] | None = None,
                 keys: Sequence[str | int] | None = None,
                 **params: Any) -> Result | list[Result]:
        """Generates for one prompt (returns a Result) or a batch (returns a list).

        A prompt is a string or a list of OpenAI-style chat messages, rendered through the
        model's chat template. ``params`` are the generation parameters (README, "Parameters").
        ``on_segment(prompt_index, segment)`` is called as each segment is accepted; an
        exception it raises stops the generation and reaches the caller.

        A prompt's samples derive from the seed and its key: by default its tokens and its
        occurrence among identical prompts of the call, so a result does not depend on its
        position in the batch. ``keys`` (one str or int per prompt, e.g. dataset ids) sets them.
        """
        self._check_weights()
        prompts, batched = _normalize_prompts(prompt)
        core_params = build_params(mode, params, self.seed)
        core_keys = _keys(keys, len(prompts))
        results = _blocking(self._core.generate, prompts, core_params, on_segment, core_keys)
        return results if batched else results[0]

    def submit(
        self, prompt: PromptLike, *, mode: str = "stars",
        on_result: Callable[[Result], None], on_error: Callable[[BaseException], None],
        on_segment: Callable[[Segment], None] | None = None, key: str | int | None = None,
        occurrence: int = 0, **params: Any,
    ) -> int:
        """Queues one request on the engine's loop and returns its id, for ``cancel``.

        The callbacks run on the engine's loop thread: ``on_segment(segment)`` for each accepted
        segment (an exception it raises fails the request), then exactly one of
        ``on_result(result)`` or ``on_error(exception)``. They must return quickly and must not
        call back into this Engine. Without ``key``, the prompt key is its tokens and
        ``occurrence`` (0 for the first of identical prompts, 1 for the next, ...), as in
        ``generate``. Raises QueueFullError when ``max_queue`` requests wait already.
        """
        self._check_weights()
        prompts, batched = _normalize_prompts(prompt)
        if batched:
            raise ParameterError("submit takes one prompt, not a batch")
        core_params = build_params(mode, params, self.seed)
        core_key = _keys([key], 1)[0] if key is not None else None
        _check_number("occurrence", occurrence, int)
        if not 0 <= occurrence < 2**64:
            raise ParameterError(f"occurrence must be in [0, 2**64), got {occurrence}")
        return self._core.submit(prompts[0], core_params, core_key, occurrence, on_segment,
                                 on_result, on_error)

    def cancel(self, request_id: int) -> bool:
        """Withdraws a request: within one decode step its sequences and KV cells are freed and
        it ends with ``finish_reason == "cancelled"``. False when it is unknown or done."""
        return self._core.cancel(request_id)

    def metrics(self) -> dict[str, int | float]:
        """Counters of the engine loop and what it holds now (sequences, KV cells)."""
        return self._core.metrics()

    def close(self) -> None:
        """Stops the engine's loop thread; waiting and running requests fail with
        EngineClosedError. Idempotent; later calls raise EngineClosedError."""
        core = getattr(self, "_core", None)
        if core is not None:
            core.close()
        self._closed = True
        # A lender closed meanwhile frees its weights now, when no other Engine holds them.
        release = getattr(getattr(self, "_lender", None), "_model", None)
        release = getattr(release, "__dict__", {}).get("_stars_cpp_release")
        if release is not None:
            release()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Closing here, with the GIL released by the binding, lets a loop thread that waits for
        # the GIL finish its step instead of deadlocking the interpreter's own teardown.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing to report to during collection
            pass

    def stream(
        self, prompt: PromptLike, *, mode: str = "stars",
        keys: Sequence[str | int] | None = None, **params: Any
    ) -> Iterator[Segment]:
        """Yields each segment of one prompt as it is accepted (``keys``: as in generate).

        Closing the iterator early cancels the request.
        """
        prompts, batched = _normalize_prompts(prompt)
        if batched:
            raise ParameterError("stream takes one prompt, not a batch")
        core_keys = _keys(keys, len(prompts))
        items: queue.Queue = queue.Queue()
        done = object()
        request_id = self.submit(
            prompt, mode=mode, key=core_keys[0] if core_keys else None,
            on_segment=items.put, on_result=lambda _result: items.put(done),
            on_error=items.put, **params)
        finished = False
        try:
            while True:
                # A timeout keeps Ctrl-C responsive while the loop thread works.
                try:
                    item = items.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is done:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
        finally:
            if not finished:
                self.cancel(request_id)


def generate(prompt: PromptLike | Sequence[PromptLike], *, model: object,
             reward: RewardFn | None = None, mode: str = "stars", n_ctx: int = 4096,
             n_gpu_layers: int = 0, keys: Sequence[str | int] | None = None,
             **params: Any) -> Result | list[Result]:
    """One-shot convenience: builds an Engine for ``model`` and ``reward`` and generates."""
    engine = Engine(model, reward, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers)
    return engine.generate(prompt, mode=mode, keys=keys, **params)


def result_to_dict(result: Result) -> dict[str, Any]:
    """A JSON-ready dict of a Result, with the same names as the Python API: the core's JSON
    (``Result.to_json``), read back."""
    return json.loads(result.to_json(indent=0))


# The Stats fields, in the order of the Result's JSON; the list lives in the C++ core.
STATS_FIELDS = _core.STATS_FIELDS
