"""The TRL engine: a :class:`~mrgrpo.train.GRPOConfig` run by TRL, writing the run folder mrgrpo's trainer writes.

``GRPOConfig(engine="trl")`` (``mrgrpo train --engine trl``, the ``paper`` preset's default)
trains with :class:`~mrgrpo.integrations.trl.MultiRewardGRPOTrainer`: TRL's ``GRPOTrainer``
(generation, accelerate / DeepSpeed / FSDP, checkpoints) with mrgrpo's advantages. The same
config, reward function and prompts go to :class:`TRLEngineTrainer` as to
:class:`mrgrpo.train.GRPOTrainer`, which it mirrors (``train``, ``evaluate``, ``history``,
``eval_history``, ``step``, ``eval_table``, ``metrics_table``)::

    trainer = TRLEngineTrainer(GRPOConfig(engine="trl", ...), reward_fn, prompts, eval_prompts=held_out)
    history = trainer.train()

**The mapping** (:func:`trl_arguments`). One mrgrpo step is one sampled batch of
``batch_prompts * m`` completions (the generation batch over all processes), trained on
with ``num_iterations`` optimizer steps of ``grad_accum`` micro-batches each, so TRL's
``max_steps`` is ``n_steps * num_iterations``. ``loss_aggregation`` ``token`` is TRL's
``loss_type="dapo"`` and ``sequence`` is ``"grpo"``; ``kl_coef`` is ``beta``, ``clip_eps`` is
``epsilon``, ``mask_truncated`` is ``mask_truncated_completions``; sampling is plain
temperature sampling (``top_p`` 1, ``top_k`` 0). The advantage goes whole, as
``config.advantage_spec`` (weights included: TRL's ``reward_weights`` stay unset), to
:class:`~mrgrpo.integrations.trl.MultiRewardGRPOTrainer`. Prompts are rendered as mrgrpo renders them
(:func:`~mrgrpo.integrations.trl_inputs.engine_dataset`) and the reward function receives the
prompt items as given. Differences that remain: the sampler (TRL's ``generate`` and its data
order, not mrgrpo's per-group seeds), HF's linear warmup (starts at 0, mrgrpo's at
``1/warmup_steps``), and under ``num_iterations > 1`` a step's loss is TRL's mean over its
optimizer steps (mrgrpo logs the first). Gradient checkpointing stays off, as in mrgrpo.

**The run folder** (:class:`mrgrpo.train.checkpoint.RunLayout`): ``config.json`` (the
GRPOConfig), ``metrics.json/.csv`` (one record per step, the keys of mrgrpo's trainer where
they mean the same: ``reward/<channel>``, ``reward/aggregate``, ``influence/<channel>``,
``const_frac/<channel>``, ``adv_mean``, ``adv_std``, ``loss``, ``kl``, ``grad_norm``, ``lr``,
``completion_len``, ``truncated_frac``, ``step_time``, ``tokens_per_s``; plus
``degenerate_frac``, ``unscored_frac``, ``gate_pass_rate`` and TRL's own metrics under
``trl/``), ``eval.json/.csv`` and ``eval_samples.json/.csv`` (the same evaluation as mrgrpo's: one
completion per held-out prompt, seeded by ``eval_seed``), ``adapter/`` and ``checkpoints/``, which is TRL's
``output_dir``: TRL's ``checkpoint-<optimizer step>`` folders, each with
:data:`ENGINE_STATE` (step, metrics, evaluations, config, run settings) written last.

**Overwrite and resume** follow :mod:`mrgrpo.train.run_guard`: a folder that holds a run is
refused unless ``overwrite`` (which replaces only a marked run, once the new one has written its
first checkpoint), and so is a folder holding anyone else's files. ``resume`` compares the recorded config and run settings with the new ones
(:func:`~mrgrpo.train.config.resume_conflicts`) before anything loads and refuses any change
that alters the run (an ``engine`` change included), then continues from the newest
checkpoint that has :data:`ENGINE_STATE` with TRL's ``resume_from_checkpoint`` (weights,
optimizer, scheduler and RNG states; TRL loads them with ``torch.load(weights_only=True)``, and
:func:`check_checkpoint_files` reads each first, so a truncated or pickled one is refused in one line).

**Several processes.** ``accelerate launch --config_file configs/accelerate/gpu_multi.yaml -m
mrgrpo train --engine trl ...``: the batch is split over the processes (``batch_prompts * m``
must be divisible by ``processes * grad_accum``), TRL gathers the rewards before the
advantages, and the main process alone writes the run folder and evaluates (a DDP model; not
under DeepSpeed ZeRO-3).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from mrgrpo.core.files import atomic_folder
from mrgrpo.lm.prompts import as_prompts
from mrgrpo.train.checkpoint import RunLayout, load_tensor_file, read_run_config, write_run_config
from mrgrpo.train.config import GRPOConfig, resume_conflicts
from mrgrpo.train.evaluation import check_budget, encode_prompts, evaluate_policy
from mrgrpo.train.metrics import records_table, write_history
from mrgrpo.train.run_guard import claim_out_dir, open_run_for_resume, refuse_resume

from .trl_callbacks import ENGINE_STATE, RunRecorder

__all__ = ["TRLEngineTrainer", "trl_arguments", "engine_precision", "lora_config", "engine_checkpoints",
           "check_checkpoint_files", "process_rank", "process_count"]

_TRL_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")  # TRL's (transformers') checkpoint folders


def process_count() -> int:
    """The number of training processes (``WORLD_SIZE``, set by ``accelerate launch`` / ``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    """This process's rank (``RANK``; 0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def engine_precision(config: GRPOConfig):
    """:func:`mrgrpo.lm.precision.precision` of the device and model TRL trains (``use_cpu`` for ``device="cpu"``;
    TRL's ``bf16`` then autocasts on the CPU)."""
    from mrgrpo.lm.precision import precision

    return precision(config.dtype, config.device, lora=config.use_lora, model=config.model)


def trl_arguments(config: GRPOConfig, output_dir: str | os.PathLike, processes: int = 1) -> dict:
    """The keyword arguments of ``trl.GRPOConfig`` for ``config`` (see the module docstring).

    Parameters
    ----------
    config : GRPOConfig
    output_dir : path
        TRL's output folder (the run's ``checkpoints/``).
    processes : int
        Training processes; each gets ``batch_prompts * m / (processes * grad_accum)`` completions
        per micro-batch.

    Raises
    ------
    ValueError
        TRL is not installed, the batch does not split evenly over the processes, the device
        names one GPU.
    """
    cfg = config
    if importlib.util.find_spec("trl") is None:
        raise ValueError("engine 'trl' needs TRL, which is not installed: pip install -e '.[trl]' "
                         "(in a clone of mrgrpo)")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"engine 'trl': device must be auto, cpu or cuda, got {cfg.device!r}; choose GPUs with "
                         "CUDA_VISIBLE_DEVICES or accelerate launch --gpu_ids")
    n = cfg.batch_prompts * cfg.m
    if n % (processes * cfg.grad_accum):
        raise ValueError(f"engine 'trl': batch_prompts * m = {n} completions per step must be divisible by "
                         f"processes x grad_accum = {processes} x {cfg.grad_accum}")
    prec = engine_precision(cfg)
    iters = cfg.num_iterations
    if cfg.lr_schedule == "linear":
        schedule = "linear"
    else:
        schedule = "constant_with_warmup" if cfg.warmup_steps else "constant"
    return dict(
        output_dir=str(output_dir), per_device_train_batch_size=n // (processes * cfg.grad_accum),
        gradient_accumulation_steps=cfg.grad_accum, num_generations=cfg.m, max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature, top_p=1.0, top_k=0, beta=cfg.kl_coef, epsilon=cfg.clip_eps,
        num_iterations=iters, loss_type="dapo" if cfg.loss_aggregation == "token" else "grpo",
        mask_truncated_completions=cfg.mask_truncated, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_betas[0], adam_beta2=cfg.adam_betas[1], optim="adamw_torch",
        lr_scheduler_type=schedule, warmup_steps=cfg.warmup_steps * iters,
        max_grad_norm=cfg.max_grad_norm if cfg.max_grad_norm is not None else 0.0,
        max_steps=cfg.n_steps * iters, logging_steps=iters,
        save_strategy="steps" if cfg.out_dir else "no",
        save_steps=(cfg.checkpoint_every or cfg.n_steps) * iters, save_total_limit=2,
        scale_rewards="group", seed=cfg.seed, data_seed=cfg.seed,
        use_cpu=not prec.on_gpu, **prec.trl_flags,  # auto without a GPU is the CPU too (TRL's bf16 needs use_cpu there)
        activation_checkpointing=False, report_to=[], disable_tqdm=True, log_completions=False,
        dataloader_num_workers=0, dataloader_pin_memory=prec.on_gpu)


def lora_config(config: GRPOConfig):
    """``peft.LoraConfig`` of ``config`` (None without LoRA)."""
    if not config.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules), bias="none", task_type="CAUSAL_LM")


def engine_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The complete TRL-engine checkpoints of a run folder (those with :data:`ENGINE_STATE`), oldest first."""
    root = RunLayout(Path(out_dir)).checkpoints
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _TRL_CHECKPOINT.match(p.name) and (p / ENGINE_STATE).is_file()]
    return sorted(found, key=lambda p: int(_TRL_CHECKPOINT.match(p.name).group(1)))


def check_checkpoint_files(folder: str | os.PathLike) -> None:
    """Read every torch file of a TRL checkpoint (optimizer, scheduler, RNG states) before TRL resumes from it.

    Each is read as transformers reads it on resume (``torch.load(weights_only=True)``, numpy arrays
    allowed, :func:`transformers.trainer_pt_utils.safe_globals`), through
    :func:`mrgrpo.train.checkpoint.load_tensor_file`, so a truncated file or one that asks for any
    other Python object is refused with the one-line ``ValueError`` of mrgrpo's own engine (nothing
    in it runs) instead of a traceback from inside TRL.
    """
    from transformers.trainer_pt_utils import safe_globals

    for path in sorted(p for p in Path(folder).iterdir() if p.suffix in (".pt", ".pth")):
        with safe_globals():
            load_tensor_file(path)


class TRLEngineTrainer:
    """Multi-reward GRPO on TRL, with :class:`mrgrpo.train.GRPOTrainer`'s interface and run folder.

    Parameters
    ----------
    config : GRPOConfig
        Any ``engine`` (this class is the ``trl`` engine).
    reward_fn : callable ``(completion, prompt_item) -> R floats``, with ``channel_names``
    prompts, eval_prompts : sequences of prompt items (see :mod:`mrgrpo.lm.prompts`)
    callbacks : callables ``(trainer, record) -> None``
        Called after every step (before TRL writes that step's checkpoint).
    run_info : dict, optional
        JSON settings besides the config (the task, ...): checkpointed; a resumed run must match them.

    Raises
    ------
    ValueError
        Before any model loads: a reward function without ``channel_names`` of the right
        count, a device the engine cannot run, an uneven batch split, a
        folder that holds a run (without ``overwrite`` / ``resume``), a resume that would
        change the run.
    """

    def __init__(self, config: GRPOConfig, reward_fn: Callable, prompts: Sequence[Any],
                 eval_prompts: Optional[Sequence[Any]] = None, callbacks: Sequence[Callable] = (),
                 run_info: Optional[dict] = None):
        if not isinstance(config, GRPOConfig):
            raise ValueError(f"config must be a GRPOConfig, got {type(config).__name__}")
        names = getattr(reward_fn, "channel_names", None)
        if not callable(reward_fn) or not names or isinstance(names, str):
            raise ValueError("reward_fn must be callable with channel_names (one name per reward channel)")
        self.cfg = config.validate(n_channels=len(names))
        # every check of the mapping, before any model loads; load() only fills in the output folder
        self.trl_kwargs = trl_arguments(self.cfg, "unused", process_count())
        self.reward_fn = reward_fn
        self.channel_names = tuple(str(n) for n in names)
        self.prompts = as_prompts(prompts, "prompts")
        self.eval_prompts = as_prompts(eval_prompts, "eval_prompts", optional=True)
        self.callbacks = list(callbacks)
        self.run_info = dict(run_info or {})
        self.out_dir = Path(self.cfg.out_dir) if self.cfg.out_dir else None
        self.is_main_process = process_rank() == 0
        self.history: list[dict] = []
        self.eval_history: list[dict] = []
        self.eval_samples: list[dict] = []  # every evaluated reply: prompt, completion, rewards, length
        self.step = 0
        self.trainer = None  # the MultiRewardGRPOTrainer, built on first use
        self.tokenizer = None
        self._resume_from: Optional[Path] = None
        self._scratch: Optional[str] = None
        if self.out_dir and self.cfg.resume:
            self._check_resume()
        elif self.out_dir and self.is_main_process:
            claim_out_dir(self.out_dir, self.cfg.overwrite)

    # ------------------------------------------------------------------ resume
    def _check_resume(self) -> None:
        """Compare the recorded run with this one; pick the checkpoint to continue from."""
        if self.is_main_process:
            open_run_for_resume(self.out_dir)  # an mrgrpo run, nothing else's (a stale unstarted claim undone)
        recorded, path = read_run_config(self.out_dir)
        refuse_resume(path or self.out_dir, resume_conflicts(recorded, self.cfg) if recorded else [])
        found = engine_checkpoints(self.out_dir)
        if not found:
            if self.is_main_process:
                claim_out_dir(self.out_dir, False, resuming=True)
            return
        try:
            state = json.loads((found[-1] / ENGINE_STATE).read_text())
        except ValueError as exc:
            raise ValueError(f"{found[-1] / ENGINE_STATE} is not valid JSON: {exc}") from None
        refuse_resume(found[-1], resume_conflicts(state.get("config", {}), self.cfg, state.get("run_info"), self.run_info))
        check_checkpoint_files(found[-1])  # before TRL reads them: one line, not a traceback
        self._resume_from = found[-1]
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.eval_history = list(state["eval_history"])
        self.eval_samples = list(state.get("eval_samples", []))

    def state(self) -> dict:
        """What :data:`ENGINE_STATE` holds: step, metrics, evaluations (and their replies), config, run settings."""
        return {"step": self.step, "history": self.history, "eval_history": self.eval_history,
                "eval_samples": self.eval_samples, "config": self.cfg.to_dict(), "run_info": self.run_info}

    # ------------------------------------------------------------------ setup
    def load(self) -> None:
        """Build the TRL trainer (``train`` does it on first use): arguments, policy (mrgrpo's loader), LoRA,
        dataset, reward functions. The trainer is then ``self.trainer``."""
        if self.trainer is not None:
            return
        import transformers
        from transformers import PrinterCallback
        from trl import GRPOConfig as TRLConfig

        from mrgrpo.lm.loader import eos_token_ids, load_model

        from mrgrpo.integrations.trl import MultiRewardGRPOTrainer
        from mrgrpo.integrations.trl_inputs import channel_reward_funcs, engine_dataset

        cfg = self.cfg
        if self.out_dir:
            output = RunLayout(self.out_dir).checkpoints
        else:
            output = self._scratch = tempfile.mkdtemp(prefix="mrgrpo-trl-")
        args = TRLConfig(**{**self.trl_kwargs, "output_dir": str(output)})
        transformers.set_seed(cfg.seed)  # LoRA initialisation
        model, tok = load_model(cfg.model, device="cpu", dtype=engine_precision(cfg).weights, progress=cfg.progress)
        self.tokenizer, self.eos_ids = tok, eos_token_ids(tok, model)
        check_budget(model, encode_prompts([*self.prompts, *self.eval_prompts], tok, cfg)[0], cfg.max_new_tokens)
        dataset = engine_dataset([p.item for p in self.prompts], tok, system_prompt=cfg.system_prompt,
                                 use_chat_template=cfg.use_chat_template)
        funcs = channel_reward_funcs(self.reward_fn, [p.item for p in self.prompts])
        self.recorder = RunRecorder(self)
        self.trainer = MultiRewardGRPOTrainer(
            model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tok,
            peft_config=lora_config(cfg), callbacks=[self.recorder], advantage_spec=cfg.advantage_spec)
        self.trainer.remove_callback(PrinterCallback)  # it prints raw dicts; RunRecorder shows progress
        self.is_main_process = self.trainer.accelerator.is_main_process

    @property
    def model(self):
        """The policy being trained (the peft model under LoRA), unwrapped from any DDP wrapper."""
        self.load()
        return self.trainer.accelerator.unwrap_model(self.trainer.model)

    # ------------------------------------------------------------------ the loop
    def train(self) -> list[dict]:
        """Run the remaining steps up to ``n_steps`` through TRL; write the run folder; return ``history``."""
        self.load()
        if self.out_dir and self.is_main_process and not self._resume_from:
            write_run_config(self.out_dir, self.cfg.to_dict(), self.run_info)
        try:
            self.trainer.train(resume_from_checkpoint=str(self._resume_from) if self._resume_from else None)
        finally:
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)
        if self.eval_prompts and not (self.eval_history and self.eval_history[-1]["step"] == self.step):
            self.evaluate()
        if self.out_dir and self.is_main_process:
            write_history(self.history, self.out_dir)
            self.save(RunLayout(self.out_dir).adapter)
        return self.history

    def evaluate(self, prompts: Optional[Sequence[Any]] = None) -> dict:
        """Score one completion per held-out prompt, as :meth:`mrgrpo.train.GRPOTrainer.evaluate` does.

        Runs on the main process (others return ``{}``); appends to ``eval_history`` (and each
        reply to ``eval_samples``) and writes ``eval`` and ``eval_samples`` when the run has a folder.
        """
        self.load()
        if not self.is_main_process:
            return {}
        items = as_prompts(prompts, "prompts") if prompts is not None else self.eval_prompts
        if not items:
            raise ValueError("no evaluation prompts: pass eval_prompts to TRLEngineTrainer or prompts= here")
        rec, samples = evaluate_policy(self.model, self.tokenizer, items, self.reward_fn, self.cfg, step=self.step,
                                       channel_names=self.channel_names, eos_ids=self.eos_ids)
        self.eval_history.append(rec)
        self.eval_samples += samples
        if self.out_dir:
            write_history(self.eval_history, self.out_dir, stem="eval")
            write_history(self.eval_samples, self.out_dir, stem="eval_samples")
        return rec

    def save(self, path) -> Path:
        """Write the adapter (``peft.PeftModel.from_pretrained`` loads it) or the full model, with the tokenizer."""
        self.load()
        with atomic_folder(path) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
        return Path(path)

    def eval_table(self):
        """``pandas.DataFrame``: one row per evaluation, one column per channel."""
        return records_table(self.eval_history)

    def metrics_table(self):
        """``pandas.DataFrame`` of the per-step metrics."""
        return records_table(self.history)
