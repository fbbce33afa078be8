"""``stars-cpp serve``: an OpenAI-compatible HTTP server over one Engine.

Requests join the engine's loop as they come (continuous batching at segment granularity),
each with its own parameters. STARS parameters are top-level body fields with their Python
names; the ``openai`` client sends them with ``extra_body``. Needs ``pip install
'stars_cpp[server]'`` (FastAPI, uvicorn, sse-starlette, prometheus_client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sse_starlette.sse import EventSourceResponse

import stars_cpp
from stars_cpp.engine import STATS_FIELDS, Engine, result_to_dict
from stars_cpp.errors import error_class
from stars_cpp.settings import check, names

log = logging.getLogger("stars_cpp.server")

# Bodies larger than this are refused before they are read whole.
MAX_BODY_BYTES = 4 * 1024 * 1024
# On SIGTERM an open stream gets this long to send its last event before it is cancelled.
SHUTDOWN_GRACE_S = 5.0
MAX_CHOICES = 16

# OpenAI fields a client may send that change nothing here; any other unknown field is a 400.
IGNORED_FIELDS = frozenset({
    "user", "metadata", "store", "service_tier", "logit_bias",
    "response_format", "parallel_tool_calls", "echo", "suffix", "best_of",
    "frequency_penalty", "presence_penalty", "modalities", "reasoning_effort",
})
OPENAI_FIELDS = frozenset({
    "model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "seed", "stop", "n", "stream", "stream_options",
})
# The generation parameters a request may set, mode among them (stars_cpp.settings).
PARAM_FIELDS = frozenset(names("generation", "http"))
# STARS fields beyond the generation parameters.
STARS_FIELDS = frozenset({"return_trace", "key"})
KNOWN_FIELDS = OPENAI_FIELDS | STARS_FIELDS | PARAM_FIELDS | IGNORED_FIELDS


class ApiError(Exception):
    """An error that goes out as an OpenAI error object."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": None}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def error_of(exc: BaseException) -> ApiError:
    """The HTTP error for an exception from the engine or the reward: status and type from the
    core's error table, ``param`` from the exception."""
    if isinstance(exc, ApiError):
        return exc
    entry = error_class(exc)
    if entry["http_status"] >= 500 and entry["http_type"] == "server_error":
        log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return ApiError(500, f"{type(exc).__name__}: {exc}", kind="server_error")
    return ApiError(entry["http_status"], str(exc), getattr(exc, "param", None),
                    kind=entry["http_type"])


# ---------------------------------------------------------------------------------------------
# Parsing a body into engine calls.


@dataclass
class Job:
    """One HTTP request as engine calls: a prompt per choice, the parameters they share."""

    chat: bool
    prompts: list[Any]  # one per choice
    mode: str
    params: dict[str, Any]
    keys: list[str | None]
    occurrences: list[int]
    stream: bool
    include_usage: bool
    return_trace: bool
    model: str
    n: int

    @property
    def logprobs(self) -> bool:
        return bool(self.params.get("logprobs"))


def _typed(body: Mapping[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise ApiError(400, f"{name} must be {what}, got {json.dumps(value)}", name)
    if not isinstance(value, kinds):
        raise ApiError(400, f"{name} must be {what}, got {type(value).__name__}", name)
    return value


def _messages(body: Mapping[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ApiError(400, "messages must be a list of chat messages", "messages")
    if not messages:
        raise ApiError(400, "messages is empty: give at least one message", "messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{i}] must be an object", "messages")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str):
            raise ApiError(400, f"messages[{i}].role must be a string", "messages")
        if isinstance(content, list):  # content parts: text only
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                        part.get("text"), str):
                    raise ApiError(400, f"messages[{i}].content: only text parts are supported",
                                   "messages")
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string or text parts",
                           "messages")
        out.append({"role": role, "content": content})
    return out


def _prompts(body: Mapping[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt or not all(isinstance(p, str) for p in prompt):
        raise ApiError(400, "prompt must be a string or a non-empty list of strings", "prompt")
    if any(not p for p in prompt):
        raise ApiError(400, "prompt is empty", "prompt")
    return prompt


def parse_job(body: Any, chat: bool, defaults: Mapping[str, Any], model_name: str) -> Job:
    """Validates a request body. Raises ApiError(400) naming the field that is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field '{unknown[0]}'", unknown[0])
    model = _typed(body, "model", (str,), "a string") or model_name
    if chat:
        if "prompt" in body:
            raise ApiError(400, "prompt is for /v1/completions; chat takes messages", "prompt")
        base = [_messages(body)]
    else:
        if "messages" in body:
            raise ApiError(400, "messages is for /v1/chat/completions", "messages")
        base = _prompts(body)
    params = dict(defaults)
    for name in PARAM_FIELDS:
        if name in body and body[name] is not None:
            params[name] = body[name]
    legacy = body.get("logprobs")
    if not chat and isinstance(legacy, int) and not isinstance(legacy, bool):
        # /v1/completions' logprobs is the count of alternatives: the parameters' two fields.
        params["logprobs"], params["top_logprobs"] = True, legacy
    for name in ("max_tokens", "max_completion_tokens"):
        value = _typed(body, name, (int,), "an integer")
        if value is not None:
            params["max_tokens"] = value
    check(params, ("generation",))  # ParameterError naming the field: a 400 with its param
    mode = params.pop("mode")
    n = _typed(body, "n", (int,), "an integer")
    n = 1 if n is None else n
    if not 1 <= n <= MAX_CHOICES:
        raise ApiError(400, f"n must be in [1, {MAX_CHOICES}], got {n}", "n")
    stream = _typed(body, "stream", (bool,), "a boolean") or False
    options = _typed(body, "stream_options", (dict,), "an object") or {}
    if set(options) - {"include_usage"}:
        raise ApiError(400, "stream_options takes only include_usage", "stream_options")
    include_usage = bool(_typed(options, "include_usage", (bool,), "a boolean"))
    return_trace = _typed(body, "return_trace", (bool,), "a boolean") or False
    key = _typed(body, "key", (str, int), "a string or an integer")
    prompts, keys, occurrences = [], [], []
    for p, prompt in enumerate(base):
        for j in range(n):
            prompts.append(prompt)
            # n choices: independent keys, as n identical prompts of one generate call.
            keys.append(None if key is None else f"{key}#{p}.{j}" if n > 1 or len(base) > 1
                        else str(key))
            occurrences.append(j)
    return Job(chat, prompts, mode, params, keys, occurrences, stream, include_usage,
               return_trace, model, n)


# ---------------------------------------------------------------------------------------------
# Running a job on the engine.


@dataclass
class Choice:
    """One choice's request on the engine, bridged into asyncio."""

    index: int
    request_id: int | None = None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    result: Any = None
    done: bool = False


def submit_job(engine: Engine, job: Job, loop: asyncio.AbstractEventLoop) -> list[Choice]:
    """Submits every choice. Engine callbacks run on its loop thread: they only hand over."""
    choices = []
    try:
        for i, prompt in enumerate(job.prompts):
            choice = Choice(i)

            def put(kind: str, value: Any, choice: Choice = choice) -> None:
                loop.call_soon_threadsafe(choice.events.put_nowait, (kind, value))

            choice.request_id = engine.submit(
                prompt, mode=job.mode, key=job.keys[i], occurrence=job.occurrences[i],
                on_segment=lambda s, put=put: put("segment", s),
                on_result=lambda r, put=put: put("result", r),
                on_error=lambda e, put=put: put("error", e), **job.params)
            choices.append(choice)
    except BaseException:
        for choice in choices:
            engine.cancel(choice.request_id)
        raise
    return choices


def cancel_all(engine: Engine, choices: list[Choice]) -> None:
    for choice in choices:
        if not choice.done and choice.request_id is not None:
            engine.cancel(choice.request_id)


def usage_of(results: list[Any], n: int) -> dict[str, Any]:
    """OpenAI's usage for choices laid out prompt by prompt, ``n`` choices each: every prompt
    counts once, every choice's completion counts."""
    stars: dict[str, Any] = {}
    for name in STATS_FIELDS:
        values = [getattr(r.stats, name) for r in results]
        if isinstance(values[0], str):  # a reason: the choices' distinct ones
            stars[name] = "; ".join(dict.fromkeys(v for v in values if v))
        else:
            stars[name] = max(values) if name == "seconds_total" else sum(values)
    rounds = stars["rounds"]
    candidates = sum(r.stats.mean_round_width * r.stats.rounds for r in results)
    stars["mean_round_width"] = candidates / rounds if rounds else 0.0
    prompt_tokens = sum(r.stats.prompt_tokens for r in results[::n])
    stars["prompt_tokens"] = prompt_tokens
    completion = sum(r.stats.tokens_accepted for r in results)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion, "stars": stars}


def logprobs_of(entries: Sequence[Any], job: Job) -> dict[str, Any]:
    """Token log-probabilities (TokenLogprob) in the form OpenAI's client reads: a chat's
    ``content`` list, or a completion's parallel lists."""
    if job.chat:
        def one(e: Any) -> dict[str, Any]:
            return {"token": e.text, "logprob": e.logprob, "bytes": list(e.bytes)}

        return {"content": [{**one(e), "top_logprobs": [one(a) for a in e.top_logprobs]}
                            for e in entries]}
    offsets, at = [], 0
    for e in entries:
        offsets.append(at)
        at += len(e.text)
    return {"tokens": [e.text for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{a.text: a.logprob for a in e.top_logprobs} for e in entries],
            "text_offset": offsets}


def trace_of(result: Any) -> dict[str, Any]:
    record = result_to_dict(result)
    return {"segments": record["segments"], "reward": record["reward"]}


class Server:
    """The app's state: the engine, its defaults and the model name."""

    def __init__(self, engine: Engine, model_name: str, defaults: Mapping[str, Any]) -> None:
        self.engine = engine
        self.model_name = model_name
        self.defaults = dict(defaults)
        self.created = int(time.time())

    async def body(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is {length} bytes, more than {MAX_BODY_BYTES}")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BODY_BYTES:
                raise ApiError(413, f"the body is more than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise ApiError(400, "the body is not valid JSON: nested too deeply") from None

    async def complete(self, request: Request, chat: bool) -> Response:
        try:
            job = parse_job(await self.body(request), chat, self.defaults, self.model_name)
            choices = submit_job(self.engine, job, asyncio.get_running_loop())
        except Exception as error:  # noqa: BLE001 - every failure becomes an error object
            return error_of(error).response()
        kind = "chatcmpl" if chat else "cmpl"
        ident = f"{kind}-{uuid.uuid4().hex[:24]}"
        if job.stream:
            # On SIGTERM sse-starlette sets `closing`; the stream then ends itself, saying so,
            # before the grace period's forced cancel.
            closing = anyio.Event()
            return EventSourceResponse(self._events(request, job, choices, ident, closing),
                                       ping=15, shutdown_event=closing,
                                       shutdown_grace_period=SHUTDOWN_GRACE_S)
        return await self._whole(request, job, choices, ident)

    async def _whole(self, request: Request, job: Job, choices: list[Choice],
                     ident: str) -> Response:
        watcher = asyncio.create_task(_disconnected(request))
        try:
            for choice in choices:
                while not choice.done:
                    getter = asyncio.ensure_future(choice.events.get())
                    finished, _ = await asyncio.wait({getter, watcher},
                                                     return_when=asyncio.FIRST_COMPLETED)
                    if watcher in finished:
                        getter.cancel()
                        cancel_all(self.engine, choices)
                        return Response(status_code=499)
                    event, value = getter.result()
                    if event == "result":
                        choice.result, choice.done = value, True
                    elif event == "error":
                        choice.done = True
                        cancel_all(self.engine, choices)
                        return error_of(value).response()
        finally:
            watcher.cancel()
        results = [c.result for c in choices]
        out = []
        for choice, result in zip(choices, results):
            item: dict[str, Any] = {"index": choice.index,
                                    "finish_reason": _finish(result.finish_reason)}
            if job.chat:
                item["message"] = {"role": "assistant", "content": result.text}
            else:
                item["text"] = result.text
            item["logprobs"] = logprobs_of(result.logprobs, job) if job.logprobs else None
            if job.return_trace:
                item["stars_trace"] = trace_of(result)
            out.append(item)
        return JSONResponse({
            "id": ident, "object": "chat.completion" if job.chat else "text_completion",
            "created": int(time.time()), "model": job.model, "choices": out,
            "usage": usage_of(results, job.n)})

    async def _events(self, request: Request, job: Job, choices: list[Choice],
                      ident: str, closing: Any) -> AsyncIterator[str]:
        created = int(time.time())
        obj = "chat.completion.chunk" if job.chat else "text_completion"

        def chunk(choice_items: list[dict[str, Any]], **extra: Any) -> str:
            return json.dumps({"id": ident, "object": obj, "created": created,
                               "model": job.model, "choices": choice_items, **extra})

        def delta(index: int, text: str | None, finish: str | None,
                  first: bool = False) -> dict[str, Any]:
            if job.chat:
                body: dict[str, Any] = {}
                if first:
                    body["role"] = "assistant"
                if text is not None:
                    body["content"] = text
                return {"index": index, "delta": body, "logprobs": None, "finish_reason": finish}
            return {"index": index, "text": text or "", "logprobs": None,
                    "finish_reason": finish}

        # Every choice's events, merged as they come.
        merged: asyncio.Queue = asyncio.Queue()

        async def pump(choice: Choice) -> None:
            while True:
                event = await choice.events.get()
                await merged.put((choice, *event))
                if event[0] in ("result", "error"):
                    return

        pumps = [asyncio.create_task(pump(c)) for c in choices]
        shutdown = asyncio.ensure_future(closing.wait())
        started = set()
        try:
            remaining = len(choices)
            while remaining:
                getter = asyncio.ensure_future(merged.get())
                await asyncio.wait({getter, shutdown}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    cancel_all(self.engine, choices)
                    yield json.dumps(ApiError(
                        503, "the server is shutting down: this response was cut short",
                        kind="server_closing").body())
                    yield "[DONE]"
                    return
                choice, event, value = getter.result()
                if event == "segment":
                    if not value.text and choice.index in started:
                        continue
                    item = delta(choice.index, value.text, None, choice.index not in started)
                    if job.logprobs:  # the segment's tokens', as it is accepted
                        item["logprobs"] = logprobs_of(value.logprobs, job)
                    yield chunk([item])
                    started.add(choice.index)
                elif event == "result":
                    choice.result, choice.done = value, True
                    remaining -= 1
                    last = delta(choice.index, None if job.chat else "",
                                 _finish(value.finish_reason))
                    if job.return_trace:
                        last["stars_trace"] = trace_of(value)
                    yield chunk([last])
                else:
                    choice.done = True
                    cancel_all(self.engine, choices)
                    yield json.dumps(error_of(value).body())
                    yield "[DONE]"
                    return
            if job.include_usage:
                yield chunk([], usage=usage_of([c.result for c in choices], job.n))
            yield "[DONE]"
        finally:
            # A client that goes away mid-stream lands here (the generator is closed).
            cancel_all(self.engine, choices)
            shutdown.cancel()
            for task in pumps:
                task.cancel()


async def _disconnected(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.05)


def _finish(reason: str) -> str:
    return "stop" if reason == "stop" else "length"


class _EngineCollector:
    """The engine's metrics in Prometheus form, read at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self):
        m = self.engine.metrics()
        requests = CounterMetricFamily("stars_requests", "Requests done, by outcome",
                                       labels=["outcome"])
        requests.add_metric(["finished"], m["requests_finished"] - m["requests_cancelled"])
        requests.add_metric(["cancelled"], m["requests_cancelled"])
        requests.add_metric(["failed"], m["requests_failed"])
        yield requests
        counters = [
            ("stars_requests_submitted", "Requests submitted", "requests_submitted"),
            ("stars_tokens_sampled", "Policy tokens sampled", "tokens_sampled"),
            ("stars_tokens_accepted", "Tokens accepted into responses", "tokens_accepted"),
            ("stars_rounds", "Request-rounds of candidate sampling", "rounds"),
            ("stars_candidates_sampled", "Candidates sampled over those rounds",
             "candidates_sampled"),
            ("stars_decode_calls", "llama_decode calls of the policy", "decode_calls"),
            ("stars_decode_tokens", "Tokens in those calls", "decode_tokens"),
            ("stars_decode_seconds", "Seconds in those calls", "decode_seconds"),
            ("stars_reward_calls", "Reward calls", "reward_calls"),
            ("stars_reward_rows", "Rows scored by the reward", "reward_rows"),
            ("stars_reward_seconds", "Seconds in reward calls", "reward_seconds"),
            ("stars_kv_stream_copies", "Whole KV streams copied (isolated: forks, adoptions)",
             "kv_stream_copies"),
        ]
        for name, doc, key in counters:
            yield CounterMetricFamily(name, doc, value=m[key])
        gauges = [
            ("stars_queue_depth", "Requests waiting for admission", m["requests_queued"]),
            ("stars_requests_active", "Requests in the engine loop", m["requests_active"]),
            ("stars_sequences_in_use", "Policy sequence ids held", m["sequences_in_use"]),
            ("stars_sequences_total", "Policy sequence ids", m["sequences_total"]),
            ("stars_kv_cells_in_use", "Policy KV cells held", m["cells_in_use"]),
            ("stars_kv_cells_total", "Policy KV cells (n_ctx)", m["cells_total"]),
            ("stars_round_width_mean", "Candidates per request-round",
             m["candidates_sampled"] / m["rounds"] if m["rounds"] else 0.0),
            ("stars_decode_batch_mean", "Tokens per llama_decode call",
             m["decode_tokens"] / m["decode_calls"] if m["decode_calls"] else 0.0),
        ]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)


def create_app(engine: Engine, model_name: str,
               defaults: Mapping[str, Any] | None = None) -> FastAPI:
    """The FastAPI app over ``engine``; ``defaults`` are the STARS parameters a request does
    not set (``mode`` and any generation parameter)."""
    server = Server(engine, model_name, defaults or {})
    app = FastAPI(title="stars_cpp", version=stars_cpp.__version__)
    registry = CollectorRegistry()
    registry.register(_EngineCollector(engine))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await server.complete(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await server.complete(request, chat=False)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model",
                                             "created": server.created,
                                             "owned_by": "stars_cpp"}]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        m = engine.metrics()
        return {"status": "ok", **{k: m[k] for k in (
            "requests_active", "requests_queued", "sequences_in_use", "sequences_total",
            "cells_in_use", "cells_total")}}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        return error_of(exc).response()

    return app


def serve(engine: Engine, model_name: str, defaults: Mapping[str, Any], host: str,
          port: int, log_level: str = "info") -> None:
    """Runs the server until SIGTERM or Ctrl-C, then shuts down gracefully: no new connection
    is taken, running non-streamed requests finish, each open stream ends with a
    ``server_closing`` error event and ``[DONE]``, and the engine closes."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                # The signal was handled by shutting down: uvicorn would now raise it again and
                # die by it, before the engine closed and with a nonzero status.
                getattr(self, "_captured_signals", []).clear()

    app = create_app(engine, model_name, defaults)
    try:
        GracefulServer(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()
    finally:
        engine.close()
