"""The GRPO objective: clipped surrogate, clip fraction, k3 KL gradient, aggregation."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

from mrgrpo.train import GRPOConfig, GRPOTrainer  # noqa: E402
from mrgrpo.train.losses import aggregate, clip_fraction, clipped_surrogate, k3_kl, sequence_token_logprobs  # noqa: E402

PROMPTS = ["Q: 1 + 2 = ?\nA:", "Q: 30 - 4 = ?\nA:", "Q: 7 * 6 = ?\nA:"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_losses"))


def two_channel(completion: str, prompt) -> list[float]:
    return [float("a" in completion), sum(c.isdigit() for c in completion) / 16.0]


two_channel.channel_names = ("has_a", "digits")


def test_clipped_surrogate_by_hand():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    old = torch.zeros(1, 3)
    loss, ratio = clipped_surrogate(logp, old, torch.tensor([2.0]), eps=0.2)
    # A > 0: min(rho A, clip(rho) A) -> 1.2 A, 0.5 A, 1.1 A
    torch.testing.assert_close(loss, -torch.tensor([[2.4, 1.0, 2.2]]))
    loss, _ = clipped_surrogate(logp, old, torch.tensor([-1.0]), eps=0.2)
    # A < 0: min -> -1.5, -0.8, -1.1
    torch.testing.assert_close(loss, torch.tensor([[1.5, 0.8, 1.1]]))
    n_clip, n = clip_fraction(ratio, torch.tensor([[1, 1, 0]]), eps=0.2)
    assert (n_clip, n) == (2.0, 2.0)


def test_k3_is_nonnegative_and_zero_only_at_equality():
    x = torch.randn(1000, dtype=torch.float64)
    y = torch.randn(1000, dtype=torch.float64)
    assert bool((k3_kl(x, y) >= 0).all())
    assert float(k3_kl(x, x).abs().max()) == 0.0


def test_aggregation_token_vs_sequence_and_accumulation():
    per_tok = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert float(aggregate(per_tok, mask, "token", 4, 2)) == pytest.approx(10 / 4)
    assert float(aggregate(per_tok, mask, "sequence", 4, 2)) == pytest.approx((2.0 + 4.0) / 2)
    # micro-batches with whole-batch normalisers sum to the full-batch value
    for how in ("token", "sequence"):
        parts = aggregate(per_tok[:1], mask[:1], how, 4, 2) + aggregate(per_tok[1:], mask[1:], how, 4, 2)
        assert float(parts) == pytest.approx(float(aggregate(per_tok, mask, how, 4, 2)))
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(per_tok, mask, "mean", 4, 2)


def test_k3_expected_gradient_is_grad_kl_and_seq_logratio_gradient_is_zero(tiny_path):
    """Exact expectation over the vocabulary for a one-token completion.

    E_{y~pi}[grad k3(y)] = grad KL(pi_ref || pi) (not zero), while the reference
    package's term, the log-ratio log pi(y) - log pi_ref(y), has expected gradient
    sum_y pi(y) grad log pi(y) = grad sum_y pi(y) = 0.
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float64)
    ref = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float64).eval()
    with torch.no_grad():  # move the policy away from the reference
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ids = torch.tensor([[43, 45, 47, 3, 4]])
    params = [p for p in policy.parameters()]

    def flat_grad(scalar):
        gs = torch.autograd.grad(scalar, params, allow_unused=True, retain_graph=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gs, params)])

    logp = torch.log_softmax(policy(input_ids=ids).logits[0, -1], -1)  # (V,)
    with torch.no_grad():
        ref_logp = torch.log_softmax(ref(input_ids=ids).logits[0, -1], -1)
    pi = logp.exp().detach()
    ours = flat_grad((pi * k3_kl(logp, ref_logp)).sum())            # E_pi[grad k3]
    exact = flat_grad((ref_logp.exp() * (ref_logp - logp)).sum())   # grad KL(ref || pi)
    theirs = flat_grad((pi * (logp - ref_logp)).sum())               # E_pi[grad log-ratio]
    assert float(ours.norm()) > 1e-3
    torch.testing.assert_close(ours, exact, atol=1e-10, rtol=1e-8)
    assert float(theirs.norm()) < 1e-10 * float(ours.norm()) + 1e-12


def test_trainer_kl_gradient_matches_finite_differences(tiny_path):
    """With zero advantages the trainer's gradient is beta * grad(token-mean k3): check by central FD."""
    cfg = GRPOConfig(model=tiny_path, weights=(1.0,), m=4, batch_prompts=2, max_new_tokens=6, kl_coef=0.3,
                     max_grad_norm=None, progress=False, seed=1)
    tr = GRPOTrainer(cfg, lambda c, p: [1.0], PROMPTS)
    tr._load()
    tr.model.double()
    with torch.no_grad():  # LoRA B starts at 0 (policy == reference); move it
        for n, p in tr.model.named_parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn_like(p))
    roll = tr.rollout(0)
    tr.optimizer.step = lambda: None  # keep the parameters where they are
    stats = tr._update(roll, torch.zeros(len(roll["texts"])))
    params = [p for p in tr.model.parameters() if p.requires_grad]
    grad = torch.cat([p.grad.reshape(-1) for p in params])

    def kl_objective() -> float:
        with torch.no_grad():
            logp = sequence_token_logprobs(tr.model, roll["input_ids"], roll["attention_mask"],
                                           roll["n_completion"], cfg.temperature)
            with tr.model.disable_adapter():
                ref = sequence_token_logprobs(tr.model, roll["input_ids"], roll["attention_mask"],
                                              roll["n_completion"], cfg.temperature)
            m = roll["loss_mask"]
            return float((k3_kl(logp, ref) * m).sum() / m.sum())

    assert stats["kl"] == pytest.approx(kl_objective(), rel=1e-9)
    assert stats["kl"] > 1e-4
    d = [torch.randn_like(p) for p in params]
    scale = float(torch.cat([di.reshape(-1) for di in d]).norm())
    d = [di / scale for di in d]  # unit direction
    # transformers computes rotary angles in float32 even in a float64 model, which puts a
    # ~1e-8 relative floor under the objective; h = 1e-3 keeps round-off and the O(h^2)
    # truncation error both near 1e-4 relative
    h = 1e-3
    with torch.no_grad():
        for p, di in zip(params, d):
            p.add_(h * di)
        up = kl_objective()
        for p, di in zip(params, d):
            p.sub_(2 * h * di)
        down = kl_objective()
        for p, di in zip(params, d):
            p.add_(h * di)
    fd = cfg.kl_coef * (up - down) / (2 * h)
    analytic = float(grad @ torch.cat([di.reshape(-1) for di in d]))
    assert analytic == pytest.approx(fd, rel=1e-3)


def test_clip_fraction_zero_on_first_iteration_positive_after_moving(tiny_path):
    cfg = GRPOConfig(model=tiny_path, weights=(1.0, 1.0), m=8, batch_prompts=2, max_new_tokens=8,
                     num_iterations=3, clip_eps=0.05, lr=0.05, progress=False, seed=0)
    tr = GRPOTrainer(cfg, two_channel, PROMPTS)
    tr._load()
    roll = tr.rollout(0)
    adv = torch.linspace(-1.5, 1.5, len(roll["texts"]))
    tr._update(roll, adv)
    fracs = [s["clip_frac"] for s in tr.iteration_stats]
    assert fracs[0] == 0.0  # ratio is exactly 1 before any update
    assert fracs[1] > 0.0 and fracs[2] > 0.0


def test_gradient_accumulation_is_exact(tiny_path):
    """grad_accum = 4 micro-batches gives the same update as one full batch."""
    finals = {}
    for how in ("token", "sequence"):
        for k in (1, 4):
            cfg = GRPOConfig(model=tiny_path, weights=(1.0, 1.0), m=4, batch_prompts=2, max_new_tokens=8,
                             grad_accum=k, loss_aggregation=how, n_steps=2, progress=False, seed=3)
            tr = GRPOTrainer(cfg, two_channel, PROMPTS)
            tr.train()
            finals[how, k] = torch.cat([p.detach().reshape(-1) for p in tr.model.parameters() if p.requires_grad])
        torch.testing.assert_close(finals[how, 1], finals[how, 4], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(finals["token", 1], finals["sequence", 1])
