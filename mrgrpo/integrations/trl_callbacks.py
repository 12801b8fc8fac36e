"""What the TRL engine adds to a TRL run: mrgrpo's metrics records, its evaluation, its checkpoint state.

- :func:`engine_record`: one TRL log (TRL's metrics plus ``MultiRewardGRPOTrainer``'s
  ``mrgrpo/...`` metrics) as a record of mrgrpo's ``metrics.json``, with the keys of
  :class:`mrgrpo.train.GRPOTrainer` where they mean the same thing;
- :func:`evaluate_policy`: the held-out evaluation of ``GRPOTrainer.evaluate`` (one
  completion per prompt, drawn with :mod:`mrgrpo.lm.sampling` from the uniforms of
  ``(prompt, eval_seed)``, so the same policy gives the same completions in either engine);
- :class:`RunRecorder`: the ``transformers.TrainerCallback`` that keeps the records,
  evaluates, writes ``metrics``/``eval`` and the checkpoint state, and draws the progress bar.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from mrgrpo.core.files import atomic_write_text
from mrgrpo.lm.prompts import encode, render
from mrgrpo.lm.sampling import group_uniforms, sample_tokens
from mrgrpo.rewards.base import score_completions
from mrgrpo.train.masks import completion_mask
from mrgrpo.train.metrics import write_history

__all__ = ["engine_record", "evaluate_policy", "RunRecorder", "RENAMED", "ENGINE_STATE"]

#: The file in each TRL checkpoint folder that makes it an mrgrpo checkpoint (written last).
ENGINE_STATE = "mrgrpo_state.json"

#: mrgrpo's metric name <- TRL's, for the metrics that mean the same in both trainers.
RENAMED = {"loss": "loss", "kl": "kl", "grad_norm": "grad_norm", "lr": "learning_rate",
           "completion_len": "completions/mean_length", "truncated_frac": "completions/clipped_ratio"}


def engine_record(logs: dict, step: int, seconds: float, n_completions: int) -> dict:
    """A ``metrics.json`` record from one TRL log.

    Parameters
    ----------
    logs : dict
        What TRL logged for the step (``loss``, ``completions/mean_length``, ``mrgrpo/...``, ...).
    step : int
        Sampled batches completed.
    seconds : float
        Wall time of the step.
    n_completions : int
        Completions of the step, over all processes (``batch_prompts * m``).

    Returns
    -------
    dict
        ``step``; the :data:`RENAMED` metrics (``kl`` is 0 when TRL computed none, as in
        mrgrpo's trainer); ``MultiRewardGRPOTrainer``'s metrics without their ``mrgrpo/``
        prefix (``reward/<channel>``, ``influence/<channel>``, ...); ``step_time``,
        ``tokens_per_s`` (completion tokens, EOS included, per second); every other
        numeric TRL metric under ``trl/``.
    """
    rec: dict[str, Any] = {"step": int(step)}
    for ours, theirs in RENAMED.items():
        if logs.get(theirs) is not None:
            rec[ours] = float(logs[theirs])
    rec.setdefault("kl", 0.0)
    rec.update({k[len("mrgrpo/"):]: v for k, v in logs.items() if k.startswith("mrgrpo/")})
    rec["step_time"] = float(seconds)
    if "completion_len" in rec and seconds > 0:
        rec["tokens_per_s"] = rec["completion_len"] * n_completions / seconds
    taken = set(RENAMED.values())
    rec.update({f"trl/{k}": v for k, v in logs.items() if k not in taken and not k.startswith("mrgrpo/")
                and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return rec


@torch.no_grad()
def evaluate_policy(model: Any, tokenizer: Any, eos_ids: Sequence[int], prompts: Sequence[Any], reward_fn: Any,
                    config: Any, step: int, channel_names: Sequence[str], device: Any) -> tuple[dict, list[dict]]:
    """Mean rewards of one completion per prompt (``GRPOTrainer.evaluate``'s record, and its samples).

    Parameters
    ----------
    model, tokenizer : the policy and its tokenizer
    eos_ids : the end-of-sequence ids (:func:`mrgrpo.lm.loader.eos_token_ids`)
    prompts : list of :class:`mrgrpo.lm.prompts.Prompt`
    reward_fn : ``reward_fn(completion, prompt_item) -> R floats``
    config : GRPOConfig (``max_new_tokens``, ``eval_temperature``, ``eval_seed``, ``eval_batch_size``,
        ``system_prompt``, ``use_chat_template``, ``weights``, ``dtype``)
    step : int
    channel_names : R names
    device : torch.device of the model

    Returns
    -------
    record : dict
        ``step``, every channel's mean, ``aggregate`` (``w . r``), ``completion_len``, ``truncated_frac``.
    samples : list of dict
        One per prompt: ``step``, ``prompt``, ``completion``, ``n_tokens`` (EOS included), ``ended``
        and every channel's reward (the rows of ``eval_samples.json``).
    """
    cfg = config
    kw = dict(system_prompt=cfg.system_prompt, use_chat_template=cfg.use_chat_template)
    ids_list = [encode(p, tokenizer, **kw) for p in prompts]
    keys = [render(p, tokenizer, **kw) for p in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    dev = torch.device(device)
    dtype = "bfloat16" if cfg.dtype == "auto" else cfg.dtype  # the trainer's rule: autocast on a GPU only
    autocast = torch.autocast(dev.type, dtype=getattr(torch, dtype)) if dev.type == "cuda" and \
        dtype != "float32" else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    rewards, n_tok, n_trunc, samples = [], 0, 0, []
    eos = set(eos_ids)
    try:
        for start in range(0, len(prompts), cfg.eval_batch_size):
            rows = list(range(start, min(start + cfg.eval_batch_size, len(prompts))))
            uniforms = np.concatenate([group_uniforms(keys[i], cfg.eval_seed, 1, cfg.max_new_tokens) for i in rows])
            batch = [ids_list[i] for i in rows]
            with autocast:
                comp, _ = sample_tokens(model, batch, uniforms, temperature=cfg.eval_temperature, eos_ids=eos_ids,
                                        pad_id=pad_id)
            attn, truncated = completion_mask(comp, eos_ids)
            texts = []
            for row in comp.tolist():
                cut = next((k for k, t in enumerate(row) if t in eos), len(row))
                texts.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
            rewards.append(score_completions(reward_fn, texts, [prompts[i].item for i in rows],
                                             n_channels=len(cfg.weights)))
            n_tok += int(attn.sum())
            n_trunc += int(truncated.sum())
            samples += [{"step": int(step), "prompt": prompts[i].text, "completion": text, "n_tokens": int(n),
                         "ended": not cut} for i, text, n, cut in
                        zip(rows, texts, attn.sum(1).tolist(), truncated.tolist())]
    finally:
        model.train(was_training)
    r = np.concatenate(rewards)
    for sample, row in zip(samples, r.tolist()):
        sample.update(zip(channel_names, row))
    rec = {"step": int(step), **{n: float(r[:, k].mean()) for k, n in enumerate(channel_names)},
           "aggregate": float((r @ np.asarray(cfg.weights)).mean()),
           "completion_len": n_tok / len(prompts), "truncated_frac": n_trunc / len(prompts)}
    return rec, samples


class RunRecorder(TrainerCallback):
    """Keeps an engine's records as TRL trains (see the module docstring).

    Parameters
    ----------
    owner : :class:`mrgrpo.integrations.trl_engine.TRLEngineTrainer`
    """

    def __init__(self, owner: Any):
        self.owner = owner
        self.bar = None
        self.clock = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        from mrgrpo.core.progress import progress_bar

        cfg = self.owner.cfg
        self.bar = progress_bar(total=cfg.n_steps, initial=self.owner.step, desc=f"GRPO[trl:{cfg.mode}]",
                                mininterval=2.0, enabled=cfg.progress and state.is_world_process_zero)
        self.clock = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or state.global_step % args.logging_steps:
            return  # TRL's end-of-training summary, or a partial logging window
        owner, cfg = self.owner, self.owner.cfg
        step = state.global_step // cfg.num_iterations
        rec = engine_record(logs, step, time.perf_counter() - self.clock, cfg.batch_prompts * cfg.m)
        owner.history.append(rec)
        owner.step = step
        if owner.eval_prompts and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.n_steps):
            owner.evaluate()
        if owner.out_dir and state.is_world_process_zero:
            write_history(owner.history, owner.out_dir)
        for cb in owner.callbacks:
            cb(owner, rec)
        if self.bar is not None:
            self.bar.update(1)
            shown = {n[:8]: f"{rec.get(f'reward/{n}', float('nan')):.2f}" for n in owner.channel_names}
            self.bar.set_postfix(shown | {"kl": f"{rec['kl']:.3f}"})
        self.clock = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"  # TRL's folder
            if folder.is_dir():
                atomic_write_text(folder / ENGINE_STATE, json.dumps(self.owner.state()))
        self.clock = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
