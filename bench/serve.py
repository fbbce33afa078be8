"""Serving throughput and latency: `stars-cpp serve` under 1..64 concurrent clients, in plain
and STARS (self-judge) mode, against `python -m llama_cpp.server` (and llama.cpp's
`llama-server` when --llama-server gives a binary) on the same model and machine, with the raw
batched llama_decode ceiling at batch = clients measured right after each plain level.

Each client sends its requests one after the other (non-streamed /v1/completions, the same
prompt and max_tokens everywhere, a seed per request). Aggregate tokens/s is the completion
tokens of every request over the level's wall time; latency is per request.

    python bench/serve.py [--quick] [--model PATH] [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from decode_ceiling import Ceiling, _quiet  # noqa: E402

from stars_cpp.models import smollm2_path  # noqa: E402

PROMPT = "Here is a long story about a lighthouse keeper and the storm that changed her life:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict, timeout: float = 900) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


class Server:
    """A server subprocess on a free port, up once its health (or models) endpoint answers."""

    def __init__(self, name: str, command: list[str], port: int, probe: str) -> None:
        self.name, self.port = name, port
        self.log = open(_common.RESULTS / f".serve_{name}.log", "w")  # noqa: SIM115
        # Not from the repository root, where `-m stars_cpp` would import the source tree.
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=Path(__file__).resolve().parent)
        deadline = time.monotonic() + 300
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", probe)
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start; see {self.log.name}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_level(port: int, clients: int, per_client: int, body: dict) -> dict:
    latencies: list[float] = []
    tokens: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for r in range(per_client):
            start = time.perf_counter()
            try:
                out = post(port, {**body, "seed": 1000 * c + r})
            except Exception as error:  # noqa: BLE001 - recorded and reported
                with lock:
                    errors.append(str(error))
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                tokens.append(out["usage"]["completion_tokens"])

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed: {errors[0]}")
    return {"clients": clients, "requests": len(latencies), "tokens": int(sum(tokens)),
            "seconds": wall, "tokens_per_s": sum(tokens) / wall,
            "p50_s": float(np.percentile(latencies, 50)),
            "p95_s": float(np.percentile(latencies, 95))}


def sweep(server: Server, levels: list[int], per_client: int, body: dict, label: str,
          ceiling: Ceiling | None = None) -> list:
    """One row per level. With `ceiling`, the raw decode rate at batch = clients is measured
    right after each level (the server idle), so that the two see the same machine."""
    post(server.port, {**body, "max_tokens": 4, "seed": 0})  # warm up
    rows = []
    for clients in levels:
        row = {"server": label, **run_level(server.port, clients, per_client, body)}
        extra = ""
        if ceiling is not None:
            row["ceiling_tokens_per_s"] = float(np.median(
                [ceiling.run(clients, body["max_tokens"])["tokens_per_s"] for _ in range(2)]))
            row["of_ceiling"] = row["tokens_per_s"] / row["ceiling_tokens_per_s"]
            extra = f", ceiling {row['ceiling_tokens_per_s']:7.1f} ({row['of_ceiling']:.0%})"
        rows.append(row)
        print(f"{label:28s} clients {clients:3d}: {row['tokens_per_s']:7.1f} tok/s, p50 "
              f"{row['p50_s']:6.2f} s, p95 {row['p95_s']:6.2f} s{extra}", flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label in dict.fromkeys(r["server"] for r in rows):
        mine = [r for r in rows if r["server"] == label]
        ax.plot([r["clients"] for r in mine], [r["tokens_per_s"] for r in mine], "o-",
                label=label)
    plain = [r for r in rows if "ceiling_tokens_per_s" in r]
    ax.plot([r["clients"] for r in plain], [r["ceiling_tokens_per_s"] for r in plain], "--",
            c="gray", label="llama_decode ceiling (batch = clients)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("completion tokens / s (aggregate)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1, 4 and 16 clients; 32 tokens (plain) and 24 (stars)")
    parser.add_argument("--model", default=None, help="GGUF (default: packaged SmolLM2)")
    parser.add_argument("--llama-server", default=None, help="a llama-server binary to compare")
    parser.add_argument("--max-tokens", type=int, default=None, help="plain (default 128)")
    parser.add_argument("--stars-max-tokens", type=int, default=None,
                        help="stars mode, several times costlier per token (default 48)")
    parser.add_argument("--per-client", type=int, default=1, help="requests per client")
    parser.add_argument("--skip-llama-cpp-python", action="store_true")
    parser.add_argument("--name", default=None, help="results file stem")
    args = parser.parse_args()

    model = args.model or str(smollm2_path())
    levels = [1, 4, 16] if args.quick else [1, 4, 16, 64]
    max_tokens = args.max_tokens or (32 if args.quick else 128)
    stars_tokens = args.stars_max_tokens or (24 if args.quick else 48)
    threads = os.cpu_count() or 1
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.8}
    stars_body = {**body, "max_tokens": stars_tokens, "mode": "stars"}
    # Room for the widest level: prompt + max_tokens per client, and STARS' candidates.
    n_ctx = 64 + max(levels) * (32 + max(max_tokens, stars_tokens + 5 * 16))

    import ctypes

    import llama_cpp

    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p())
    ceiling = Ceiling(model, 1024 + max(levels) * max_tokens, threads, 0)
    ceiling.run(1, 4)  # warm the weights' pages

    rows: list[dict] = []
    stars = [sys.executable, "-m", "stars_cpp", "serve", "--model", model, "--n-ctx",
             str(n_ctx), "--max-queue", "0", "--log-level", "warning", "--n-threads",
             str(threads)]
    port = free_port()
    server = Server("stars_plain", [*stars, "--reward", "none", "--port", str(port)], port,
                    "/health")
    try:
        rows += sweep(server, levels, args.per_client, {**body, "mode": "plain"},
                      "stars_cpp plain", ceiling)
    finally:
        server.stop()
    port = free_port()
    server = Server("stars_judge", [*stars, "--reward", "judge:policy", "--port", str(port)],
                    port, "/health")
    try:
        rows += sweep(server, levels, args.per_client, stars_body,
                      "stars_cpp stars (self-judge)")
    finally:
        server.stop()
    if not args.skip_llama_cpp_python:
        port = free_port()
        server = Server("llama_cpp_server", [
            sys.executable, "-m", "llama_cpp.server", "--model", model, "--n_ctx", "4096",
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch",
            str(threads)], port, "/v1/models")
        try:
            rows += sweep(server, levels, args.per_client, body, "llama_cpp.server")
        finally:
            server.stop()
    if args.llama_server:
        port = free_port()
        server = Server("llama_server", [
            args.llama_server, "-m", model, "--port", str(port), "-c", str(n_ctx), "-np",
            str(max(levels)), "-t", str(threads), "--cont-batching"], port, "/health")
        try:
            rows += sweep(server, levels, args.per_client, body, "llama-server")
        finally:
            server.stop()

    ceiling.close()

    def at16(label: str, key: str = "tokens_per_s") -> float | None:
        hit = [r for r in rows if r["server"] == label and r["clients"] == 16]
        return hit[0][key] if hit else None

    ours = at16("stars_cpp plain")
    targets = {
        "ceiling_batch16_tokens_per_s": at16("stars_cpp plain", "ceiling_tokens_per_s"),
        "plain16_over_ceiling16": at16("stars_cpp plain", "of_ceiling"),
    }
    if at16("llama_cpp.server"):
        targets["plain16_over_llama_cpp_server"] = ours / at16("llama_cpp.server")
    if at16("llama-server"):
        targets["plain16_over_llama_server"] = ours / at16("llama-server")
    for key, value in targets.items():
        print(f"{key}: {value:.3f}")
    name = args.name or ("serve_quick" if args.quick else "serve")
    payload = {"bench": "serve", "machine": _common.machine(), "model": Path(model).name,
               "max_tokens": max_tokens, "stars_max_tokens": stars_tokens,
               "per_client": args.per_client, "levels": levels,
               "rows": rows, "targets": targets}
    out = _common.write_json(name, payload)
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
