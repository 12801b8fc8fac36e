"""A design written before the runs (``design.json``), and the analysis it fixes.

A pre-registered experiment states, before any run starts, its arms and seeds, and for each
comparison the metric, the equivalence margin and the expected direction. This module reads
that statement (:func:`load_design`), says how far the runs have got (:func:`run_progress`)
and runs exactly the stated comparisons on the evaluated replies (:func:`planned_comparisons`),
so the margins cannot move after the results are known.

``design.json`` (see ``data/smollm2-tier3/``)::

    {"arms": {"na": {"task": "fintech", "mode": "na", "seeds": [0, 1, 2, 3], "what": "..."}, ...},
     "comparisons": [{"name": "AN vs NA", "a": "an", "b": "na", "metric": "aggregate",
                      "margin": 0.10, "expected_sign": -1, "primary": true}, ...],
     "alpha": 0.05, ...}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .held_out import seed_prompt_scores
from .paired import ArmComparison, SignTest, compare_arms, sign_test

__all__ = ["Arm", "PlannedComparison", "Design", "load_design", "arm_labels", "finished_seeds", "run_progress",
           "planned_comparisons"]


@dataclass(frozen=True)
class Arm:
    """One arm: its run folders are ``<name>-s<seed>``."""

    name: str
    task: str
    mode: str
    seeds: tuple[int, ...]
    what: str = ""


@dataclass(frozen=True)
class PlannedComparison:
    """``a - b`` on ``metric`` (a channel or ``"aggregate"``), with its margin and expected sign."""

    name: str
    a: str
    b: str
    metric: str
    margin: float
    expected_sign: int
    primary: bool = False


@dataclass(frozen=True)
class Design:
    arms: Mapping[str, Arm]
    comparisons: tuple[PlannedComparison, ...]
    alpha: float = 0.05
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return sum(len(a.seeds) for a in self.arms.values())


def _seeds(name: str, seeds: Any) -> tuple[int, ...]:
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                          and s >= 0 for s in seeds):
        raise ValueError(f"arm {name!r}: seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"arm {name!r}: repeated seeds {seeds}")
    return tuple(seeds)


def load_design(path: str | os.PathLike) -> Design:
    """Read and check ``design.json`` (a folder holding it, or the file).

    Raises
    ------
    ValueError
        A missing key, an arm without seeds, a comparison naming an unknown arm, a margin that
        is not positive, an expected sign other than -1, 0, +1, or no primary comparison.
    """
    p = Path(path)
    p = p / "design.json" if p.is_dir() else p
    raw = json.loads(p.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("arms"), dict) or not isinstance(raw.get("comparisons"),
                                                                                            list):
        raise ValueError(f"{p}: a design needs an 'arms' object and a 'comparisons' list")
    arms = {}
    for name, spec in raw["arms"].items():
        missing = [k for k in ("task", "mode", "seeds") if k not in spec]
        if missing:
            raise ValueError(f"{p}: arm {name!r} lacks {missing}")
        arms[name] = Arm(name, str(spec["task"]), str(spec["mode"]), _seeds(name, spec["seeds"]),
                         str(spec.get("what", "")))
    comparisons = []
    for i, c in enumerate(raw["comparisons"]):
        missing = [k for k in ("name", "a", "b", "metric", "margin", "expected_sign") if k not in c]
        if missing:
            raise ValueError(f"{p}: comparison {i} lacks {missing}")
        unknown = [x for x in (c["a"], c["b"]) if x not in arms]
        if unknown:
            raise ValueError(f"{p}: comparison {i} names unknown arm(s) {unknown}; arms: {sorted(arms)}")
        margin = c["margin"]
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
            raise ValueError(f"{p}: comparison {i}: margin must be a positive number, got {margin!r}")
        if c["expected_sign"] not in (-1, 0, 1) or isinstance(c["expected_sign"], bool):
            raise ValueError(f"{p}: comparison {i}: expected_sign must be -1, 0 or 1, got {c['expected_sign']!r}")
        comparisons.append(PlannedComparison(str(c["name"]), c["a"], c["b"], str(c["metric"]), float(margin),
                                             int(c["expected_sign"]), bool(c.get("primary", False))))
    if sum(c.primary for c in comparisons) != 1:
        raise ValueError(f"{p}: exactly one comparison must be primary")
    alpha = float(raw.get("alpha", 0.05))
    if not 0 < alpha < 1:
        raise ValueError(f"{p}: alpha must be in (0, 1), got {alpha}")
    return Design(arms, tuple(comparisons), alpha, raw)


def arm_labels(design: Design, mode_labels: Mapping[str, str], base_task: str) -> dict[str, str]:
    """Each arm's label in :func:`mrgrpo.train.stored_runs.load_runs`'s ``samples`` (``base_task`` as given there)."""
    return {name: mode_labels[a.mode] + ("" if a.task == base_task else f", {a.task}")
            for name, a in design.arms.items()}


def finished_seeds(design: Design, runs_dir: str | os.PathLike) -> dict[str, list[int]]:
    """Each arm's finished seeds: those whose run folder ``<arm>-s<seed>`` is in ``runs_dir``."""
    root = Path(runs_dir)
    return {name: [s for s in arm.seeds if (root / f"{name}-s{s}").is_dir()] for name, arm in design.arms.items()}


def run_progress(design: Design, runs_dir: str | os.PathLike) -> Any:
    """Planned against finished seeds per arm (:func:`finished_seeds`), as a table for people.

    Returns
    -------
    pandas.DataFrame
        Index: the arms (``"arm"``); columns ``what``, ``planned seeds`` and ``finished seeds``
        (seed lists as text) and ``runs`` (``"k of n"``).
    """
    import pandas as pd

    rows = {}
    for name, done in finished_seeds(design, runs_dir).items():
        arm = design.arms[name]
        rows[name] = {"what": arm.what, "planned seeds": ", ".join(map(str, arm.seeds)),
                      "finished seeds": ", ".join(map(str, done)) or "none",
                      "runs": f"{len(done)} of {len(arm.seeds)}"}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("arm")


def planned_comparisons(design: Design, samples: Any, channels: Sequence[str], weights: Sequence[float],
                        labels: Mapping[str, str], *, min_seeds: int = 2, n_boot: int = 2000, seed: int = 0
                        ) -> dict[PlannedComparison, Optional[tuple[ArmComparison, SignTest]]]:
    """Each planned comparison on the evaluated replies, or None while fewer than ``min_seeds`` seeds pair up.

    Parameters
    ----------
    samples : pandas.DataFrame
        :attr:`mrgrpo.train.experiment.Comparison.samples` of the runs.
    channels, weights
        The reward channels and their weights (``aggregate = weights . channels``).
    labels : mapping arm -> label
        :func:`arm_labels`.
    """
    out: dict[PlannedComparison, Optional[tuple[ArmComparison, SignTest]]] = {}
    present = set(samples["mode"])
    for c in design.comparisons:
        if c.metric not in (*channels, "aggregate"):
            raise ValueError(f"comparison {c.name!r}: metric {c.metric!r} is not a channel {list(channels)} "
                             "or 'aggregate'")
        la, lb = labels[c.a], labels[c.b]
        if la not in present or lb not in present:
            out[c] = None
            continue
        scores = seed_prompt_scores(samples, la, lb, channels, weights)
        if len(scores["seeds"]) < min_seeds:
            out[c] = None
            continue
        A, B = scores[c.metric]
        out[c] = (compare_arms(A, B, margin=c.margin, expected_sign=c.expected_sign, alpha=design.alpha,
                               n_boot=n_boot, seed=seed, names=(la, lb), what=c.metric), sign_test(A - B))
    return out
