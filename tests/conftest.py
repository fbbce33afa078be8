"""Shared fixtures (tiny generated GGUFs, written once per run, and the real SmolLM2) and the
test tiers.

Tiers (markers registered in pyproject.toml): every test has at least one, from TIERS below.
A module's tests get the module's tier from MODULE_TIERS, unless a test carries a tier marker
of its own (a test that needs a real model or starts a front end, in a module of a lower tier).
Collection fails on a module missing from MODULE_TIERS, and on a test that uses a real model
without the real marker.

Nothing here imports the extension (stars_cpp, stars_cpp._core) or the model writers at import
time: the static tier runs without a build (`pytest -m static`), and modules that cannot match
the -m expression are not even imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# llama.cpp's OpenMP threads spin while they wait; on 2 cores shared with what the tests start
# (servers, workers, busy loads) that made a tiny decode 20-60 times slower. Passive waiting
# changes no result. Set before the extension (and OpenMP) loads; subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

# Tier -> what it needs; `make test-fast` runs the first three.
TIERS = {
    "static": "no build: source, layering and documentation checks",
    "unit": "the extension, no model",
    "engine": "the extension and the tiny generated models",
    "real": "the real models (SmolLM2-135M-Instruct, Gemma-3-270M)",
    "frontends": "the server, the CLIs (Python and stars-cli), datasets and Ray",
    "slow": "soak and fuzz runs, repeated subprocess stress, torch conversions, and the slowest "
    "tiny-model checks (each over 10 s on 2 busy cores)",
    "device": "a GPU backend (`make test-device`: Vulkan on Mesa's lavapipe); run only when -m "
    "names it",
}

MODULE_TIERS = {
    "test_layers": "static",
    "test_docs": "static",
    "test_tiers": "static",
    "test_quality_tasks": "static",
    "test_kernel_profile": "static",
    "test_cxx_runtime": "unit",
    "test_stubs": "unit",
    "test_backend_sampling": "engine",
    "test_bench_scripts": "unit",
    "test_bad_inputs": "engine",
    "test_calibration": "engine",
    "test_causal_reward": "engine",
    "test_classifier_reward": "engine",
    "test_engine_api": "engine",
    "test_engine_loop": "engine",
    "test_engine_modes": "engine",
    "test_judge_reward": "engine",
    "test_kv_session": "engine",
    "test_lifecycle": "engine",
    "test_llama_log": "engine",
    "test_logprobs": "engine",
    "test_memory": "engine",
    "test_probe": "engine",
    "test_model_file_check": "engine",
    "test_one_libllama": "engine",
    "test_repeat_penalty": "engine",
    "test_result_json": "engine",
    "test_rounds": "engine",
    "test_stop_strings": "engine",
    "test_threads": "engine",
    "test_cards": "real",
    "test_isolated": "real",
    "test_smollm2": "real",
    "test_cli": "frontends",
    "test_dataset": "frontends",
    "test_server": "frontends",
    "test_settings": "frontends",
    "test_stars_cli": "frontends",
    "test_device": "device",
    "test_convert_reward": "slow",
    "test_fuzz": "slow",
    "test_soak": "slow",
}

# Fixtures that load a real model: a test using one must be marked real.
REAL_FIXTURES = {"smollm2", "smollm2_model"}

_MARKER = re.compile(r"\bpytest\.mark\.(" + "|".join(TIERS) + r")\b")


def _module_tiers(path: Path) -> set[str] | None:
    """The tiers a module's tests can have: its own and those its tests are marked with."""
    tier = MODULE_TIERS.get(path.stem)
    if tier is None:
        return None
    return {tier, *_MARKER.findall(path.read_text())}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config):
    """Skips importing a module none of whose tests can match a -m expression of tiers alone
    (so `pytest -m static` never imports the modules that need the extension)."""
    markexpr = config.getoption("markexpr", "")
    if not markexpr or collection_path.suffix != ".py" or not collection_path.name.startswith(
            "test_"):
        return None
    names = set(re.findall(r"[A-Za-z_]\w*", markexpr)) - {"and", "or", "not"}
    if not names <= set(TIERS):
        return None  # other markers: let pytest decide per test
    tiers = _module_tiers(collection_path)
    if tiers is None:
        return None  # an unknown module: collected, and refused below
    try:
        from _pytest.mark.expression import Expression  # pytest's own -m parser

        expression = Expression.compile(markexpr)
        can_match = any(expression.evaluate(_only(tier)) for tier in tiers)
    except Exception:  # another pytest's internals: collect, and let -m select
        return None
    return None if can_match else True


def _only(tier: str):
    return lambda name, **kwargs: name == tier


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        module = item.path.stem
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if not tiers:
            if module not in MODULE_TIERS:
                problems.append(f"{item.nodeid}: module {module} has no tier: add it to "
                                "MODULE_TIERS in tests/conftest.py")
                continue
            tiers = {MODULE_TIERS[module]}
            item.add_marker(MODULE_TIERS[module])
        if REAL_FIXTURES & set(getattr(item, "fixturenames", ())) and "real" not in tiers:
            problems.append(f"{item.nodeid} uses a real model: mark it @pytest.mark.real")
    if problems:
        raise pytest.UsageError("tests without their tier:\n  " + "\n  ".join(problems))
    # The device tier needs a GPU-enabled build: deselected (and counted as such) unless -m asks.
    if "device" not in re.findall(r"\w+", config.getoption("markexpr", "") or ""):
        device = [item for item in items if item.get_closest_marker("device")]
        if device:
            items[:] = [item for item in items if not item.get_closest_marker("device")]
            config.hook.pytest_deselected(items=device)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(model_dir) -> Path:
    """A random llama-architecture policy that never ends by itself (EOG logits are tiny)."""
    from tiny_models import write_tiny_llama

    return write_tiny_llama(model_dir / "tiny-llama.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_llama_eog(model_dir) -> Path:
    """The same shape with end-of-generation likely within a few tokens."""
    from tiny_models import write_tiny_llama

    return write_tiny_llama(model_dir / "tiny-llama-eog.gguf", seed=0, eog_logit=3.0)


@pytest.fixture(scope="session")
def tiny_bert(model_dir) -> Path:
    from tiny_models import write_tiny_bert_classifier

    return write_tiny_bert_classifier(model_dir / "tiny-bert.gguf", seed=0)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from stars_cpp.models import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def smollm2_model(smollm2):
    from stars_cpp import _core

    return _core.Model.load(str(smollm2), 0)


@pytest.fixture(scope="session")
def tiny_model(tiny_llama):
    from stars_cpp import _core

    return _core.Model.load(str(tiny_llama), 0)


@pytest.fixture(params=["host", "backend"])
def each_sampling(request, monkeypatch):
    """Runs a test once per sampling path: every Engine it makes defaults to that path (a
    module opts in with pytestmark = pytest.mark.usefixtures("each_sampling"))."""
    import stars_cpp

    defaults = dict(stars_cpp.Engine.__init__.__kwdefaults__)
    defaults["sampling"] = request.param
    monkeypatch.setattr(stars_cpp.Engine.__init__, "__kwdefaults__", defaults)
    return request.param
