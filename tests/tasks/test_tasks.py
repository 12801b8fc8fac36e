"""Prompt sources: mini-math, fintech scenarios, GSM8K loading."""
from __future__ import annotations

import json
import re
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mrgrpo.rewards import FintechRewardFunction, MathRewardFunction
from mrgrpo.tasks import (
    MINI_MATH_ALPHABET,
    DatasetUnavailableError,
    format_example,
    format_prompt,
    load_gsm8k,
    make_fintech_prompts,
    make_mini_math,
    solution_text,
)
from mrgrpo.tasks import gsm8k as gsm8k_mod
from mrgrpo.tasks.mini_math import TEST_FRACTION, problem_split

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gsm8k_sample.jsonl"


# ---------------------------------------------------------------- mini-math
@pytest.fixture(scope="module")
def train():
    return make_mini_math(3000, seed=0)


@pytest.fixture(scope="module")
def test_split():
    return make_mini_math(1000, seed=0, split="test")


def test_mini_math_deterministic_and_seed_dependent():
    a, b = make_mini_math(200, seed=7), make_mini_math(200, seed=7)
    assert a == b
    c = make_mini_math(200, seed=8)
    assert [p["id"] for p in a] != [p["id"] for p in c]
    gen = np.random.default_rng(7)
    assert make_mini_math(50, seed=gen) == make_mini_math(50, seed=np.random.default_rng(7))


def test_mini_math_fields_and_solutions_are_correct(train):
    for p in train:
        assert set(p) >= {"prompt", "gold", "solution", "n_steps", "id", "key", "split"}
        assert p["split"] == "train" and p["n_steps"] in (1, 2, 3)
        assert re.fullmatch(r"\d+", p["gold"]), p
        assert p["solution"].endswith(f"#### {p['gold']}")
        steps = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)\.", p["solution"])
        assert len(steps) == p["n_steps"], p
        for a, op, b, c in steps:  # every worked step is true arithmetic
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "*": a * b, "/": Fraction(a, b)}[op] == c, p
        assert int(steps[-1][3]) == int(p["gold"])
        assert solution_text(p) == p["solution"]


def test_mini_math_is_small_varied_and_balanced(train):
    golds = np.array([int(p["gold"]) for p in train])
    assert golds.min() >= 0 and np.mean(golds < 100) > 0.95
    counts = np.bincount([p["n_steps"] for p in train], minlength=4)[1:]
    assert counts.min() > 0.25 * len(train)
    assert len({p["id"] for p in train}) == len(train)  # distinct problems
    words = {w for p in train for w in p["prompt"].split()}
    assert len(words) > 100  # names and objects vary


def test_mini_math_alphabet_and_format(train, test_split):
    alphabet = set(MINI_MATH_ALPHABET)
    for p in train + test_split:
        text = format_example(p)
        assert set(text) <= alphabet, set(text) - alphabet
    p = train[0]
    assert format_prompt(p) == f"Q: {p['prompt']}\nA:"
    assert format_prompt(p["prompt"]) == format_prompt(p)
    assert format_example(p) == format_prompt(p) + " " + p["solution"]


def test_mini_math_splits_share_no_problem(train, test_split):
    assert all(p["split"] == "test" for p in test_split)
    assert not {p["key"] for p in train} & {p["key"] for p in test_split}
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in test_split}
    # and a different seed's test split is still disjoint from this train split
    other = make_mini_math(500, seed=123, split="test")
    assert not {p["key"] for p in train} & {p["key"] for p in other}


def test_mini_math_split_fraction():
    # the split is a hash of the canonical key; about TEST_FRACTION of keys are held out
    keys = [f"count has {i} add {j}" for i in range(60) for j in range(60)]
    share = np.mean([problem_split(k) == "test" for k in keys])
    se = np.sqrt(TEST_FRACTION * (1 - TEST_FRACTION) / len(keys))
    assert abs(share - TEST_FRACTION) < 4 * se


def test_mini_math_gold_scores_correct_with_math_reward(train):
    rf = MathRewardFunction(L0=30)
    assert all(rf(" " + p["solution"], p)[0] == 1.0 for p in train[:200])


@pytest.mark.parametrize("kwargs, match", [
    ({"n": -1}, "non-negative"), ({"n": 2.5}, "non-negative"), ({"n": 3, "split": "valid"}, "split"),
    ({"n": 3, "seed": None}, "seed"),
])
def test_mini_math_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mini_math(**kwargs)


# ---------------------------------------------------------------- fintech
def test_fintech_prompts_deterministic_and_complete():
    a = make_fintech_prompts(400, seed=0)
    assert a == make_fintech_prompts(400, seed=0)
    assert a != make_fintech_prompts(400, seed=1)
    assert len({p["scenario"] for p in a}) >= 15
    assert len({p["persona"] for p in a}) >= 5
    assert {"phishing_test", "fraud_alert", "lost_card", "refund_request", "charge_dispute",
            "billing_question"} <= {p["scenario"] for p in a}
    assert len({p["name"] for p in a}) > 50 and len({p["amount"] for p in a}) > 200
    assert len({p["date"] for p in a}) > 100
    assert len({p["id"] for p in a}) == 400
    for p in a:
        msgs = p["messages"]
        assert msgs[0]["role"] == "system" and msgs[-1] == {"role": "user", "content": p["prompt"]}
        assert all(m["role"] in ("system", "assistant", "user") for m in msgs)
        assert p["scenario_type"] == p["scenario"]
        assert "{" not in p["prompt"] and "}" not in "".join(m["content"] for m in msgs)


def test_fintech_reward_accepts_generated_prompts():
    rf = FintechRewardFunction()
    for p in make_fintech_prompts(20, seed=3):
        assert len(rf("I'm sorry about that. Would you like me to connect you with a specialist?", p)) == 3


def test_fintech_system_prompt_does_not_trip_the_reward():
    # the rules text names secrets ("never ask for a password") and a link domain; it must be compliant
    p = make_fintech_prompts(1, seed=0)[0]
    assert FintechRewardFunction()(p["messages"][0]["content"], p)[0] == 1.0


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_fintech_prompts_bad_n(n):
    with pytest.raises(ValueError, match="non-negative"):
        make_fintech_prompts(n)


# ---------------------------------------------------------------- GSM8K
def test_gsm8k_fixture_loads_and_parses_gold():
    items = load_gsm8k(split="test", path=FIXTURE)
    assert [p["gold"] for p in items] == ["12", "1450", "4", "-5", "196", "1.5"]
    assert items[0]["prompt"].startswith("A baker")
    assert items[1]["id"] == "gsm8k-test-1" and items[1]["solution"].endswith("#### 1,450")
    rf = MathRewardFunction()
    for p in items:  # the dataset's own solution scores correct under the math reward
        assert rf(p["solution"], p)[0] == 1.0, p


def test_gsm8k_n_seed_and_parquet(tmp_path):
    first = load_gsm8k(path=FIXTURE, n=2)
    assert [p["gold"] for p in first] == ["12", "1450"]
    shuffled = load_gsm8k(path=FIXTURE, n=6, seed=1)
    assert shuffled == load_gsm8k(path=FIXTURE, n=6, seed=1)
    assert sorted(p["id"] for p in shuffled) == sorted(p["id"] for p in load_gsm8k(path=FIXTURE))
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    assert load_gsm8k(path=tmp_path / "test.parquet") == load_gsm8k(path=FIXTURE)


def test_gsm8k_examples_module_keeps_paper_names():
    from mrgrpo.examples.gsm8k import gsm8k_prompts_with_gold, load_gsm8k_prompts
    assert len(load_gsm8k_prompts(3, path=FIXTURE)) == 3
    pairs = gsm8k_prompts_with_gold(6, path=FIXTURE)
    assert sorted(g for _, g in pairs) == sorted(["12", "1450", "4", "-5", "196", "1.5"])


def test_gsm8k_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_gsm8k(path=tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(ValueError, match=r"row 0.*####"):
        load_gsm8k(path=bad)
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="row 0 needs 'question' and 'answer'"):
        load_gsm8k(path=bad)
    with pytest.raises(ValueError, match="split"):
        load_gsm8k(split="validation", path=FIXTURE)


def test_gsm8k_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(gsm8k_mod, "_hub_reachable", lambda *a, **k: pytest.fail("offline must not probe"))
    import datasets.config
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets", raising=False)
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match=r"(?s)HF_HUB_OFFLINE=1 is set.*path="):
        load_gsm8k(split="test")
    assert time.perf_counter() - t0 < 15


def test_gsm8k_without_datasets_package_says_so(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets" or name.startswith("datasets."):
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DatasetUnavailableError, match=r"(?s)needs the `datasets` package.*path="):
        load_gsm8k()


def test_gsm8k_unreachable_hub_fails_at_once(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(gsm8k_mod, "_hub_reachable", lambda *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match=r"(?s)cannot reach.*to_json\('gsm8k_train.jsonl'\)"):
        load_gsm8k(split="train")
    assert time.perf_counter() - t0 < 1


def test_hub_probe_is_quick_on_a_closed_port(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    t0 = time.perf_counter()
    assert gsm8k_mod._hub_reachable(timeout=2.0) is False
    assert time.perf_counter() - t0 < 3
