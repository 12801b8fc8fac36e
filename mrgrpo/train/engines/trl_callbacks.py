"""What the TRL engine adds to a TRL run: mrgrpo's metrics records, its evaluation, its checkpoint state.

- :func:`engine_record`: one TRL log (TRL's metrics plus ``MultiRewardGRPOTrainer``'s
  ``mrgrpo/...`` metrics) as a record of mrgrpo's ``metrics.json``, with the keys of
  :class:`mrgrpo.train.GRPOTrainer` where they mean the same thing;
- :class:`RunRecorder`: the ``transformers.TrainerCallback`` that keeps the records, evaluates
  (the owner's ``evaluate``: :func:`mrgrpo.train.evaluation.evaluate_policy`, as in ``GRPOTrainer``),
  writes ``metrics``/``eval`` and the checkpoint state, and draws the progress bar.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from mrgrpo.core.files import atomic_write_text
from mrgrpo.core.run_folder import mark_started
from mrgrpo.train.checkpoint import RUN_FOLDER
from mrgrpo.train.metrics import write_history

__all__ = ["engine_record", "RunRecorder", "RENAMED", "ENGINE_STATE"]

#: The file in each TRL checkpoint folder that makes it an mrgrpo checkpoint (written last).
ENGINE_STATE = "mrgrpo_state.json"

#: mrgrpo's metric name <- TRL's, for the metrics that mean the same in both trainers. Under
#: ``MultiRewardGRPOTrainer`` TRL's ``reward`` is the aggregate ``w . r`` after conditioning, and each
#: channel's mean is TRL's ``rewards/<channel>/mean`` (the engine names its reward functions after the channels).
RENAMED = {"loss": "loss", "kl": "kl", "grad_norm": "grad_norm", "lr": "learning_rate",
           "completion_len": "completions/mean_length", "truncated_frac": "completions/clipped_ratio",
           "reward/aggregate": "reward"}


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
        mrgrpo's trainer); ``reward/<channel>`` from TRL's ``rewards/<channel>/mean``;
        ``MultiRewardGRPOTrainer``'s metrics without their ``mrgrpo/`` prefix
        (``influence/<channel>``, ``const_frac/<channel>``, ...); ``step_time``,
        ``tokens_per_s`` (completion tokens, EOS included, per second); every other
        numeric TRL metric under ``trl/``.
    """
    rec: dict[str, Any] = {"step": int(step)}
    for ours, theirs in RENAMED.items():
        if logs.get(theirs) is not None:
            rec[ours] = float(logs[theirs])
    rec.setdefault("kl", 0.0)
    means = {k: v for k, v in logs.items() if k.startswith("rewards/") and k.endswith("/mean") and v is not None}
    rec.update({f"reward/{k[len('rewards/'):-len('/mean')]}": float(v) for k, v in means.items()})
    rec.update({k[len("mrgrpo/"):]: v for k, v in logs.items() if k.startswith("mrgrpo/")})
    rec["step_time"] = float(seconds)
    if "completion_len" in rec and seconds > 0:
        rec["tokens_per_s"] = rec["completion_len"] * n_completions / seconds
    taken = set(RENAMED.values()) | set(means)
    rec.update({f"trl/{k}": v for k, v in logs.items() if k not in taken and not k.startswith("mrgrpo/")
                and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return rec


class RunRecorder(TrainerCallback):
    """Keeps an engine's records as TRL trains (see the module docstring).

    Parameters
    ----------
    owner : :class:`mrgrpo.train.engines.trl_engine.TRLEngineTrainer`
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
                if self.owner.out_dir:  # the run's first checkpoint: a run it replaces is deleted now
                    mark_started(self.owner.out_dir, RUN_FOLDER)
        self.clock = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
