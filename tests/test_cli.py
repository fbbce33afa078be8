"""The command line: same engine, JSON output, one-line errors with status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LEXICAL = "python:stars_cpp.rewards:lexical_diversity"


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    # cwd outside the checkout, so `-m stars_cpp` imports the installed package.
    return subprocess.run([sys.executable, "-m", "stars_cpp", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_generate_json_matches_the_api(tiny_llama, tmp_path):
    import stars_cpp
    from stars_cpp.rewards import lexical_diversity

    out = run_cli("generate", "Once upon a time", "--model", str(tiny_llama), "--raw",
                  "--reward", LEXICAL, "--segment-tokens", "4", "--candidates", "2",
                  "--max_tokens", "12",
                  "--seed", "5", "--threshold", "0.4", "--acceptance", "hard", "--json",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = stars_cpp.Engine(str(tiny_llama), lexical_diversity).generate(
        "Once upon a time", segment_tokens=4, candidates=2, max_tokens=12, seed=5,
        threshold=0.4, acceptance="hard")
    assert data["text"] == expected.text
    assert data["tokens"] == list(expected.tokens)
    assert set(data["stats"]) >= {"policy_tokens_sampled", "reward_calls", "seconds_total"}
    assert data["segments"][0]["threshold"] == pytest.approx(expected.segments[0].threshold)
    # The console script is the same command.
    script = Path(sys.executable).parent / "stars-cpp"
    same = subprocess.run([str(script), *out.args[3:]], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert same.returncode == 0 and json.loads(same.stdout)["tokens"] == data["tokens"]


def test_verbose_prints_trace_and_stats(tiny_llama, tmp_path):
    out = run_cli("generate", "Hello", "--model", str(tiny_llama), "--reward", LEXICAL,
                  "--max-tokens", "8", "--segment-tokens", "4", "--seed", "1", "--verbose",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "segment 0: attempts=" in out.stderr and "tau=" in out.stderr
    assert "policy_tokens_decoded=" in out.stderr


@pytest.mark.real
def test_default_model_is_smollm2_judging_itself(tmp_path):
    out = run_cli("generate", "What is 2+2?", "--max-tokens", "16", "--segment-tokens", "8",
                  "--seed", "1", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["stats"]["tokens_accepted"] <= 16
    # The default reward is the policy's weights asked a helpfulness question.
    assert data["stats"]["reward_tokens_decoded"] > 0 and data["reward"] is not None


def test_gguf_reward_flags(tiny_llama, tiny_bert, tmp_path):
    classified = run_cli("generate", "Hi", "--model", str(tiny_llama), "--raw", "--reward",
                         f"classifier:{tiny_bert}:1,0", "--max-tokens", "8", "--seed", "2",
                         "--json", cwd=tmp_path)
    assert classified.returncode == 0, classified.stderr
    import stars_cpp

    data = json.loads(classified.stdout)
    expected = stars_cpp.ClassifierReward(str(tiny_bert), label=(1, 0))(["Hi"], [data["text"]])[0]
    assert data["reward"] == pytest.approx(expected, abs=1e-4)
    # A judge from a path, with its own question; the tiny vocabulary has " yes" and " no".
    judged = run_cli("generate", "Hi", "--model", str(tiny_llama), "--raw", "--reward",
                     f"judge:{tiny_llama}", "--judge-question", "Is it good?", "--judge-yes",
                     " yes", "--judge-no", " no", "--max-tokens", "8", "--seed", "2", "--json",
                     cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr
    judge = stars_cpp.JudgeReward(str(tiny_llama), question="Is it good?", yes=" yes", no=" no")
    data = json.loads(judged.stdout)
    assert data["reward"] == pytest.approx(judge(["Hi"], [data["text"]])[0], abs=1e-4)


def test_python_reward_flag(tiny_llama, tmp_path):
    (tmp_path / "my_reward.py").write_text(
        "def score(prompts, responses):\n    return [float(len(r)) for r in responses]\n")
    out = run_cli("generate", "Hi", "--model", str(tiny_llama), "--raw", "--reward",
                  "python:my_reward:score", "--max-tokens", "8", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["reward"] > 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["generate", "x", "--candidates", "0"], "candidates"),
        (["generate", "x", "--candidates", "many"], "candidates"),
        (["generate", "x", "--mode", "beam"], "mode"),
        (["generate", "x", "--bogus"], "unrecognized"),
        (["generate", "x", "--threshold", "high"], "threshold"),
        (["generate", "x", "--model", "/nonexistent.gguf"], "not found"),
        (["generate", "x", "--reward", "judge:nothing"], "reward"),
        (["generate", "x", "--reward", "classifier:"], "reward"),
        (["generate", "x", "--reward", "causal-lm:x"], "reward"),
        (["generate", "x", "--reward", "python:no_such_module:f"], "no_such_module"),
        (["generate"], "prompt"),
        ([], "command"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, needle, tiny_llama, tmp_path):
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]
    assert "Traceback" not in out.stderr
