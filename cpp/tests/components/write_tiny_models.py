"""Writes the tiny F32 GGUFs the C++ component tests load into the directory given.

    write_tiny_models.py DIR

tiny-llama.gguf is tests/tiny_models.py's policy (seed 0), and tiny-causal-rm.gguf the same
shape with a scalar reward head in its metadata, as tests/test_causal_reward.py writes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from tiny_models import LLAMA_HPARAMS, write_tiny_llama  # noqa: E402


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_tiny_llama(directory / "tiny-llama.gguf", seed=0)
    head = np.random.default_rng(7).normal(0.0, 0.5, int(LLAMA_HPARAMS["n_embd"]))
    write_tiny_llama(directory / "tiny-causal-rm.gguf", seed=3,
                     metadata={"stars.reward.head.weight": list(head),
                               "stars.reward.head.bias": 0.25, "stars.reward.head.row": -1})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: write_tiny_models.py DIR")
    main(Path(sys.argv[1]))
