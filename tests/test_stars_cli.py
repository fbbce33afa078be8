"""The native stars-cli (built by `make native`, which `make test` runs first) against the
Python CLI: the same flags give the same Result, and bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STARS_CLI = Path(__file__).resolve().parent.parent / "build" / "native" / "stars-cli"
TIMING = ("seconds_policy", "seconds_reward", "seconds_total")
# What a round's width changes: the candidates sampled past the accepted one, and their cost.
WIDTH_COSTS = ("policy_tokens_sampled", "policy_tokens_decoded", "tokens_wasted", "rounds",
               "mean_round_width", "reward_calls", "reward_rows", "reward_tokens_decoded")


@pytest.fixture(scope="module")
def stars_cli() -> str:
    assert STARS_CLI.is_file(), f"{STARS_CLI} is missing: run make native (make test does)"
    return str(STARS_CLI)


def _run(argv: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=300)


def _both(stars_cli, args: list[str], cwd) -> tuple[dict, dict, str, str]:
    native = _run([stars_cli, "generate", *args, "--json", "--verbose"], cwd)
    python = _run([sys.executable, "-m", "stars_cpp", "generate", *args, "--json", "--verbose"],
                  cwd)
    assert native.returncode == 0, native.stderr
    assert python.returncode == 0, python.stderr
    return json.loads(native.stdout), json.loads(python.stdout), native.stderr, python.stderr


def _without(result: dict, names: tuple[str, ...] = TIMING) -> dict:
    return {**result, "stats": {k: v for k, v in result["stats"].items() if k not in names}}


@pytest.mark.parametrize("mode, kv_layout", [("plain", "isolated"), ("stars", "isolated"),
                                             ("stars", "shared")])
def test_same_result_as_the_python_cli(stars_cli, smollm2, mode, kv_layout, tmp_path):
    # At the default adaptive width: isolated sequences make a width change no token, and the
    # shared layout chooses its widths without timings, so both CLIs' runs take the same rounds.
    args = ["Give me two tips for sleeping well.", "--model", str(smollm2), "--mode", mode,
            "--max-tokens", "32", "--segment-tokens", "8", "--seed", "7", "--n-ctx", "1024",
            "--kv-layout", kv_layout]
    if mode == "stars":
        args += ["--reward", "judge:policy"]
    native, python, native_err, python_err = _both(stars_cli, args, tmp_path)
    assert native["text"] == python["text"]
    # Isolated, the width follows measured timings: what it sampled beyond the attempts it
    # considered may differ, never a token.
    ignore = TIMING + (WIDTH_COSTS if kv_layout == "isolated" else ())
    assert _without(native, ignore)["stats"] == _without(python, ignore)["stats"]
    for ours, theirs in zip(native["segments"], python["segments"]):
        assert ours["tokens"] == theirs["tokens"] and ours["attempts"] == theirs["attempts"]
        assert ours["rewards"] == pytest.approx(theirs["rewards"], abs=1e-4)
    # The trace too, but for its timings.
    def trace(err: str) -> list[str]:
        return [" ".join(w for w in line.split() if not w.startswith(ignore))
                for line in err.splitlines() if line.startswith(("segment", "stats", "finish"))]
    assert trace(native_err) == trace(python_err)


def test_same_json_layout_as_the_python_cli(stars_cli, tiny_llama, tmp_path):
    # The tiny F32 model: byte-for-byte the same JSON but for the timings.
    args = ["hello", "--model", str(tiny_llama), "--mode", "best_of_n", "--reward",
            "judge:policy", "--judge-yes", " yes", "--judge-no", " no", "--max-tokens", "12",
            "--segment-tokens", "4", "--seed", "3", "--n-ctx", "512", "--stop", "\n\n",
            "--width", "fixed"]
    native, python, _, _ = _both(stars_cli, args, tmp_path)
    assert _without(native) == _without(python)


@pytest.mark.parametrize("argv, message", [
    (["generate", "hi", "--model", "M", "--candidates", "x"], "--candidates: invalid int"),
    (["generate", "hi", "--model", "M", "--bogus", "1"], "unrecognized arguments: --bogus"),
    (["generate", "--model", "M"], "required: prompt"),
    (["generate", "hi"], "required: --model"),
    (["frobnicate"], "invalid choice"),
    (["generate", "hi", "--model", "M", "--reward", "python:m:f"], "needs the Python package"),
])
def test_bad_arguments_exit_2_with_one_line(stars_cli, tiny_llama, argv, message, tmp_path):
    argv = [str(tiny_llama) if a == "M" else a for a in argv]
    done = _run([stars_cli, *argv], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_bad_parameter_values_exit_2(stars_cli, tiny_llama, tmp_path):
    done = _run([stars_cli, "generate", "hi", "--model", str(tiny_llama), "--mode", "plain",
                 "--temperature", "-1"], tmp_path)
    assert done.returncode == 2 and "temperature" in done.stderr, done.stderr
    done = _run([stars_cli, "generate", "hi", "--model", str(tiny_llama), "--mode", "plain",
                 "--n-threads", "100000"], tmp_path)
    assert done.returncode == 2 and "n_threads must be in [0, " in done.stderr, done.stderr


def test_missing_model_names_the_file(stars_cli, tmp_path):
    missing = tmp_path / "nope.gguf"
    done = _run([stars_cli, "generate", "hi", "--model", str(missing)], tmp_path)
    assert done.returncode != 0 and str(missing) in done.stderr, done.stderr


def test_bench_prints_the_edge_numbers(stars_cli, tiny_llama, tmp_path):
    done = _run([stars_cli, "bench", "--model", str(tiny_llama), "--reward", "judge:policy",
                 "--judge-yes", " yes", "--judge-no", " no", "--n-ctx", "512"], tmp_path)
    assert done.returncode == 0, done.stderr
    numbers = json.loads(done.stdout)
    assert numbers["build"] == "stars-cli" and numbers["accepted_tokens"] == 64
    for key in ("peak_rss_mib", "load_s", "first_segment_s", "ms_per_accepted_token",
                "policy_tokens_per_s", "reward_ms_per_candidate"):
        assert numbers[key] > 0, numbers


def test_public_cpp_api_scores_a_round_like_the_python_package(tiny_llama, tmp_path):
    # build/native/public_api_test is compiled against cpp/include alone (no src/, no llama.h).
    program = STARS_CLI.parent / "public_api_test"
    assert program.is_file(), f"{program} is missing: run make native (make test does)"
    done = _run([str(program), str(tiny_llama), "hello", "the trunk", " one", " two"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    native = [float(x) for x in lines[:2]]
    scratch = [float(x) for x in lines[2:4]]
    import stars_cpp

    judge = stars_cpp.JudgeReward(str(tiny_llama), yes=" yes", no=" no")
    python = judge(["hello", "hello"], ["the trunk one", "the trunk two"])
    # Incremental (trunk cached, then each segment) against from scratch: F32 rounding only.
    assert native == pytest.approx(python, abs=1e-4)
    assert scratch == pytest.approx(python, abs=1e-6)  # the same computation in both builds
    n_prompt = len(judge.model.tokenize("hello", add_special=False))
    assert lines[4] == f"{n_prompt} prompt tokens, round trip exact"
    assert lines[5] == "generated 8 tokens"


def test_a_classifier_path_with_colons_reads_the_same_in_both_clis(stars_cli, tiny_llama,
                                                                   tiny_bert, tmp_path):
    # The two CLIs once split classifier:PATH:LABEL at different colons.
    import shutil

    odd = tmp_path / "dir:with:colons"
    odd.mkdir()
    shutil.copy(tiny_bert, odd / "bert:v1.gguf")
    args = ["hello", "--model", str(tiny_llama), "--mode", "best_of_n", "--candidates", "2",
            "--reward", f"classifier:{odd / 'bert:v1.gguf'}:1", "--max-tokens", "4",
            "--seed", "3", "--n-ctx", "256"]
    native, python, _, _ = _both(stars_cli, args, tmp_path)
    assert _without(native) == _without(python)
    assert native["reward"] is not None
