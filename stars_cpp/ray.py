"""Datasets on Ray: the records of a JSONL file through Ray Data's ``map_batches`` over a pool
of Engine actors, each loading the model once. Same output format, resume and determinism as
``stars_cpp.run_dataset``: a record's output depends on its id, not on the worker that ran it.
Needs ``pip install 'stars_cpp[ray]'``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from stars_cpp.dataset import (
    DatasetError,
    Progress,
    Record,
    emit,
    error_line,
    finishing,
    output_line,
    prepare,
)
from stars_cpp.engine import text_options


class _EngineActor:
    """One Engine per Ray actor; each batch of records runs on it concurrently."""

    def __init__(self, model: str, reward_spec: str | None, judge: Mapping[str, str],
                 engine_options: Mapping[str, Any], mode: str, params: Mapping[str, Any],
                 trace: bool) -> None:
        import stars_cpp
        from stars_cpp.rewards import parse_reward_spec

        kv_type = engine_options.get("kv_type", "f16")
        reward = parse_reward_spec(reward_spec, kv_type=kv_type, **judge) if reward_spec else None
        self.engine = stars_cpp.Engine(model, reward, **engine_options)
        self.mode, self.params, self.trace = mode, dict(params), trace

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        import threading

        ids = [str(i) for i in batch["id"]]  # each the JSON of its record's id, as given
        lines: dict[str, dict[str, Any]] = {}
        done = threading.Event()
        lock = threading.Lock()

        def finish(record_id: str, line: dict[str, Any]) -> None:
            with lock:
                lines[record_id] = line
                if len(lines) == len(ids):
                    done.set()

        for encoded, prompt in zip(ids, batch["prompt"]):
            record = Record(json.loads(encoded))
            try:
                self.engine.submit(
                    json.loads(prompt), mode=self.mode, key=record.key,
                    on_result=lambda r, e=encoded, i=record.id: finish(
                        e, output_line(i, r, self.trace)),
                    on_error=lambda x, e=encoded, i=record.id: finish(e, error_line(i, x)),
                    **self.params)
            except Exception as error:  # noqa: BLE001 - this record only
                finish(encoded, error_line(record.id, error))
        if ids:
            done.wait()
        return {"id": ids, "line": [json.dumps(lines[i], ensure_ascii=False) for i in ids]}


def run(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *,
        model: str, reward_spec: str | None = None, judge: Mapping[str, str] | None = None,
        mode: str = "stars", params: Mapping[str, Any] | None = None, workers: int = 2,
        address: str | None = None, id_field: str = "id", prompt_field: str | None = None,
        batch: int = 16, trace: bool = False, quiet: bool = False, fail_fast: bool = False,
        progress_every: int = 50, n_ctx: int = 4096, n_gpu_layers: int = 0,
        n_threads: int | None = None, kv_type: str = "f16", sampling: str = "auto",
        kv_layout: str = "isolated", summary: dict[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Runs the dataset on Ray with ``workers`` Engine actors (``batch`` records each in
    flight) and yields each output line as it is written. Connects to ``address`` (a running
    cluster, or "auto"), or starts a local Ray when none is initialized. Actors take one GPU
    each when the llama.cpp build offloads (``n_gpu_layers`` != 0). OUT.meta.json records the
    engine options, the judge's and ``settings``, as run_dataset does."""
    try:
        import ray
    except ImportError:
        raise DatasetError("Ray is not installed: pip install 'stars_cpp[ray]'") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DatasetError(f"workers must be an integer >= 1, got {workers!r}")
    settings = {**text_options(kv_type, sampling, kv_layout, n_gpu_layers),
                **{f"judge_{k}": v for k, v in (judge or {}).items()}, **(settings or {})}
    todo, out, params = prepare(input_path, output_path, mode=mode, params=params,
                                reward_spec=reward_spec, model=model, id_field=id_field,
                                prompt_field=prompt_field, batch=batch, trace=trace,
                                settings=settings)
    progress = Progress(len(todo), quiet=quiet, every=progress_every)
    with finishing(out, progress, summary):
        for record in todo:
            if record.error is not None:
                yield emit(error_line(record.id, record.error), out, progress, fail_fast)
        # Ids travel as JSON: a column of Ray Data holds one type, ids may be strings and ints.
        items = [{"id": json.dumps(r.id), "prompt": json.dumps(r.prompt)}
                 for r in todo if r.error is None]
        if not items:
            return
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
        options = {"n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers, "n_threads": n_threads,
                   "kv_type": kv_type, "sampling": sampling, "kv_layout": kv_layout}
        data = ray.data.from_items(items).map_batches(
            _EngineActor, batch_size=batch, concurrency=workers,
            num_gpus=1 if n_gpu_layers else 0,
            fn_constructor_kwargs={"model": model, "reward_spec": reward_spec,
                                   "judge": dict(judge or {}), "engine_options": options,
                                   "mode": mode, "params": params, "trace": trace})
        for row in data.iter_rows():
            yield emit(json.loads(row["line"]), out, progress, fail_fast)
