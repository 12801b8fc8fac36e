"""One place that says what a task is: its reward function and its prompts.

The CLI (``mrgrpo train --task ...``), the Tier-2 rollout loader
(:func:`mrgrpo.corpus.sources.load_rollouts`) and the Tier-3 chapter all build their task
through :func:`task_setup`, so the three agree on prompts, splits and reward scales.

- ``mini-math``: correctness, length (L0 = 32), format; ``make_mini_math``'s train
  and test splits;
- ``mini-math-strict``: strict, format (:class:`~mrgrpo.rewards.heterogeneity.StrictAnswerReward`,
  the channel-heterogeneity experiment); the same prompts as ``mini-math``;
- ``mini-math-strict-instructed``: ``mini-math-strict`` with :data:`ANSWER_INSTRUCTION` after each
  question, for an instruction-tuned model that has never seen the answer sentence (the tiny
  policy learned it in its own training data, so its prompts carry no instruction);
- ``fintech``: compliance, politeness, action; one list of distinct
  ``make_fintech_prompts`` scenarios, cut in two. Politeness is gated by compliance in the
  reward itself (the paper's conditioning);
- ``fintech-ungated``: the same prompts and channels with politeness *not* gated (politeness
  counts whether or not the reply is compliant): the reweighting-only baseline of Tier 3's
  conditioning arm. ``--conditioning zero_fill --gate 0 --conditioned 1`` on it gives
  ``fintech``'s rewards back;
- ``fintech-hardened``: ``fintech`` where politeness and action count only for a reply that
  addresses the request (shares a content word with it and does not echo it): a robustness
  reward against the gaming the paper's reward invites, not the paper's;
- ``gsm8k``: correctness, length (L0 = 200), format; GSM8K's train and test splits,
  shuffled by ``seed`` (a local file: one shuffled list, cut in two).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from mrgrpo.core.fields import check_fields, knob, to_json_value
from mrgrpo.tasks.mini_math import MINI_MATH_L0, MINI_MATH_MAX_NEW_TOKENS

__all__ = ["TASKS", "FINTECH_TASKS", "STRICT_TASKS", "ANSWER_INSTRUCTION", "TaskSetup", "TaskSettings",
           "task_reward", "task_setup", "task_max_new_tokens"]

#: The task names :func:`task_setup` accepts.
TASKS = ("mini-math", "mini-math-strict", "mini-math-strict-instructed", "fintech", "fintech-ungated",
         "fintech-hardened", "gsm8k")
#: The tasks scored by :class:`~mrgrpo.rewards.heterogeneity.StrictAnswerReward`.
STRICT_TASKS = ("mini-math-strict", "mini-math-strict-instructed")
#: What ``mini-math-strict-instructed`` adds to each question: the answer form the strict verifier reads.
ANSWER_INSTRUCTION = " End your reply with: The answer is <number>."
#: The most prompts a run may ask for (training or held-out): far above any task's pool.
MAX_PROMPTS = 10**6
#: The tasks over the fintech scenarios (one prompt list; no tokenizer needed).
FINTECH_TASKS = ("fintech", "fintech-ungated", "fintech-hardened")
#: The paper's length target for GSM8K completions (tokens).
GSM8K_L0 = 200.0
#: Completion budgets: the tiny policy's on mini-math; the paper's on fintech and GSM8K.
MAX_NEW_TOKENS = {"mini-math": MINI_MATH_MAX_NEW_TOKENS, "mini-math-strict": MINI_MATH_MAX_NEW_TOKENS,
                  "mini-math-strict-instructed": 96, "fintech": 96,
                  "fintech-ungated": 96, "fintech-hardened": 96, "gsm8k": 512}


@dataclass(frozen=True)
class TaskSetup:
    """A task ready to train or roll out on.

    Attributes
    ----------
    task : str
    reward_fn : callable
        ``reward_fn(completion, prompt) -> R floats``, with ``channel_names``.
    train_prompts, eval_prompts : list of dict
        Prompt items (``prompt``, ``gold``, ...); the two lists share no prompt.
    """

    task: str
    reward_fn: Any
    train_prompts: list = field(default_factory=list)
    eval_prompts: list = field(default_factory=list)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.reward_fn.channel_names)


@dataclass(frozen=True)
class TaskSettings:
    """What a training run trains on: the task and its prompts, checked when built.

    ``mrgrpo train`` generates its task flags from these fields, and the trainer
    records them in its checkpoints (``GRPOTrainer(run_info=settings.to_dict())``),
    so a resumed run cannot switch task or prompts unnoticed.
    """

    task: str = knob("mini-math", "reward and prompts: mini-math (the tiny policy's arithmetic), mini-math-strict "
                     "(its prompts; a strict answer-sentence verifier and a format channel), "
                     "mini-math-strict-instructed (the same, each question followed by the answer form to "
                     "use), fintech, "
                     "fintech-ungated (politeness not gated by compliance), fintech-hardened (politeness and "
                     "action only for replies that address the request), gsm8k",
                     choices=TASKS, section="task")
    n_train: int = knob(400, "training prompts", low=1, high=MAX_PROMPTS)
    n_eval: int = knob(64, "held-out evaluation prompts (0: none)", low=0, high=MAX_PROMPTS)
    data_seed: Optional[int] = knob(None, "seed of the train / held-out prompt split (none: the run's seed; fix it "
                                    "to evaluate several seeds on the same held-out prompts)", low=0,
                                    high=2**32 - 1)
    L0: Optional[float] = knob(None, "length target of the math tasks in tokens (none: 32 on mini-math, "
                               "200 on gsm8k)", low=0, low_open=True)
    gsm8k_path: Optional[str] = knob(None, "a local GSM8K .jsonl or .parquet (offline use)", path=True,
                                     nonempty=True, metavar="FILE")
    reward_funcs: tuple[str, ...] = knob((), "your reward functions instead of the task's, one per channel: "
                                         "module:function or file.py:function, each TRL-style f(prompts, "
                                         "completions, **columns) -> list of floats (the task's prompt items' "
                                         "other keys are the columns); give --weights to match",
                                         metavar="MODULE:FUNC,...")

    def __post_init__(self) -> None:
        check_fields(self, "TaskSettings")

    def to_dict(self) -> dict:
        """JSON-friendly dict of every field."""
        return {f.name: to_json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def setup(self, tokenizer: Any = None, seed: int = 0, use_chat_template: bool | str = True) -> "TaskSetup":
        """:func:`task_setup` with these settings; the split is drawn with ``data_seed``, else the run's ``seed``."""
        split_seed = seed if self.data_seed is None else self.data_seed
        setup = task_setup(self.task, tokenizer, self.n_train, self.n_eval, split_seed, L0=self.L0,
                           gsm8k_path=self.gsm8k_path, use_chat_template=use_chat_template)
        if self.reward_funcs:
            from mrgrpo.rewards.external import RewardFunctions

            setup = dataclasses.replace(setup, reward_fn=RewardFunctions.from_specs(self.reward_funcs))
        return setup


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task


def _tokenizer(tokenizer: Any) -> Any:
    """``tokenizer`` as an object: a model id, folder or hub id is loaded by :func:`mrgrpo.lm.loader.load_tokenizer`."""
    if isinstance(tokenizer, (str, os.PathLike)):
        from mrgrpo.lm.loader import load_tokenizer

        return load_tokenizer(tokenizer)
    return tokenizer


def task_max_new_tokens(task: str) -> int:
    """The completion budget of ``task`` (:data:`MAX_NEW_TOKENS`)."""
    return MAX_NEW_TOKENS[_check_task(task)]


def task_reward(task: str, tokenizer: Any = None, L0: Optional[float] = None) -> Any:
    """The reward function of ``task``.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
    tokenizer : tokenizer object, model path or hub id, optional
        The math tasks count the length channel in this tokenizer's tokens (None:
        the reward's own fallback count). The fintech reward ignores it.
    L0 : float, optional
        Length target of the math tasks (default 32 for mini-math, the tiny
        policy's scale, and 200 for GSM8K, the paper's).
    """
    _check_task(task)
    if task in FINTECH_TASKS:
        from mrgrpo.rewards.fintech import FintechRewardFunction

        return FintechRewardFunction(gate_politeness=task != "fintech-ungated",
                                     require_relevance=task == "fintech-hardened")
    if task in STRICT_TASKS:
        from mrgrpo.rewards.heterogeneity import StrictAnswerReward

        return StrictAnswerReward()
    from mrgrpo.rewards.math import MathRewardFunction

    default = MINI_MATH_L0 if task == "mini-math" else GSM8K_L0
    return MathRewardFunction(L0=default if L0 is None else L0, tokenizer=_tokenizer(tokenizer))


def _count(name: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return n


def _distinct(make, n: int, seed: int) -> list:
    """``n`` items of ``make(k, seed)`` with distinct prompt texts, in draw order.

    The fintech generator repeats a scenario now and then (about 4% of 480 draws);
    dropping repeats keeps a repeated scenario out of both the training and the
    held-out list.
    """
    k = n
    while True:
        seen: dict[str, dict] = {}
        for item in make(k, seed=seed):
            seen.setdefault(item["prompt"], item)
        if len(seen) >= n or k >= 64 * n + 1024:
            break
        k *= 2
    if len(seen) < n:
        raise ValueError(f"could not draw {n} distinct prompts (only {len(seen)} in {k} draws)")
    return list(seen.values())[:n]


def task_setup(task: str, tokenizer: Any = None, n_train: int = 400, n_eval: int = 64, seed: int = 0, *,
               L0: Optional[float] = None, gsm8k_path: str | os.PathLike | None = None,
               use_chat_template: bool | str = True) -> TaskSetup:
    """Reward function, training prompts and held-out prompts of ``task``.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
    tokenizer : tokenizer object, model path or hub id, optional
        The policy's tokenizer: it sets the math length unit and, for mini-math,
        whether prompts need the ``"Q: ...\\nA:"`` frame written into them (only
        when the policy has no chat template, or ``use_chat_template`` is False).
    n_train, n_eval : int
        Prompt counts (``n_eval = 0``: no held-out prompts).
    seed : int
        Selects the prompts; the train and held-out lists never overlap (mini-math
        and GSM8K draw from disjoint splits; fintech cuts one list of distinct
        scenarios in two).
    L0 : float, optional
        Length target of the math tasks (see :func:`task_reward`).
    gsm8k_path : path, optional
        A local GSM8K ``.jsonl`` / ``.parquet`` (offline use). It is shuffled by
        ``seed`` and cut into ``n_train`` training and ``n_eval`` held-out problems.
    use_chat_template : bool or "auto"
        The trainer's setting: False means prompts are never wrapped in the chat
        template (``GRPOConfig.use_chat_template``).

    Returns
    -------
    TaskSetup
    """
    _check_task(task)
    n_train, n_eval = _count("n_train", n_train), _count("n_eval", n_eval)
    tok = _tokenizer(tokenizer) if task not in FINTECH_TASKS else None
    reward_fn = task_reward(task, tok, L0=L0)
    if task in FINTECH_TASKS:
        from mrgrpo.tasks.fintech import make_fintech_prompts

        items = _distinct(make_fintech_prompts, n_train + n_eval, seed)
        return TaskSetup(task, reward_fn, items[:n_train], items[n_train:])
    if task == "gsm8k":
        from mrgrpo.tasks.gsm8k import load_gsm8k

        if gsm8k_path is not None:
            # one local file holds one split: shuffle it once and cut it in two, so
            # the held-out prompts are not the training prompts
            items = load_gsm8k("train", n=n_train + n_eval, path=gsm8k_path, seed=seed)
            if len(items) < n_train + n_eval:
                raise ValueError(f"{gsm8k_path} has {len(items)} problems; n_train + n_eval = {n_train + n_eval}")
            return TaskSetup(task, reward_fn, items[:n_train], items[n_train:])
        train = load_gsm8k("train", n=n_train, seed=seed) if n_train else []
        test = load_gsm8k("test", n=n_eval, seed=seed) if n_eval else []
        return TaskSetup(task, reward_fn, train, test)
    from mrgrpo.tasks.mini_math import format_prompt, make_mini_math

    has_template = bool(use_chat_template and getattr(tok, "chat_template", None))
    suffix = ANSWER_INSTRUCTION if task == "mini-math-strict-instructed" else ""

    def frame(items: list) -> list:
        items = [{**p, "prompt": p["prompt"] + suffix} for p in items] if suffix else items
        # a chat template (the shipped tiny policy has one) wraps the question as
        # "Q: ...\nA:" itself; without one, write that frame into the prompt
        return items if has_template else [{**p, "prompt": format_prompt(p)} for p in items]

    return TaskSetup(task, reward_fn, frame(make_mini_math(n_train, seed=seed, split="train")),
                     frame(make_mini_math(n_eval, seed=seed, split="test")))
