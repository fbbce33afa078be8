"""stars_cpp: STARS decoding-time alignment natively over llama.cpp.

llama_cpp is imported first so that its libllama.so is the one in the process: the extension's
DT_NEEDED entry then resolves to that already-loaded library by its soname.
"""

import os

# ggml's tiled CPU kernels for K-quants take over a matrix product from 8 rows up, with other
# rounding: a sequence's text would depend on how many others step with it. Off before any
# llama.cpp computation in this process, unless the environment says otherwise (docs/stars.md,
# "KV layouts and reproducibility").
os.environ.setdefault("GGML_CPU_TILED_MM", "0")

import llama_cpp  # noqa: E402, F401  (must precede the extension)

from stars_cpp import (
    _core,  # noqa: E402  (looks up the classes above at import)
    llama_log,  # noqa: E402
)
from stars_cpp._version import __version__
from stars_cpp.convert_reward import convert_reward
from stars_cpp.dataset import run_dataset
from stars_cpp.engine import Engine, Result, Segment, Stats, generate
from stars_cpp.errors import (
    ChatTemplateError,
    ContextLengthError,
    ConversionError,
    DatasetError,
    DecodeError,
    EngineClosedError,
    ModelLoadError,
    ModelNotFoundError,
    ParameterError,
    QueueFullError,
    ReentrantCallError,
    RewardError,
    SourceNotFoundError,
    StarsError,
)
from stars_cpp.probe import fit_probe
from stars_cpp.rewards import CausalReward, ClassifierReward, JudgeReward, ProbeReward

llama_log.install()

__all__ = [
    "CausalReward",
    "ChatTemplateError",
    "ClassifierReward",
    "ContextLengthError",
    "ConversionError",
    "DatasetError",
    "DecodeError",
    "Engine",
    "EngineClosedError",
    "JudgeReward",
    "ModelLoadError",
    "ModelNotFoundError",
    "ParameterError",
    "ProbeReward",
    "QueueFullError",
    "ReentrantCallError",
    "Result",
    "RewardError",
    "Segment",
    "SourceNotFoundError",
    "StarsError",
    "Stats",
    "__version__",
    "_core",
    "convert_reward",
    "fit_probe",
    "generate",
    "run_dataset",
]
