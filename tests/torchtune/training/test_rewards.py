"""Reward components, score_completions, a user's own reward through the config allowlist, and
the one-message errors for rewards that raise or return non-numbers."""

import re
import sys
import types

import pytest
import torch

from torchtune import config
from torchtune.training import AnswerInPromptReward, ExactAnswerReward, FormatReward, RewardError, score_completions


def test_exact_answer_reward_whole_completion_or_extracted():
    whole = ExactAnswerReward()
    assert whole(" 42\n", answer="42") == 1.0 and whole("41", answer="42") == 0.0
    tagged = ExactAnswerReward(r"<answer>(.*?)</answer>", correct=2.0, wrong=-1.0)
    assert tagged("think... <answer> 7 </answer> done", answer="7") == 2.0
    assert tagged("7", answer="7") == -1.0  # no tag: no answer
    assert ExactAnswerReward(case_sensitive=False)("Paris", answer="paris") == 1.0
    assert ExactAnswerReward()("Paris", answer="paris") == 0.0
    with pytest.raises(ValueError, match="needs a group"):
        ExactAnswerReward(r"\d+")
    with pytest.raises(ValueError, match="no reference answer"):
        whole("1", answer=None)


def test_format_and_answer_in_prompt_rewards():
    starts = FormatReward(r"[0-9]+(\D.*)?")
    assert [starts(c) for c in ["12 apples", " 7", "x12", "12abc", ""]] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert FormatReward(r"<think>.*</think>", search=True, reward=0.5)("a <think>\nhm\n</think> b") == 0.5
    with pytest.raises(ValueError, match="is not a regular expression"):
        FormatReward("(")
    pick = AnswerInPromptReward()
    assert [pick(c, prompt="Pick one of 3 7 9") for c in ["7", " 9 ", "4", "37"]] == [1.0, 1.0, 0.0, 0.0]


def test_score_completions_is_every_function_on_every_row():
    fns = [ExactAnswerReward(), FormatReward("[a-z]+", reward=0.5)]
    got = score_completions(fns, ["4", "cat", "5"], answers=["4", "dog", "4"], prompts=["", "", ""])
    assert got.dtype == torch.float32
    assert got.tolist() == [[1.0, 0.0], [0.0, 0.5], [0.0, 0.0]]


def test_a_reward_that_raises_names_itself_and_the_row():
    def fragile(completion, *, answer, prompt):
        return float(completion)

    with pytest.raises(RewardError, match=r"reward function '.*fragile' raised ValueError: could not convert string "
                                          r"to float: 'x' \(on p.jsonl line 2, sample 1, completion 'x'\)"):
        score_completions([fragile], ["1", "x"], answers=[None, None], prompts=["", ""],
                          locations=["p.jsonl line 1, sample 0", "p.jsonl line 2, sample 1"])


@pytest.mark.parametrize("value, shown", [("1", "'1' (str)"), (None, "None (NoneType)"), (float("nan"), "nan (float)"),
                                          ([1.0], "[1.0] (list)")])
def test_a_reward_that_returns_a_non_number_names_itself_and_the_row(value, shown):
    class Odd:
        name = "odd_reward"

        def __call__(self, completion, *, answer, prompt):
            return value

    with pytest.raises(RewardError, match=re.escape(f"reward function 'odd_reward' returned {shown} on completion 0")):
        score_completions([Odd()], ["a"], answers=[None], prompts=[""])


def test_numbers_of_other_kinds_are_accepted():
    fns = [lambda c, **_: True, lambda c, **_: torch.tensor(0.25), lambda c, **_: 3]
    assert score_completions(fns, ["a"], answers=[None], prompts=[""]).tolist() == [[1.0, 0.25, 3.0]]


def test_a_users_own_reward_is_built_from_the_config_only_when_its_root_is_allowed(monkeypatch):
    module = types.ModuleType("my_rewards")

    class Shorter:
        def __init__(self, limit):
            self.limit = limit

        def __call__(self, completion, *, answer, prompt):
            return float(len(completion) <= self.limit)

    Shorter.__module__ = "my_rewards"
    module.Shorter = Shorter
    monkeypatch.setitem(sys.modules, "my_rewards", module)
    node = {"_component_": "my_rewards.Shorter", "limit": 3}
    with pytest.raises(config.ComponentNotAllowedError, match=r"allowed_component_roots: \[my_rewards.\]"):
        config.instantiate(config.DictConfig({"rewards": [node]}).rewards[0])
    cfg = config.DictConfig({"allowed_component_roots": ["my_rewards."], "rewards": [node]})
    fn = config.instantiate(cfg.rewards[0])
    assert score_completions([fn], ["abc", "abcd"], answers=[None, None], prompts=["", ""]).tolist() == [[1.0], [0.0]]
