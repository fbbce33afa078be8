"""The quality bench's rewards and held-out scorers on fixed strings (bench/quality_tasks.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import quality_tasks as qt  # noqa: E402


def test_coverage_counts_the_concepts_present():
    prompt = "Write one short sentence that uses all of these words: dog, frisbee, catch, throw."
    assert qt.concepts_of(prompt) == ["dog", "frisbee", "catch", "throw"]
    assert qt.coverage_reward([prompt], ["The dog ran after a frisbee"]) == [0.5]
    assert qt.coverage_reward([prompt], ["The dogs throw and catch a frisbee."]) == [1.0]
    assert qt.coverage_reward([prompt], [""]) == [0.0]
    # The lenient partial check takes a word's start; the held-out one whole forms only.
    assert qt.coverage_so_far(["throw"], "he was throwi") == 1.0
    assert qt.final_coverage(["throw"], "he was throwi") == 0.0
    assert qt.final_coverage(["bake", "run", "catch"], "She baked; they run and catches") == 1.0
    assert qt.final_coverage(["stop"], "it stopped") == 1.0
    assert qt.final_coverage(["dog"], "a dogma") == 0.0


def test_bullets_reward_partial_structure_and_the_exact_check():
    three = "- Sleep early.\n- Drink water.\n- Walk daily."
    assert qt.bullet_structure(three) == (3, 0)
    assert qt.exactly_three_bullets(three) == 1.0
    assert qt.bullets_so_far("- Sleep early.\n- Dri") == pytest.approx(2 / 3)
    assert qt.bullets_so_far(three) == 1.0
    assert qt.bullets_so_far("Here are tips:\n" + three) == pytest.approx(0.75)
    assert qt.exactly_three_bullets("Here are tips:\n" + three) == 0.0
    four = three + "\n- Read."
    assert qt.bullets_so_far(four) == pytest.approx(0.5)
    assert qt.exactly_three_bullets(four) == 0.0
    assert qt.bullet_structure("1. One\n2) Two\n* Three\n\u2022 Four") == (4, 0)
    # A segment may end inside the next bullet's marker: that last line counts as neither.
    for so_far in ("- Sleep early.\n-", "1. Sleep early.\n2", "1. Sleep early.\n2. "):
        assert qt.bullets_so_far(so_far) == pytest.approx(1 / 3), so_far
        assert qt.exactly_three_bullets(so_far) == 0.0
    assert qt.bullets_so_far("Tips:\n-") == -0.25
    assert qt.bullets_so_far("- Sleep early.\n-x") == pytest.approx(1 / 3 - 0.25)


def test_lexicon_rewards_and_scorers_order_fixed_strings():
    good, bad = "What a wonderful, lovely day.", "This is a terrible, awful mess."
    assert qt.vader_compound([], [good, bad])[0] > 0.5 > -0.5 > qt.vader_compound([], [bad])[0]
    assert qt.afinn_score([], [good, bad]) == [7.0, -8.0]  # 4 + 3; -3 - 3 - 2
    assert qt.vader_negativity([], [good]) == [0.0]
    assert qt.vader_negativity([], [bad])[0] < -0.3


def test_the_learned_civility_scorer():
    polite, rude = qt.civility(["Thank you for your help today.", "Shut up, you stupid idiot."])
    assert polite > 0.9
    assert rude < 0.1
    assert qt.civility([]) == []


def test_every_task_has_48_prompts_and_scores_its_texts():
    tasks = qt.make_tasks(48)
    assert sorted(tasks) == ["bullets", "civility", "coverage", "coverage_long",
                             "sentiment_gemma", "sentiment_gemma_long", "sentiment_smollm2",
                             "sentiment_smollm2_long"]
    assert [n for n, t in tasks.items() if t.long_form] == [
        "sentiment_smollm2_long", "coverage_long", "sentiment_gemma_long"]
    assert all(t.params["max_tokens"] == 128 for t in tasks.values() if t.long_form)
    for task in tasks.values():
        assert len(task.prompts) == 48, task.name
        scores = task.held_out(["- One.\n- Two.\n- Three."] * 48)
        assert len(scores) == 48 and all(isinstance(s, float) for s in scores)
        assert len(task.reward(task.users(), [""] * 48)) == 48
    # Each held-out scorer is the one named, never the task's reward.
    assert tasks["sentiment_smollm2"].held_out(["What a wonderful, lovely day."]) == [
        qt.vader_compound([], ["What a wonderful, lovely day."])[0]]
    assert tasks["sentiment_gemma"].held_out(["What a wonderful, lovely day."]) == [7.0]


def test_the_long_coverage_task_asks_for_eight_distinct_words():
    tasks = qt.make_tasks(48)
    concepts = [qt.concepts_of(u) for u in tasks["coverage_long"].users()]
    assert all(len(c) == 8 and len(set(c)) == 8 for c in concepts)
    assert len({tuple(c) for c in concepts}) == 48
    # dog, frisbee, catch, throw, boat, river, row, bridge: "rowi" counts so far (a word being
    # written), not in the final check of whole words and inflections.
    text = "The dog and the river catching a boat, rowi"
    assert tasks["coverage_long"].reward([tasks["coverage_long"].users()[0]], [text]) == [0.625]
    assert tasks["coverage_long"].held_out([text]) == [0.5]
    # Its own setting names real generation parameters (params.py alone: this tier runs
    # without the extension built).
    spec = importlib.util.spec_from_file_location(
        "stars_params", Path(__file__).resolve().parents[1] / "stars_cpp" / "params.py")
    params = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(params)
    for method in tasks["coverage_long"].methods:
        assert set(method) - {"name", "mode"} <= set(params.GenerationParams.__annotations__)
