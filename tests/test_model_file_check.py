"""GGUF files that llama.cpp would abort the process on are refused first, with ModelLoadError.

Each defect below made ``llama_model_load_from_file`` hit a GGML_ASSERT and abort the whole
Python process before the checks in cpp/src/llama/model_file_check.cc existed (the test process
itself died). Now each raises a ModelLoadError naming the file and the problem, and the process
keeps working.
"""

from __future__ import annotations

import gguf
import pytest
from gguf_edit import rewrite

import stars_cpp

T = gguf.GGUFValueType


def _tokens(path) -> list[str]:
    field = gguf.GGUFReader(path).fields["tokenizer.ggml.tokens"]
    return [bytes(field.parts[i]).decode() for i in field.data]


def _duplicated_vocab(path):
    tokens = _tokens(path)
    tokens[11] = tokens[10]
    return {"fields": {"tokenizer.ggml.tokens": (T.ARRAY, (T.STRING, tokens))}}


ABORTS = {
    # GGML_ASSERT(id_to_token.size() == token_to_id.size()) in llama_vocab::load
    "duplicated_vocab": (_duplicated_vocab, r"vocabulary token 11 repeats the string of token 10"),
    # GGML_ASSERT(hparams.n_layer_all > 0 && hparams.n_layer_all <= LLAMA_MAX_LAYERS)
    "no_blocks": (lambda p: {"fields": {"llama.block_count": (T.UINT32, 0)}},
                  r"llama.block_count is 0, not in \[1, 512\]"),
    "too_many_blocks": (lambda p: {"fields": {"llama.block_count": (T.UINT32, 600)}},
                        r"llama.block_count is 600, not in \[1, 512\]"),
    # GGML_ASSERT(hparams.n_layer_nextn <= hparams.n_layer_all)
    "nextn_layers": (lambda p: {"fields": {"llama.nextn_predict_layers": (T.UINT32, 5)}},
                     r"nextn_predict_layers is 5 but the model has 2 blocks"),
    # GGML_ASSERT(n_expert_used_max <= hparams.n_expert)
    "experts": (lambda p: {"fields": {"llama.expert_used_count": (T.UINT32, 2)}},
                r"expert_count is 0, but llama.expert_used_count is 2"),
    # GGML_ASSERT(hparams.rope_scaling_type_train != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED)
    "rope_scaling": (lambda p: {"fields": {"llama.rope.scaling.type": (T.STRING, "bogus")}},
                     r"rope.scaling.type is 'bogus'"),
    # GGML_ASSERT(eps >= 0.0f) in ggml's rms_norm, at the first decode
    "nan_epsilon": (lambda p: {"fields": {
        "llama.attention.layer_norm_rms_epsilon": (T.FLOAT32, float("nan"))}},
        r"layer_norm_rms_epsilon is -?nan, not a finite value >= 0"),
    # a model without a vocabulary: llama.cpp aborts when asked to tokenize
    "no_vocab": (lambda p: {"fields": {"tokenizer.ggml.model": (T.STRING, "none")}},
                 r"tokenizer.ggml.model is 'none': the model has no vocabulary"),
    # std::out_of_range out of llama_tokenize: SentencePiece on a byte-level BPE vocabulary
    "spm_on_bpe": (lambda p: {"fields": {"tokenizer.ggml.model": (T.STRING, "llama")}},
                   r"'llama' \(SentencePiece\) but the vocabulary has no byte token <0x00>"),
}

# llama.cpp refuses these without aborting; the check names the problem instead of a generic
# failure.
SHAPES = {
    "embedding_rows": (lambda p: {"shapes": {"token_embd.weight": (len(_tokens(p)) - 1, 64)}},
                       r"token_embd.weight has 583 rows but the vocabulary has 584 tokens"),
    "block_beyond_count": (lambda p: {"fields": {"llama.block_count": (T.UINT32, 1)}},
                           r"tensors name block 1 but llama.block_count is 1"),
}


@pytest.mark.parametrize("defect", [*ABORTS, *SHAPES])
def test_defective_gguf_raises_model_load_error(defect, tmp_path, tiny_llama):
    edit, message = {**ABORTS, **SHAPES}[defect]
    path = rewrite(tiny_llama, tmp_path / f"{defect}.gguf", **edit(tiny_llama))
    with pytest.raises(stars_cpp.ModelLoadError, match=message) as info:
        stars_cpp.Engine(str(path))
    assert f"{defect}.gguf" in str(info.value)
    assert isinstance(info.value, ValueError)
    # The process, and llama.cpp in it, still work.
    result = stars_cpp.Engine(str(tiny_llama), n_ctx=256).generate(
        "hello", mode="plain", max_tokens=3, seed=1)
    assert len(result.tokens) == 3


def test_unchanged_copy_loads(tmp_path, tiny_llama):
    # The editor itself changes nothing unless asked: a plain copy generates the same text.
    copy = rewrite(tiny_llama, tmp_path / "copy.gguf")
    texts = [stars_cpp.Engine(str(p), n_ctx=256).generate(
        "hello", mode="plain", max_tokens=5, seed=3).text for p in (tiny_llama, copy)]
    assert texts[0] == texts[1]


def test_llama_cpp_refusal_names_its_reason(tmp_path, tiny_llama):
    # A shape llama.cpp refuses itself: its reason, logged only, is in the error.
    path = rewrite(tiny_llama, tmp_path / "bad-tokenizer.gguf",
                   fields={"tokenizer.ggml.model": (T.STRING, "bogus")})
    with pytest.raises(stars_cpp.ModelLoadError, match=r"bad-tokenizer.gguf.*unknown tokenizer"):
        stars_cpp.Engine(str(path))


@pytest.mark.real
def test_real_models_pass_the_checks(smollm2):
    # SmolLM2's 49,152-token vocabulary and its shapes pass (no false refusal), and so does
    # Gemma's SentencePiece vocabulary with its byte tokens.
    from stars_cpp.models import gemma3_270m_path

    assert stars_cpp._core.Model.load(str(smollm2), 0).n_vocab == 49152
    assert stars_cpp._core.Model.load(str(gemma3_270m_path()), 0).n_vocab == 262144
