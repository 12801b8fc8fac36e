"""The held-out evaluation both engines run: one completion per prompt, scored, averaged.

:func:`evaluate_policy` is what ``GRPOTrainer.evaluate`` and ``TRLEngineTrainer.evaluate`` call.
Prompt ``i`` is a group of one drawn by :mod:`mrgrpo.lm.sampling` from the uniforms of
``(prompt text, config.eval_seed)``, so the same policy gives the same completions in either
engine, and every training run is evaluated on the same draws. :func:`check_budget` refuses a
completion budget that does not fit the model's context before anything is allocated (both
engines' set-up call it too).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from mrgrpo.lm.precision import precision
from mrgrpo.lm.prompts import encode, render
from mrgrpo.lm.sampling import check_context, group_uniforms, sample_tokens
from mrgrpo.rewards.base import score_completions

from .masks import completion_mask

__all__ = ["BUDGET", "check_budget", "encode_prompts", "evaluate_policy"]

#: How errors name the completion budget (the config field and its ``mrgrpo train`` flag).
BUDGET = "max_new_tokens (--max-new-tokens)"

#: ``score(texts, rows) -> (n, R)`` rewards of ``n`` completions of the prompts ``rows``.
Scorer = Callable[[list, np.ndarray], Any]


def encode_prompts(prompts: Sequence[Any], tokenizer: Any, config: Any) -> tuple[list[list[int]], list[str]]:
    """Token ids and rendered texts (the sampler's seed keys) of prompts, as every sampler in mrgrpo makes them.

    Parameters
    ----------
    prompts : sequence of :class:`mrgrpo.lm.prompts.Prompt`
    tokenizer : the policy's tokenizer
    config : GRPOConfig (``system_prompt``, ``use_chat_template``)
    """
    kw = dict(system_prompt=config.system_prompt, use_chat_template=config.use_chat_template)
    return [encode(p, tokenizer, **kw) for p in prompts], [render(p, tokenizer, **kw) for p in prompts]


def check_budget(model: Any, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> None:
    """Refuse prompts plus ``max_new_tokens`` that overflow the model's context window (one-line ``ValueError``).

    Parameters
    ----------
    model : the policy (its ``config.max_position_embeddings`` is the window; none known: no check)
    prompt_ids : token-id sequences of every prompt the run will sample from
    max_new_tokens : int
    """
    longest = max((len(p) for p in prompt_ids), default=0)
    if longest:
        check_context(model, longest, int(max_new_tokens), budget=BUDGET)


@torch.no_grad()
def evaluate_policy(model: Any, tokenizer: Any, prompts: Sequence[Any], reward_fn: Any, config: Any, *,
                    step: int, channel_names: Sequence[str], eos_ids: Sequence[int],
                    encoded: Optional[tuple[list[list[int]], list[str]]] = None,
                    score: Optional[Scorer] = None) -> tuple[dict, list[dict]]:
    """Mean rewards of one completion per prompt, and every reply.

    Parameters
    ----------
    model, tokenizer : the policy and its tokenizer
        The model computes under :func:`mrgrpo.lm.precision.precision` of ``config.dtype`` on
        its device; it is put in eval mode and given back in the mode it had.
    prompts : list of :class:`mrgrpo.lm.prompts.Prompt`, length ``P``
    reward_fn : ``reward_fn(completion, prompt_item) -> R floats``
    config : GRPOConfig
        ``max_new_tokens``, ``eval_temperature``, ``eval_seed``, ``eval_batch_size``,
        ``system_prompt``, ``use_chat_template``, ``weights`` (``R``), ``dtype``.
    step : int
        Steps completed (recorded in the record and every sample).
    channel_names : R names
    eos_ids : the end-of-sequence ids (:func:`mrgrpo.lm.loader.eos_token_ids`)
    encoded : (ids, texts), optional
        :func:`encode_prompts` of ``prompts``, when the caller keeps them.
    score : callable ``(texts, rows) -> (n, R)``, optional
        How a batch is scored (``rows``: indices into ``prompts``); default
        :func:`mrgrpo.rewards.base.score_completions` on the prompts' items.

    Returns
    -------
    record : dict
        ``step``, every channel's mean, ``aggregate`` (mean of ``w . r``), ``completion_len``
        (mean tokens, EOS included) and ``truncated_frac``.
    samples : list of dict, length ``P``
        ``step``, ``prompt``, ``completion``, ``n_tokens`` (EOS included), ``ended`` and every
        channel's reward (the rows of ``eval_samples.json``).

    Raises
    ------
    ValueError
        A prompt plus ``max_new_tokens`` overflows the context (before any uniforms are drawn).
    """
    cfg = config
    ids_list, keys = encoded if encoded is not None else encode_prompts(prompts, tokenizer, cfg)
    check_budget(model, ids_list, cfg.max_new_tokens)
    if score is None:
        def score(texts: list, rows: np.ndarray) -> Any:
            return score_completions(reward_fn, texts, [prompts[i].item for i in rows], n_channels=len(cfg.weights))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    prec = precision(cfg.dtype, next(model.parameters()).device, model=cfg.model)
    eos = set(eos_ids)
    was_training = model.training
    model.eval()
    rewards, n_tok, n_trunc, samples = [], 0, 0, []
    try:
        for start in range(0, len(prompts), cfg.eval_batch_size):
            rows = np.arange(start, min(start + cfg.eval_batch_size, len(prompts)))
            uniforms = np.concatenate([group_uniforms(keys[i], cfg.eval_seed, 1, cfg.max_new_tokens) for i in rows])
            with prec.autocast():
                comp, _ = sample_tokens(model, [ids_list[i] for i in rows], uniforms,
                                        temperature=cfg.eval_temperature, eos_ids=eos_ids, pad_id=pad_id)
            attn, truncated = completion_mask(comp, eos_ids)
            texts = []
            for row in comp.tolist():
                cut = next((k for k, t in enumerate(row) if t in eos), len(row))
                texts.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
            rewards.append(np.asarray(score(texts, rows), dtype=np.float64))
            n_tok += int(attn.sum())
            n_trunc += int(truncated.sum())
            samples += [{"step": int(step), "prompt": prompts[i].text, "completion": text, "n_tokens": int(n),
                         "ended": not cut} for i, text, n, cut in
                        zip(rows, texts, attn.sum(1).tolist(), truncated.tolist())]
    finally:
        model.train(was_training)
    r = np.concatenate(rewards)  # (P, R)
    for sample, row in zip(samples, r.tolist()):
        sample.update(zip(channel_names, row))
    rec = {"step": int(step), **{n: float(r[:, k].mean()) for k, n in enumerate(channel_names)},
           "aggregate": float((r @ np.asarray(cfg.weights)).mean()),
           "completion_len": n_tok / len(prompts), "truncated_frac": n_trunc / len(prompts)}
    return rec, samples
