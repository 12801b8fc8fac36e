"""``MultiRewardGRPOConfig``: TRL's ``GRPOConfig`` with mrgrpo's advantage settings as fields.

The fields of :class:`~mrgrpo.core.advantage_spec.AdvantageSpec` become arguments TRL's own
tools understand: ``TrlParser`` reads them from the command line (``--mode na --conditioning
zero_fill --conditioned 1``) and from a YAML file (``mode: na``), they are checked when the
config is built (a ``ValueError`` naming the field, as TRL's own fields), and
:meth:`MultiRewardGRPOConfig.advantage_spec` turns them, with TRL's ``reward_weights``, into the
one spec :class:`~mrgrpo.integrations.trl.MultiRewardGRPOTrainer` computes with::

    args = MultiRewardGRPOConfig(output_dir="out", reward_weights=[1.0, 1.0, 0.5], mode="na",
                                 conditioning="zero_fill", gate=0, conditioned=[1])
    trainer = MultiRewardGRPOTrainer(model=..., reward_funcs=[...], args=args, train_dataset=...)

**Saved with every checkpoint.** transformers pickles the whole config into
``training_args.bin``; mrgrpo never reads that file back (unpickling runs code). Beside it the
trainer writes :data:`SETTINGS_FILE`, JSON: the advantage spec and these fields. A resume reads
only the JSON (:func:`read_settings`) and refuses a run whose advantage settings differ;
``python -m mrgrpo.integrations.trl`` restores the settings the YAML leaves out from it.

**TRL's own aggregation options.** ``multi_objective_aggregation`` is unset by default here (the
fields above choose the estimator); set, it must describe the same estimator:
``"sum_then_normalize"`` is ``mode="an"`` and ``"normalize_then_sum"`` is ``mode="na"`` with
``batch_rescale=True``. ``scale_rewards`` must stay ``"group"``: ``"batch"`` is what
``batch_rescale=True`` does after the group normalization, and ``"none"`` (Dr. GRPO) is no
mrgrpo estimator. :func:`check_trl_options` says which setting to use instead. With a plain
``trl.GRPOConfig`` an explicit ``"sum_then_normalize"`` cannot be told from TRL's default and is
not checked: use this class to have it checked.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mrgrpo.core.extras import require

for _package in ("trl", "torch", "transformers"):
    require(_package, "trl", __name__)

from trl import GRPOConfig  # noqa: E402

from mrgrpo.core.advantage_spec import AdvantageSpec  # noqa: E402
from mrgrpo.core.files import atomic_write_text  # noqa: E402

__all__ = ["MultiRewardGRPOConfig", "SETTINGS_FILE", "SETTINGS_FIELDS", "AGGREGATIONS", "check_trl_options",
           "write_settings", "read_settings", "settings_conflicts"]

#: The JSON file beside ``training_args.bin`` in every checkpoint (and the final model folder).
SETTINGS_FILE = "mrgrpo_settings.json"
SETTINGS_FORMAT = 1
#: TRL's ``multi_objective_aggregation`` -> the (mode, batch_rescale) it computes.
AGGREGATIONS = {"sum_then_normalize": ("an", False), "normalize_then_sum": ("na", True)}


def _choices(*values: str) -> dict:
    return {"choices": list(values)}


@dataclass
class MultiRewardGRPOConfig(GRPOConfig):
    """``trl.GRPOConfig`` plus mrgrpo's advantage fields (see the module docstring).

    Parameters
    ----------
    mode : {"na", "an", "single"}
        Normalize each channel within its group then sum (NA), sum then normalize (AN), or channel 0 alone.
    normalization : {"paper", "trl"}, optional
        ``(adv_ddof, adv_eps)`` by name: ``(0, 1e-8)`` or ``(1, 1e-4)``; unset: ``adv_ddof``/``adv_eps``,
        else the paper's.
    adv_ddof : {0, 1}, optional
    adv_eps : float, optional
    batch_rescale : bool
        Afterwards z-score the advantages over the whole batch (TRL's ``normalize_then_sum`` does).
    conditioning : {"none", "zero_fill", "subgroup"}
    gate : int
        The gate channel (a reward function's index).
    conditioned : list of int
        The channels gated on it.
    gate_threshold : float, optional
        ``gate >= gate_threshold`` passes; unset: the gate passes at exactly 1.
    channel_names : list of str, optional
        Names for the metrics (default: the reward functions' names).
    multi_objective_aggregation : {"sum_then_normalize", "normalize_then_sum"}, optional
        TRL's option; unset here. Set, it must agree with ``mode`` and ``batch_rescale``.

    Raises
    ------
    ValueError
        ``MultiRewardGRPOConfig: ...`` naming the field, for any invalid or contradictory value.
    """

    mode: str = field(default="na", metadata={"help": "mrgrpo: the estimator: na (normalize each channel in its "
                                              "group, then sum), an (sum, then normalize), single", **_choices(
                                                  "na", "an", "single")})
    normalization: Optional[str] = field(default=None, metadata={
        "help": "mrgrpo: (adv_ddof, adv_eps) by name: paper (0, 1e-8) or trl (1, 1e-4); unset: adv_ddof/adv_eps, "
                "else paper", **_choices("paper", "trl")})
    adv_ddof: Optional[int] = field(default=None, metadata={"help": "mrgrpo: ddof of the within-group std (0 or 1)"})
    adv_eps: Optional[float] = field(default=None, metadata={"help": "mrgrpo: eps added to the within-group std"})
    batch_rescale: bool = field(default=False, metadata={
        "help": "mrgrpo: z-score the advantages over the whole batch afterwards (TRL's normalize_then_sum does)"})
    conditioning: str = field(default="none", metadata={
        "help": "mrgrpo: gate the conditioned channels on the gate channel first",
        **_choices("none", "zero_fill", "subgroup")})
    gate: int = field(default=0, metadata={"help": "mrgrpo: the gate channel (index of its reward function)"})
    conditioned: list[int] = field(default_factory=lambda: [1], metadata={
        "help": "mrgrpo: the channels gated on the gate (indices)"})
    gate_threshold: Optional[float] = field(default=None, metadata={
        "help": "mrgrpo: a rollout passes when gate >= gate_threshold; unset: when the gate is exactly 1"})
    channel_names: Optional[list[str]] = field(default=None, metadata={
        "help": "mrgrpo: channel names for the metrics (default: the reward functions' names)"})
    multi_objective_aggregation: Optional[str] = field(default=None, metadata={
        "help": "TRL's option, unset under mrgrpo (mode and batch_rescale choose the estimator); set, it must "
                "agree with them: sum_then_normalize is mode an, normalize_then_sum is mode na with batch_rescale",
        **_choices("sum_then_normalize", "normalize_then_sum")})

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.conditioned, int) and not isinstance(self.conditioned, bool):
            self.conditioned = [self.conditioned]
        try:
            n = (len(self.reward_weights) if self.reward_weights is not None
                 else len(self.channel_names) if self.channel_names else None)
            spec = self.advantage_spec(n, check_count=n is not None)
            check_trl_options(self, spec)
        except ValueError as exc:
            raise ValueError(f"MultiRewardGRPOConfig: {exc}") from None

    # ------------------------------------------------------------------ the spec
    def settings(self) -> dict[str, Any]:
        """mrgrpo's fields as plain JSON values (what :data:`SETTINGS_FILE` records)."""
        return {name: _plain(getattr(self, name)) for name in SETTINGS_FIELDS}

    def advantage_spec(self, n_funcs: Optional[int] = None, names: Optional[list[str]] = None, *,
                       check_count: bool = True) -> AdvantageSpec:
        """The :class:`~mrgrpo.core.advantage_spec.AdvantageSpec` of these fields for ``n_funcs`` reward functions.

        The weights are ``reward_weights`` (default all 1); the channel names ``channel_names``, else
        ``names``. With ``n_funcs=None`` (the count not known yet) the channel indices are checked
        against the largest one named.
        """
        weights = self.reward_weights
        if n_funcs is None:
            n_funcs = max(2, self.gate + 1, *(c + 1 for c in self.conditioned or [0]))
        if weights is None:
            weights = [1.0] * n_funcs
        elif check_count and len(weights) != n_funcs:
            raise ValueError(f"reward_weights has {len(weights)} weights for {n_funcs} reward functions")
        chosen = self.channel_names or names or ()
        if check_count and chosen and len(chosen) != len(weights):
            raise ValueError(f"channel_names has {len(chosen)} names for {len(weights)} reward functions")
        options = {k: v for k, v in (("normalization", self.normalization), ("adv_ddof", self.adv_ddof),
                                     ("adv_eps", self.adv_eps)) if v is not None}
        return AdvantageSpec.from_options(
            weights=tuple(float(w) for w in weights), mode=self.mode, batch_rescale=self.batch_rescale,
            conditioning=self.conditioning, gate=self.gate, conditioned=tuple(self.conditioned),
            gate_threshold=self.gate_threshold, channel_names=tuple(chosen) if check_count else (), **options)


#: The fields :class:`MultiRewardGRPOConfig` adds (and ``reward_weights``, the channel weights).
SETTINGS_FIELDS = ("mode", "normalization", "adv_ddof", "adv_eps", "batch_rescale", "conditioning", "gate",
                   "conditioned", "gate_threshold", "channel_names", "multi_objective_aggregation", "reward_weights")


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (JSON's view of a value)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _field_default(args: Any, name: str) -> Any:
    for f in dataclasses.fields(type(args)) if dataclasses.is_dataclass(args) else ():
        if f.name == name:
            return f.default if f.default is not dataclasses.MISSING else None
    return None


def check_trl_options(args: Any, spec: AdvantageSpec) -> None:
    """``ValueError`` when TRL's own aggregation options contradict ``spec``, saying which setting to use.

    ``scale_rewards`` must be ``"group"``; an explicit ``multi_objective_aggregation`` (one other than
    the config class's default) must compute what ``spec`` computes (:data:`AGGREGATIONS`).
    """
    scale = getattr(args, "scale_rewards", "group")
    if scale == "batch":
        raise ValueError("scale_rewards='batch' divides by the batch's std instead of the group's, which no mrgrpo "
                         "estimator does; mrgrpo normalizes within groups and rescales over the batch afterwards "
                         "with batch_rescale=True: keep scale_rewards='group' and set batch_rescale=True")
    if scale not in ("group", True):
        raise ValueError(f"scale_rewards={scale!r} (no std scaling, Dr. GRPO) is not an mrgrpo estimator: every "
                         "mode standardizes within groups; keep scale_rewards='group' and choose mode and "
                         "normalization")
    agg = getattr(args, "multi_objective_aggregation", None)
    if agg is None or agg == _field_default(args, "multi_objective_aggregation"):
        return
    if agg not in AGGREGATIONS:
        raise ValueError(f"multi_objective_aggregation={agg!r} is not one of TRL's {sorted(AGGREGATIONS)}")
    mode, rescale = AGGREGATIONS[agg]
    if (spec.mode, spec.batch_rescale) != (mode, rescale):
        theirs = f"mode={mode!r}" + (", batch_rescale=True" if rescale else "")
        ours = f"mode={spec.mode!r}, batch_rescale={spec.batch_rescale}"
        raise ValueError(f"multi_objective_aggregation={agg!r} is TRL's {theirs}, but the advantage settings say "
                         f"{ours}: leave multi_objective_aggregation unset (mode and batch_rescale choose the "
                         f"estimator), or set {theirs} (with normalization='trl' for TRL's exact numbers)")


# ---------------------------------------------------------------------- saved beside training_args.bin
def write_settings(folder: str | os.PathLike, spec: AdvantageSpec, settings: dict[str, Any]) -> Path:
    """Write :data:`SETTINGS_FILE` (the spec and mrgrpo's fields, JSON) into ``folder``, atomically."""
    payload = {"format": SETTINGS_FORMAT, "advantage_spec": _plain(dataclasses.asdict(spec)), "settings": settings}
    path = Path(folder) / SETTINGS_FILE
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True))
    return path


def read_settings(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed :data:`SETTINGS_FILE` of a checkpoint: ``{"advantage_spec": ..., "settings": ...}``.

    Raises
    ------
    ValueError
        The file is missing (a checkpoint not written by ``MultiRewardGRPOTrainer``) or not valid JSON.
    """
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        raise ValueError(f"{folder} has no {SETTINGS_FILE}: it was not written by MultiRewardGRPOTrainer, so the "
                         "advantage settings it was trained with are unknown; resume a checkpoint of this trainer "
                         "or start a new output_dir")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("advantage_spec"), dict):
            raise ValueError("no advantage_spec")
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid settings file ({exc})") from None
    return data


def settings_conflicts(saved: dict[str, Any], spec: AdvantageSpec) -> list[str]:
    """``"field: checkpoint X, now Y"`` for every field of ``spec`` that differs from the saved spec."""
    now = _plain(dataclasses.asdict(spec))
    old = saved.get("advantage_spec", {})
    return [f"{k}: checkpoint {old.get(k)!r}, now {now[k]!r}" for k in now if old.get(k) != now[k]]
