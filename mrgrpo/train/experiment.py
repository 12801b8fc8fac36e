"""Estimator comparison: train each mode over several seeds and evaluate on held-out prompts.

:func:`compare_estimators` is the Tier-3 experiment (the paper's NA / AN /
single-reward table); :func:`held_out_summary` reduces its runs to one row per
policy; :func:`evaluate_adapters` scores stored LoRA adapters (the paper's released
ones) on the same held-out prompts.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

from .config import GRPOConfig

__all__ = ["MODE_LABELS", "Comparison", "compare_estimators", "held_out_summary", "evaluate_adapters"]

#: How the modes are named in tables and figures.
MODE_LABELS = {"na": "NA", "an": "AN", "single": "single-reward"}


class Comparison(NamedTuple):
    """What :func:`compare_estimators` and :func:`mrgrpo.train.stored_runs.load_runs` return.

    Attributes
    ----------
    evals : pandas.DataFrame
        One row per run: ``mode`` (label), ``seed``, each channel's held-out mean
        reward and ``aggregate`` (``w^T r``).
    curves : pandas.DataFrame
        The training history of every run (the trainer's per-step records), with
        ``mode`` and ``seed`` columns.
    untrained : dict
        The same held-out metrics for the policy before training.
    samples : pandas.DataFrame
        Every evaluated reply: ``mode`` (``"untrained"`` before training), ``seed``,
        ``step``, ``prompt``, ``completion``, each channel's reward, ``n_tokens``, ``ended``.
    """

    evals: Any
    curves: Any
    untrained: dict
    samples: Any


def compare_estimators(modes: Sequence[str], seeds: Sequence[int], make_config: Callable[[str, int], GRPOConfig],
                       reward_fn: Any, train_prompts: Sequence[Any], eval_prompts: Sequence[Any],
                       progress: bool = True) -> Comparison:
    """Train one policy per (mode, seed) and evaluate each on the held-out prompts.

    Each run is trained by the engine its configuration names (``config.engine``, through
    :func:`mrgrpo.train.engines.make_trainer`).

    Parameters
    ----------
    modes : sequence of {"na", "an", "single"}
    seeds : sequence of int
    make_config : callable ``(mode, seed) -> GRPOConfig``
        The run's configuration (model, steps, hyperparameters, engine); every run
        should start from the same model, whose untrained evaluation is taken
        once, from the first run, before it trains.
    reward_fn : callable
        ``reward_fn(completion, prompt) -> R floats`` with ``channel_names``.
    train_prompts, eval_prompts : sequence of prompt items
    progress : bool
        A tqdm bar over the ``len(modes) * len(seeds)`` runs.

    Returns
    -------
    Comparison
        ``(evals, curves, untrained, samples)``.
    """
    import pandas as pd
    from mrgrpo.core.progress import progress_bar

    from .engines import make_trainer

    modes, seeds = list(modes), [int(s) for s in seeds]
    bad = [m for m in modes if m not in MODE_LABELS]
    if bad or not modes:
        raise ValueError(f"modes must be a non-empty list of {list(MODE_LABELS)}, got {modes!r}")
    if not seeds:
        raise ValueError("seeds is empty")
    if not eval_prompts:
        raise ValueError("eval_prompts is empty: the comparison is on held-out prompts")
    runs = [(m, s) for m in modes for s in seeds]
    evals, curves, untrained, samples = [], [], None, []
    for mode, seed in progress_bar(runs, enabled=progress, desc="runs"):
        trainer = make_trainer(make_config(mode, seed), reward_fn, list(train_prompts),
                               eval_prompts=list(eval_prompts))
        keys = [*trainer.channel_names, "aggregate"]
        label = MODE_LABELS[mode]
        if untrained is None:
            before = trainer.evaluate()  # LoRA starts at zero: this is the base model
            untrained = {k: before[k] for k in keys}
            samples.append(pd.DataFrame(trainer.eval_samples).assign(mode="untrained", seed=seed))
        history = trainer.train()
        after = trainer.evaluate()
        final = pd.DataFrame(trainer.eval_samples)
        samples.append(final[final["step"] == trainer.step].assign(mode=label, seed=seed))
        evals.append({"mode": label, "seed": seed, **{k: after[k] for k in keys}})
        curve = pd.DataFrame(history)
        curve["mode"], curve["seed"] = label, seed
        curves.append(curve)
    return Comparison(pd.DataFrame(evals), pd.concat(curves, ignore_index=True), untrained,
                      pd.concat(samples, ignore_index=True).drop_duplicates(ignore_index=True))


def held_out_summary(evals: Any, untrained: dict) -> Any:
    """One row per policy: the untrained one, then each mode (mean over seeds).

    Parameters
    ----------
    evals : pandas.DataFrame
        ``Comparison.evals``.
    untrained : dict
        ``Comparison.untrained``.

    Returns
    -------
    pandas.DataFrame
        Index ``["untrained", *modes]`` (modes in the order NA, AN, single-reward); columns: each channel's mean, ``aggregate``
        (mean), ``aggregate sd`` (standard deviation over seeds, ``ddof = 1``;
        NaN for one run) and ``runs``.
    """
    import pandas as pd

    keys = [c for c in evals.columns if c not in ("mode", "seed")]
    g = evals.groupby("mode", sort=False)
    table = g[keys].mean()
    table["aggregate sd"] = g["aggregate"].std()
    table["runs"] = g.size()
    known = [m for m in MODE_LABELS.values() if m in table.index]  # NA, AN, single-reward, whatever the run order
    table = table.loc[known + [m for m in table.index if m not in known]]
    base = pd.DataFrame([{**{k: untrained[k] for k in keys}, "aggregate sd": float("nan"), "runs": 1}],
                        index=["untrained"])
    return pd.concat([base, table])


def evaluate_adapters(model: str, adapters: Mapping[str, str], reward_fn: Any, prompts: Sequence[Any],
                      weights: Sequence[float], *, device: str = "cpu", dtype: Any = None,
                      max_new_tokens: int = 64) -> Any:
    """Held-out means of LoRA adapters on ``model``: one greedy completion per prompt.

    Parameters
    ----------
    model : str
        The base model (local folder or hub id).
    adapters : mapping label -> adapter
        peft adapters (folders or hub ids), e.g. the paper's released ones.
    reward_fn : callable
        ``reward_fn(completion, prompt) -> R floats`` with ``channel_names``.
    prompts : sequence of prompt items, length ``P``
    weights : sequence of R floats
        ``w`` of the aggregate ``w^T r``.

    Returns
    -------
    pandas.DataFrame
        Index: the labels; columns: each channel's mean and ``aggregate``.
    """
    import pandas as pd

    from mrgrpo.core.checks import as_sequence, check_weights
    from mrgrpo.lm.loader import load_model
    from mrgrpo.lm.sampling import sample_completions
    from mrgrpo.rewards.base import score_completions

    names = list(reward_fn.channel_names)
    w = check_weights(weights, len(names))
    prompts = as_sequence(prompts, "prompts")
    if not prompts:
        raise ValueError("prompts is empty")
    rows = {}
    for label, adapter in adapters.items():
        lm, tok = load_model(model, device=device, dtype=dtype, adapter=adapter)
        outs = sample_completions(lm, tok, list(prompts), n=1, temperature=0.0, max_new_tokens=max_new_tokens)
        r = score_completions(reward_fn, [o[0] for o in outs], list(prompts), n_channels=len(names))  # (P, R)
        rows[label] = {**dict(zip(names, r.mean(axis=0))), "aggregate": float((r @ w).mean())}
        del lm
    return pd.DataFrame.from_dict(rows, orient="index")
