"""Verifiable rewards for reinforcement learning on sampled completions (GRPO).

A reward function is any callable ``fn(completion, *, answer, prompt) -> float``: the decoded
completion text, the row's reference answer (None when the dataset has none) and the prompt
text. Configs name reward components under ``rewards:``; each node is built with
:func:`torchtune.config.instantiate`, so it names a class (or a factory function) whose
instance is the callable. A reward of your own lives in your package and is allowed like any
other component outside torchtune: ``allowed_component_roots: [mypkg.]``.
"""

import math
import re
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import torch

RewardFn = Callable[..., Any]


class RewardError(ValueError):
    """A reward function raised or returned something that is not a finite number."""


def reward_name(fn: RewardFn) -> str:
    """The name a reward function is logged and reported under: its ``name`` attribute, else the
    function's or class's name.

    Args:
        fn (RewardFn): a reward callable.

    Returns:
        str: e.g. ``"ExactAnswerReward"``.
    """
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


class ExactAnswerReward:
    """``correct`` when the completion's answer equals the reference answer, else ``wrong``.

    The answer is the whole completion, or the first group of the first match of ``pattern``
    (e.g. ``r"<answer>(.*?)</answer>"``; no match is wrong). Both sides are stripped of
    surrounding whitespace (and compared case-insensitively unless ``case_sensitive``).

    Args:
        pattern (str | None): regular expression with one group that extracts the answer.
            Default: None (the whole completion).
        case_sensitive (bool): compare case-sensitively. Default: True.
        correct (float): reward for a right answer. Default: 1.0.
        wrong (float): reward for a wrong or missing answer. Default: 0.0.
        name (str | None): name in logs and errors. Default: None (the class name).

    Raises:
        ValueError: when ``pattern`` does not compile or has no group.
    """

    def __init__(self, pattern: str | None = None, *, case_sensitive: bool = True, correct: float = 1.0,
                 wrong: float = 0.0, name: str | None = None) -> None:
        self._regex = _compile(pattern, "pattern", need_group=True) if pattern is not None else None
        self.case_sensitive, self.correct, self.wrong = case_sensitive, float(correct), float(wrong)
        self.name = name or type(self).__name__

    def extract(self, completion: str) -> str | None:
        """The completion's answer (stripped), or None when ``pattern`` does not match."""
        if self._regex is None:
            return completion.strip()
        match = self._regex.search(completion)
        return match.group(1).strip() if match else None

    def __call__(self, completion: str, *, answer: str | None, prompt: str = "") -> float:
        """Score one completion against its reference ``answer``.

        Raises:
            ValueError: when the row has no reference answer.
        """
        if answer is None:
            raise ValueError("the row has no reference answer; give the dataset an answer column")
        got = self.extract(completion)
        if got is None:
            return self.wrong
        want = answer.strip()
        same = got == want if self.case_sensitive else got.casefold() == want.casefold()
        return self.correct if same else self.wrong


class FormatReward:
    """``reward`` when the completion has the expected form, else ``otherwise``.

    The form is a regular expression that must match the whole stripped completion
    (``fullmatch``) or, with ``search=True``, any part of it.

    Args:
        pattern (str): the regular expression, e.g. ``r"<think>.*</think>\\s*<answer>.*</answer>"``
            or ``r"[0-9]"`` (one digit and nothing else).
        search (bool): match anywhere instead of the whole completion. Default: False.
        reward (float): reward for the right form. Default: 1.0.
        otherwise (float): reward for any other completion. Default: 0.0.
        name (str | None): name in logs and errors. Default: None (the class name).

    Raises:
        ValueError: when ``pattern`` does not compile.
    """

    def __init__(self, pattern: str, *, search: bool = False, reward: float = 1.0, otherwise: float = 0.0,
                 name: str | None = None) -> None:
        self._regex = _compile(pattern, "pattern", need_group=False)
        self.search, self.reward, self.otherwise = search, float(reward), float(otherwise)
        self.name = name or type(self).__name__

    def __call__(self, completion: str, *, answer: str | None = None, prompt: str = "") -> float:
        """Score one completion's form (``answer`` and ``prompt`` are not used)."""
        text = completion.strip()
        match = self._regex.search(text) if self.search else self._regex.fullmatch(text)
        return self.reward if match else self.otherwise


class AnswerInPromptReward:
    """``reward`` when the stripped completion is one of the choices its prompt offers.

    The choices are every match of ``choices`` in the prompt (by default single digits), so a
    prompt "Pick one of 3 7 9" accepts "3", "7" or "9". Useful as a verifiable toy task and as
    a check that multiple-choice answers stay within the options.

    Args:
        choices (str): regular expression of one choice in the prompt. Default: ``r"[0-9]"``.
        reward (float): reward for a completion that is one of the choices. Default: 1.0.
        otherwise (float): reward for any other completion. Default: 0.0.
        name (str | None): name in logs and errors. Default: None (the class name).

    Raises:
        ValueError: when ``choices`` does not compile.
    """

    def __init__(self, choices: str = r"[0-9]", *, reward: float = 1.0, otherwise: float = 0.0,
                 name: str | None = None) -> None:
        self._regex = _compile(choices, "choices", need_group=False)
        self.reward, self.otherwise = float(reward), float(otherwise)
        self.name = name or type(self).__name__

    def __call__(self, completion: str, *, answer: str | None = None, prompt: str = "") -> float:
        """Score one completion against the choices found in ``prompt``."""
        options = {m.group(0) for m in self._regex.finditer(prompt)}
        return self.reward if completion.strip() in options else self.otherwise


def _compile(pattern: str, arg: str, *, need_group: bool) -> re.Pattern:
    try:
        regex = re.compile(pattern, re.DOTALL)
    except re.error as e:
        raise ValueError(f"{arg}={pattern!r} is not a regular expression: {e}") from None
    if need_group and regex.groups < 1:
        raise ValueError(f"{arg}={pattern!r} needs a group, e.g. '<answer>(.*?)</answer>', that captures the answer")
    return regex


def score_completions(
    reward_fns: Sequence[RewardFn],
    completions: Sequence[str],
    *,
    answers: Sequence[str | None],
    prompts: Sequence[str],
    locations: Sequence[str] | None = None,
) -> torch.Tensor:
    """Every reward function's reward for every completion.

    Args:
        reward_fns (Sequence[RewardFn]): F reward callables.
        completions (Sequence[str]): R decoded completions.
        answers (Sequence[str | None]): R reference answers (None where there is none).
        prompts (Sequence[str]): R prompt texts.
        locations (Sequence[str] | None): R descriptions of where each completion's prompt came
            from (e.g. ``"math.jsonl line 3, sample 2"``), for error messages. Default: None
            (``"completion <i>"``).

    Returns:
        torch.Tensor: ``[R, F]`` fp32 rewards.

    Raises:
        RewardError: naming the function and the row, when a function raises or returns
            something other than a finite real number (bools count as 0/1).
        ValueError: when there are no reward functions or the sequences differ in length.
    """
    if not reward_fns:
        raise ValueError("no reward functions given; list at least one under 'rewards'")
    lengths_differ = not len(completions) == len(answers) == len(prompts)
    if lengths_differ or (locations is not None and len(locations) != len(completions)):
        raise ValueError(f"{len(completions)} completions, {len(answers)} answers and {len(prompts)} prompts"
                         + (f" and {len(locations)} locations" if locations is not None else "") + " must be as many")
    out = torch.zeros(len(completions), len(reward_fns), dtype=torch.float32)
    for j, fn in enumerate(reward_fns):
        for i, (completion, answer, prompt) in enumerate(zip(completions, answers, prompts)):
            where = locations[i] if locations is not None else f"completion {i}"
            try:
                value = fn(completion, answer=answer, prompt=prompt)
            except Exception as e:  # a user's function: any failure becomes one message naming it and the row
                raise RewardError(
                    f"reward function {reward_name(fn)!r} raised {type(e).__name__}: {e} (on {where}, completion "
                    f"{completion!r:.80})"
                ) from e
            out[i, j] = _as_number(value, fn, where, completion)
    return out


def _as_number(value: Any, fn: RewardFn, where: str, completion: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, Real) and math.isfinite(float(value)):
        return float(value)
    raise RewardError(
        f"reward function {reward_name(fn)!r} returned {value!r:.80} ({type(value).__name__}) on {where}, completion "
        f"{completion!r:.80}; a reward must be a finite int or float"
    )
