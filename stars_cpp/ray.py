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
from stars_cpp.settings import ENGINE, check, default, output_settings


class _EngineActor:
    """One Engine per Ray actor; each batch of records runs on it concurrently."""

    def __init__(self, model: str, engine_settings: Mapping[str, Any], mode: str,
                 params: Mapping[str, Any], trace: bool) -> None:
        import stars_cpp
        from stars_cpp.rewards import reward_from_settings

        reward = reward_from_settings(engine_settings)
        self.engine = stars_cpp.Engine(
            model, reward, **{k: v for k, v in engine_settings.items() if k in ENGINE})
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
        model: str, engine_settings: Mapping[str, Any] | None = None, mode: str = "stars",
        params: Mapping[str, Any] | None = None, workers: int = 2, address: str | None = None,
        id_field: str = "id", prompt_field: str | None = None, batch: int = 16,
        trace: bool = False, quiet: bool = False, fail_fast: bool = False,
        progress_every: int = 50, summary: dict[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Runs the dataset on Ray with ``workers`` Engine actors (``batch`` records each in
    flight) and yields each output line as it is written. ``engine_settings``: every engine
    and reward setting by name (stars_cpp.settings; ``reward`` the spec, "none" for none),
    each passed to every worker. Connects to ``address`` (a running cluster, or "auto"), or
    starts a local Ray when none is initialized. Actors take one GPU each when the llama.cpp
    build offloads (``n_gpu_layers`` != 0). OUT.meta.json records the settings a text depends
    on, and ``settings``, as run_dataset does."""
    try:
        import ray
    except ImportError:
        raise DatasetError("Ray is not installed: pip install 'stars_cpp[ray]'") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DatasetError(f"workers must be an integer >= 1, got {workers!r}")
    engine_settings = dict(engine_settings or {})
    check(engine_settings, ("engine", "reward"))
    reward_spec = engine_settings.get("reward", default("reward"))
    reward_spec = None if reward_spec == "none" else reward_spec
    settings = {**output_settings(engine_settings), **(settings or {})}
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
        data = ray.data.from_items(items).map_batches(
            _EngineActor, batch_size=batch, concurrency=workers,
            num_gpus=1 if engine_settings.get("n_gpu_layers") else 0,
            fn_constructor_kwargs={"model": model, "engine_settings": engine_settings,
                                   "mode": mode, "params": params, "trace": trace})
        for row in data.iter_rows():
            yield emit(json.loads(row["line"]), out, progress, fail_fast)
