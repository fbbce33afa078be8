"""stars_cpp native core: STARS decoding over llama.cpp."""

from collections.abc import Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray

from stars_cpp._core import testing as testing


max_parallel_sequences: int = 256

reward_template_room: int = 256

def live_contexts() -> int:
    """
    llama.cpp contexts alive in the process (policy and reward contexts alike).
    """

def join_abandoned_engines() -> None:
    """
    Wait for the loop threads of Engines dropped on their own loop thread (at exit).
    """

def install_log(threshold: int) -> None:
    """
    Route llama.cpp's log into a queue, once per process; keep lines at threshold or above.
    """

def set_log_threshold(threshold: int) -> None: ...

def wake_log_readers() -> None: ...

def take_log_lines(timeout_s: float) -> tuple:
    """
    Wait up to timeout_s for queued lines: ([(level, text)], dropped count).
    """

class Model:
    """A llama.cpp model, loaded from a GGUF or borrowed."""

    @staticmethod
    def load(path: str, n_gpu_layers: int) -> Model: ...

    @staticmethod
    def borrow(address: int, owner: object, description: str, n_gpu_layers: int, path: str = '') -> Model: ...

    @property
    def path(self) -> str: ...

    @property
    def architecture(self) -> str: ...

    @property
    def n_layer(self) -> int: ...

    @property
    def description(self) -> str: ...

    @property
    def owned(self) -> bool: ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def n_embd(self) -> int: ...

    @property
    def classifier_labels(self) -> list[str]: ...

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str: ...

PARAMS: list = ...

ERROR_CLASSES: list = ...

def check_settings(values: dict, groups: Sequence[str]) -> None:
    """
    Checks settings of the named groups; ParameterError naming a bad or unknown one.
    """

def parse_param_text(name: str, text: str) -> object:
    """A setting's value from command-line text, as stars-cli reads it."""

class GenerationParams:
    """A request's generation parameters, validated."""

    @staticmethod
    def make(values: dict) -> GenerationParams:
        """
        From {name: value} on top of the defaults; ParameterError naming a bad one.
        """

    def to_dict(self) -> dict:
        """{name: value}, 'auto' and None (random seed) included."""

class TokenLogprob:
    """A token's log-probability under the policy (logprobs=True)."""

    @property
    def token(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def bytes(self) -> bytes: ...

    @property
    def logprob(self) -> float: ...

    @property
    def top_logprobs(self) -> list[TokenLogprob]: ...

class Segment:
    @property
    def text(self) -> str: ...

    @property
    def tokens(self) -> list[int]: ...

    @property
    def logprobs(self) -> list[TokenLogprob]: ...

    @property
    def attempts(self) -> int: ...

    @property
    def rewards(self) -> list[float]: ...

    @property
    def reward(self) -> float | None: ...

    @property
    def threshold(self) -> float | None: ...

    @property
    def fallback(self) -> bool: ...

class Stats:
    @property
    def policy_tokens_sampled(self) -> int: ...

    @property
    def tokens_accepted(self) -> int: ...

    @property
    def tokens_wasted(self) -> int: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def policy_tokens_decoded(self) -> int: ...

    @property
    def reward_calls(self) -> int: ...

    @property
    def reward_rows(self) -> int: ...

    @property
    def reward_tokens_decoded(self) -> int: ...

    @property
    def reward_rows_truncated(self) -> int: ...

    @property
    def rounds(self) -> int: ...

    @property
    def mean_round_width(self) -> float: ...

    @property
    def backend_tokens_sampled(self) -> int: ...

    @property
    def sampling_fallback(self) -> str: ...

    @property
    def seconds_policy(self) -> float: ...

    @property
    def seconds_reward(self) -> float: ...

    @property
    def seconds_total(self) -> float: ...

class Result:
    @property
    def text(self) -> str: ...

    @property
    def tokens(self) -> list[int]: ...

    @property
    def logprobs(self) -> list[TokenLogprob]: ...

    @property
    def finish_reason(self) -> str: ...

    @property
    def reward(self) -> float | None: ...

    @property
    def segments(self) -> list[Segment]: ...

    @property
    def stats(self) -> Stats: ...

    def to_json(self, indent: int = 2) -> str:
        """
        The Result as JSON text (ASCII), as stars-cli --json prints it; indent 0: one line.
        """

    def trace(self) -> str:
        """
        The --verbose trace: a line per segment, the stats and the finish reason.
        """

STATS_FIELDS: tuple = ...

class Reward:
    """A native batched reward (one per Engine)."""

class GgufReward(Reward):
    """A reward read off a GGUF model."""

    def score_texts(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...

    def input_tokens(self, prompt: str, response: str) -> list[int]: ...

class ClassifierReward(GgufReward):
    """A sequence classifier or reranker."""

    @property
    def pair(self) -> bool: ...

class KvCachedReward(GgufReward):
    """A reward read off a causal model, KV-cached per prompt."""

    def score_policy_tokens(self, prompt: str, tokens: Sequence[int]) -> float: ...

    @property
    def shares_vocabulary(self) -> bool: ...

    def n_prefix_tokens(self, prompt: str) -> int: ...

    @property
    def n_suffix_tokens(self) -> int: ...

    def render(self, prompt: str, response: str) -> str: ...

def make_classifier_reward(model: Model, labels: Sequence[int], pair: int, n_ctx: int, n_threads: int, kv_layout: str) -> ClassifierReward: ...

def make_judge_reward(judge: Model, policy: Model | None, question: str, yes: str, no: str, n_ctx: int, n_threads: int, layout: str, kv_type: str, kv_layout: str) -> KvCachedReward: ...

def make_causal_reward(model: Model, path: str, policy: Model | None, template: str, n_ctx: int, n_threads: int, kv_type: str, kv_layout: str) -> KvCachedReward: ...

def make_reward(policy: Model, settings: dict) -> GgufReward:
    """
    The GGUF reward a spec names (settings['reward']), as stars-cli builds it.
    """

class ProbeReward(GgufReward):
    """A probe file's head over the policy's hidden states."""

    @property
    def layer(self) -> int: ...

    @property
    def n_embd(self) -> int: ...

    def score_features(self, features: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)]) -> list[float]:
        """The head's score of each row of an (n, n_embd) float32 array."""

    def prompt_tokens(self, text: str) -> list[int]:
        """A prompt's tokens as the probe renders Begin's text."""

def make_probe_reward(path: str, policy: Model, chat: bool, n_threads: int, kv_type: str) -> ProbeReward: ...

class FeatureExtractor:
    """The policy's hidden states at the last token of token lists."""

    def extract(self, inputs: Sequence[Sequence[int]]) -> Annotated[NDArray[numpy.float32], dict(shape=(None, None))]:
        """An (n, n_embd) float32 array: each input's last-token hidden state."""

    @property
    def layer(self) -> int: ...

    @property
    def n_embd(self) -> int: ...

    @property
    def tokens_decoded(self) -> int: ...

def make_feature_extractor(policy: Model, layer: int, n_threads: int, kv_type: str) -> FeatureExtractor: ...

def prompt_tokens(model: Model, text: str, messages: Sequence[tuple[str, str]]) -> list[int]:
    """
    A prompt's tokens as the engine renders it: messages through the chat template when given, else the text as it is.
    """

def probe_input(prompt: Sequence[int], response: Sequence[int]) -> list[int]:
    """
    The tokens a probe decodes for (prompt, response): prompt + response[:-1].
    """

def read_probe(path: str) -> dict:
    """A probe file's contents as a dict."""

def write_probe(path: str, probe: dict) -> None:
    """Writes a probe file from a dict as read_probe returns."""

def identify_policy(model: Model) -> dict:
    """
    What identifies a policy to a probe: architecture, sizes, token_embd hash.
    """

class Engine:
    """Plain, best-of-N and STARS decoding on one model."""

    def __init__(self, model: Model, reward: object | None, options: dict) -> None: ...

    @property
    def has_reward(self) -> bool: ...

    @property
    def n_ctx(self) -> int: ...

    def generate(self, prompts: list, params: GenerationParams, on_segment: object | None = None, keys: object | None = None) -> list[Result]: ...

    def submit(self, prompt: object, params: GenerationParams, key: str | None, occurrence: int, on_segment: object | None, on_result: object, on_error: object) -> int: ...

    def cancel(self, request_id: int) -> bool: ...

    def close(self) -> None: ...

    def metrics(self) -> dict: ...
