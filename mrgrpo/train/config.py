"""``GRPOConfig``: every knob of :class:`~mrgrpo.train.GRPOTrainer` in one frozen dataclass.

The defaults train the shipped tiny policy (model id ``"tiny-math"``) on a CPU in
seconds. Presets (:data:`PRESETS`) are named sets of overrides:
:meth:`GRPOConfig.tiny` (a recipe on which the tiny policy measurably learns) and
:meth:`GRPOConfig.paper` (Qwen2.5-1.5B-Instruct, LoRA r = 16, 500 steps, 4 prompts
x m = 8 rollouts, lr 5e-6, KL 0.05, on the TRL engine in bf16).

``engine`` says who runs the loop: ``"ours"`` (:class:`~mrgrpo.train.GRPOTrainer`, one
process, the reference implementation and the CPU default) or ``"trl"`` (TRL's
``GRPOTrainer`` with mrgrpo's advantages, :mod:`mrgrpo.train.engines.trl_engine`, which
scales with ``accelerate launch``). ``mrgrpo train`` and
:func:`mrgrpo.train.engines.make_trainer` dispatch on it; ``GRPOTrainer`` itself is
always the ``ours`` engine.

A config is checked when it is built (``__post_init__``): a wrong type, a value out
of range or an inconsistent pair of fields raises a ``ValueError`` naming the
field, so an invalid ``GRPOConfig`` cannot exist. It is frozen; change it with
:meth:`~GRPOConfig.replace`, which checks again. :meth:`~GRPOConfig.validate`
adds the one check that needs the reward function (its channel count).

Each field is declared with :func:`mrgrpo.core.fields.knob` (default, help line,
constraints); the ``mrgrpo train`` flags are generated from the same
declarations. Adding a field is one ``knob(...)`` line.

:func:`resume_conflicts` decides whether a checkpointed run may continue under a
config: every field must match except :data:`RESUME_MAY_CHANGE`.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional, Union

from mrgrpo.core.advantage_spec import AdvantageSpec
from mrgrpo.core.conventions import CONDITIONING, EPS, MODES
from mrgrpo.core.fields import check_fields, knob, to_json_value
from mrgrpo.lm.models import DEFAULT_MODEL

__all__ = ["GRPOConfig", "PRESETS", "RESUME_MAY_CHANGE", "resume_conflicts", "MODES", "CONDITIONING",
           "LOSS_AGGREGATIONS", "LR_SCHEDULES", "DTYPES", "ENGINES", "ADVANTAGE_FIELDS", "RENAMED_FIELDS",
           "upgrade_config"]

#: Who runs the training loop: ``ours`` (:class:`~mrgrpo.train.GRPOTrainer`) or ``trl``
#: (TRL's ``GRPOTrainer`` with mrgrpo's advantages, :mod:`mrgrpo.train.engines.trl_engine`).
ENGINES = ("ours", "trl")
LOSS_AGGREGATIONS = ("token", "sequence")
#: The fields that make ``GRPOConfig.advantage_spec`` (:class:`~mrgrpo.core.advantage_spec.AdvantageSpec`).
ADVANTAGE_FIELDS = tuple(f.name for f in dataclasses.fields(AdvantageSpec) if f.name != "channel_names")
#: Field names of older versions -> today's; a stored run config is read through :func:`upgrade_config`.
RENAMED_FIELDS: Mapping[str, str] = MappingProxyType({"gate_idx": "gate", "cond_idx": "conditioned",
                                                      "cond_threshold": "gate_threshold"})
LR_SCHEDULES = ("constant", "linear")
# Upper bounds of the int knobs, where a larger value can only be a mistake: P <= 2**16 prompts x m <= 2**16
# completions x max_new_tokens <= 2**30 tokens stays below 2**62 (int64 sizes never overflow; the model's
# context window is checked before anything is allocated), steps stop at a billion, and a seed is at most
# 2**32 - 1 (numpy's legacy seed, which TRL's engine sets, takes no more).
MAX_STEPS = 10**9
MAX_SEED = 2**32 - 1
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class GRPOConfig:
    """Hyperparameters of a multi-reward GRPO run.

    Groups of fields: *what to train* (model, LoRA), *the advantage* (mode,
    weights, conditioning), *the GRPO update* (m, temperature, clip, KL, lr, ...),
    *prompts*, *bookkeeping* (seed, output folder, checkpoints, evaluation).
    Each field's help line is in its ``knob(...)`` declaration (``mrgrpo train
    --help`` prints them all, with every preset's value).

    Loss aggregation
    ----------------
    ``loss_aggregation="token"`` (default, like TRL's default): the sum of the
    per-token losses over every completion token in the batch divided by the
    number of those tokens, so long completions weigh more per sequence.
    ``"sequence"`` (the original GRPO paper): mean over each completion's tokens,
    then mean over completions. Both are exact under gradient accumulation.

    TRL's ``normalize_then_sum`` exactly: ``mode="na", adv_ddof=1,
    adv_eps=1e-4, batch_rescale=True``.

    The advantage
    -------------
    The fields :data:`ADVANTAGE_FIELDS` make ``config.advantage_spec``, an
    :class:`~mrgrpo.core.advantage_spec.AdvantageSpec` built (and so checked) once, on
    construction; every engine computes its advantages with it.
    """

    # --- what to train -----------------------------------------------------
    model: str = knob(DEFAULT_MODEL, "a model id (tiny-math, smollm2-135m-instruct), a local Hugging Face "
                      "folder or a hub id", nonempty=True, path=True, section="what to train",
                      metavar="MODEL")
    use_lora: bool = knob(True, "train LoRA adapters; off: full fine-tuning of every weight")
    lora_r: int = knob(16, "LoRA rank", low=1, high=1 << 16)
    lora_alpha: int = knob(32, "LoRA alpha (the update is scaled by alpha / r)", low=0, low_open=True,
                           high=1 << 20)
    lora_dropout: float = knob(0.0, "dropout on the LoRA input", low=0, high=1, high_open=True)
    lora_target_modules: tuple[str, ...] = knob(
        ("q_proj", "k_proj", "v_proj", "o_proj"), "module names (or name suffixes) that get LoRA adapters",
        metavar="NAME,...")
    device: str = knob("auto", "auto (cuda when available, else cpu), cpu, cuda, cuda:1, ...", nonempty=True,
                       metavar="DEVICE")
    dtype: str = knob("auto", "compute precision: auto = bfloat16 autocast on a GPU, and on a CPU with bf16 "
                      "instructions for a real LM (float32 for the tiny policy); LoRA: base weights in that "
                      "dtype; an explicit dtype always wins", choices=DTYPES)
    engine: str = knob("ours", "who runs the loop: ours (mrgrpo's GRPOTrainer, one process) or trl (TRL's "
                       "GRPOTrainer with mrgrpo's advantages; accelerate launch for several GPUs)", choices=ENGINES)

    # --- the advantage -----------------------------------------------------
    mode: str = knob("na", "na: normalize each channel, then aggregate (MO-GRPO/GDPO); an: aggregate, then "
                     "normalize (classic GRPO); single: channel 0 alone", choices=MODES, section="the advantage")
    weights: tuple[float, ...] = knob((1.0, 1.0, 0.5), "channel weights w, one per reward channel",
                                      nonempty=True, metavar="W,...")
    adv_eps: float = knob(EPS, "delta added to each within-group standard deviation", low=0)
    adv_ddof: int = knob(0, "within-group std: ddof 0 (the paper) or 1 (TRL)", choices=(0, 1))
    batch_rescale: bool = knob(False, "rescale the summed advantages by their batch-wide std (TRL's "
                               "normalize_then_sum: with mode na, adv_ddof 1, adv_eps 1e-4)")
    conditioning: str = knob("none", "gate the conditioned channel(s) on the gate channel: zero_fill or subgroup",
                             choices=CONDITIONING)
    gate: int = knob(0, "the gate channel of conditioning")
    conditioned: Union[int, tuple[int, ...]] = knob((1,), "the conditioned channel(s), e.g. 1 or 1,2",
                                                    nonempty=True, metavar="C[,C...]")
    gate_threshold: Optional[float] = knob(None, "the gate passes when its reward is >= this "
                                           "(none: when it equals 1, the paper's binary gate; the gate must "
                                           "then be 0 or 1)")

    # --- the GRPO update ---------------------------------------------------
    n_steps: int = knob(200, "training steps (one sampled batch each)", low=1, high=MAX_STEPS,
                        section="the GRPO update")
    batch_prompts: int = knob(4, "prompts per step (P)", low=1, high=1 << 16)
    m: int = knob(8, "completions per prompt (the group size)", low=2, high=1 << 16)
    max_new_tokens: int = knob(64, "completion length limit in tokens", low=1, high=1 << 30)
    temperature: float = knob(1.0, "sampling temperature of the rollouts", low=0, low_open=True)
    clip_eps: float = knob(0.2, "clip range of the probability ratio", low=0, low_open=True)
    num_iterations: int = knob(1, "optimizer steps per sampled batch (old log-probs kept)", low=1, high=1 << 16)
    kl_coef: float = knob(0.05, "beta: weight of the k3 KL to the reference policy (0 skips the reference)",
                          low=0)
    loss_aggregation: str = knob("token", "token: mean over every completion token of the batch (TRL's "
                                 "default); sequence: mean per completion, then over completions",
                                 choices=LOSS_AGGREGATIONS)
    mask_truncated: bool = knob(False, "leave completions that hit max_new_tokens out of the loss")
    lr: float = knob(1e-3, "learning rate (AdamW); tiny models want ~1e-3 with LoRA, the paper's 1.5B 5e-6",
                     low=0, low_open=True)
    weight_decay: float = knob(0.0, "AdamW weight decay", low=0)
    adam_betas: tuple[float, float] = knob((0.9, 0.99), "AdamW betas", low=0, high=1, high_open=True,
                                           metavar="B1,B2")
    lr_schedule: str = knob("constant", "constant, or linear decay to 0 at n_steps (after warmup)",
                            choices=LR_SCHEDULES)
    warmup_steps: int = knob(0, "linear warmup steps", low=0, high=MAX_STEPS)
    max_grad_norm: Optional[float] = knob(1.0, "gradient-norm clip (none: no clipping)", low=0, low_open=True)
    grad_accum: int = knob(1, "micro-batches per optimizer step (must divide batch_prompts * m)", low=1)

    # --- prompts -----------------------------------------------------------
    system_prompt: Optional[str] = knob(None, "a system message put before every prompt", section="prompts",
                                        metavar="TEXT")
    use_chat_template: Union[bool, str] = knob("auto", "wrap prompts in the tokenizer's chat template "
                                               "(auto: when it has one)", choices=(True, False, "auto"))

    # --- bookkeeping -------------------------------------------------------
    seed: int = knob(0, "seed of prompt choice, sampling, dropout and LoRA initialisation", low=0, high=MAX_SEED,
                     section="bookkeeping")
    out_dir: Optional[str] = knob(None, "run folder: metrics, eval, adapter, checkpoints (none: keep "
                                  "everything in memory)", path=True, nonempty=True, aliases=("--out",),
                                  metavar="DIR")
    checkpoint_every: int = knob(0, "checkpoint every this many steps (0: only at the end; needs out_dir)",
                                 low=0, high=MAX_STEPS)
    resume: bool = knob(False, "continue the run in out_dir from its newest checkpoint (every setting must "
                        "match the checkpoint's, except n_steps, out_dir and what only logs or saves)")
    overwrite: bool = knob(False, "replace a previous run in out_dir (its own files only), once the new run "
                           "writes its first checkpoint (without it, such a folder is refused)")
    eval_every: int = knob(0, "evaluate every this many steps (0: only at the end)", low=0, high=MAX_STEPS)
    eval_temperature: float = knob(0.0, "evaluation sampling temperature (0: greedy)", low=0)
    eval_seed: int = knob(0, "sampling seed of evaluations (the same for every training seed)", low=0,
                          high=MAX_SEED)
    eval_batch_size: int = knob(64, "completions per evaluation batch (memory only)", low=1, high=1 << 20)
    progress: bool = knob(True, "progress bars (mrgrpo train --no-progress also silences model-loading bars)")

    # ---------------------------------------------------------------------
    def __post_init__(self) -> None:
        check_fields(self, "GRPOConfig")
        if isinstance(self.conditioned, int):
            object.__setattr__(self, "conditioned", (self.conditioned,))
        try:  # the advantage settings, checked in one place: the spec
            spec = AdvantageSpec(**{name: getattr(self, name) for name in ADVANTAGE_FIELDS})
        except ValueError as exc:
            raise ValueError(f"GRPOConfig: {exc}") from None
        object.__setattr__(self, "advantage_spec", spec)  # not a field: derived from the fields above
        if (self.batch_prompts * self.m) % self.grad_accum:
            self._bad(f"grad_accum = {self.grad_accum} must divide batch_prompts * m = "
                      f"{self.batch_prompts * self.m}")
        if self.use_lora and not self.lora_target_modules:
            self._bad("lora_target_modules must name at least one module when use_lora=True")
        if any(not name for name in self.lora_target_modules):
            self._bad(f"lora_target_modules has an empty name: {self.lora_target_modules!r}")
        if self.resume and not self.out_dir:
            self._bad("resume=True needs out_dir (where the checkpoints are)")
        if self.resume and self.overwrite:
            self._bad("resume=True continues the run in out_dir and overwrite=True deletes it; choose one")

    @staticmethod
    def _bad(msg: str) -> None:
        raise ValueError(f"GRPOConfig: {msg}")

    # --------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GRPOConfig":
        """The config of preset ``name`` (:data:`PRESETS`) with ``overrides`` on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "GRPOConfig":
        """The paper's fintech/GSM8K training setup (section 4 of the empirical notes)."""
        return cls.from_preset("paper", **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "GRPOConfig":
        """A short-run recipe on which the shipped tiny policy measurably learns.

        LoRA (r = 16, alpha = 32) on the last transformer block only (its attention
        output projection and MLP), lr 3e-3, 20 steps of 4 prompts x m = 8 at
        temperature 1, KL 0.05, evaluation sampled at temperature 1, a checkpoint
        every 10 steps (when ``out_dir`` is set).

        Why the last block: 20 NA steps on the mini-math reward from the shipped
        policy (seeds 0 and 1; 256 held-out problems, one T = 1 sample each, so a
        standard error of about 0.03; untrained format 0.80, correctness 0.31):

        - this recipe: format 0.98-0.99, correctness 0.34-0.38;
        - LoRA on the attention of every layer (the default targets): format
          0.82-0.83, correctness down to 0.21-0.27;
        - full fine-tuning at lr 3e-4: format 0.95-0.96, correctness 0.27-0.29.

        The repeated evidence, three seeds per run type, is in
        ``tests/train/test_train_learning_tiny.py``. The LoRA targets name the tiny
        policy's modules (``layers.3.*``): another model needs its own
        ``lora_target_modules``.
        """
        return cls.from_preset("tiny", **overrides)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "GRPOConfig":
        """A config from a mapping (e.g. :meth:`to_dict`'s JSON); unknown keys are a ``ValueError``."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            near = difflib.get_close_matches(unknown[0], names, n=1)
            raise ValueError(f"GRPOConfig: unknown field {unknown[0]!r}"
                             + (f"; did you mean {near[0]!r}?" if near else ""))
        return cls(**values)

    def replace(self, **changes: Any) -> "GRPOConfig":
        """A copy with some fields changed, checked like a new config."""
        return type(self).from_dict({**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                                     **changes})

    def to_dict(self) -> dict:
        """JSON-friendly dict of every field (tuples become lists)."""
        return {f.name: to_json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def validate(self, n_channels: Optional[int] = None) -> "GRPOConfig":
        """Check ``len(weights)`` against the reward function's channel count; return ``self``.

        Every other check already ran when the config was built.

        Parameters
        ----------
        n_channels : int, optional
            The reward function's channel count ``R`` when known (from its
            ``channel_names``); ``len(weights)`` must equal it.
        """
        if n_channels is not None:
            try:
                self.advantage_spec.check_channels(n_channels)
            except ValueError as exc:
                self._bad(str(exc))
        return self


#: Named sets of overrides; ``mrgrpo train --preset NAME`` and :meth:`GRPOConfig.from_preset`.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "tiny": MappingProxyType(dict(
        use_lora=True, lora_r=16, lora_alpha=32, lora_dropout=0.0,
        lora_target_modules=("layers.3.self_attn.o_proj", "layers.3.mlp.gate_proj",
                             "layers.3.mlp.up_proj", "layers.3.mlp.down_proj"),
        n_steps=20, batch_prompts=4, m=8, lr=3e-3, kl_coef=0.05, temperature=1.0,
        max_new_tokens=64, eval_temperature=1.0, eval_batch_size=128, checkpoint_every=10)),
    "paper": MappingProxyType(dict(
        model="Qwen/Qwen2.5-1.5B-Instruct", use_lora=True, lora_r=16, lora_alpha=32,
        lora_dropout=0.05, n_steps=500, batch_prompts=4, m=8, lr=5e-6, kl_coef=0.05,
        temperature=0.8, max_new_tokens=96, weights=(1.0, 1.0, 0.5), mode="na",
        checkpoint_every=50, adam_betas=(0.9, 0.95), engine="trl", dtype="bfloat16")),
    "none": MappingProxyType({}),  # GRPOConfig()'s own defaults
})

#: Fields a resumed run may change, and why they cannot alter the training trajectory.
#: Every other field (and every task setting) must equal the checkpoint's.
RESUME_MAY_CHANGE: Mapping[str, str] = MappingProxyType({
    "progress": "display only",
    "out_dir": "where the run folder is (a moved folder resumes)",
    "resume": "how the run starts",
    "overwrite": "how the run starts",
    "n_steps": "where the run stops (extending a run); not under lr_schedule='linear', whose decay ends at "
               "n_steps",
    "checkpoint_every": "when checkpoints are written (saving draws no randomness)",
    "eval_every": "when evaluations run (evaluation draws no training randomness)",
    "eval_batch_size": "how evaluation prompts are batched (memory only)",
})


def upgrade_config(values: Mapping[str, Any]) -> dict:
    """A stored config (:meth:`GRPOConfig.to_dict` of any version) with older field names renamed (:data:`RENAMED_FIELDS`).

    Raises
    ------
    ValueError
        the config holds a field under both its old and its new name.
    """
    out = dict(values)
    for old, new in RENAMED_FIELDS.items():
        if old in out:
            if new in out:
                raise ValueError(f"the stored config has both {old!r} and {new!r} (its new name)")
            out[new] = out.pop(old)
    return out


def _canonical(name: str, value: Any) -> Any:
    if name == "conditioned" and not isinstance(value, (list, tuple)):
        return (value,)
    return tuple(_canonical("", v) for v in value) if isinstance(value, (list, tuple)) else value


def resume_conflicts(saved: Mapping[str, Any], config: GRPOConfig, saved_run: Optional[Mapping[str, Any]] = None,
                     run: Optional[Mapping[str, Any]] = None) -> list[str]:
    """Why a run checkpointed under ``saved`` may not continue under ``config``: one line per field.

    Parameters
    ----------
    saved : mapping
        The checkpoint's config (:meth:`GRPOConfig.to_dict`). A field it lacks
        (written by an older version) counts as that field's default; older field
        names are read as today's (:func:`upgrade_config`).
    config : GRPOConfig
        The config of the run that would resume.
    saved_run, run : mapping, optional
        Other settings of the run, recorded beside the config (the task, its
        prompt counts, ...; ``GRPOTrainer(run_info=...)``). Every key must match.

    Returns
    -------
    list of str
        ``"field: checkpoint value -> new value"``; empty when the run may resume.
    """
    saved = upgrade_config(saved)
    now = config.to_dict()
    defaults = GRPOConfig().to_dict()
    out = []
    for name in dict.fromkeys([*now, *saved]):
        if name in RESUME_MAY_CHANGE:
            continue
        if name not in now:
            out.append(f"{name}: {saved[name]!r} -> (not a field of this version of GRPOConfig)")
            continue
        before = saved.get(name, defaults[name])
        if _canonical(name, before) != _canonical(name, now[name]):
            out.append(f"{name}: {before!r} -> {now[name]!r}")
    if config.lr_schedule == "linear" and saved.get("n_steps", config.n_steps) != config.n_steps:
        out.append(f"n_steps: {saved['n_steps']!r} -> {config.n_steps!r} (lr_schedule='linear' decays the "
                   "learning rate to 0 at n_steps)")
    saved_run, run = dict(saved_run or {}), dict(run or {})
    for key in dict.fromkeys([*saved_run, *run]):
        a, b = saved_run.get(key), run.get(key)
        if _canonical(key, a) != _canonical(key, b):
            out.append(f"{key}: {a!r} -> {b!r}")
    return out
