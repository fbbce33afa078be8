"""Probes: features at the convention's token, fitting (a planted direction recovered), the probe
file (round trip, identity, corrupt files), ProbeReward from scratch and from given features,
`fit-probe` end to end and `--reward probe:PATH` in STARS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stars_cpp
from stars_cpp import _core
from stars_cpp.probe import extract_features, fit_probe, probe_inputs

WORDS = ("alpha beta gamma delta river stone cloud light quiet bright happy sad green blue "
         "small large open close night day warm cold fast slow").split()


def _texts(n: int, seed: int, lo: int = 0, hi: int = 12) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(lo, hi))) for _ in range(n)]


@pytest.fixture(scope="module")
def other_llama(model_dir) -> Path:
    """A second tiny policy: same shapes and vocabulary, other weights."""
    from tiny_models import write_tiny_llama

    return write_tiny_llama(model_dir / "tiny-llama-other.gguf", seed=1)


@pytest.fixture(scope="module")
def rows() -> tuple[list[str], list[str]]:
    return _texts(400, 1, 1, 6), _texts(400, 2)


@pytest.fixture(scope="module")
def features(tiny_llama, rows) -> np.ndarray:
    return extract_features(str(tiny_llama), *rows, progress=False)


def _planted(features: np.ndarray, seed: int = 3, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=features.shape[1])
    clean = features @ w
    return clean + noise * clean.std() * rng.normal(size=len(clean))


def _head(probe: dict, features: np.ndarray) -> np.ndarray:
    z = (features - np.array(probe["mean"])) / np.array(probe["std"])
    return probe["output_offset"] + probe["output_scale"] * (probe["bias"] +
                                                             z @ np.array(probe["weight"]))


@pytest.fixture(scope="module")
def fitted(tiny_llama, rows, features, tmp_path_factory) -> tuple[Path, object]:
    prompts, responses = rows
    scores = _planted(features)
    records = [{"prompt": p, "response": r, "score": float(s)}
               for p, r, s in zip(prompts, responses, scores)]
    path = tmp_path_factory.mktemp("probe") / "planted.probe.gguf"
    report = fit_probe(records, path, model=str(tiny_llama), ridge=1e-3, holdout=0.25, seed=0,
                       progress=False)
    return path, report


def test_features_follow_the_convention(tiny_llama, rows, features):
    # The feature of (x, y) is the output at the last token of x + y[:-1].
    model = _core.Model.load(str(tiny_llama), 0)
    prompts, responses = rows
    inputs = probe_inputs(model, prompts[:8], responses[:8])
    for prompt, response, tokens in zip(prompts[:8], responses[:8], inputs):
        head = _core.prompt_tokens(model, "", [("user", prompt)])
        body = model.tokenize(response, add_special=False, parse_special=False)
        assert tokens == head + body[:-1]
    # Batched rows read what each row reads alone.
    extractor = _core.make_feature_extractor(model, model.n_layer, 0, "f16")
    alone = np.stack([extractor.extract([x])[0] for x in inputs])
    np.testing.assert_allclose(features[:8], alone, rtol=0, atol=1e-5)
    # A layer's input: layer 0's is the token embedding of the last token.
    import gguf

    reader = gguf.GGUFReader(str(tiny_llama))
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight").data
    layer0 = _core.make_feature_extractor(model, 0, 0, "f16").extract(inputs)
    np.testing.assert_array_equal(layer0, np.stack([embd[x[-1]] for x in inputs]))


def test_a_planted_direction_is_recovered(fitted):
    path, report = fitted
    assert report.kind == "scores" and report.n_holdout == 100
    assert report.holdout_correlation > 0.95, report.summary()


def test_pairs_reach_high_accuracy(tiny_llama, tmp_path):
    n = 600
    prompts, first, second = _texts(n, 11, 1, 6), _texts(n, 12, 1, 12), _texts(n, 13, 1, 12)
    feats = extract_features(str(tiny_llama), prompts * 2, first + second, progress=False)
    w = np.random.default_rng(5).normal(size=feats.shape[1])
    margins = feats[:n] @ w - feats[n:] @ w  # the planted preference, on each pair's own prompt
    records = [{"prompt": p, "chosen": a if m > 0 else b, "rejected": b if m > 0 else a}
               for p, a, b, m in zip(prompts, first, second, margins)]
    report = fit_probe(records, tmp_path / "pairs.gguf", model=str(tiny_llama), ridge=1.0,
                       holdout=0.25, seed=1, progress=False)
    assert report.kind == "pairs" and report.n_holdout == 150
    assert report.holdout_accuracy >= 0.9, report.summary()


def test_probe_file_round_trip(fitted, tiny_llama, rows, features, tmp_path):
    path, _ = fitted
    probe = _core.read_probe(str(path))
    model = _core.Model.load(str(tiny_llama), 0)
    assert probe["layer"] == model.n_layer == 2
    assert probe["policy"] == _core.identify_policy(model)
    again = tmp_path / "again.gguf"
    _core.write_probe(str(again), probe)
    assert _core.read_probe(str(again)) == probe
    a = stars_cpp.ProbeReward(path, str(tiny_llama))
    b = stars_cpp.ProbeReward(again, str(tiny_llama))
    np.testing.assert_array_equal(a.score_features(features), b.score_features(features))
    np.testing.assert_allclose(a.score_features(features), _head(probe, features), rtol=1e-6,
                               atol=1e-5)


def test_mlp_head_round_trip(fitted, tiny_llama, features, tmp_path):
    probe = _core.read_probe(str(fitted[0]))
    rng = np.random.default_rng(9)
    n_embd, n_hidden = len(probe["mean"]), 5
    w1 = rng.normal(size=(n_hidden, n_embd)).astype(np.float32)
    b1 = rng.normal(size=n_hidden).astype(np.float32)
    w2 = rng.normal(size=n_hidden).astype(np.float32)
    for activation, act in (("relu", lambda a: np.maximum(a, 0)), ("tanh", np.tanh)):
        mlp = {**probe, "n_hidden": n_hidden, "activation": activation,
               "hidden_weight": w1.ravel().tolist(), "hidden_bias": b1.tolist(),
               "weight": w2.tolist(), "output_scale": 2.0, "output_offset": -1.0}
        path = tmp_path / f"mlp-{activation}.gguf"
        _core.write_probe(str(path), mlp)
        assert _core.read_probe(str(path))["n_hidden"] == n_hidden
        z = (features - np.array(probe["mean"])) / np.array(probe["std"])
        want = -1.0 + 2.0 * (mlp["bias"] + act(z @ w1.T.astype(np.float64) + b1) @ w2)
        got = stars_cpp.ProbeReward(path, str(tiny_llama)).score_features(features)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_a_probe_for_another_model_is_refused(fitted, other_llama):
    path, _ = fitted
    with pytest.raises(stars_cpp.ModelLoadError) as error:
        stars_cpp.ProbeReward(path, str(other_llama))
    assert str(path) in str(error.value) and str(other_llama) in str(error.value)
    assert "tiny-llama.gguf" in str(error.value)  # the model it was fitted on
    # In an Engine too: the probe binds to the Engine's policy.
    with pytest.raises(stars_cpp.ModelLoadError, match="another model"):
        stars_cpp.Engine(str(other_llama), stars_cpp.ProbeReward(path))


def _copy_with(src: Path, dst: Path, *, tensors: dict | None = None) -> Path:
    """A probe file like src, with some tensors replaced (gguf's Python writer)."""
    import gguf

    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(dst), "stars-probe")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(field.name, value)
        else:
            writer.add_key_value(field.name, value, vtype)
    for t in reader.tensors:
        data = (tensors or {}).get(t.name, np.array(t.data))
        writer.add_tensor(t.name, np.asarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def test_corrupt_probe_files_get_named_errors(fitted, tiny_llama, tmp_path):
    path, _ = fitted
    data = path.read_bytes()
    cases = {
        "truncated.gguf": data[: len(data) // 2],
        "header-only.gguf": data[:40],
        "garbage.gguf": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "empty.gguf": b"",
    }
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(stars_cpp.ModelLoadError, match=name):
            stars_cpp.ProbeReward(bad, str(tiny_llama))
        with pytest.raises(stars_cpp.ModelLoadError, match=name):
            _core.read_probe(str(bad))
    shape = _copy_with(path, tmp_path / "shape.gguf", tensors={"probe.mean": np.zeros(63)})
    with pytest.raises(stars_cpp.ModelLoadError, match=r"shape\.gguf.*probe\.mean has shape"):
        stars_cpp.ProbeReward(shape, str(tiny_llama))
    std = _copy_with(path, tmp_path / "std.gguf", tensors={"probe.std": np.zeros(64)})
    with pytest.raises(stars_cpp.ModelLoadError, match="std holds a value that is not positive"):
        stars_cpp.ProbeReward(std, str(tiny_llama))
    with pytest.raises(stars_cpp.ModelLoadError, match="not a probe file"):
        stars_cpp.ProbeReward(tiny_llama, str(tiny_llama))  # a GGUF, not a probe
    with pytest.raises(stars_cpp.ModelNotFoundError, match="nowhere.gguf"):
        stars_cpp.ProbeReward(tmp_path / "nowhere.gguf", str(tiny_llama))


def test_from_scratch_scores_equal_the_head_on_extracted_features(fitted, tiny_llama, rows,
                                                                    features):
    path, _ = fitted
    prompts, responses = rows
    probe = _core.read_probe(str(path))
    reward = stars_cpp.ProbeReward(path, str(tiny_llama))
    assert (reward.layer, reward.n_embd) == (2, 64)
    scratch = np.array(reward(prompts[:40], responses[:40]))
    np.testing.assert_allclose(scratch, _head(probe, features[:40]), rtol=0, atol=1e-4)

    # The batched protocol: rows decoded from their policy tokens, or read off given features
    # (what the engine hands over) with nothing decoded.
    from stars_cpp._core import testing

    model = _core.Model.load(str(tiny_llama), 0)
    native = reward.native
    for i in range(4):
        testing.reward_begin(native, i, prompts[i])
    tokens = [model.tokenize(r, add_special=False, parse_special=False) for r in responses[:4]]
    protocol_rows = [(i, "", responses[i], [], tokens[i]) for i in range(4)]
    decoded = testing.reward_score(native, protocol_rows)
    np.testing.assert_allclose(decoded, scratch[:4], rtol=0, atol=1e-5)
    given = testing.reward_score(native, protocol_rows, [f.tolist() for f in features[:4]])
    np.testing.assert_allclose(given, _head(probe, features[:4]), rtol=1e-6, atol=1e-5)


def test_a_layer_input_probe(tiny_llama, rows, tmp_path):
    prompts, responses = rows
    feats = extract_features(str(tiny_llama), prompts, responses, layer=1, progress=False)
    records = [{"prompt": p, "response": r, "score": float(s)}
               for p, r, s in zip(prompts, responses, _planted(feats, seed=7))]
    report = fit_probe(records, tmp_path / "layer1.gguf", model=str(tiny_llama), layer=1,
                       ridge=1e-3, progress=False)
    assert report.layer == 1 and report.holdout_correlation > 0.95
    reward = stars_cpp.ProbeReward(tmp_path / "layer1.gguf", str(tiny_llama))
    assert reward.layer == 1
    probe = _core.read_probe(str(tmp_path / "layer1.gguf"))
    np.testing.assert_allclose(reward(prompts[:10], responses[:10]), _head(probe, feats[:10]),
                               rtol=0, atol=1e-4)
    with pytest.raises(stars_cpp.ParameterError, match="layer must be in \\[0, 2\\]"):
        extract_features(str(tiny_llama), prompts[:1], responses[:1], layer=3, progress=False)


def test_stars_with_a_probe(fitted, tiny_llama):
    path, _ = fitted
    for reward in (stars_cpp.ProbeReward(path),
                   stars_cpp.rewards.reward_from_settings({"reward": f"probe:{path}"})):
        result = stars_cpp.generate([{"role": "user", "content": "Tell me about rivers."}],
                                    model=str(tiny_llama), reward=reward, mode="stars",
                                    segment_tokens=4, candidates=2, max_tokens=12, seed=1)
        assert result.stats.tokens_accepted == 12
        assert np.isfinite(result.reward)
        # The reward scored the accepted text: a from-scratch score of it is a probe score.
        assert result.stats.reward_rows > 0


def _attempt_rewards(result) -> np.ndarray:
    return np.array([r for segment in result.segments for r in segment.rewards])


def test_the_engine_feeds_the_probe_the_hidden_states_it_decoded(fitted, tiny_llama, tmp_path):
    """The engine hands the probe each capped candidate's hidden state from the decodes that
    sampled it: the same scores as from scratch (1e-4, F32), with almost nothing decoded."""
    path, _ = fitted
    # The same weights under another path: accepted as the probe's policy, but not the engine's
    # model, so that engine's probe decodes every row from scratch.
    copy = tmp_path / "tiny-copy.gguf"
    copy.write_bytes(Path(tiny_llama).read_bytes())
    params = dict(mode="stars", segment_tokens=4, candidates=3, max_attempts=4, max_tokens=16,
                  seed=5)
    prompts = ["alpha beta gamma", "river stone", "quiet night"]
    fed_engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.ProbeReward(path), n_ctx=256)
    scratch_engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.ProbeReward(path, str(copy)),
                                      n_ctx=256)
    fed = fed_engine.generate(prompts, **params)
    scratch = scratch_engine.generate(prompts, **params)
    for a, b in zip(fed, scratch):
        assert a.text == b.text
        np.testing.assert_allclose(_attempt_rewards(a), _attempt_rewards(b), rtol=0, atol=1e-4)
        assert len(_attempt_rewards(a)) > len(a.segments)  # rounds rejected some
        # Fed: only r(x, empty) (the prompt) and end-of-generation rows are decoded.
        assert a.stats.reward_tokens_decoded < b.stats.reward_tokens_decoded / 4
    fed_engine.close()
    scratch_engine.close()


@pytest.mark.real
def test_the_engine_feeds_the_probe_on_smollm2(smollm2, smollm2_model, tmp_path):
    """On SmolLM2 (Q4_1, F16 cache) the engine's one-token steps and a from-scratch prefill
    take other kernels (vector products against matrix products of the quantized weights), so
    the last layer's states differ by a fraction of a percent of their scale (|h| ~ 40-100).
    Through a head whose scores spread 0.2-0.7 here, that measured 0.011 and 0.045: the bound
    is 0.08."""
    prompts = ["Tell me a story.", "What is 2+2?", "Write a haiku about rain.", "Hello!"]
    responses = ["Once upon a time there was a fox.", "4", "Rain falls", "Hi there, friend."]
    identity = _core.identify_policy(smollm2_model)
    feats = extract_features(smollm2_model, prompts, responses, progress=False)
    rng = np.random.default_rng(1)
    # One scale for every feature (their spread over all four rows): a per-feature std of four
    # samples would magnify the rounding of the quietest features.
    probe = {"layer": 30, "mean": feats.mean(axis=0).tolist(),
             "std": [float(feats.std())] * 576,
             "weight": (rng.normal(size=576) / 24).tolist(), "bias": 0.0, "policy": identity}
    path = tmp_path / "smollm2-last.gguf"
    _core.write_probe(str(path), probe)
    copy = tmp_path / "smollm2-copy.gguf"
    copy.write_bytes(Path(smollm2).read_bytes())
    params = dict(mode="stars", segment_tokens=8, candidates=3, max_attempts=3, max_tokens=24,
                  seed=2, threshold=0.0, temperature=0.8)
    with stars_cpp.Engine(str(smollm2), stars_cpp.ProbeReward(path), n_ctx=1024) as engine:
        fed = engine.generate(prompts[:2], **params)
    with stars_cpp.Engine(str(smollm2), stars_cpp.ProbeReward(path, str(copy)),
                          n_ctx=1024) as engine:
        scratch = engine.generate(prompts[:2], **params)
    compared = 0
    for a, b in zip(fed, scratch):
        assert a.stats.reward_tokens_decoded < b.stats.reward_tokens_decoded
        if a.text == b.text:  # a score within the tolerance may still flip a decision
            diff = np.abs(_attempt_rewards(a) - _attempt_rewards(b)).max()
            assert diff < 0.08, diff
            compared += 1
    assert compared >= 1


def test_fit_probe_score_with_and_generate(tiny_llama, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in _texts(12, 4, 1, 5)))
    out = tmp_path / "gen.probe.gguf"
    scored = tmp_path / "scored.jsonl"
    report = fit_probe(prompts, out, model=str(tiny_llama), generate=3, max_tokens=8,
                       score_with="python:deterministic_rewards:hash_reward",
                       scored_output=scored, progress=False)
    assert report.n_train + report.n_holdout == 36
    lines = [json.loads(line) for line in scored.read_text().splitlines()]
    assert len(lines) == 36 and all({"prompt", "response", "score"} <= set(r) for r in lines)
    assert stars_cpp.ProbeReward(out, str(tiny_llama)).layer == 2


@pytest.mark.frontends
def test_fit_probe_cli_end_to_end(tiny_llama, rows, features, tmp_path):
    prompts, responses = rows
    data = tmp_path / "train.jsonl"
    data.write_text("".join(
        json.dumps({"prompt": p, "response": r, "score": float(s)}) + "\n"
        for p, r, s in zip(prompts, responses, _planted(features))))
    out = tmp_path / "cli.probe.gguf"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        # cwd outside the checkout, so `-m stars_cpp` imports the installed package.
        return subprocess.run([sys.executable, "-m", "stars_cpp", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)

    done = cli("fit-probe", str(data), "-o", str(out), "--model", str(tiny_llama), "--ridge",
               "0.001", "--holdout", "0.25", "--seed", "0", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "held-out Pearson r" in done.stdout
    r = float(done.stdout.split("held-out Pearson r ")[1].split()[0])
    assert r > 0.95
    # --generate with --score-with python:..., from prompts alone.
    only = tmp_path / "prompts.jsonl"
    only.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[:10]))
    gen = cli("fit-probe", str(only), "-o", str(tmp_path / "gen.gguf"), "--model",
              str(tiny_llama), "--generate", "2", "--max-tokens", "6", "--score-with",
              "python:deterministic_rewards:hash_reward", "--quiet")
    assert gen.returncode == 0, gen.stderr
    # Then steer with it from the CLI.
    steer = cli("generate", "Hello", "--model", str(tiny_llama), "--reward", f"probe:{out}",
                "--mode", "stars", "--max-tokens", "8", "--seed", "1", "--json")
    assert steer.returncode == 0, steer.stderr
    assert json.loads(steer.stdout)["stats"]["tokens_accepted"] == 8
    bad = cli("fit-probe", str(data), "-o", str(out), "--model", str(tiny_llama), "--holdout",
              "1.5")
    assert bad.returncode == 2 and "--holdout" in bad.stderr


@pytest.mark.real
def test_smollm2_probe_scores_and_layers(smollm2, smollm2_model, tmp_path):
    # A random head on SmolLM2's hidden states: every layer's input is exposed (llama), and a row
    # scored alone matches it scored among others within the tolerance below.
    model = smollm2_model
    prompts = ["Tell me a story.", "What is 2+2?", "Write a haiku about rain.", "Hello!"] * 2
    responses = ["Once upon a time there was a fox.", "4", "", "Hi there, how can I help?",
                 "No.", "Rain falls", "Sure, here it is", "Good day to you, friend."]
    rng = np.random.default_rng(0)
    identity = _core.identify_policy(model)
    assert (identity["architecture"], identity["n_layer"], identity["n_embd"]) == ("llama", 30,
                                                                                   576)
    for layer in (15, 30):
        feats = extract_features(model, prompts, responses, layer=layer, progress=False)
        mean, std = feats.mean(axis=0), feats.std(axis=0) + 1e-3
        probe = {"layer": layer, "mean": mean.tolist(), "std": std.tolist(),
                 "weight": (rng.normal(size=576) / 24).tolist(), "bias": 0.0,
                 "policy": identity}
        path = tmp_path / f"smollm2-{layer}.gguf"
        _core.write_probe(str(path), probe)
        reward = stars_cpp.ProbeReward(path, str(smollm2))
        batched = np.array(reward(prompts, responses))
        alone = np.array([reward([p], [r])[0] for p, r in zip(prompts, responses)])
        np.testing.assert_allclose(batched, _head({**probe, "output_scale": 1.0,
                                                   "output_offset": 0.0}, feats), atol=1e-4)
        # SmolLM2's Q4_1 weights and F16 cache: a row's place in the shared KV pool moves the
        # vector kernels' rounding, which its large activations (|h| ~ 40-100) carry into up to
        # ~1% of the feature scale; scores stay within 0.05 of a unit-variance score.
        assert np.abs(batched - alone).max() < 0.05, (batched, alone)


@pytest.mark.real
def test_an_unexposed_layer_is_refused():
    from stars_cpp.models import gemma3_270m_path

    gemma = _core.Model.load(str(gemma3_270m_path()), 0)
    with pytest.raises(stars_cpp.ParameterError, match="layer 3: .*gemma3.*use layer 18"):
        _core.make_feature_extractor(gemma, 3, 0, "f16")
    assert _core.make_feature_extractor(gemma, gemma.n_layer, 0, "f16").n_embd == 640


def test_auto_ridge_chooses_a_penalty_that_generalises():
    # 120 rows of 200 features, a signal in 5 of them: a light penalty fits the noise.
    from stars_cpp.probe import RIDGE_GRID, _pearson, choose_ridge, fit_ridge

    rng = np.random.default_rng(0)
    z = rng.normal(size=(160, 200))
    y = z[:, :5].sum(axis=1) + 2.0 * rng.normal(size=160)
    alpha = choose_ridge(z[:120], y[:120], seed=0)
    assert alpha in RIDGE_GRID and alpha >= 10
    held = [_pearson(z[120:] @ w + b, y[120:])
            for w, b in (fit_ridge(z[:120], y[:120], a) for a in (0.1, alpha))]
    assert held[1] > held[0]
