"""The trainer still learns in bfloat16 on the CPU, as it does in float32 (``--dtype bfloat16``).

The recipe of ``test_train_learning_tiny.py``'s first check: :meth:`GRPOConfig.tiny` on the shipped
tiny policy, NA on the mini-math reward (correctness, length, format; w = (1, 1, 0.5)), 30 steps,
three seeds, held-out evaluation on 256 test-split problems at T = 1 with one sampling seed before
and after. Each seed runs twice, ``dtype="float32"`` and ``dtype="bfloat16"`` (base weights, matrix
products, sampler and KV cache in bf16; LoRA weights, optimizer state and the loss in float32).

1. In bfloat16 the held-out aggregate rises above the untrained policy by more than 3 paired
   standard errors in every seed.
2. The bfloat16 runs stay within the float32 runs' seed-to-seed spread: the mean held-out gain and
   the mean training reward of the last 10 steps differ between precisions by less than the
   larger of the two precisions' seed ranges.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mrgrpo.lm.loader import load_tokenizer
from mrgrpo.rewards.math import MathRewardFunction
from mrgrpo.tasks.mini_math import make_mini_math
from mrgrpo.train import GRPOConfig, GRPOTrainer

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
W = (1.0, 1.0, 0.5)
N_EVAL = 256


def held_out(trainer: GRPOTrainer) -> np.ndarray:
    """Per-prompt held-out aggregate reward ``w . r``, shape ``(N_EVAL,)``."""
    n = len(trainer.eval_samples)
    trainer.evaluate()
    rows = trainer.eval_samples[n:]
    return np.array([sum(w * s[c] for w, c in zip(W, trainer.channel_names)) for s in rows])


@pytest.fixture(scope="module")
def runs():
    reward = MathRewardFunction(L0=32, tokenizer=load_tokenizer("tiny-math"))
    train = make_mini_math(2000, seed=0, split="train")
    test = make_mini_math(N_EVAL, seed=1, split="test")
    out = {}
    for dtype in ("float32", "bfloat16"):
        for seed in SEEDS:
            tr = GRPOTrainer(GRPOConfig.tiny(mode="na", weights=W, seed=seed, n_steps=30, progress=False, dtype=dtype),
                             reward, train, eval_prompts=test)
            before = held_out(tr)
            assert tr.precision.compute == getattr(torch, dtype)
            hist = tr.train()
            after = held_out(tr)
            d = after - before
            late = np.mean([h["reward/aggregate"] for h in hist[-10:]])
            out[dtype, seed] = (d.mean(), d.std(ddof=1) / np.sqrt(len(d)), late)
    for key, (g, se, late) in out.items():
        print(f"{key}: held-out aggregate gain {g:+.3f} +- {se:.3f}; training reward, last 10 steps {late:.3f}")
    return out


def test_bf16_learns(runs):
    for seed in SEEDS:
        gain, se, _ = runs["bfloat16", seed]
        assert gain > 3 * se, (seed, gain, se)


@pytest.mark.parametrize("k, what", [(0, "held-out gain"), (2, "late training reward")])
def test_bf16_stays_within_the_float32_seed_spread(runs, k, what):
    f32 = np.array([runs["float32", s][k] for s in SEEDS])
    b16 = np.array([runs["bfloat16", s][k] for s in SEEDS])
    spread = max(np.ptp(f32), np.ptp(b16))
    assert abs(b16.mean() - f32.mean()) < spread, (what, f32, b16)
