"""``mrgrpo.analysis.preregistered``: a design read strictly, progress counted, only the stated comparisons run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.preregistered import (arm_labels, finished_seeds, load_design, planned_comparisons,
                                            run_progress)

CH = ["good", "nice"]
W = [1.0, 0.5]
DESIGN = {
    "arms": {"x": {"task": "t", "mode": "na", "seeds": [0, 1, 2], "what": "arm x"},
             "y": {"task": "t", "mode": "an", "seeds": [0, 1, 2]},
             "z": {"task": "t-other", "mode": "na", "seeds": [0, 1]}},
    "comparisons": [{"name": "y vs x", "a": "y", "b": "x", "metric": "aggregate", "margin": 0.1, "expected_sign": -1,
                     "primary": True},
                    {"name": "y vs x", "a": "y", "b": "x", "metric": "nice", "margin": 0.05, "expected_sign": 0},
                    {"name": "x vs z", "a": "x", "b": "z", "metric": "aggregate", "margin": 0.1,
                     "expected_sign": 1}],
    "alpha": 0.05,
}
LABELS = {"na": "NA", "an": "AN"}


def write(tmp_path, design):
    (tmp_path / "design.json").write_text(json.dumps(design))
    return tmp_path


def samples_for(shift, seeds=(0, 1, 2), P=40, noise=0.05):
    """Arms NA and AN on the same prompts; AN's ``good`` is NA's plus ``shift`` (plus small noise)."""
    rng = np.random.default_rng(0)
    rows = []
    for s in seeds:
        base = rng.uniform(0, 1, size=(P, 2))
        for label, d in (("NA", 0.0), ("AN", shift)):
            for p in range(P):
                good = base[p, 0] + d + noise * rng.standard_normal()
                rows.append({"mode": label, "seed": s, "prompt": f"p{p:02d}", "good": good, "nice": base[p, 1]})
    return pd.DataFrame(rows)


def test_load_design_reads_the_arms_and_comparisons(tmp_path):
    d = load_design(write(tmp_path, DESIGN))
    assert d.n_runs == 8 and d.arms["x"].seeds == (0, 1, 2) and d.arms["x"].what == "arm x"
    assert [c.metric for c in d.comparisons] == ["aggregate", "nice", "aggregate"]
    assert d.comparisons[0].primary and not d.comparisons[1].primary
    assert arm_labels(d, LABELS, "t") == {"x": "NA", "y": "AN", "z": "NA, t-other"}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["arms"]["x"].pop("seeds"), "lacks \\['seeds'\\]"),
    (lambda d: d["arms"]["x"].update(seeds=[0, 0]), "repeated seeds"),
    (lambda d: d["arms"]["x"].update(seeds="0,1"), "non-empty list"),
    (lambda d: d["comparisons"][0].update(b="w"), "unknown arm"),
    (lambda d: d["comparisons"][0].update(margin=0), "positive number"),
    (lambda d: d["comparisons"][0].update(expected_sign=2), "expected_sign"),
    (lambda d: d["comparisons"][0].update(primary=False), "exactly one comparison must be primary"),
    (lambda d: d.update(alpha=1.5), "alpha"),
])
def test_load_design_refuses_a_bad_design(tmp_path, change, message):
    bad = json.loads(json.dumps(DESIGN))
    change(bad)
    with pytest.raises(ValueError, match=message):
        load_design(write(tmp_path, bad))


def test_run_progress_counts_finished_folders(tmp_path):
    d = load_design(write(tmp_path, DESIGN))
    runs = tmp_path / "runs"
    for name in ("x-s0", "x-s2", "y-s0"):
        (runs / name).mkdir(parents=True)
    t = run_progress(d, runs)
    assert t.loc["x", "runs"] == "2 of 3" and t.loc["x", "finished seeds"] == "0, 2"
    assert t.loc["z", "finished seeds"] == "none" and list(t.columns) == ["what", "planned seeds", "finished seeds", "runs"]
    assert sum(map(len, finished_seeds(d, runs).values())) == 3


def test_planned_comparisons_run_the_stated_tests_and_wait_for_seeds(tmp_path):
    d = load_design(write(tmp_path, DESIGN))
    labels = arm_labels(d, LABELS, "t")
    out = planned_comparisons(d, samples_for(0.3), CH, W, labels, n_boot=200)
    agg, nice, cond = (out[c] for c in d.comparisons)
    assert agg[0].verdict == "higher" and agg[0].against_expected  # AN higher where NA was expected ahead
    assert agg[0].equivalence.margin == 0.1 and agg[0].difference.n_seeds == 3
    assert nice[0].verdict == "equivalent"  # "nice" is identical across arms
    assert cond is None  # arm z has no runs yet
    assert planned_comparisons(d, samples_for(0.3, seeds=(0,)), CH, W, labels, n_boot=200)[d.comparisons[0]] is None
    close = planned_comparisons(d, samples_for(0.0), CH, W, labels, n_boot=200)[d.comparisons[0]][0]
    assert close.verdict == "equivalent" and not close.against_expected
    bad = load_design(write(tmp_path, {**DESIGN, "comparisons": [{**DESIGN["comparisons"][0], "metric": "speed"}]}))
    with pytest.raises(ValueError, match="metric 'speed'"):
        planned_comparisons(bad, samples_for(0.3), CH, W, labels)
