"""Score projections: forward-mode jvp against per-sample gradients and finite differences."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import torch

from mrgrpo.lm.scores import (random_directions, score_projections, score_projections_naive,  # noqa: E402
                           select_parameters, tokenize_pairs)

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

# rows of different prompt and completion lengths, a repeated prompt (shared
# prompt cache) and an empty completion (only its EOS token counts)
PROMPTS = ["Q: 1 + 2 = ?\nA:", "Q: 12 + 3 = ?\nA:", "Q: 1 + 2 = ?\nA:", "Q: 7 = ?\nA:", "Q: 12 + 3 = ?\nA:"]
COMPS = [" 3", " 15 ok", "", " 3 3 3 a", " 1"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("scores_lm"), hidden=32, layers=2)


def _load(lm_dir, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(lm_dir).to(dtype).eval()
    return model, tok


@pytest.fixture
def exact_rmsnorm(monkeypatch):
    """Qwen2's RMSNorm computes in float32 even for a float64 model, which rounds away
    differences of 1e-16 into 1e-7; for float64 checks keep it in the input dtype."""
    from transformers.models.qwen2 import modeling_qwen2 as mq

    def forward(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    monkeypatch.setattr(mq.Qwen2RMSNorm, "forward", forward)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_jvp_matches_naive_float64(lm_dir, exact_rmsnorm):
    model, tok = _load(lm_dir, torch.float64)
    g = score_projections(model, tok, PROMPTS, COMPS, directions=3, seed=1, batch_size=3)
    ref = score_projections_naive(model, tok, PROMPTS, COMPS, directions=3, seed=1)
    assert g.shape == (5, 3)
    assert np.all(np.abs(ref) > 0)
    assert _rel(g, ref) < 1e-10


def test_jvp_matches_naive_float32(lm_dir):
    model, tok = _load(lm_dir, torch.float32)
    g = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=3, batch_size=4)
    ref = score_projections_naive(model, tok, PROMPTS, COMPS, directions=2, seed=3)
    for d in range(2):
        assert _rel(g[:, d], ref[:, d]) < 1e-5


def test_batching_does_not_change_scores(lm_dir, exact_rmsnorm):
    model, tok = _load(lm_dir, torch.float64)
    a = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=0, batch_size=1)
    b = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=0, batch_size=5)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(a).max())


def test_projection_of_full_per_sample_gradients(lm_dir, exact_rmsnorm):
    """Directions along single coordinates read off the per-sample gradient entries."""
    model, tok = _load(lm_dir, torch.float64)
    sel = select_parameters(model, "all")
    _, G = score_projections_naive(model, tok, PROMPTS, COMPS, directions=1, return_gradients=True)
    sizes = [p.numel() for p in sel.values()]
    assert G.shape == (5, sum(sizes))
    rng = np.random.default_rng(0)
    coords = rng.choice(np.flatnonzero(np.abs(G).max(axis=0) > 1e-6), size=4, replace=False)
    offsets = np.cumsum([0] + sizes)
    dirs = []
    for c in coords:
        d = {n: torch.zeros_like(p) for n, p in sel.items()}
        k = int(np.searchsorted(offsets, c, side="right") - 1)
        name = list(sel)[k]
        d[name].view(-1)[c - offsets[k]] = 1.0
        dirs.append(d)
    g = score_projections(model, tok, PROMPTS, COMPS, directions=dirs, batch_size=2)
    np.testing.assert_allclose(g, G[:, coords], rtol=1e-9, atol=1e-12)
    # and a random direction is the dot product with the full gradient
    v = random_directions(sel, 1, seed=5)[0]
    vflat = torch.cat([v[n].reshape(-1) for n in sel]).numpy()
    g1 = score_projections(model, tok, PROMPTS, COMPS, directions=[v])
    np.testing.assert_allclose(g1[:, 0], G @ vflat, rtol=1e-9, atol=1e-12)


def _seq_logprob(model, tok, prompt, completion):
    ids = tok(prompt + completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n_p = len(tok(prompt, add_special_tokens=False)["input_ids"])
    x = torch.tensor([ids])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=x).logits[0, n_p - 1:-1], -1)
    return float(lp.gather(-1, x[0, n_p:, None]).sum())


def test_finite_differences_along_v(lm_dir, exact_rmsnorm):
    model, tok = _load(lm_dir, torch.float64)
    sel = select_parameters(model, "all")
    v = random_directions(sel, 1, seed=7)[0]
    g = score_projections(model, tok, PROMPTS, COMPS, directions=[v], batch_size=5)[:, 0]
    h = 1e-5
    fd = np.zeros(len(PROMPTS))
    with torch.no_grad():
        for sign in (1.0, -1.0):
            for n, p in sel.items():
                p.add_(sign * h * v[n])
            fd += sign * np.array([_seq_logprob(model, tok, p, c) for p, c in zip(PROMPTS, COMPS)])
            for n, p in sel.items():
                p.sub_(sign * h * v[n])
    fd /= 2 * h
    # central differences: error O(h^2) plus rounding ~1e-16 / h
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


def test_mean_normalization_is_sum_over_token_count(lm_dir):
    model, tok = _load(lm_dir, torch.float32)
    s = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=2, normalize="sum")
    m = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=2, normalize="mean")
    n_tok = tokenize_pairs(tok, PROMPTS, COMPS, eos=True).n_tokens
    assert list(n_tok) == [len(c) + 1 for c in COMPS]  # character-level, plus EOS
    np.testing.assert_allclose(m, s / n_tok[:, None], rtol=1e-12)
    naive = score_projections_naive(model, tok, PROMPTS, COMPS, directions=2, seed=2, normalize="mean")
    assert _rel(m, naive) < 1e-5


def test_eos_flags_change_the_sequence(lm_dir, exact_rmsnorm):
    model, tok = _load(lm_dir, torch.float64)
    eos = [True, False, True, False, True]
    g = score_projections(model, tok, PROMPTS, COMPS, directions=1, eos=eos)
    ref = score_projections_naive(model, tok, PROMPTS, COMPS, directions=1, eos=eos)
    assert _rel(g, ref) < 1e-10
    full = score_projections(model, tok, PROMPTS, COMPS, directions=1, eos=True)
    assert not np.allclose(g[1], full[1])
    np.testing.assert_allclose(g[[0, 2, 4]], full[[0, 2, 4]], rtol=1e-12)


def test_token_id_input(lm_dir, exact_rmsnorm):
    model, tok = _load(lm_dir, torch.float64)
    pairs = tokenize_pairs(tok, PROMPTS, COMPS, eos=True)
    a = score_projections(model, None, pairs.prompt_ids, pairs.completion_ids, directions=2, seed=4, eos=False)
    b = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=4)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_lora_direction_space(lm_dir):
    from peft import LoraConfig, get_peft_model

    model, tok = _load(lm_dir, torch.float32)
    # init_lora_weights=False: B is random too, so the gradient reaches A as well
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.eval()
    sel = select_parameters(peft_model)  # auto -> LoRA
    assert sel and all("lora_" in n for n in sel)
    assert sum(p.numel() for p in sel.values()) < sum(p.numel() for p in peft_model.parameters())
    g = score_projections(peft_model, tok, PROMPTS, COMPS, directions=2, seed=6, batch_size=2)
    ref = score_projections_naive(peft_model, tok, PROMPTS, COMPS, directions=2, seed=6)
    assert _rel(g, ref) < 1e-5
    assert np.abs(g).max() > 0
    g_all = score_projections(peft_model, tok, PROMPTS, COMPS, directions=1, params="all")
    assert g_all.shape == (5, 1)


def test_directions_are_seeded_unit_vectors(lm_dir):
    model, _ = _load(lm_dir, torch.float32)
    sel = select_parameters(model, "all")
    a = random_directions(sel, 2, seed=11)
    b = random_directions(sel, 2, seed=11)
    c = random_directions(sel, 2, seed=12)
    for d in a:
        assert abs(sum(float((t.double() ** 2).sum()) for t in d.values()) - 1.0) < 1e-5
    assert all(torch.equal(a[1][n], b[1][n]) for n in sel)
    assert not torch.equal(a[0][next(iter(sel))], c[0][next(iter(sel))])
    assert not torch.equal(a[0][next(iter(sel))], a[1][next(iter(sel))])


def test_bad_input(lm_dir):
    model, tok = _load(lm_dir, torch.float32)
    with pytest.raises(ValueError, match="normalize"):
        score_projections(model, tok, PROMPTS, COMPS, normalize="tokens")
    with pytest.raises(ValueError, match="completions"):
        score_projections(model, tok, PROMPTS, COMPS[:2])
    with pytest.raises(ValueError, match="LoRA"):
        score_projections(model, tok, PROMPTS, COMPS, params="lora")
    with pytest.raises(ValueError, match="batch_size"):
        score_projections(model, tok, PROMPTS, COMPS, batch_size=0)
    with pytest.raises(ValueError, match="direction 0"):
        score_projections(model, tok, PROMPTS, COMPS, directions=[{"x": torch.zeros(1)}])
    with pytest.raises(ValueError, match="n_directions"):
        score_projections(model, tok, PROMPTS, COMPS, directions=0)
    with pytest.raises(ValueError, match="token ids"):
        score_projections(model, None, PROMPTS, COMPS, eos=False)


# ----------------------------------------------------------------------------- temperature
@pytest.fixture(scope="module")
def sharp_lm_dir(tmp_path_factory):
    """Larger initial weights: a peaked next-token distribution, so temperature matters."""
    return build_tiny_lm(tmp_path_factory.mktemp("scores_sharp_lm"), hidden=32, layers=2, init_std=0.5)


def test_temperature_jvp_matches_naive_float64(lm_dir, exact_rmsnorm):
    model, tok = _load(lm_dir, torch.float64)
    g = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=1, batch_size=3, temperature=0.7)
    ref = score_projections_naive(model, tok, PROMPTS, COMPS, directions=2, seed=1, temperature=0.7)
    assert _rel(g, ref) < 1e-10
    g1 = score_projections(model, tok, PROMPTS, COMPS, directions=2, seed=1, batch_size=3)
    assert _rel(g, g1) > 1e-3  # the temperature changes the scores


def test_score_identity_exact_over_one_token_completions(sharp_lm_dir, exact_rmsnorm):
    """Every one-token completion, weighted by its sampling probability at T: sum_y pi_T(y) g_T(y) = 0."""
    model, tok = _load(sharp_lm_dir, torch.float64)
    p_ids = tok("Q: 12 + 3 = ?\nA:", add_special_tokens=False)["input_ids"]
    V = model.config.vocab_size
    T = 0.7
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids])).logits[0, -1].double()
    prob = torch.softmax(logits / T, -1).numpy()
    comps = [[y] for y in range(V)]
    g_T = score_projections(model, None, [p_ids] * V, comps, directions=3, seed=2, eos=False, temperature=T)
    g_1 = score_projections(model, None, [p_ids] * V, comps, directions=3, seed=2, eos=False)
    scale = prob @ np.abs(g_T)
    assert np.all(np.abs(prob @ g_T) < 1e-10 * scale)
    assert np.max(np.abs(prob @ g_1) / scale) > 1e-2  # the T = 1 score of the same draws is biased


def _mean_z(g):
    return g.mean(axis=0) / g.std(axis=0, ddof=1) * np.sqrt(g.shape[0])


def test_score_identity_holds_for_sampled_completions_at_their_temperature(sharp_lm_dir):
    """Sample at T = 0.5 with the package's sampler: E[g] = 0 holds for the scores at T, not at T = 1."""
    from mrgrpo.lm.sampling import sample_groups

    model, tok = _load(sharp_lm_dir, torch.float32)
    T = 0.5
    c = sample_groups(model, tok, ["Q: 1 + 2 = ?\nA:", "Q: 12 + 3 = ?\nA:"], 500, [0], temperature=T,
                      max_new_tokens=4)
    g_T = score_projections(model, None, c.prompt_ids, c.tokens, directions=2, seed=0, eos=False, temperature=T,
                            batch_size=500)
    g_1 = score_projections(model, None, c.prompt_ids, c.tokens, directions=2, seed=0, eos=False, batch_size=500)
    # 1000 independent draws: each mean within 3 standard errors of 0 (a 0.5% two-sided chance per direction)
    assert np.abs(_mean_z(g_T)).max() < 3.0
    # the wrong temperature's scores fail the same check by far
    assert np.abs(_mean_z(g_1)).max() > 6.0


def test_greedy_and_bad_temperatures_are_refused(lm_dir):
    model, tok = _load(lm_dir, torch.float32)
    with pytest.raises(ValueError, match="greedy.*no score"):
        score_projections(model, tok, PROMPTS, COMPS, temperature=0)
    with pytest.raises(ValueError, match="greedy"):
        score_projections_naive(model, tok, PROMPTS, COMPS, temperature=0.0)
    for bad in (-0.5, float("nan"), float("inf"), "0.7", True):
        with pytest.raises(ValueError, match="temperature"):
            score_projections(model, tok, PROMPTS, COMPS, temperature=bad)
