"""convert_reward: transformers causal reward models to GGUF with the head in metadata.

Tiny random LlamaForSequenceClassification / Qwen3ForSequenceClassification checkpoints
(tests/hf_models.py) are converted by llama.cpp's own convert_hf_to_gguf.py; llama.cpp's final
hidden state of the last token, dotted with the stored head, must give transformers' score.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from hf_models import HF_HPARAMS, smollm2_tokenizer, write_tiny_seq_cls

import stars_cpp
from stars_cpp import cli, llama_cpp_source
from stars_cpp.convert_reward import (
    HEAD_BIAS_KEY,
    HEAD_ROW_KEY,
    HEAD_WEIGHT_KEY,
    SUPPORTED_ARCHITECTURES,
    quantize_types,
    read_head,
)

N_EMBD = int(HF_HPARAMS["hidden_size"])
TEXTS = [
    "Hello world",
    "The cat sat on the mat. It was happy.",
    "def f(x):\n    return x * 2\n",
    "Once upon a time, in a land far away, there lived a dragon who loved poetry and tea.",
    "1 2 3 4 5 6 7 8 9 10, and 3.14159 is pi",
    "¿Dónde está la biblioteca? Está cerca. 東京は大きい。",
    "I hate this so much!!! :( Never again...",
    "Please write a poem about the moon and the sun. " * 6,
    "a",
    "User: What is 2+2?\nAssistant: 2+2 equals 4.",
]

# The checkout's llama.cpp source (third_party/fetch_llama_cpp.sh) when there is one: the
# installed package cannot see the checkout, and this saves a fresh machine the sdist download.
# Without it, conversion finds (or downloads once into ~/.cache/stars_cpp) the sdist's converter.
_CHECKOUT_LLAMA_CPP = Path(__file__).resolve().parents[1] / "third_party" / "llama.cpp"
LLAMA_CPP_DIR = (str(_CHECKOUT_LLAMA_CPP)
                 if (_CHECKOUT_LLAMA_CPP / llama_cpp_source.CONVERTER).is_file() else None)


def convert(hf_dir, out, **kwargs) -> Path:
    return stars_cpp.convert_reward(hf_dir, out, llama_cpp_dir=LLAMA_CPP_DIR, **kwargs)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_reward_models")


@pytest.fixture(scope="module")
def hf_models(hf_dir) -> dict[str, Path]:
    """Tiny checkpoints: one-label llama and qwen3 (sharded, as large checkpoints are), a
    2-label llama with a score bias, and a GPT-2 classifier (an unsupported architecture)."""
    return {
        "llama": write_tiny_seq_cls(hf_dir / "tiny-llama-rm", "llama", seed=1),
        "qwen3": write_tiny_seq_cls(hf_dir / "tiny-qwen3-rm", "qwen3", seed=2,
                                    max_shard_size="100KB"),
        "llama2": write_tiny_seq_cls(hf_dir / "tiny-llama-rm-2", "llama", seed=3, num_labels=2,
                                     score_bias=True),
        "gpt2": write_tiny_seq_cls(hf_dir / "tiny-gpt2-rm", "gpt2", seed=4),
    }


@pytest.fixture(scope="module")
def converted(hf_models, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("converted")
    return {arch: convert(hf_models[arch], out / f"{arch}-f32.gguf")
            for arch in ("llama", "qwen3")}


@pytest.fixture(scope="module")
def transformers_scores(hf_models) -> dict[str, list[float]]:
    """transformers' logits[:, 0] per text, fed llama.cpp's token ids one text at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification

    scores = {}
    for arch in ("llama", "qwen3"):
        model = AutoModelForSequenceClassification.from_pretrained(
            hf_models[arch], dtype=torch.float32).eval()
        with torch.no_grad():
            scores[arch] = [float(model(input_ids=torch.tensor([ids])).logits[0, 0])
                            for ids in llama_tokens(hf_models[arch])]
    return scores


def llama_tokens(hf_model: Path) -> list[list[int]]:
    """TEXTS tokenized by transformers, checked equal to llama.cpp's tokenization below."""
    tokenizer = smollm2_tokenizer()
    return [tokenizer(text, add_special_tokens=True)["input_ids"] for text in TEXTS]


def score_file(hf_model_path: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    for shard in sorted(hf_model_path.glob("*.safetensors")):
        tensors = load_file(str(shard))
        if "score.weight" in tensors:
            return tensors["score.weight"]
    raise AssertionError(f"no score.weight in {hf_model_path}")


def causal_scores(path: Path, texts=TEXTS) -> tuple[list[float], list[list[int]]]:
    """stars_cpp.CausalReward's scores per text (the text alone after BOS, an F32 KV cache:
    llama.cpp's default F16 cache alone moves these scores by about 1e-3 relative), and the
    token ids it read."""
    reward = stars_cpp.CausalReward(path, template="{prompt}{response}", kv_type="f32")
    tokens = [reward.native.input_tokens("", text) for text in texts]
    return reward([""] * len(texts), list(texts)), tokens


def spearman(a, b) -> float:
    ranks_a = np.argsort(np.argsort(a)).astype(float)
    ranks_b = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_converted_gguf_carries_the_head_and_loads(arch, hf_models, converted):
    head = read_head(converted[arch])
    expected = {"llama": "llama", "qwen3": "qwen3"}[arch]
    assert head["architecture"] == expected
    assert head["n_embd"] == N_EMBD
    assert head["weight_type"] == "ARRAY[FLOAT32]"
    score = score_file(hf_models[arch])
    assert score.shape == (1, N_EMBD)
    np.testing.assert_array_equal(np.asarray(head["weight"], np.float32), score[0])
    assert head["row"] == -1 and head["bias"] is None
    assert head["file_type"] == 0  # ALL_F32
    if arch == "qwen3":
        assert len(list(hf_models[arch].glob("*.safetensors"))) > 2  # the sharded checkpoint

    # llama.cpp loads it (no stray tensors), as an embedding model too.
    llm = llama_cpp.Llama(model_path=str(converted[arch]), embedding=True, n_ctx=256,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_LAST, verbose=False)
    assert llm.n_embd() == N_EMBD
    assert len(llm.embed("Hello world", normalize=False)) == N_EMBD
    llm.close()


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_scores_match_transformers(arch, hf_models, converted, transformers_scores):
    got, tokens = causal_scores(converted[arch])
    # Same token ids on both sides (transformers was fed these ids).
    assert tokens == llama_tokens(hf_models[arch])
    expected = np.asarray(transformers_scores[arch])
    got = np.asarray(got)
    assert np.ptp(expected) > 0.1, "the texts should get clearly different scores"
    rel = np.abs(got - expected) / np.abs(expected)
    assert rel.max() < 1e-3, (arch, got, expected)


def test_quantized_q8_0_keeps_the_head_and_the_ranking(hf_models, converted,
                                                      transformers_scores, tmp_path, capsys):
    out = tmp_path / "llama-q8_0.gguf"
    # Through the CLI, which also checks its success path.
    argv = ["convert-reward", str(hf_models["llama"]), str(out), "--quantize", "Q8_0"]
    if LLAMA_CPP_DIR is not None:
        argv += ["--llama-cpp-dir", LLAMA_CPP_DIR]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    head = read_head(out)
    assert head["file_type"] == llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    np.testing.assert_array_equal(np.asarray(head["weight"], np.float32),
                                  score_file(hf_models["llama"])[0])
    assert head["row"] == -1
    assert out.stat().st_size < converted["llama"].stat().st_size / 2
    got, _ = causal_scores(out)
    assert spearman(got, transformers_scores["llama"]) >= 0.9


def test_label_picks_a_row_and_its_bias(hf_models, tmp_path):
    out = convert(hf_models["llama2"], tmp_path / "two-labels.gguf", label=1)
    head = read_head(out)
    from safetensors.numpy import load_file

    tensors = load_file(str(hf_models["llama2"] / "model.safetensors"))
    assert tensors["score.weight"].shape == (2, N_EMBD)
    np.testing.assert_array_equal(np.asarray(head["weight"], np.float32),
                                  tensors["score.weight"][1])
    assert head["bias"] == pytest.approx(float(tensors["score.bias"][1]), rel=1e-7)
    assert head["row"] == -1


def test_read_head_of_other_files(tiny_llama, tmp_path):
    head = read_head(tiny_llama)  # a GGUF without a head
    assert head["weight"] is None and head["row"] is None and head["bias"] is None
    assert head["architecture"] == "llama" and head["n_embd"] == 64
    (tmp_path / "text.gguf").write_text("not a gguf")
    with pytest.raises(ValueError, match="not a readable GGUF"):
        read_head(tmp_path / "text.gguf")
    with pytest.raises(FileNotFoundError):
        read_head(tmp_path / "missing.gguf")


def test_metadata_key_names():
    assert (HEAD_WEIGHT_KEY, HEAD_BIAS_KEY, HEAD_ROW_KEY) == (
        "stars.reward.head.weight", "stars.reward.head.bias", "stars.reward.head.row")


# --- bad inputs: a clear exception before anything is written ------------------------------


def write_config(directory: Path, architecture: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    return directory


def test_unsupported_architectures(hf_models, tmp_path):
    for model, name in ((hf_models["gpt2"], "GPT2ForSequenceClassification"),
                        (write_config(tmp_path / "bert", "BertForSequenceClassification"),
                         "BertForSequenceClassification"),
                        (write_config(tmp_path / "lm", "LlamaForCausalLM"), "LlamaForCausalLM")):
        with pytest.raises(ValueError, match=name) as error:
            convert(model, tmp_path / "out.gguf")
        for supported in SUPPORTED_ARCHITECTURES:
            assert supported in str(error.value)
        assert not (tmp_path / "out.gguf").exists()


def test_two_labels_need_a_label_in_range(hf_models, tmp_path):
    out = tmp_path / "out.gguf"
    with pytest.raises(ValueError, match=r"2 labels.*label"):
        convert(hf_models["llama2"], out)
    for label in (2, -1):
        with pytest.raises(ValueError, match=f"label {label} is out of range"):
            convert(hf_models["llama2"], out, label=label)
    with pytest.raises(ValueError, match="label 1 is out of range"):
        convert(hf_models["llama"], out, label=1)
    with pytest.raises(ValueError, match="label must be an int"):
        convert(hf_models["llama"], out, label="0")
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary files left behind


def test_unknown_quantize_type_and_outtype(hf_models, tmp_path):
    with pytest.raises(ValueError, match=r"unknown quantize type 'Q9_9'.*Q8_0.*Q4_K_M"):
        convert(hf_models["llama"], tmp_path / "out.gguf", quantize="Q9_9")
    with pytest.raises(ValueError, match="outtype"):
        convert(hf_models["llama"], tmp_path / "out.gguf", outtype="q4")
    assert {"F32", "F16", "BF16", "Q8_0", "Q4_K_M"} <= set(quantize_types())


def test_missing_model_directory_or_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        convert(tmp_path / "nope", tmp_path / "out.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert(tmp_path / "empty", tmp_path / "out.gguf")


def test_weights_must_be_safetensors(tmp_path):
    model = write_config(tmp_path / "bin", "Qwen2ForSequenceClassification")
    (model / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(ValueError, match="safetensors"):
        convert(model, tmp_path / "out.gguf")


@pytest.mark.parametrize("extra, message", [
    ([], "GPT2ForSequenceClassification"),
    (["--quantize", "Q9_9"], "unknown quantize type"),
    (["--label", "x"], "--label"),
])
def test_cli_bad_input_exits_2_with_one_line(hf_models, tmp_path, capsys, extra, message):
    model = hf_models["gpt2"] if not extra else hf_models["llama"]
    code = cli.main(["convert-reward", str(model), str(tmp_path / "out.gguf"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("stars-cpp: error:") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.gguf").exists()


def test_cli_two_labels_without_label(hf_models, tmp_path, capsys):
    code = cli.main(["convert-reward", str(hf_models["llama2"]), str(tmp_path / "out.gguf")])
    err = capsys.readouterr().err
    assert code == 2 and "--label" in err and len(err.strip().splitlines()) == 1


# --- finding llama.cpp's converter --------------------------------------------------------


def fake_sdist(path: Path, version: str = "9.9.9") -> Path:
    root = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    files = {
        "convert_hf_to_gguf.py": "print('converter')\n",
        "LICENSE": "MIT\n",
        "conversion/__init__.py": "",
        "conversion/llama.py": "",
        "gguf-py/gguf/__init__.py": "",
        "gguf-py/gguf/scripts/gguf_new_metadata.py": "",
        "models/templates/chat.jinja": "{{ x }}",
        "models/ggml-vocab-llama-bpe.gguf": "big",
        "src/llama.cpp": "// not needed",
        "convert_lora_to_gguf.py": "",
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, text in {**{root + k: v for k, v in files.items()},
                           f"llama_cpp_python-{version}/llama_cpp/__init__.py": ""}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_extract_converter_takes_only_the_converter(tmp_path):
    target = llama_cpp_source.extract_converter(fake_sdist(tmp_path / "sdist.tar.gz"),
                                                tmp_path / "out")
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == sorted([
        ".stars_cpp_complete", ".stars_cpp_version", "LICENSE", "convert_hf_to_gguf.py",
        "conversion/__init__.py", "conversion/llama.py", "gguf-py/gguf/__init__.py",
        "gguf-py/gguf/scripts/gguf_new_metadata.py", "models/templates/chat.jinja"])
    with pytest.raises(RuntimeError, match="not a llama-cpp-python sdist"):
        bad = tmp_path / "bad.tar.gz"
        with tarfile.open(bad, "w:gz"):
            pass
        llama_cpp_source.extract_converter(bad, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_converter_dir_order(tmp_path, monkeypatch):
    monkeypatch.setattr(llama_cpp_source, "_checkout_dir", lambda version: None)
    monkeypatch.delenv(llama_cpp_source.ENV_DIR, raising=False)
    monkeypatch.setenv(llama_cpp_source.ENV_SDIST, str(fake_sdist(tmp_path / "s.tar.gz")))
    cache = tmp_path / "cache"
    found = llama_cpp_source.converter_dir(cache_dir=cache)
    version = llama_cpp_source.llama_cpp_python_version()
    assert found == cache / f"llama.cpp-converter-{version}"
    # Cached: the sdist is not read again.
    monkeypatch.setenv(llama_cpp_source.ENV_SDIST, str(tmp_path / "gone.tar.gz"))
    assert llama_cpp_source.converter_dir(cache_dir=cache) == found
    # The environment variable wins, and must name a source tree.
    monkeypatch.setenv(llama_cpp_source.ENV_DIR, str(found))
    assert llama_cpp_source.converter_dir(cache_dir=tmp_path / "other") == found
    monkeypatch.setenv(llama_cpp_source.ENV_DIR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=llama_cpp_source.ENV_DIR):
        llama_cpp_source.converter_dir()


@pytest.mark.real
def test_stars_on_smollm2_with_the_converted_reward(smollm2, converted):
    reward = stars_cpp.CausalReward(converted["llama"])
    engine = stars_cpp.Engine(str(smollm2), reward, n_ctx=4096)
    prompt = [{"role": "user", "content": "Write a short poem about rain."}]
    result = engine.generate(prompt, segment_tokens=8, candidates=3, max_tokens=40, seed=2)
    assert result.text.strip() and 0 < len(result.tokens) <= 40
    assert result.segments and "".join(s.text for s in result.segments) == result.text
    # The tiny model shares SmolLM2's tokenizer: ids pass straight through, KV-cached.
    assert reward.native.shares_vocabulary
    assert result.stats.reward_tokens_decoded > 0
    assert result.reward == pytest.approx(reward([prompt[0]["content"]], [result.text])[0],
                                          rel=1e-3, abs=1e-4)
