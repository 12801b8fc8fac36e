"""``GRPOTrainer``: multi-reward GRPO, readable top to bottom.

One training step::

    prompts  --sample m completions each (temperature T)-->  rollouts    (P m rows)
    rollouts --reward_fn, R channels-->                      rewards     (P, m, R)
    rewards  --conditioning, then AN / NA / single-->        advantages  (P, m)
    advantages, old log-probs, reference log-probs
             --num_iterations x (clipped surrogate + beta k3 KL)--> AdamW steps

The pieces it is built from live one layer down: the model comes from
:func:`mrgrpo.lm.loader.load_model`, prompts become token ids through
:mod:`mrgrpo.lm.prompts`, and rollouts are drawn by :mod:`mrgrpo.lm.sampling`,
the same sampler and end-of-sequence rule the rollout corpora use: group
``(prompt, seed)`` of a training step gets the completions that
``HFBackend.generate_groups([prompt], m, [seed])`` would give the same policy
(:meth:`GRPOTrainer.group_seeds` says which seeds a step uses).

Correctness details, each tested in ``tests/train/test_train_*.py``:

- prompts are left-padded, so every completion starts in the same column; the
  completion mask ends at the first EOS (inclusive), so EOS is trained even when
  pad == EOS; completions that hit ``max_new_tokens`` are marked ``truncated``;
- the ratio's denominator ``old_logp`` is the log-prob under the policy that
  sampled the batch, kept across the ``num_iterations`` updates (iteration 0 uses
  the detached log-prob of its own forward pass, so its ratio is exactly 1);
- the KL anchor is the per-token k3 estimator against the frozen reference: the
  base model with the LoRA adapters switched off (``disable_adapter()``), or a
  frozen copy for full fine-tuning, in the policy's micro-batches and precision;
- the update runs the rows in length-sorted micro-batches (``batching.py``), and
  every pass in the precision of :func:`mrgrpo.lm.precision.precision`;
- randomness is derived from ``(seed, step)``: prompt choice, sampling and
  dropout of step ``k`` do not depend on how the run got there, so a resumed run
  repeats an uninterrupted one exactly.
"""
from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from mrgrpo.core.advantage_diagnostics import step_metrics
from mrgrpo.core.files import atomic_folder
from mrgrpo.lm.loader import eos_token_ids, load_model
from mrgrpo.lm.padding import left_pad
from mrgrpo.lm.precision import precision, resolve_device
from mrgrpo.lm.prompts import as_prompts
from mrgrpo.lm.sampling import group_uniforms, sample_tokens
from mrgrpo.rewards.base import RewardFunctionError, score_completions

from .batching import Chunk, length_chunks, padded_fraction
from .checkpoint import checkpoint_root, save_checkpoint, write_run_config
from .config import GRPOConfig
from .evaluation import check_budget, encode_prompts, evaluate_policy
from .losses import aggregate, clip_fraction, clipped_surrogate, k3_kl, sequence_token_logprobs
from .masks import completion_mask
from .metrics import records_table, write_history
from .schedule import lr_lambda
from .run_guard import claim_out_dir, resume_checkpoint

RewardFn = Callable[[str, Any], Sequence[float]]
Callback = Callable[["GRPOTrainer", dict], None]

__all__ = ["GRPOTrainer"]


class GRPOTrainer:
    """Group-relative policy optimisation with several reward channels.

    Parameters
    ----------
    config : GRPOConfig
    reward_fn : callable ``(completion: str, prompt_item) -> R floats``
        ``R == len(config.weights)``; if it has ``channel_names`` they name the
        metrics and their count is checked against the weights up front.
    prompts : sequence
        Training prompts: strings, chat-message lists, or dicts
        (``{"prompt": ...}`` or ``{"messages": [...]}`` plus metadata such as
        ``"gold"``); see :mod:`mrgrpo.lm.prompts`. The reward function receives
        the item as given.
    eval_prompts : sequence, optional
        Held-out prompts, evaluated every ``config.eval_every`` steps and at the end.
    callbacks : sequence of callables ``(trainer, record) -> None``
        Called after every step (after its checkpoint is written).
    run_info : dict, optional
        JSON settings besides the config (the task, ...): checkpointed; a resumed run must match them.

    Attributes
    ----------
    history : list of dict
        One metrics record per step.
    eval_history : list of dict
        One record per evaluation.
    """

    def __init__(self, config: GRPOConfig, reward_fn: RewardFn, prompts: Sequence[Any],
                 eval_prompts: Optional[Sequence[Any]] = None, callbacks: Sequence[Callback] = (),
                 run_info: Optional[dict] = None):
        if not isinstance(config, GRPOConfig):
            raise ValueError(f"config must be a GRPOConfig, got {type(config).__name__}")
        if not callable(reward_fn):
            raise ValueError("reward_fn must be callable: reward_fn(completion, prompt) -> R floats")
        names = getattr(reward_fn, "channel_names", None)
        self.cfg = config.validate(n_channels=len(names) if names is not None else None)
        self.reward_fn = reward_fn
        R = len(self.cfg.weights)
        self.channel_names = tuple(str(n) for n in names) if names is not None else tuple(f"c{k}" for k in range(R))
        self.advantage_spec = self.cfg.advantage_spec.replace(channel_names=self.channel_names)
        self.prompts = as_prompts(prompts, "prompts")
        self.eval_prompts = as_prompts(eval_prompts, "eval_prompts", optional=True)
        self.callbacks = list(callbacks)
        self.run_info = dict(run_info or {})
        self.out_dir = Path(self.cfg.out_dir) if self.cfg.out_dir else None
        self.history: list[dict] = []
        self.eval_history: list[dict] = []
        self.eval_samples: list[dict] = []  # every evaluated reply: prompt, completion, rewards, length
        self.step = 0  # steps completed
        self.model = None
        self.tokenizer = None
        if self.out_dir and not self.cfg.resume:  # a run there: refused, or set aside if overwrite
            claim_out_dir(self.out_dir, self.cfg.overwrite)

    # ------------------------------------------------------------------ setup
    def _load(self) -> None:
        """Tokenizer, policy (LoRA or full), reference, optimizer, scheduler."""
        if self.model is not None:
            return
        cfg = self.cfg
        self.device = resolve_device(cfg.device)  # auto: cuda when available, else cpu
        device = str(self.device)
        self.precision = precision(cfg.dtype, self.device, lora=cfg.use_lora, model=cfg.model)  # weights, autocast
        self._autocast = self.precision.autocast
        torch.manual_seed(cfg.seed)  # LoRA initialisation
        model, tok = load_model(cfg.model, device=device, dtype=self.precision.weights, progress=cfg.progress)
        self.eos_ids = eos_token_ids(tok, model)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]

        self.ref_model = None
        if cfg.use_lora:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=list(cfg.lora_target_modules), bias="none", task_type="CAUSAL_LM"))
        elif cfg.kl_coef > 0:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.model, self.tokenizer = model, tok

        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.adam_betas),
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg))
        self._prompt_ids, self._prompt_keys = encode_prompts(self.prompts, tok, cfg)
        self._eval_ids, self._eval_keys = encode_prompts(self.eval_prompts, tok, cfg)
        check_budget(model, self._prompt_ids + self._eval_ids, cfg.max_new_tokens)  # before any rollout

    # ------------------------------------------------------------------ the loop
    def train(self) -> list[dict]:
        """Run ``n_steps`` GRPO steps (continuing from a checkpoint if ``resume``).

        Returns
        -------
        list of dict
            ``self.history``: one metrics record per step.
        """
        from mrgrpo.core.progress import progress_bar

        cfg = self.cfg
        self._load()
        if cfg.resume:
            self._resume()
        elif self.out_dir:
            write_run_config(self.out_dir, cfg.to_dict(), self.run_info)
        bar = progress_bar(range(self.step, cfg.n_steps), enabled=cfg.progress, initial=self.step,
                           total=cfg.n_steps, desc=f"GRPO[{cfg.mode}]", mininterval=2.0)
        for step in bar:
            t0 = time.perf_counter()
            self._seed_dropout(step)
            roll = self.rollout(step)                          # P m completions, ids and masks
            rows = roll["rows"]                                # (P m,) prompt index of each rollout
            rewards = self._score(roll["texts"], rows, step).reshape(-1, cfg.m, len(cfg.weights))  # (P, m, R)
            adv = self.advantages(rewards)                     # (P, m)
            upd = self._update(roll, adv.reshape(-1))
            dt = time.perf_counter() - t0
            rec = {"step": step + 1, **upd,
                   **step_metrics(self.advantage_spec, rewards, adv, self.channel_names, cfg.adv_eps),
                   "completion_len": roll["n_tokens"] / len(rows),
                   "truncated_frac": float(roll["truncated"].float().mean()),
                   "step_time": dt, "tokens_per_s": roll["n_tokens"] / dt}
            self.history.append(rec)
            self.step = step + 1
            bar.set_postfix({n[:8]: f"{rec[f'reward/{n}']:.2f}" for n in self.channel_names}
                            | {"kl": f"{rec['kl']:.3f}"})
            if self.eval_prompts and cfg.eval_every and self.step % cfg.eval_every == 0:
                self.evaluate()
            if self.out_dir:
                write_history(self.history, self.out_dir)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.checkpoint()
            for cb in self.callbacks:
                cb(self, rec)
        bar.close()
        if self.eval_prompts and not (self.eval_history and self.eval_history[-1]["step"] == self.step):
            self.evaluate()
        if self.out_dir:
            write_history(self.history, self.out_dir)
            self.save(self.out_dir / "adapter")
            self.checkpoint()
        return self.history

    # ------------------------------------------------------------------ step pieces
    def group_seeds(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The groups of ``step``: each one's prompt index and sampling seed, shapes ``(P,)`` and ``(P,)``.

        Both are functions of ``(config.seed, step)`` alone. Group ``k`` is sampled
        from ``group_uniforms(prompt text, seeds[k], m, max_new_tokens)``.
        """
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step, 0])
        n = len(self.prompts)
        idx = rng.choice(n, size=cfg.batch_prompts, replace=n < cfg.batch_prompts)
        seeds = np.random.SeedSequence([cfg.seed, step, 2]).generate_state(cfg.batch_prompts).astype(np.int64)
        return idx, seeds

    def rollout(self, step: int) -> dict:
        """Sample the ``P m`` completions of ``step`` with the current policy (``rows``: their prompt indices)."""
        self._load()
        idx, seeds = self.group_seeds(step)
        uniforms = np.concatenate([group_uniforms(self._prompt_keys[i], int(s), self.cfg.m, self.cfg.max_new_tokens)
                                   for i, s in zip(idx, seeds)])
        return self._rollout(np.repeat(idx, self.cfg.m), uniforms)

    def _seed_dropout(self, step: int) -> None:
        """Seed the global torch RNG (dropout) for ``step``."""
        a = np.random.default_rng([self.cfg.seed, step, 1]).integers(0, 2**62)
        torch.manual_seed(int(a))

    def _rollout(self, rows: np.ndarray, uniforms: np.ndarray) -> dict:
        """Sample one completion per row (row ``i`` driven by ``uniforms[i]``); build ids, masks and texts."""
        cfg = self.cfg
        prompts = [self._prompt_ids[i] for i in rows]
        p_ids, p_mask = left_pad(prompts, self.pad_id)
        p_ids, p_mask = p_ids.to(self.device), p_mask.to(self.device)
        self.model.eval()
        with self._autocast():
            comp, _ = sample_tokens(self.model, prompts, uniforms, temperature=cfg.temperature,
                                    eos_ids=self.eos_ids, pad_id=self.pad_id)
        attn_mask, truncated = completion_mask(comp, self.eos_ids)
        loss_mask = attn_mask * (~truncated).long().unsqueeze(1) if cfg.mask_truncated else attn_mask
        eos = set(self.eos_ids)
        texts = []
        for row in comp.tolist():
            cut = next((k for k, t in enumerate(row) if t in eos), len(row))
            texts.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True))
        return {"input_ids": torch.cat([p_ids, comp], dim=1),
                "attention_mask": torch.cat([p_mask, attn_mask], dim=1),
                "loss_mask": loss_mask, "n_completion": comp.shape[1], "texts": texts, "rows": rows,
                "truncated": truncated, "n_tokens": int(attn_mask.sum())}

    def _score(self, texts: list[str], rows: np.ndarray, step: int, prompts=None) -> torch.Tensor:
        """``(n, R)`` rewards of ``n`` completions; on a reward-function fault, checkpoint then raise."""
        cfg = self.cfg
        prompts = self.prompts if prompts is None else prompts
        try:
            r = score_completions(self.reward_fn, texts, [prompts[i].item for i in rows],
                                  n_channels=len(cfg.weights))
        except Exception as exc:
            where = f"checkpoint of the {self.step} completed steps saved to {self.checkpoint()}; " \
                    "fix the reward function and rerun with resume=True" if self.out_dir \
                else "no checkpoint written (out_dir is not set)"
            raise RewardFunctionError(f"training stopped at step {step + 1}: {exc} [{where}]",
                                      getattr(exc, "index", -1)) from exc
        return torch.as_tensor(r, dtype=torch.float64)

    def advantages(self, rewards) -> torch.Tensor:
        """The ``(P, m)`` advantages the update uses: ``config.advantage_spec`` (conditioning, then AN / NA / single).

        Parameters
        ----------
        rewards : shape ``(P, m, R)``
        """
        return self.advantage_spec.advantages(torch.as_tensor(rewards, dtype=torch.float64)).advantages

    def _ref_context(self):
        """The reference policy: LoRA off on the same weights, or the frozen copy."""
        if self.ref_model is not None:
            return contextlib.nullcontext(self.ref_model)
        model = self.model

        @contextlib.contextmanager
        def adapters_off():
            with model.disable_adapter():
                yield model
        return adapters_off()

    def _reference_logprobs(self, chunks: list) -> list:
        """The reference's log-probs of every chunk, shapes ``(n_k, c_k)`` (Nones when ``kl_coef == 0``).

        One no-grad forward per chunk, in the policy's precision and batching: the adapter off
        (``disable_adapter()``) on the same weights, or the frozen copy under full fine-tuning.
        """
        cfg = self.cfg
        if cfg.kl_coef <= 0:
            return [None] * len(chunks)
        with torch.no_grad(), self._ref_context() as ref_model, self._autocast():
            ref_model.eval()
            return [sequence_token_logprobs(ref_model, ch.input_ids, ch.attention_mask, ch.n_completion,
                                            cfg.temperature) for ch in chunks]

    def _update(self, roll: dict, adv: torch.Tensor) -> dict:
        """``num_iterations`` optimizer steps on one batch of rollouts; returns metrics.

        The rows run in length-sorted micro-batches of at most ``N / grad_accum`` rows
        (:func:`mrgrpo.train.batching.length_chunks`); ``self.padding`` keeps the padded share
        of the positions before (one batch) and after the grouping.
        """
        cfg = self.cfg
        lmask = roll["loss_mask"]
        adv = adv.to(self.device, torch.float32)
        N = lmask.shape[0]
        chunks = length_chunks(roll, max_rows=N // cfg.grad_accum)
        self.padding = {"before": padded_fraction([Chunk(torch.arange(N), roll["input_ids"], roll["attention_mask"],
                                                         lmask, roll["n_completion"])]),
                        "after": padded_fraction(chunks), "passes": len(chunks)}
        n_tokens = float(lmask.sum())
        ref = self._reference_logprobs(chunks)

        old = [None] * len(chunks)
        self.iteration_stats = []
        self.model.train()
        for it in range(cfg.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            tot = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0}
            clipped = counted = 0.0
            for k, ch in enumerate(chunks):
                with self._autocast():
                    logp = sequence_token_logprobs(self.model, ch.input_ids, ch.attention_mask, ch.n_completion,
                                                   cfg.temperature)
                if it == 0:  # the sampling policy's log-probs, same pass and precision: no extra forward
                    old[k] = logp.detach()
                pg_tok, ratio = clipped_surrogate(logp, old[k], adv[ch.rows], cfg.clip_eps)
                pg = aggregate(pg_tok, ch.loss_mask, cfg.loss_aggregation, n_tokens, N)
                loss = pg
                if cfg.kl_coef > 0:
                    kl = aggregate(k3_kl(logp, ref[k]), ch.loss_mask, cfg.loss_aggregation, n_tokens, N)
                    loss = loss + cfg.kl_coef * kl
                    tot["kl"] += kl.item()
                loss.backward()
                tot["loss"] += loss.item()
                tot["pg_loss"] += pg.item()
                c, n = clip_fraction(ratio, ch.loss_mask, cfg.clip_eps)
                clipped, counted = clipped + c, counted + n
            params = [p for p in self.model.parameters() if p.requires_grad]
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm else float("inf"))
            self.optimizer.step()
            self.iteration_stats.append({**tot, "clip_frac": clipped / max(counted, 1.0), "grad_norm": float(norm)})
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        first = self.iteration_stats[0]
        return {"loss": first["loss"], "pg_loss": first["pg_loss"], "kl": first["kl"],
                "clip_frac": float(np.mean([s["clip_frac"] for s in self.iteration_stats])),
                "grad_norm": first["grad_norm"], "lr": lr}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, prompts: Optional[Sequence[Any]] = None) -> dict:
        """Score one completion per held-out prompt (greedy unless ``eval_temperature > 0``).

        Prompt ``i`` is a group of one sampled with seed ``config.eval_seed``, so
        every training run is evaluated on the same draws.

        Returns
        -------
        dict
            ``step``, the mean of every channel, ``aggregate``, completion length
            and truncated fraction; also appended to ``eval_history``. Each reply,
            its rewards and its length go to ``eval_samples`` (``eval_samples.json``).
        """
        self._load()
        if prompts is not None:
            items = as_prompts(prompts, "prompts")
            encoded = encode_prompts(items, self.tokenizer, self.cfg)
        else:
            items, encoded = self.eval_prompts, (self._eval_ids, self._eval_keys)
        if not items:
            raise ValueError("no evaluation prompts: pass eval_prompts to GRPOTrainer or prompts= here")
        rec, samples = evaluate_policy(  # a reward-function fault checkpoints the run, as in training
            self.model, self.tokenizer, items, self.reward_fn, self.cfg, step=self.step,
            channel_names=self.channel_names, eos_ids=self.eos_ids, encoded=encoded,
            score=lambda texts, rows: self._score(texts, rows, self.step, prompts=items))
        self.eval_samples += samples
        self.eval_history.append(rec)
        if self.out_dir:
            write_history(self.eval_history, self.out_dir, stem="eval")
            write_history(self.eval_samples, self.out_dir, stem="eval_samples")
        return rec

    def eval_table(self):
        """``pandas.DataFrame``: one row per evaluation, one column per channel."""
        return records_table(self.eval_history)

    def metrics_table(self):
        """``pandas.DataFrame`` of the per-step metrics."""
        return records_table(self.history)

    # ------------------------------------------------------------------ saving, resuming
    def save(self, path) -> Path:
        """Write the adapter (``peft.PeftModel.from_pretrained`` loads it) or the full model."""
        if self.model is None:
            raise RuntimeError("nothing to save: the model is not loaded (call train() first)")
        with atomic_folder(path) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
        return Path(path)

    def _state(self) -> dict:
        return {"step": self.step, "history": self.history, "eval_history": self.eval_history,
                "eval_samples": self.eval_samples, "config": self.cfg.to_dict(), "run_info": self.run_info}

    def checkpoint(self) -> Path:
        """Write an atomic checkpoint of the current state under ``out_dir/checkpoints``."""
        if self.out_dir is None:
            raise ValueError("checkpoint() needs config.out_dir")
        return save_checkpoint(checkpoint_root(self.out_dir), self.step, self.model, self.optimizer,
                               self.scheduler, self._state(), tokenizer=self.tokenizer)

    def _resume(self) -> None:
        """Continue from the newest checkpoint, refusing any change that alters the run (see ``run_guard``)."""
        state = resume_checkpoint(self.out_dir, self.cfg, self.run_info, self.model, self.optimizer, self.scheduler)
        if state is not None:  # None: no checkpoint, a fresh run
            self.step = int(state["step"])
            self.history = list(state["history"])
            self.eval_history = list(state["eval_history"])
            self.eval_samples = list(state.get("eval_samples", []))
