"""Shared fixtures: tiny generated GGUFs (written once per run) and the real SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import write_tiny_bert_classifier, write_tiny_llama

import stars_cpp
from stars_cpp.models import smollm2_path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(model_dir) -> Path:
    """A random llama-architecture policy that never ends by itself (EOG logits are tiny)."""
    return write_tiny_llama(model_dir / "tiny-llama.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_llama_eog(model_dir) -> Path:
    """The same shape with end-of-generation likely within a few tokens."""
    return write_tiny_llama(model_dir / "tiny-llama-eog.gguf", seed=0, eog_logit=3.0)


@pytest.fixture(scope="session")
def tiny_bert(model_dir) -> Path:
    return write_tiny_bert_classifier(model_dir / "tiny-bert.gguf", seed=0)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return smollm2_path()


@pytest.fixture(scope="session")
def smollm2_model(smollm2) -> stars_cpp._core.Model:
    return stars_cpp._core.Model.load(str(smollm2), 0)


@pytest.fixture(scope="session")
def tiny_model(tiny_llama) -> stars_cpp._core.Model:
    return stars_cpp._core.Model.load(str(tiny_llama), 0)


@pytest.fixture(params=["host", "backend"])
def each_sampling(request, monkeypatch):
    """Runs a test once per sampling path: every Engine it makes defaults to that path (a
    module opts in with pytestmark = pytest.mark.usefixtures("each_sampling"))."""
    defaults = dict(stars_cpp.Engine.__init__.__kwdefaults__)
    defaults["sampling"] = request.param
    monkeypatch.setattr(stars_cpp.Engine.__init__, "__kwdefaults__", defaults)
    return request.param
