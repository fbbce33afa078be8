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
from typing import TYPE_CHECKING, Any, Callable, Union

from stars_cpp import _core, llama_log
from stars_cpp.errors import ModelLoadError, ParameterError
from stars_cpp.settings import ENGINE, default, output_settings

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stars_cpp.params import EngineOptions, GenerateOptions, GenerationParams

Result = _core.Result
Segment = _core.Segment
Stats = _core.Stats

MODE = default("mode")
Message = Mapping[str, str]
PromptLike = Union[str, Sequence[Message]]
RewardFn = Callable[[list, list], Sequence[float]]

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


def build_params(mode: str, params: Mapping[str, Any], default_seed: int | None):
    """A core GenerationParams from keyword values on top of the defaults. Names, types and
    ranges are checked by the core's table (stars_cpp.settings), as for every front end; a seed
    left None is ``default_seed``, else drawn at random by the core."""
    values = {"mode": mode, **params}
    if values.get("seed") is None and default_seed is not None:
        values["seed"] = default_seed
    return _core.GenerationParams.make(values)


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
                                  model.model_params.n_gpu_layers, path=str(model.model_path))
    raise ParameterError(
        f"{what} must be a GGUF path or a llama_cpp.Llama, got {type(model).__name__}"
    )


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

    def __init__(self, model: object, reward: RewardFn | None = None, *,
                 seed: int | None = None, verbose: bool = False,
                 **options: Unpack[EngineOptions]) -> None:
        if reward is not None and not callable(reward):
            raise ParameterError(
                f"reward must be None, a callable, ClassifierReward or JudgeReward, "
                f"got {type(reward).__name__}", "reward")
        if options.get("n_threads", 0) is None:  # as 0: every hardware thread
            options = {**options, "n_threads": 0}
        # Every option is checked before the model loads (names, types, ranges: the core's).
        _core.check_settings(dict(options), ["engine"])
        options = {**{name: default(name) for name in ENGINE}, **options}
        if verbose:
            llama_log.set_verbose()
        self.model = load_model(model, options["n_gpu_layers"])
        # A borrowed llama_cpp.Llama: its close() frees the weights only once this Engine is
        # closed too (_hold_weights).
        self._lender = model if type(model).__module__.startswith("llama_cpp") else None
        self._closed = False
        self.reward = reward
        self.seed = seed
        # GGUF rewards run natively: each Engine gets its own instance bound to its policy.
        native = (reward._bind(self.model, options["n_threads"], options["n_ctx"],
                               options["kv_layout"])
                  if hasattr(reward, "_bind") else reward)
        self.settings = options  # every engine option, by name
        # The options a response's text depends on (a dataset run records them for resume).
        self.options = output_settings(options)
        self._core = _core.Engine(self.model, native, options)
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

    def generate(self, prompt: PromptLike | Sequence[PromptLike], *,
                 on_segment: Callable[[int, Segment], None] | None = None,
                 keys: Sequence[str | int] | None = None,
                 **params: Unpack[GenerationParams]) -> Result | list[Result]:
        """Generates for one prompt (returns a Result) or a batch (returns a list).

        A prompt is a string or a list of OpenAI-style chat messages, rendered through the
        model's chat template. ``params`` are the generation parameters, ``mode`` among them
        (docs/parameters.md; typed in stars_cpp.params).
        ``on_segment(prompt_index, segment)`` is called as each segment is accepted; an
        exception it raises stops the generation and reaches the caller.

        A prompt's samples derive from the seed and its key: by default its tokens and its
        occurrence among identical prompts of the call, so a result does not depend on its
        position in the batch. ``keys`` (one str or int per prompt, e.g. dataset ids) sets them.
        """
        self._check_weights()
        prompts, batched = _normalize_prompts(prompt)
        core_params = build_params(params.pop("mode", MODE), params, self.seed)
        core_keys = _keys(keys, len(prompts))
        results = _blocking(self._core.generate, prompts, core_params, on_segment, core_keys)
        return results if batched else results[0]

    def submit(
        self, prompt: PromptLike, *,
        on_result: Callable[[Result], None], on_error: Callable[[BaseException], None],
        on_segment: Callable[[Segment], None] | None = None, key: str | int | None = None,
        occurrence: int = 0, **params: Unpack[GenerationParams],
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
        core_params = build_params(params.pop("mode", MODE), params, self.seed)
        core_key = _keys([key], 1)[0] if key is not None else None
        if (isinstance(occurrence, bool) or not isinstance(occurrence, int)
                or not 0 <= occurrence < 2**64):
            raise ParameterError(f"occurrence must be an int in [0, 2**64), got {occurrence!r}",
                                 "occurrence")
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
        self, prompt: PromptLike, *, keys: Sequence[str | int] | None = None,
        **params: Unpack[GenerationParams]
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
            prompt, key=core_keys[0] if core_keys else None,
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
             reward: RewardFn | None = None, keys: Sequence[str | int] | None = None,
             **kwargs: Unpack[GenerateOptions]) -> Result | list[Result]:
    """One-shot convenience: builds an Engine for ``model`` and ``reward`` with the engine
    options among ``kwargs`` and generates with the generation parameters among them."""
    options = {name: kwargs.pop(name) for name in ENGINE if name in kwargs}
    with Engine(model, reward, **options) as engine:
        return engine.generate(prompt, keys=keys, **kwargs)


def result_to_dict(result: Result) -> dict[str, Any]:
    """A JSON-ready dict of a Result, with the same names as the Python API: the core's JSON
    (``Result.to_json``), read back."""
    return json.loads(result.to_json(indent=0))


# The Stats fields, in the order of the Result's JSON; the list lives in the C++ core.
STATS_FIELDS = _core.STATS_FIELDS
