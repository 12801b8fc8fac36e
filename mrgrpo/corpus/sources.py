"""Where a rollout corpus comes from: a stored file, the paper's release, a mock, or a model.

:func:`load_rollouts` is the Tier-2 chapter's ``source`` parameter as a function:

- ``"corpus"``: a stored :class:`~mrgrpo.corpus.types.Corpus` (``.npz`` or ``.parquet``);
- ``"released"``: the paper's released rollouts (:func:`~mrgrpo.corpus.released.load_released_rollouts`);
- ``"mock"``: :class:`~mrgrpo.corpus.mock.MockBackend` with Gaussian channels whose
  correlation is the paper's pooled Qwen2.5-1.5B GSM8K matrix :data:`PAPER_POOLED_C`;
- ``"generate"``: fresh rollouts of a Hugging Face model
  (:class:`~mrgrpo.corpus.hf.HFBackend`) on the held-out prompts of its task
  (:func:`mrgrpo.tasks.registry.task_setup`): mini-math for a local model folder
  (the book's tiny policy), GSM8K for a hub id, unless ``task`` says otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mrgrpo.corpus.io import load_corpus
from mrgrpo.corpus.mock import MockBackend
from mrgrpo.corpus.released import load_released_rollouts
from mrgrpo.corpus.run import run_corpus
from mrgrpo.lm.models import is_tiny_math, model_label
from mrgrpo.tasks.mini_math import MINI_MATH_MAX_NEW_TOKENS

__all__ = ["SOURCES", "PAPER_POOLED_C", "load_rollouts", "describe_source"]

#: The values of ``source`` that :func:`load_rollouts` accepts.
SOURCES = ("corpus", "generate", "released", "mock")
#: Pooled reward correlation (correctness, length, format) of the paper's Qwen2.5-1.5B
#: GSM8K rollouts: the mock source's population correlation.
PAPER_POOLED_C = np.array([[1.0, -0.64, 0.28], [-0.64, 1.0, -0.10], [0.28, -0.10, 1.0]])
#: Completion budgets of the generate source: the tiny policy's, and the paper's for GSM8K.
_MAX_NEW_TOKENS = {"mini-math": MINI_MATH_MAX_NEW_TOKENS, "gsm8k": 512}


def _check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use {', '.join(SOURCES)}")
    return source


def _generate_task(model: str | os.PathLike, task: Optional[str]) -> str:
    """The task of ``"generate"``: mini-math for the tiny policy (or any local folder), GSM8K for a hub id."""
    if task is not None:
        return task
    return "mini-math" if is_tiny_math(model) or Path(model).is_dir() else "gsm8k"


def load_rollouts(source: str, *, corpus_path: str | os.PathLike | None = None,
                  model: str | os.PathLike | None = None, n_prompts: int = 150, K: int = 16,
                  m_grid: Sequence[int] = (4, 8, 16, 32), temperature: float = 1.0, device: str = "cpu",
                  seed: int = 0, task: Optional[str] = None, progress: bool = True):
    """The rollout corpus of one ``source``.

    Parameters
    ----------
    source : {"corpus", "generate", "released", "mock"}
    corpus_path : path
        The stored corpus (``.npz`` or ``.parquet``), for ``"corpus"``.
    model : path or hub id
        For ``"generate"``; for ``"released"``, a name containing ``"7b"`` picks
        the paper's 7B rollouts, anything else its 1.5B ones.
    n_prompts, K : int
        Prompts and seeds (independent groups per prompt) to generate
        (``"mock"``, ``"generate"``); stored corpora keep their own sizes.
    m_grid : sequence of int
        Group sizes; generated corpora sample at ``max(m_grid)`` and take prefixes.
    temperature : float
        Sampling temperature of ``"generate"``.
    device : str
        ``"cpu"``, ``"cuda"``, ... (``"generate"``; bfloat16 on CUDA).
    seed : int
        Base seed of the generated groups (``"mock"``, ``"generate"``) and of
        the prompt selection.
    task : {"mini-math", "gsm8k"}, optional
        The task of ``"generate"`` (default: mini-math for a local folder, GSM8K
        for a hub id).
    progress : bool
        Show the generator's progress bar.

    Returns
    -------
    mrgrpo.corpus.types.Corpus
    """
    _check_source(source)
    if source == "corpus":
        if corpus_path is None:
            raise ValueError("source 'corpus' needs corpus_path (a .npz or .parquet corpus)")
        path = Path(corpus_path)
        return load_corpus(path)
    if source == "released":
        return load_released_rollouts("7b" if "7b" in os.fspath(model or "").lower() else "1.5b", m_grid=m_grid)
    if source == "mock":
        prompts = [(f"p{i}", "0") for i in range(n_prompts)]
        return run_corpus(MockBackend(C=PAPER_POOLED_C, seed=seed), prompts, m_grid, K,
                          subsample_from_max=True, seed=seed)
    if model is None:
        raise ValueError("source 'generate' needs model (a local model folder or a hub id)")
    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.tasks.registry import task_setup

    task = _generate_task(model, task)
    if task not in _MAX_NEW_TOKENS:
        raise ValueError(f"source 'generate' needs a math task with gold answers (mini-math or gsm8k), got {task!r}")
    budget = _MAX_NEW_TOKENS[task]
    backend = HFBackend(model, None, device=device, temperature=temperature, max_new_tokens=budget,
                        dtype="bfloat16" if str(device).startswith("cuda") else None, progress=progress)
    setup = task_setup(task, backend.tokenizer, n_train=0, n_eval=n_prompts, seed=seed)
    backend.set_reward_fn(setup.reward_fn)
    return run_corpus(backend, setup.eval_prompts, m_grid, K, subsample_from_max=True, seed=seed)


def describe_source(source: str, *, corpus_path: str | os.PathLike | None = None,
                    model: str | os.PathLike | None = None, task: Optional[str] = None) -> str:
    """A phrase naming where the rollouts of ``source`` come from (for the book's text)."""
    _check_source(source)
    if source == "corpus":
        return f"a stored corpus ({Path(corpus_path).name if corpus_path else 'no path'})"
    if source == "generate":
        return f"fresh generation with {model_label(model)} on {_generate_task(model, task)}"
    if source == "released":
        return "the paper's released rollouts"
    return "a mock backend whose Gaussian channels have the paper's pooled GSM8K correlations"
