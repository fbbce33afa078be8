"""stars_cpp native core: STARS decoding over llama.cpp."""

from collections.abc import Sequence

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
    def load(path: str, n_gpu_layers: int = 0) -> Model: ...

    @staticmethod
    def borrow(address: int, owner: object, description: str, n_gpu_layers: int = 0) -> Model: ...

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

class GenerationParams:
    def __init__(self) -> None: ...

    @property
    def mode(self) -> str: ...

    @mode.setter
    def mode(self, arg: str, /) -> None: ...

    @property
    def segment_tokens(self) -> int: ...

    @segment_tokens.setter
    def segment_tokens(self, arg: int, /) -> None: ...

    @property
    def candidates(self) -> int: ...

    @candidates.setter
    def candidates(self, arg: int, /) -> None: ...

    @property
    def max_attempts(self) -> int: ...

    @max_attempts.setter
    def max_attempts(self, arg: int, /) -> None: ...

    @property
    def threshold(self) -> float | None: ...

    @threshold.setter
    def threshold(self, arg: float | None, /) -> None: ...

    @property
    def alpha(self) -> float: ...

    @alpha.setter
    def alpha(self, arg: float, /) -> None: ...

    @property
    def beta(self) -> float | None: ...

    @beta.setter
    def beta(self, arg: float | None, /) -> None: ...

    @property
    def target_attempts(self) -> float: ...

    @target_attempts.setter
    def target_attempts(self, arg: float, /) -> None: ...

    @property
    def acceptance(self) -> str: ...

    @acceptance.setter
    def acceptance(self, arg: str, /) -> None: ...

    @property
    def width(self) -> str: ...

    @width.setter
    def width(self, arg: str, /) -> None: ...

    @property
    def max_tokens(self) -> int: ...

    @max_tokens.setter
    def max_tokens(self, arg: int, /) -> None: ...

    @property
    def temperature(self) -> float: ...

    @temperature.setter
    def temperature(self, arg: float, /) -> None: ...

    @property
    def top_k(self) -> int: ...

    @top_k.setter
    def top_k(self, arg: int, /) -> None: ...

    @property
    def top_p(self) -> float: ...

    @top_p.setter
    def top_p(self, arg: float, /) -> None: ...

    @property
    def min_p(self) -> float: ...

    @min_p.setter
    def min_p(self, arg: float, /) -> None: ...

    @property
    def typical_p(self) -> float: ...

    @typical_p.setter
    def typical_p(self, arg: float, /) -> None: ...

    @property
    def seed(self) -> int: ...

    @seed.setter
    def seed(self, arg: int, /) -> None: ...

    @property
    def stop(self) -> list[str]: ...

    @stop.setter
    def stop(self, arg: Sequence[str], /) -> None: ...

class Segment:
    @property
    def text(self) -> str: ...

    @property
    def tokens(self) -> list[int]: ...

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

def make_classifier_reward(model: Model, labels: Sequence[int], pair: int = -1, n_ctx: int = 0, n_threads: int = 0, kv_layout: str = 'isolated') -> ClassifierReward: ...

def make_judge_reward(judge: Model, policy: Model | None, question: str, yes: str, no: str, n_ctx: int = 8192, n_threads: int = 0, layout: str = 'question_first', kv_type: str = 'f16', kv_layout: str = 'isolated') -> KvCachedReward: ...

def make_causal_reward(model: Model, path: str, policy: Model | None, template: str = '', n_ctx: int = 8192, n_threads: int = 0, kv_type: str = 'f16', kv_layout: str = 'isolated') -> KvCachedReward: ...

class Engine:
    """Plain, best-of-N and STARS decoding on one model."""

    def __init__(self, model: Model, reward: object | None, n_ctx: int = 4096, n_threads: int = 0, max_queue: int = 0, kv_type: str = 'f16', n_seq_max: int = 0, sampling: str = 'auto', kv_layout: str = 'isolated') -> None: ...

    @property
    def has_reward(self) -> bool: ...

    @property
    def n_ctx(self) -> int: ...

    def generate(self, prompts: list, params: GenerationParams, on_segment: object | None = None, keys: object | None = None) -> list[Result]: ...

    def submit(self, prompt: object, params: GenerationParams, key: str | None, occurrence: int, on_segment: object | None, on_result: object, on_error: object) -> int: ...

    def cancel(self, request_id: int) -> bool: ...

    def close(self) -> None: ...

    def metrics(self) -> dict: ...
