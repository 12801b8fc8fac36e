"""The Hugging Face generation backend, run on the shipped tiny policy (CPU, seconds)."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

import torch

from mrgrpo.corpus.hf import HFBackend  # noqa: E402
from mrgrpo.lm.loader import load_model  # noqa: E402
from mrgrpo.lm.prompts import render  # noqa: E402
from mrgrpo.lm.sampling import group_uniforms, sample_completions  # noqa: E402
from mrgrpo.rewards.base import RewardFunctionError  # noqa: E402
from mrgrpo.rewards.math import MathRewardFunction  # noqa: E402
from mrgrpo.tasks.mini_math import format_prompt, make_mini_math  # noqa: E402
from mrgrpo.tiny import DEFAULT_MODEL_DIR, TINY_L0  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MAX_NEW = 64


@pytest.fixture(scope="module")
def problems():
    return make_mini_math(5, seed=11, split="test")


@pytest.fixture(scope="module")
def backend():
    b = HFBackend(DEFAULT_MODEL_DIR, None, max_new_tokens=MAX_NEW, batch_size=64, progress=False)
    return b.set_reward_fn(MathRewardFunction(L0=TINY_L0, tokenizer=b.tokenizer))


def _by_key(groups, problems, seeds):
    return {(g.prompt, seeds[g.seed_idx]): g for g in groups}


def test_groups_are_prompt_major_and_scored(backend, problems):
    groups = backend.generate_groups(problems[:3], 4, [7, 9])
    assert [(g.prompt_idx, g.seed_idx) for g in groups] == [(p, k) for p in range(3) for k in range(2)]
    for g in groups:
        assert g.rewards.shape == (4, 3) and g.raw_length.shape == (4,)
        assert len(g.completions) == 4 and g.gold == problems[g.prompt_idx]["gold"]
        assert g.prompt == problems[g.prompt_idx]["prompt"]
        # the channels are the reward function's, recomputed here from the texts
        for c, row in zip(g.completions, g.rewards):
            assert tuple(row) == tuple(backend.reward_fn(c, problems[g.prompt_idx]))
        assert set(np.unique(g.rewards[:, 0])) <= {0.0, 1.0}
    assert backend.reward_names == ("correctness", "length", "format")
    assert math.isfinite(backend.completions_per_second) and backend.completions_per_second > 0
    assert backend.last_stats["completions"] == 24


def test_reproducible_per_prompt_and_seed_whatever_the_batch(backend, problems):
    """Same (prompt, seed) -> same completions, whatever the other prompts, seeds, order and batch size."""
    a = backend.generate_groups(problems[:4], 6, [3, 5])
    small = HFBackend(DEFAULT_MODEL_DIR, backend.reward_fn, max_new_tokens=MAX_NEW, batch_size=5, progress=False)
    b = small.generate_groups([problems[3], problems[4], problems[1]], 6, [5, 8])
    ka, kb = _by_key(a, problems, [3, 5]), _by_key(b, problems, [5, 8])
    shared = set(ka) & set(kb)
    assert {(problems[3]["prompt"], 5), (problems[1]["prompt"], 5)} == shared
    for key in shared:
        assert ka[key].completions == kb[key].completions
        np.testing.assert_array_equal(ka[key].rewards, kb[key].rewards)
    # and the samples really are random: another seed gives other completions somewhere
    assert any(ka[(p["prompt"], 3)].completions != ka[(p["prompt"], 5)].completions for p in problems[:4])


def test_group_uniforms_are_keyed_by_text_and_seed():
    u = group_uniforms("Q: x\nA:", 4, 3, 10)
    assert u.shape == (3, 10) and ((0 <= u) & (u < 1)).all()
    np.testing.assert_array_equal(u, group_uniforms("Q: x\nA:", 4, 3, 10))
    assert not np.array_equal(u, group_uniforms("Q: x\nA:", 5, 3, 10))
    assert not np.array_equal(u, group_uniforms("Q: y\nA:", 4, 3, 10))
    # a longer group or budget extends the same stream only where numpy's layout allows; rows differ anyway
    with pytest.raises(ValueError, match="seed"):
        group_uniforms("x", -1, 2, 2)


def test_greedy_rows_agree_and_match_sample_completions(backend, problems):
    greedy = HFBackend(DEFAULT_MODEL_DIR, backend.reward_fn, temperature=0.0, max_new_tokens=MAX_NEW,
                       progress=False)
    g = greedy.generate_groups(problems[:2], 3, [0])
    for grp in g:
        assert len(set(grp.completions)) == 1
    direct = sample_completions(greedy.model, greedy.tokenizer, problems[:2], 2, temperature=0.0,
                                max_new_tokens=MAX_NEW, seed=123)
    assert [d[0] for d in direct] == [grp.completions[0] for grp in g]
    # the same call through transformers' own greedy generate gives the same text
    tok = greedy.tokenizer
    ids = tok(format_prompt(problems[0]), return_tensors="pt")
    with torch.no_grad():
        out = greedy.model.generate(**ids, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tok.eos_token_id)
    ref = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert ref == g[0].completions[0]


def test_prompt_to_text_uses_the_chat_template(backend, problems):
    tok = backend.tokenizer
    assert render(problems[0], tok) == format_prompt(problems[0])
    assert render(problems[0]["prompt"], tok) == format_prompt(problems[0])
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 2 + 2?"}]
    assert render({"messages": msgs, "gold": "4"}, tok) == "Q: what is 2 + 2?\nA:"
    with pytest.raises(ValueError, match="'prompt' or 'messages'"):
        render({"question": "x"}, tok)


def test_sample_completions_shape(backend, problems):
    out = sample_completions(backend.model, backend.tokenizer, problems[:3], 4, temperature=1.0,
                             max_new_tokens=16, seed=0)
    assert len(out) == 3 and all(len(o) == 4 for o in out)
    assert all(len(c) <= 16 for o in out for c in o)  # at most one character per generated byte


@pytest.mark.parametrize("path", ["data/no-such-model", "/definitely/not/here", "./missing"])
def test_missing_model_path_is_a_clear_error(path):
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        HFBackend(path, MathRewardFunction())
    assert path in str(err.value)
    assert time.perf_counter() - t0 < 5


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path)


def test_offline_hub_id_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set") as err:
        load_model("mrgrpo-test-nobody/not-a-model")
    assert "mrgrpo-test-nobody/not-a-model" in str(err.value)
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("bad, match", [
    (lambda c, p: 1 / 0, "raised ZeroDivisionError"),
    (lambda c, p: (1.0, float("nan"), 0.0), "non-finite"),
    (lambda c, p: (1.0, 0.0), "2 channels, expected 3"),
])
def test_bad_reward_function_names_prompt_and_completion(backend, problems, bad, match):
    class Bad:
        channel_names = ("a", "b", "c")

        def __call__(self, c, p):
            return bad(c, p)

    b = HFBackend.__new__(HFBackend)
    b.__dict__.update(backend.__dict__)
    b.set_reward_fn(Bad())
    with pytest.raises(RewardFunctionError, match=match) as err:
        b.generate_groups(problems[:1], 2, [0])
    msg = str(err.value)
    assert "prompt index 0" in msg and problems[0]["prompt"][:20] in msg and "completion" in msg


def test_bad_arguments(backend):
    with pytest.raises(ValueError, match="temperature"):
        HFBackend(DEFAULT_MODEL_DIR, backend.reward_fn, temperature=-1)
    with pytest.raises(ValueError, match="max_new_tokens"):
        HFBackend(DEFAULT_MODEL_DIR, backend.reward_fn, max_new_tokens=0)
    with pytest.raises(ValueError, match="m must"):
        backend.generate_groups([{"prompt": "x", "gold": "1"}], 0, [0])
    with pytest.raises(ValueError, match="no reward function"):
        HFBackend(DEFAULT_MODEL_DIR, None, progress=False).generate_groups([{"prompt": "x", "gold": "1"}], 2, [0])
    with pytest.raises(ValueError, match="callable"):
        HFBackend(DEFAULT_MODEL_DIR, "not a function")


def test_a_prompt_longer_than_the_context_is_refused_before_sampling(backend, tmp_path):
    """The shipped policy's window is 384 tokens: a long prompt plus the budget must not run off its end,
    neither in a corpus nor in training (both sample through ``sample_tokens``)."""
    from mrgrpo.lm.sampling import sample_tokens
    from mrgrpo.train import GRPOConfig, GRPOTrainer

    limit = backend.model.config.max_position_embeddings
    long_prompt = "Q: " + "1 + " * (limit // 2) + "1 = ?\nA:"
    with pytest.raises(ValueError, match="exceeds the model's context window of 384 tokens"):
        backend.generate_groups([long_prompt], 2, [0])
    ids = backend.tokenizer(long_prompt, add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="context window"):
        sample_tokens(backend.model, [ids], np.zeros((1, 8)), temperature=1.0, eos_ids=[0], pad_id=0)
    trainer = GRPOTrainer(GRPOConfig(model=str(DEFAULT_MODEL_DIR), m=2, batch_prompts=1, n_steps=1, progress=False),
                          lambda c, p: [1.0, 0.0, 0.0], [long_prompt])
    with pytest.raises(ValueError, match="context window"):
        trainer.train()
