"""Prompt sources: the project's synthetic mini-math and fintech generators, and GSM8K.

- :func:`make_mini_math` small GSM8K-style arithmetic word problems (train / test splits)
- :func:`make_fintech_prompts` customer-service scenarios for the fintech reward
- :func:`load_gsm8k` GSM8K (``openai/gsm8k``, config ``main``) through ``datasets``
"""
from __future__ import annotations

from mrgrpo.tasks.fintech import make_fintech_prompts
from mrgrpo.tasks.gsm8k import DatasetUnavailableError, load_gsm8k, load_gsm8k_prompts
from mrgrpo.tasks.registry import FINTECH_TASKS, TASKS, TaskSetup, task_reward, task_setup
from mrgrpo.tasks.mini_math import (
    MINI_MATH_ALPHABET,
    format_example,
    format_prompt,
    make_mini_math,
    solution_text,
)

__all__ = [
    "MINI_MATH_ALPHABET",
    "make_mini_math",
    "solution_text",
    "format_prompt",
    "format_example",
    "make_fintech_prompts",
    "load_gsm8k",
    "load_gsm8k_prompts",
    "DatasetUnavailableError",
    "TASKS",
    "FINTECH_TASKS",
    "TaskSetup",
    "task_reward",
    "task_setup",
]
