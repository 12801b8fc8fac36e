"""The trainer's passes and precision: no pass that is not needed, one precision per step, length batching."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

import mrgrpo.train.trainer as trainer_mod  # noqa: E402
from mrgrpo.lm import sampling  # noqa: E402
from mrgrpo.lm.loader import load_model  # noqa: E402
from mrgrpo.train import GRPOConfig, GRPOTrainer  # noqa: E402
from mrgrpo.train.batching import Chunk, length_chunks, padded_fraction  # noqa: E402
from mrgrpo.train.losses import sequence_token_logprobs  # noqa: E402

PROMPTS = ["Q: 1 + 2 = ?\nA:", "Q: 30 - 4 = ?\nA:", "Q: 7 * 6 = ? and more words here\nA:"]


def two_channel(completion: str, prompt) -> list[float]:
    return [float("a" in completion), sum(c.isdigit() for c in completion) / 16.0]


two_channel.channel_names = ("has_a", "digits")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_precision"), init_std=0.3)


def trainer(tiny_path, **kw) -> GRPOTrainer:
    cfg = dict(model=tiny_path, weights=(1.0, 1.0), m=4, batch_prompts=3, max_new_tokens=12, kl_coef=0.1,
               progress=False, seed=0)
    tr = GRPOTrainer(GRPOConfig(**{**cfg, **kw}), two_channel, PROMPTS)
    tr._load()
    return tr


def move_lora(tr: GRPOTrainer, scale: float = 0.2) -> None:
    """LoRA B starts at 0 (policy == reference); move every adapter weight."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tr.model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def count_passes(tr: GRPOTrainer) -> dict:
    """Forward and backward passes through the base model (hooks on its outermost module)."""
    counts = {"forward": 0, "backward": 0}
    base = tr.model.get_base_model()
    base.register_forward_pre_hook(lambda *a: counts.__setitem__("forward", counts["forward"] + 1))
    base.get_output_embeddings().register_full_backward_pre_hook(
        lambda *a: counts.__setitem__("backward", counts["backward"] + 1))
    return counts


@pytest.mark.parametrize("iterations", [1, 3])
def test_an_update_runs_one_reference_pass_and_one_policy_pass_per_chunk_and_iteration(tiny_path, iterations):
    tr = trainer(tiny_path, num_iterations=iterations)
    roll = tr.rollout(0)
    counts = count_passes(tr)
    tr._update(roll, torch.linspace(-1, 1, len(roll["texts"])))
    n = tr.padding["passes"]
    # the reference once per chunk; the policy once per chunk and iteration; the old log-probs cost nothing
    assert counts == {"forward": n * (1 + iterations), "backward": n * iterations}


def test_no_kl_no_reference_pass(tiny_path):
    tr = trainer(tiny_path, kl_coef=0.0)
    roll = tr.rollout(0)
    counts = count_passes(tr)
    tr._update(roll, torch.linspace(-1, 1, len(roll["texts"])))
    assert counts["forward"] == tr.padding["passes"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("iterations", [1, 2])
def test_the_on_policy_ratio_is_exactly_one(tiny_path, monkeypatch, dtype, iterations):
    ratios, logps = [], []
    real = trainer_mod.clipped_surrogate

    def spy(logp, old, adv, eps):
        loss, ratio = real(logp, old, adv, eps)
        ratios.append(ratio)
        logps.append(logp.detach())
        return loss, ratio

    monkeypatch.setattr(trainer_mod, "clipped_surrogate", spy)
    tr = trainer(tiny_path, dtype=dtype, num_iterations=iterations, lr=0.05)
    move_lora(tr)
    roll = tr.rollout(0)
    tr._update(roll, torch.linspace(-1, 1, len(roll["texts"])))
    n = tr.padding["passes"]
    first = ratios[:n]
    assert all(r.dtype == torch.float32 for r in ratios) and all(lp.dtype == torch.float32 for lp in logps)
    assert all(bool((r == 1.0).all()) for r in first)  # exactly 1: old and new from one pass, one precision
    assert tr.iteration_stats[0]["clip_frac"] == 0.0
    if iterations > 1:  # after an optimizer step the ratio moves
        assert any(bool((r != 1.0).any()) for r in ratios[n:])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_reference_is_the_base_model_in_the_same_precision(tiny_path, dtype):
    tr = trainer(tiny_path, dtype=dtype)
    move_lora(tr)
    roll = tr.rollout(0)
    chunks = length_chunks(roll, max_rows=len(roll["texts"]))
    ref = tr._reference_logprobs(chunks)
    base, _ = load_model(tiny_path, dtype=tr.precision.weights, progress=False)
    with torch.no_grad(), tr.precision.autocast():
        for ch, r in zip(chunks, ref):
            alone = sequence_token_logprobs(base, ch.input_ids, ch.attention_mask, ch.n_completion, 1.0)
            assert torch.equal(r, alone)  # the same weights, inputs and precision: bitwise
            policy = sequence_token_logprobs(tr.model, ch.input_ids, ch.attention_mask, ch.n_completion, 1.0)
            assert not torch.equal(policy, alone)  # the adapter was really off for the reference


def test_length_chunks_cover_every_row_and_cut_padding(tiny_path):
    tr = trainer(tiny_path, max_new_tokens=24, batch_prompts=3, m=8)
    roll = tr.rollout(0)
    N, C = len(roll["texts"]), roll["n_completion"]
    chunks = length_chunks(roll, max_rows=N, cost=0)
    rows = torch.cat([ch.rows for ch in chunks])
    assert sorted(rows.tolist()) == list(range(N))
    whole = [Chunk(torch.arange(N), roll["input_ids"], roll["attention_mask"], roll["loss_mask"], C)]
    assert padded_fraction(chunks) < padded_fraction(whole)
    with torch.no_grad():
        full = sequence_token_logprobs(tr.model, roll["input_ids"], roll["attention_mask"], C, 1.0)
        for ch in chunks:
            assert ch.input_ids.shape[1] == ch.attention_mask.shape[1] <= roll["input_ids"].shape[1]
            assert int(ch.attention_mask[:, 0].sum()) > 0 and int(ch.attention_mask[:, -1].sum()) > 0  # trimmed
            assert torch.equal(ch.loss_mask, roll["loss_mask"][ch.rows, :ch.n_completion])
            assert not roll["loss_mask"][ch.rows, ch.n_completion:].any()
            part = sequence_token_logprobs(tr.model, ch.input_ids, ch.attention_mask, ch.n_completion, 1.0)
            m = ch.loss_mask.bool()
            torch.testing.assert_close(part[m], full[ch.rows, :ch.n_completion][m], atol=2e-5, rtol=1e-5)
    # the memory bound: at most max_rows rows per pass
    assert all(len(ch.rows) <= 5 for ch in length_chunks(roll, max_rows=5, cost=0))
    # a huge per-pass cost keeps one pass
    assert len(length_chunks(roll, max_rows=N, cost=10**9)) == 1


def test_length_chunks_on_a_constructed_batch():
    """Two long rows and six short ones: cut in two when the padding saved beats the cost."""
    N, Lp, C = 8, 6, 10
    attn = torch.zeros(N, Lp + C, dtype=torch.long)
    lens_p = [6, 6, 2, 2, 2, 2, 2, 2]
    lens_c = [10, 9, 2, 3, 2, 1, 2, 3]
    for i, (p, c) in enumerate(zip(lens_p, lens_c)):
        attn[i, Lp - p:Lp + c] = 1
    ids = torch.arange(N * (Lp + C)).reshape(N, Lp + C) * attn
    roll = {"input_ids": ids, "attention_mask": attn, "loss_mask": attn[:, Lp:].clone(), "n_completion": C}
    two = length_chunks(roll, max_rows=N, cost=20)
    assert [sorted(ch.rows.tolist()) for ch in two] == [[2, 3, 4, 5, 6, 7], [0, 1]]
    assert [tuple(ch.input_ids.shape) for ch in two] == [(6, 5), (2, 16)]
    assert padded_fraction(two) == pytest.approx(1 - 56 / (30 + 32))  # from 1 - 56 / 128 in one pass
    assert len(length_chunks(roll, max_rows=N, cost=100)) == 1  # saving 66 positions does not pay 100
    with pytest.raises(ValueError, match="max_rows"):
        length_chunks(roll, max_rows=0)


def test_bf16_keeps_float32_lora_weights_gradients_and_optimizer_state(tiny_path):
    tr = trainer(tiny_path, dtype="bfloat16")
    assert tr.precision.compute == tr.precision.weights == torch.bfloat16
    frozen = {p.dtype for p in tr.model.parameters() if not p.requires_grad}
    trained = [p for p in tr.model.parameters() if p.requires_grad]
    assert frozen == {torch.bfloat16} and {p.dtype for p in trained} == {torch.float32}
    tr.train()
    assert {p.grad.dtype for p in trained} == {torch.float32}
    state = [s for s in tr.optimizer.state.values()]
    assert state and {s["exp_avg"].dtype for s in state} == {s["exp_avg_sq"].dtype for s in state} == {torch.float32}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_generation_runs_in_the_chosen_precision_with_its_kv_cache(tiny_path, monkeypatch, dtype):
    seen = {}
    real_pre = sampling.preallocate

    def spy(cache, extra):
        seen["cache"] = {layer.keys.dtype for layer in cache.layers} | {layer.values.dtype for layer in cache.layers}
        return real_pre(cache, extra)

    monkeypatch.setattr(sampling, "preallocate", spy)
    tr = trainer(tiny_path, dtype=dtype)
    shapes = []
    tr.model.get_base_model().register_forward_hook(lambda mod, args, out: shapes.append(tuple(out.logits.shape)))
    roll = tr.rollout(0)
    assert seen["cache"] == {getattr(torch, dtype)}
    V = tr.model.get_base_model().config.vocab_size
    assert shapes[0] == (len(PROMPTS), 1, V)  # the prefill asks for the last position's logits only
    assert roll["n_tokens"] > 0


def test_bf16_sampling_and_logprobs_stay_close_to_float32(tiny_path):
    """bf16 rounding moves a log-prob by a few hundredths at most on this model; the rows agree as sequences."""
    f32 = trainer(tiny_path, dtype="float32")
    b16 = trainer(tiny_path, dtype="bfloat16")
    roll = f32.rollout(0)
    C = roll["n_completion"]
    with torch.no_grad():
        lp32 = sequence_token_logprobs(f32.model, roll["input_ids"], roll["attention_mask"], C, 1.0)
        with b16.precision.autocast():
            lp16 = sequence_token_logprobs(b16.model, roll["input_ids"], roll["attention_mask"], C, 1.0)
    m = roll["loss_mask"].bool()
    diff = (lp32 - lp16)[m].abs()
    assert 0 < float(diff.max()) < 0.25 and float(diff.mean()) < 0.05, (float(diff.mean()), float(diff.max()))
    assert np.isfinite(lp16.numpy()).all()


def test_the_sampler_drops_ended_rows_without_changing_any_row(tiny_path):
    """Rows leave the decode batch once a quarter has ended; every row is what it is when sampled alone."""
    model, _ = load_model(tiny_path, progress=False)
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]] * 8
    u = np.random.default_rng(0).random((len(prompts), 20))
    eos = list(range(20, 30))  # a fifth of the vocabulary ends a row: rows end at many different steps
    sizes = []
    hook = model.register_forward_pre_hook(lambda mod, args, kw: sizes.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    with torch.no_grad():
        batch, ended = sampling.sample_tokens(model, prompts, u, temperature=1.5, eos_ids=eos, pad_id=0)
    hook.remove()
    assert sizes[0] == 3  # one prefill per distinct prompt, then the rows still sampling
    assert sizes[-1] < len(prompts) and sizes == sizes[:1] + sorted(sizes[1:], reverse=True)
    assert int(ended.sum()) >= len(prompts) // 4
    with torch.no_grad():
        for i, p in enumerate(prompts):
            alone, e = sampling.sample_tokens(model, [p], u[i:i + 1], temperature=1.5, eos_ids=eos, pad_id=0)
            k = alone.shape[1]
            assert batch[i, :k].tolist() == alone[0].tolist() and bool(e[0]) == bool(ended[i])
            assert (batch[i, k:] == 0).all()


def test_the_trl_engine_trains_in_bf16_on_the_cpu():
    """TRL's bf16 with use_cpu: the engine autocasts on the CPU, bf16 base weights, float32 LoRA and Adam state."""
    from mrgrpo.tasks.registry import task_setup
    from mrgrpo.train.engines.trl_engine import TRLEngineTrainer

    setup = task_setup("mini-math", n_train=8, n_eval=0, seed=0)
    cfg = GRPOConfig.tiny(engine="trl", device="cpu", dtype="bfloat16", n_steps=1, batch_prompts=2, m=4,
                          max_new_tokens=12, progress=False)
    tr = TRLEngineTrainer(cfg, setup.reward_fn, setup.train_prompts)
    tr.load()
    assert tr.trainer.args.bf16 and tr.trainer.args.use_cpu and tr.trainer.accelerator.mixed_precision == "bf16"
    hist = tr.train()
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    assert {p.dtype for p in tr.model.parameters() if not p.requires_grad} == {torch.bfloat16}
    assert {p.dtype for p in tr.model.parameters() if p.requires_grad} == {torch.float32}
    state = list(tr.trainer.optimizer.state.values())
    assert state and {s["exp_avg"].dtype for s in state} == {torch.float32}
