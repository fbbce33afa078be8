"""The native stars-cli (built by `make native`, which `make test` runs first) against the
Python CLI: the same flags give the same Result, and bad input exits 2 with one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import LLAMA_HPARAMS, write_tiny_llama

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


def _both_raw(stars_cli, args: list[str], cwd) -> tuple[subprocess.CompletedProcess, ...]:
    native = _run([stars_cli, "generate", *args, "--json", "--verbose"], cwd)
    python = _run([sys.executable, "-m", "stars_cpp", "generate", *args, "--json", "--verbose"],
                  cwd)
    assert native.returncode == 0, native.stderr
    assert python.returncode == 0, python.stderr
    return native, python


def _both(stars_cli, args: list[str], cwd) -> tuple[dict, dict, str, str]:
    native, python = _both_raw(stars_cli, args, cwd)
    return json.loads(native.stdout), json.loads(python.stdout), native.stderr, python.stderr


def _untimed(stdout: str, stderr: str) -> tuple[str, list[str]]:
    """The --json text and the --verbose trace's lines, with the seconds_* values blanked: all
    else must be the same bytes in both CLIs (llama.cpp's own log lines are left out)."""
    json_text = re.sub(r'("seconds_\w+": )[-+.e\d]+', r"\1T", stdout)
    trace = [re.sub(r"(seconds_\w+=)\S+", r"\1T", line) for line in stderr.splitlines()
             if line.startswith(("segment ", "stats: ", "finish_reason="))]
    return json_text, trace


def _without(result: dict, names: tuple[str, ...] = TIMING) -> dict:
    return {**result, "stats": {k: v for k, v in result["stats"].items() if k not in names}}


@pytest.mark.real
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


@pytest.fixture(scope="module")
def reward_models(model_dir, tiny_bert, tiny_llama, tmp_path_factory) -> dict[str, Path]:
    """A judge, a classifier under a path with colons (the two CLIs once split
    classifier:PATH:LABEL at different colons), a causal reward model and a probe on the
    policy's last layer, all tiny."""
    odd = tmp_path_factory.mktemp("models") / "dir:with:colons"
    odd.mkdir()
    shutil.copy(tiny_bert, odd / "bert:v1.gguf")
    n_embd = int(LLAMA_HPARAMS["n_embd"])
    head = [0.05 * ((i * 7) % 11 - 5) for i in range(n_embd)]
    from stars_cpp import _core

    probe = odd.parent / "tiny.probe.gguf"
    _core.write_probe(str(probe), {
        "layer": int(LLAMA_HPARAMS["n_layer"]), "mean": [0.0] * n_embd, "std": [1.0] * n_embd,
        "weight": head, "bias": 0.1,
        "policy": _core.identify_policy(_core.Model.load(str(tiny_llama), 0))})
    return {
        "probe": probe,
        "judge": write_tiny_llama(model_dir / "tiny-cli-judge.gguf", seed=4),
        "classifier": odd / "bert:v1.gguf",
        "causal": write_tiny_llama(model_dir / "tiny-cli-causal-rm.gguf", seed=3,
                                   metadata={"stars.reward.head.weight": head,
                                             "stars.reward.head.bias": 0.25,
                                             "stars.reward.head.row": -1}),
    }


@pytest.mark.parametrize("reward, mode", [
    ("judge:policy", "best_of_n"), ("judge:policy", "stars"), ("judge:JUDGE", "stars"),
    ("classifier:CLASSIFIER:1", "stars"), ("causal:CAUSAL", "stars"), ("probe:PROBE", "stars"),
])
def test_same_json_and_trace_bytes_as_the_python_cli(stars_cli, tiny_llama, reward_models,
                                                     reward, mode, tmp_path):
    # The tiny F32 models at a fixed width: both CLIs print the core's --json and --verbose
    # text for the same Result, so the bytes match but for the timings.
    for name, path in reward_models.items():
        reward = reward.replace(name.upper(), str(path))
    args = ["hello", "--model", str(tiny_llama), "--mode", mode, "--reward", reward,
            "--max-tokens", "12", "--segment-tokens", "4", "--seed", "3", "--n-ctx", "512",
            "--stop", "\n\n", "--width", "fixed"]
    if reward.startswith("judge:"):
        args += ["--judge-yes", " yes", "--judge-no", " no"]
    native, python = _both_raw(stars_cli, args, tmp_path)
    native_json, native_trace = _untimed(native.stdout, native.stderr)
    python_json, python_trace = _untimed(python.stdout, python.stderr)
    assert native_json == python_json
    assert native_trace == python_trace
    assert len(native_trace) == len(json.loads(native.stdout)["segments"]) + 2
    assert json.loads(native.stdout)["reward"] is not None


@pytest.mark.parametrize("argv, message", [
    (["generate", "hi", "--model", "M", "--candidates", "x"], "--candidates: invalid int"),
    (["generate", "hi", "--model", "M", "--bogus", "1"], "unrecognized arguments: --bogus"),
    (["generate", "--model", "M"], "required: prompt"),
    (["generate", "hi"], "required: --model"),
    (["frobnicate"], "invalid choice"),
    (["generate", "hi", "--model", "M", "--reward", "python:m:f"], "need the Python package"),
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
