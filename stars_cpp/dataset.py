"""Datasets: generate for every record of a JSONL file, resumably and deterministically.

A record's output depends only on the model, the reward, the parameters, the seed and its id,
which is its prompt key: not on batching, order, resume, or the worker that ran it. Output
lines are written when a record is complete, flushed and fsynced, so a run killed at any
moment loses at most the records in flight. Rerunning the same command resumes: a torn last
line is dropped and done ids are skipped. The parameters live in a sidecar ``OUT.meta.json``;
a changed parameter set is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stars_cpp.engine import result_to_dict
from stars_cpp.errors import DatasetError, QueueFullError, StarsError
from stars_cpp.settings import DEFAULT_PARAMS, check

PROMPT_FIELDS = ("prompt", "messages")


@dataclass
class Record:
    """One input line: its id and prompt, or why it cannot run. The id is as given (a string or
    an integer, written back as such), or generated ("line N") for a line that gives none."""

    id: Any
    prompt: Any = None
    error: dict[str, str] | None = None
    generated: bool = False

    @property
    def key(self) -> str:
        """The prompt key the record's samples derive from: its id as a string."""
        return self.id if isinstance(self.id, str) else str(self.id)


def id_key(record_id: Any) -> str:
    """An id's identity: typed, so that 1 and "1" are two records."""
    return json.dumps(record_id)


def line_id(number: int) -> str:
    return f"line {number}"


def read_records(path: str | os.PathLike[str], id_field: str = "id",
                 prompt_field: str | None = None) -> Iterator[Record]:
    """The records of a JSONL file, in order. A bad line is a Record with an error. The id is
    the ``id_field`` value as given, else generated from the 1-based line number; a generated
    id never equals a given one."""
    records = list(_read(path, id_field, prompt_field))
    given = {id_key(r.id) for r in records if not r.generated}
    for record in records:
        while record.generated and id_key(record.id) in given:
            record.id += "'"  # "line 3" was given as an id: this one is "line 3'"
        yield record


def _read(path: str | os.PathLike[str], id_field: str,
          prompt_field: str | None) -> Iterator[Record]:
    if _is_parquet(path):
        for number, row in enumerate(_parquet_rows(path), start=1):
            yield parse_object(row, number, id_field, prompt_field)
        return
    # utf-8-sig: a byte order mark is not part of the first record.
    with open(path, encoding="utf-8-sig", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            yield parse_record(line, number, id_field, prompt_field)


def _is_parquet(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).endswith(".parquet")


def _pyarrow(path: str | os.PathLike[str]):
    """pyarrow's parquet module, or a DatasetError naming ``path`` when it is not installed."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{os.fspath(path)}: Parquet needs pyarrow (pip install pyarrow)"
                           ) from None
    return pq


def _parquet_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return _pyarrow(path).read_table(path).to_pylist()


def journal_path(output: str | os.PathLike[str]) -> Path:
    """Where the output lines go: OUT itself, or OUT.parquet.jsonl for a Parquet OUT."""
    return Path(f"{os.fspath(output)}.jsonl") if _is_parquet(output) else Path(output)


def parse_record(line: str, number: int, id_field: str = "id",
                 prompt_field: str | None = None) -> Record:
    try:
        data = json.loads(line)
    except ValueError as error:
        return Record(line_id(number), error=_error("invalid_json", f"line {number}: {error}"),
                      generated=True)
    return parse_object(data, number, id_field, prompt_field)


def parse_object(data: Any, number: int, id_field: str = "id",
                 prompt_field: str | None = None) -> Record:
    if not isinstance(data, dict):
        return Record(line_id(number), error=_error("invalid_record",
                                                    f"line {number} is not a JSON object"),
                      generated=True)
    record_id = data.get(id_field)
    if record_id is None:
        record = parse_object({**data, id_field: line_id(number)}, number, id_field,
                              prompt_field)
        record.generated = True
        return record
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        return Record(line_id(number), generated=True, error=_error(
            "invalid_id", f"line {number}: {id_field} must be a string or an integer, got "
            f"{json.dumps(record_id)}"))
    names = (prompt_field,) if prompt_field else PROMPT_FIELDS
    # A null field counts as absent: Parquet rows hold every column, null where unset.
    name = next((n for n in names if data.get(n) is not None), None)
    if name is None:
        return Record(record_id, error=_error(
            "no_prompt", f"line {number} has no {' or '.join(repr(n) for n in names)} field"))
    prompt = data[name]
    if isinstance(prompt, str):
        if not prompt:
            return Record(record_id, error=_error("no_prompt", f"line {number}: {name} is empty"))
        return Record(record_id, prompt)
    if isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str) for m in prompt):
        return Record(record_id, [{"role": m["role"], "content": m["content"]} for m in prompt])
    return Record(record_id, error=_error(
        "invalid_prompt", f"line {number}: {name} must be a string or a list of chat messages "
        "with string role and content"))


def _error(kind: str, message: str) -> dict[str, str]:
    return {"type": kind, "message": message}


def output_line(record_id: str, result: Any, trace: bool) -> dict[str, Any]:
    record = result_to_dict(result)
    line = {"id": record_id, "text": record["text"], "finish_reason": record["finish_reason"],
            "reward": record["reward"], "stats": record["stats"]}
    if trace:
        line["segments"] = record["segments"]
    return line


def error_line(record_id: str, exc: BaseException | dict[str, str]) -> dict[str, Any]:
    if isinstance(exc, dict):
        return {"id": record_id, "error": exc}
    return {"id": record_id, "error": {"type": type(exc).__name__, "message": str(exc)}}


def lock_output(output: str | os.PathLike[str]) -> Any:
    """Takes OUT.lock (an exclusive flock, released when the process ends however it ends) and
    writes this process's id in it, or raises DatasetError naming the run that holds it: two
    runs on one OUT would write every id twice."""
    import fcntl

    path = Path(f"{os.fspath(output)}.lock")
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until the run ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DatasetError(f"{os.fspath(output)} is being written by another run (process "
                           f"{holder}, {path}): wait for it to end, or use another --output"
                           ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class Output:
    """OUT.jsonl opened for appending after resume: every line is flushed and fsynced. For an
    OUT.parquet the lines go to the journal OUT.parquet.jsonl, and ``finish`` writes the
    Parquet file once every record is in. ``lock`` (from lock_output) is held until release."""

    def __init__(self, path: str | os.PathLike[str], lock: Any = None) -> None:
        self._output_lock = lock
        self.target = Path(path)
        self.path = journal_path(path)
        if self.path != self.target:
            _pyarrow(path)  # fail before any work, not at the end
        self.done = self._resume()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def _resume(self) -> set[str]:
        """Ids already written (as id_key). Only a torn last line (no newline, or not JSON: a
        crash mid-write) is cut off; any other line that is not an output line is an error that
        names it, and nothing is changed."""
        done: set[str] = set()
        if not self.path.exists():
            return done
        with open(self.path, "rb") as f:
            data = f.read()
        lines = data.splitlines(keepends=True)
        good = 0  # bytes up to the last complete line
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                good += len(raw)
                continue
            try:
                line = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                line = None
            if line is None and number == len(lines):
                break  # the torn last line
            if not isinstance(line, dict) or "id" not in line:
                raise DatasetError(
                    f"{self.path}, line {number}: not an output line ({raw[:60]!r}): fix or "
                    "remove it to resume; nothing was changed")
            done.add(id_key(line["id"]))
            good += len(raw)
        if good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
        return done

    def write(self, line: Mapping[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def release(self) -> None:
        """Lets another run take OUT: after close, and after finish wrote a Parquet OUT."""
        if self._output_lock is not None:
            self._output_lock.close()

    def finish(self) -> None:
        """The run is complete: an OUT.parquet gets every line of its journal."""
        if self.path == self.target:
            return
        import pyarrow as pa

        pq = _pyarrow(self.target)
        lines = [json.loads(line) for line in self.path.read_text().splitlines()]
        # Every column in every row (null where a line has none): pyarrow would otherwise take
        # the columns of the first line only.
        columns = list(dict.fromkeys(key for line in lines for key in line))
        pq.write_table(pa.Table.from_pylist([{k: line.get(k) for k in columns} for line in lines]),
                       self.target)


def check_meta(output: str | os.PathLike[str], meta: Mapping[str, Any],
               lines: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Writes ``OUT.meta.json``, or checks it against ``meta`` on resume (when the output
    lines, ``lines`` or OUT itself, exist). Returns the recorded meta (its seed is the one a
    resumed run must use). Raises DatasetError when they differ."""
    path = Path(f"{os.fspath(output)}.meta.json")
    if path.exists() and Path(lines if lines is not None else output).exists():
        try:
            recorded = json.loads(path.read_text())
        except ValueError as error:
            raise DatasetError(f"{path} is not valid JSON ({error}): remove it and {output} to "
                               "start over") from None
        mine = dict(meta)
        if mine.get("params", {}).get("seed") is None:  # a random seed: the recorded one holds
            mine["params"] = {**mine["params"], "seed": recorded.get("params", {}).get("seed")}
        changed = sorted(k for k in set(recorded) | set(mine) if recorded.get(k) != mine.get(k))
        if changed:
            details = "; ".join(_difference(k, recorded.get(k), mine.get(k)) for k in changed)
            raise DatasetError(f"{output} was written with other settings ({details}): use the "
                               "same command to resume, or another --output")
        return recorded
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return dict(meta)


def _difference(key: str, old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return ", ".join(f"{key}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    return f"{key}: {old!r} -> {new!r}"


@dataclass
class Progress:
    """Records done, tokens/s, acceptance and ETA: a tqdm bar on a TTY, else a line every
    ``every`` records; nothing with ``quiet``."""

    total: int
    quiet: bool = False
    every: int = 50
    done: int = 0
    errors: int = 0
    sampled: int = 0
    accepted: int = 0
    start: float = field(default_factory=time.monotonic)
    _bar: Any = None

    def __post_init__(self) -> None:
        if not self.quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="rec", file=sys.stderr, dynamic_ncols=True)

    def update(self, line: Mapping[str, Any]) -> None:
        self.done += 1
        if "error" in line:
            self.errors += 1
        else:
            self.sampled += line["stats"]["policy_tokens_sampled"]
            self.accepted += line["stats"]["tokens_accepted"]
        if self._bar is not None:
            self._bar.set_postfix(self._postfix(), refresh=False)
            self._bar.update(1)
        elif not self.quiet and (self.done % self.every == 0 or self.done == self.total):
            elapsed = time.monotonic() - self.start
            eta = elapsed / self.done * (self.total - self.done)
            print(f"stars-cpp run: {self.done}/{self.total} records, "
                  + ", ".join(f"{k} {v}" for k, v in self._postfix().items())
                  + f", eta {eta:.0f} s", file=sys.stderr, flush=True)

    def _postfix(self) -> dict[str, str]:
        elapsed = max(1e-9, time.monotonic() - self.start)
        rate = self.accepted / self.sampled if self.sampled else 0.0
        return {"tok/s": f"{self.accepted / elapsed:.1f}", "accepted": f"{rate:.0%}",
                "errors": str(self.errors)}

    def close(self) -> dict[str, Any]:
        if self._bar is not None:
            self._bar.close()
        summary = {"records": self.done, "errors": self.errors, "tokens_sampled": self.sampled,
                   "tokens_accepted": self.accepted,
                   "seconds": round(time.monotonic() - self.start, 3)}
        if not self.quiet:
            print("stars-cpp run: done: " + ", ".join(f"{k} {v}" for k, v in summary.items()),
                  file=sys.stderr, flush=True)
        return summary


def run_meta(model: str, reward_spec: str | None, mode: str, params: Mapping[str, Any],
             id_field: str, prompt_field: str | None, trace: bool,
             settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a run's outputs depend on; recorded in OUT.meta.json. ``settings``: the engine's
    and reward's options (kv_layout, judge_question, ...), each by its name."""
    import stars_cpp

    path = Path(model)
    return {"model": os.fspath(path.resolve()) if path.exists() else model,
            "model_bytes": path.stat().st_size if path.exists() else None,
            "reward": reward_spec, "mode": mode,
            "params": {k: params.get(k, DEFAULT_PARAMS[k]) for k in DEFAULT_PARAMS},
            "id_field": id_field, "prompt_field": prompt_field, "trace": trace,
            "settings": dict(sorted((settings or {}).items())),
            "stars_cpp": stars_cpp.__version__}


def prepare(input_path, output_path, *, mode, params, reward_spec, model, id_field,
            prompt_field, batch, trace, settings=None
            ) -> tuple[list[Record], Output, dict[str, Any]]:
    """Checks the setup and OUT.meta.json, resumes OUT, and returns the records still to run,
    the output and the parameters (with the run's seed)."""
    params = dict(params or {})
    check({"mode": mode, **params}, ("generation",))  # before any output is written
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise DatasetError(f"batch must be an integer >= 1, got {batch!r}")
    if not Path(input_path).is_file():
        raise DatasetError(f"input {os.fspath(input_path)!r} is not a file")
    lock = lock_output(output_path)
    try:
        return _prepare(input_path, output_path, mode=mode, params=params,
                        reward_spec=reward_spec, model=model, id_field=id_field,
                        prompt_field=prompt_field, trace=trace, settings=settings, lock=lock)
    except BaseException:
        lock.close()
        raise


def _prepare(input_path, output_path, *, mode, params, reward_spec, model, id_field,
             prompt_field, trace, settings, lock) -> tuple[list[Record], Output, dict[str, Any]]:
    meta_path = Path(f"{os.fspath(output_path)}.meta.json")
    meta = check_meta(output_path, run_meta(model, reward_spec, mode, params, id_field,
                                            prompt_field, trace, settings),
                      journal_path(output_path))
    # A random seed is drawn once and recorded, so that a resume draws the same samples.
    seed = meta["params"].get("seed")
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little") >> 1
        meta["params"]["seed"] = seed
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    params["seed"] = seed
    records = list(read_records(input_path, id_field, prompt_field))
    out = Output(output_path, lock)
    todo, seen = [], set(out.done)
    for record in records:
        if id_key(record.id) in seen:
            continue  # done in an earlier run, or a duplicate id of this file (first wins)
        seen.add(id_key(record.id))
        todo.append(record)
    return todo, out, params


def run_dataset(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *,
                engine: Any, mode: str = "stars", params: Mapping[str, Any] | None = None,
                reward_spec: str | None = None, model: str = "", id_field: str = "id",
                prompt_field: str | None = None, batch: int = 16, trace: bool = False,
                quiet: bool = False, fail_fast: bool = False, progress_every: int = 50,
                summary: dict[str, Any] | None = None,
                settings: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Runs every record of ``input_path`` not yet in ``output_path`` on ``engine``, ``batch``
    records in flight, and yields each output line as it is written (in completion order).

    ``reward_spec`` and ``model`` only describe the run in OUT.meta.json (the engine holds
    them). Raises DatasetError for a bad setup or a resume with other parameters; with
    ``fail_fast`` a bad record raises DatasetError too, else it is written as an error line.
    ``summary`` (a dict) receives the final counts. OUT.meta.json records the engine's options
    (``engine.options``) and ``settings`` (what else shaped the outputs: a judge's question,
    say), and a resume with any of them changed is refused.
    """
    settings = {**getattr(engine, "options", {}), **(settings or {})}
    todo, out, params = prepare(input_path, output_path, mode=mode, params=params,
                                reward_spec=reward_spec, model=model, id_field=id_field,
                                prompt_field=prompt_field, batch=batch, trace=trace,
                                settings=settings)
    progress = Progress(len(todo), quiet=quiet, every=progress_every)
    with finishing(out, progress, summary):
        for line in _run(engine, todo, mode, params, batch, trace):
            yield emit(line, out, progress, fail_fast)


def emit(line: dict[str, Any], out: Output, progress: Progress,
         fail_fast: bool) -> dict[str, Any]:
    """Writes one finished record's line (or, with ``fail_fast``, stops at an error line)."""
    if "error" in line and fail_fast:
        raise DatasetError(f"record {line['id']}: {line['error']['message']}")
    out.write(line)
    progress.update(line)
    return line


@contextlib.contextmanager
def finishing(out: Output, progress: Progress, summary: dict[str, Any] | None):
    """Closes the output (writing a Parquet OUT when the run got through) and the progress,
    and fills ``summary``, however the run ends."""
    try:
        yield
        out.close()
        out.finish()
    finally:
        out.close()
        out.release()
        counts = progress.close()
        if summary is not None:
            summary.update(counts)


def _run(engine, todo, mode, params, batch, trace):
    import queue

    finished: queue.Queue = queue.Queue()
    in_flight: dict[str, int] = {}  # id_key(record id) -> request id
    pending = iter(todo)
    retry: list[Record] = []  # refused by a full queue: submitted again later

    def fill() -> None:
        while len(in_flight) < batch:
            record = retry.pop() if retry else next(pending, None)
            if record is None:
                return
            if record.error is not None:
                finished.put(error_line(record.id, record.error))
                continue
            try:
                request_id = engine.submit(
                    record.prompt, mode=mode, key=record.key,
                    on_result=lambda r, i=record.id: finished.put(output_line(i, r, trace)),
                    on_error=lambda e, i=record.id: finished.put(error_line(i, e)), **params)
            except QueueFullError:
                # The engine's queue (max_queue, shared with other callers) is full: not this
                # record's fault. Submit it again as requests finish, or after a pause.
                retry.append(record)
                return
            except StarsError as error:  # a prompt over the context, say: this record only
                finished.put(error_line(record.id, error))
                continue
            in_flight[id_key(record.id)] = request_id

    fill()
    try:
        remaining = len(todo)
        while remaining:
            try:
                line = finished.get(timeout=0.1)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                fill()  # a full queue may have room now
                continue
            remaining -= 1
            in_flight.pop(id_key(line["id"]), None)
            yield line
            fill()
    finally:
        for request_id in in_flight.values():
            engine.cancel(request_id)


__all__ = ["DatasetError", "Record", "read_records", "run_dataset"]
