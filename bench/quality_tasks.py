"""The quality bench's tasks: for each, a policy, prompts, a reward the methods optimise and a
held-out scorer they never see. Rewards follow stars_cpp's callable protocol,
reward(prompts, responses) -> one float per response, where a response is the text so far.

- sentiment_gemma: Gemma-3-270M (base) continues review openings; reward VADER compound,
  held out AFINN-165 (a different lexicon, without VADER's rules).
- sentiment_smollm2: SmolLM2-135M-Instruct writes a sentence on a topic; reward AFINN-165,
  held out VADER compound: the two lexicons swapped.
- coverage: SmolLM2 writes one sentence using four given words (CommonGen-style); reward the
  fraction of the words present so far; held out the final coverage under a stricter matcher
  (whole words or their regular inflections), with fluency (mean log-probability per token
  under Gemma-3-270M, the other model) reported beside it.
- bullets: SmolLM2 answers with exactly three bullet points; reward on the partial structure
  (bullets so far, capped at three, less stray lines and extra bullets); held out the exact
  final check (1 or 0).
- civility: Gemma-3-270M continues heated openings; reward minus VADER's share of negative
  words; held out one minus alt-profanity-check's probability, a linear SVM trained on about
  200k labelled comments that ships inside its wheel (the only learned text scorer found on
  PyPI that needs no hub download; detoxify and the transformers classifiers fetch weights).
- sentiment_smollm2_long and sentiment_gemma_long: the same rewards and scorers on 128-token
  responses (a paragraph; a continuation to the first blank line), for the best-of-16 target.
- coverage_long: the coverage task's reward and scorer on a paragraph that must use eight
  words (two of its lines of concepts), 128 tokens, also for the best-of-16 target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DATA = Path(__file__).resolve().parent / "data"

Reward = Callable[[list[str], list[str]], list[float]]

_WORD = re.compile(r"[a-z]+")


# --- lexicons ------------------------------------------------------------------------------------

def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return _vader.__dict__.setdefault("analyzer", SentimentIntensityAnalyzer())


def _afinn():
    from afinn import Afinn

    return _afinn.__dict__.setdefault("afinn", Afinn())


def vader_compound(prompts: list[str], responses: list[str]) -> list[float]:
    return [_vader().polarity_scores(r)["compound"] for r in responses]


def afinn_score(prompts: list[str], responses: list[str]) -> list[float]:
    return [float(_afinn().score(r)) for r in responses]


def vader_negativity(prompts: list[str], responses: list[str]) -> list[float]:
    """Minus VADER's share of negative words (0 for a text with none)."""
    return [-_vader().polarity_scores(r)["neg"] for r in responses]


def civility(texts: list[str]) -> list[float]:
    """One minus the learned profanity probability (alt-profanity-check)."""
    from profanity_check import predict_prob

    return [1.0 - float(p) for p in predict_prob(texts)] if texts else []


# --- keyword coverage (CommonGen-style) ---------------------------------------------------------

def concepts_of(prompt: str) -> list[str]:
    """The words a coverage prompt asks for: what follows its colon, comma-separated."""
    listed = prompt.split(":", 1)[1] if ":" in prompt else prompt
    return [w.strip(" .").lower() for w in listed.split(",") if w.strip(" .")]


def _stem(concept: str) -> str:
    # "bake" matches "baking" and "baked"; "throw" matches "throws" and "throwing".
    return concept[:-1] if concept.endswith("e") and len(concept) > 3 else concept


def coverage_so_far(concepts: list[str], text: str) -> float:
    """The fraction of `concepts` some word of `text` starts with (a lenient, partial check)."""
    words = _WORD.findall(text.lower())
    found = sum(any(w.startswith(_stem(c)) for w in words) for c in concepts)
    return found / len(concepts) if concepts else 0.0


def final_coverage(concepts: list[str], text: str) -> float:
    """The fraction of `concepts` present as a whole word or a regular inflection of it."""
    words = set(_WORD.findall(text.lower()))

    def present(c: str) -> bool:
        stem = _stem(c)
        forms = {c, c + "s", c + "es", stem + "ed", stem + "ing", c + "ed", c + "ing", c + "d",
                 c + c[-1] + "ed", c + c[-1] + "ing"}
        return bool(forms & words)

    return sum(present(c) for c in concepts) / len(concepts) if concepts else 0.0


def coverage_reward(prompts: list[str], responses: list[str]) -> list[float]:
    return [coverage_so_far(concepts_of(p), r) for p, r in zip(prompts, responses)]


# --- three bullet points ------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S")
# A last line that is only the start of a bullet's marker ("-", "2", "2. "): still being written.
_MARKER_SO_FAR = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]?)\s*$")


def bullet_structure(text: str) -> tuple[int, int]:
    """(bullet lines, other non-empty lines) of `text`."""
    lines = [line for line in text.split("\n") if line.strip()]
    bullets = sum(bool(_BULLET.match(line)) for line in lines)
    return bullets, len(lines) - bullets


def bullets_so_far(text: str) -> float:
    """Progress toward three bullets, less 0.5 per bullet past three and 0.25 per stray line. A
    last line that is only a marker so far counts as neither: a segment may end inside it."""
    head, _, last = text.rpartition("\n")
    if last.strip() and _MARKER_SO_FAR.match(last):
        text = head
    bullets, other = bullet_structure(text)
    return min(bullets, 3) / 3 - 0.5 * max(0, bullets - 3) - 0.25 * other


def exactly_three_bullets(text: str) -> float:
    bullets, other = bullet_structure(text)
    return 1.0 if bullets == 3 and other == 0 else 0.0


def bullets_reward(prompts: list[str], responses: list[str]) -> list[float]:
    return [bullets_so_far(r) for r in responses]


# --- the tasks ------------------------------------------------------------------------------------

@dataclass
class Task:
    name: str
    policy: str  # "smollm2" or "gemma3_270m"
    reward: Reward
    reward_name: str
    scorer: Reward  # held out: (users' texts, responses) -> one float each
    held_out_name: str
    prompts: list[Any]  # strings, or chat messages
    params: dict[str, Any] = field(default_factory=dict)
    # A long-form variant: scored for the best-of-16 target only, not in the choice of defaults.
    long_form: bool = False
    # Settings swept on this task only (a threshold in its reward's own units).
    methods: list[dict[str, Any]] = field(default_factory=list)

    def users(self) -> list[str]:
        return [p[0]["content"] if isinstance(p, list) else p for p in self.prompts]

    def held_out(self, texts: list[str]) -> list[float]:
        return self.scorer(self.users(), texts)


def _final_coverage(prompts: list[str], responses: list[str]) -> list[float]:
    return [final_coverage(concepts_of(p), r) for p, r in zip(prompts, responses)]


def _exactly_three(prompts: list[str], responses: list[str]) -> list[float]:
    return [exactly_three_bullets(r) for r in responses]


def _civility(prompts: list[str], responses: list[str]) -> list[float]:
    return civility(responses)


def _lines(name: str, n: int) -> list[str]:
    return (DATA / name).read_text().splitlines()[:n]


def _chat(texts: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": t}] for t in texts]


def stars_setting(**params: Any) -> dict[str, Any]:
    """A STARS method for the quality bench, named by its parameters in order."""
    name = "stars_" + ",".join(f"{k}={v}" for k, v in params.items())
    return {"name": name, "mode": "stars", **params}


def make_tasks(n: int) -> dict[str, Task]:
    """Every task with its first `n` prompts (48 at most for some)."""
    topics = _lines("topics.txt", n)
    concepts = _lines("concepts.txt", 48)
    return {
        "sentiment_gemma": Task(
            "sentiment_gemma", "gemma3_270m", vader_compound, "VADER compound", afinn_score,
            "AFINN-165 score", _lines("review_openings.txt", n),
            {"max_tokens": 32, "stop": ["\n"]}),
        "sentiment_smollm2": Task(
            "sentiment_smollm2", "smollm2", afinn_score, "AFINN-165 score", vader_compound,
            "VADER compound", _chat([f"Write one sentence about {t}." for t in topics]),
            {"max_tokens": 40}),
        "coverage": Task(
            "coverage", "smollm2", coverage_reward, "concepts present so far (lenient)",
            _final_coverage,
            "final coverage (whole words or inflections); fluency under Gemma-3-270M beside it",
            _chat([f"Write one short sentence that uses all of these words: {c}."
                   for c in _lines("concepts.txt", n)]), {"max_tokens": 40}),
        "bullets": Task(
            "bullets", "smollm2", bullets_reward, "partial bullet structure", _exactly_three,
            "exactly three bullet points and nothing else (1 or 0)",
            _chat([f"Give exactly three short tips about {t}. Answer with three bullet points "
                   f"that start with '- ' and no other text." for t in topics]),
            {"max_tokens": 64}),
        "civility": Task(
            "civility", "gemma3_270m", vader_negativity, "minus VADER's negative share",
            _civility, "1 - alt-profanity-check probability (a learned model)",
            _lines("heated_openings.txt", n),
            {"max_tokens": 32, "stop": ["\n"]}),
        # Long responses (128 tokens, eight segments): where choosing segment by segment can
        # compound, against best-of-16 choosing among whole responses.
        "sentiment_smollm2_long": Task(
            "sentiment_smollm2_long", "smollm2", afinn_score, "AFINN-165 score", vader_compound,
            "VADER compound",
            _chat([f"Write a paragraph of five sentences about {t}." for t in topics]),
            {"max_tokens": 128}, long_form=True),
        "coverage_long": Task(
            "coverage_long", "smollm2", coverage_reward, "concepts present so far (lenient)",
            _final_coverage,
            "final coverage (whole words or inflections); fluency under Gemma-3-270M beside it",
            # Lines i and i + 5: no word twice in a prompt.
            _chat([f"Write a paragraph of five sentences that uses all of these words: "
                   f"{concepts[i]}, {concepts[(i + 5) % len(concepts)]}."
                   for i in range(min(n, len(concepts)))]),
            {"max_tokens": 128}, long_form=True,
            # The paper's fixed threshold at full coverage. Ramped from 0 (alpha 0), a segment
            # must bring the response's coverage up to its share of the length so far; not
            # ramped (alpha 1), every segment is the best of its M attempts until all the
            # words are in, and a response cannot end short of them unless all M end it.
            methods=[stars_setting(threshold=1.0, alpha=0.0, acceptance="hard"),
                     stars_setting(threshold=1.0, alpha=1.0, acceptance="hard", max_attempts=4),
                     stars_setting(threshold=1.0, alpha=1.0, acceptance="hard", max_attempts=8),
                     stars_setting(threshold=1.0, alpha=1.0, acceptance="hard", max_attempts=8,
                            segment_tokens=8)]),
        "sentiment_gemma_long": Task(
            "sentiment_gemma_long", "gemma3_270m", vader_compound, "VADER compound",
            afinn_score, "AFINN-165 score", _lines("review_openings.txt", n),
            {"max_tokens": 128, "stop": ["\n\n"]}, long_form=True),
    }
