"""Evidence that the trainer learns on the *shipped* tiny policy (``data/tiny-math``).

Recipe: :meth:`GRPOConfig.tiny` (LoRA on the last block, lr 3e-3, 4 prompts x
m = 8 per step, KL 0.05; 30 steps on the mini-math reward, 20 on the two-channel
reward), training prompts from the mini-math train split,
held-out evaluation on 256 test-split problems, one completion each at T = 1
with the same sampling seed before and after (so the before/after difference
is paired prompt by prompt). Three seeds per run type, twelve runs in all.

1. **NA on the mini-math reward** (correctness, length, format; w = (1, 1, 0.5)):
   the held-out aggregate rises above the untrained policy by more than the seed
   spread and by more than 3 paired standard errors in every seed, carried by the
   format channel. (Correctness rises by a few points in every seed -- +0.05 to
   +0.07 on the policy shipped in November 2026, 1.6 to 2.9 paired SEs -- which is
   too close to the noise to assert, so it is only checked not to fall.)
2. **Prop 1 allocation** on a two-channel reward of equal weights that pulls
   in opposite directions:

   - ``format``: 1 if the answer is in ``#### N`` form (binary, sd ~0.38);
   - ``verbosity``: ``0.1 * min(n_chars / 64, 1)`` (continuous, sd ~0.02).

   The policy's other answer form, ``the answer is N.``, is ~10 characters longer,
   so the channels are negatively correlated. Prop 1: NA's influence of a channel
   is ``sum_k w_k C_kl`` -- the same small number for both, they cancel -- while
   AN's is ``sum_k w_k sigma_k C_kl / sd`` -- positive for the high-variance format,
   negative for verbosity. So AN buys format at verbosity's expense; NA does not.
3. **Single-reward ablation** on the same reward: format (channel 0) rises,
   verbosity does not.
"""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.rewards.math import MathRewardFunction
from mrgrpo.tasks.mini_math import make_mini_math
from mrgrpo.train import GRPOConfig, GRPOTrainer
from mrgrpo.lm.loader import load_model, load_tokenizer

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
N_EVAL = 256


class Recorder:
    """Wrap a reward function; keep the rows it returns while ``recording``."""

    def __init__(self, fn):
        self.fn, self.channel_names, self.rows, self.recording = fn, tuple(fn.channel_names), [], False

    def __call__(self, completion, prompt):
        r = list(self.fn(completion, prompt))
        if self.recording:
            self.rows.append(r)
        return r


class FormatVsVerbosity:
    """(format, verbosity): binary high-variance vs continuous low-variance, in conflict."""

    channel_names = ("format", "verbosity")

    def __call__(self, completion: str, prompt) -> list[float]:
        return [MathRewardFunction.format(completion), 0.1 * min(len(completion) / 64, 1.0)]


def evaluate(trainer: GRPOTrainer, rec: Recorder) -> np.ndarray:
    """``(N_EVAL, R)`` per-completion held-out rewards (fixed eval seed)."""
    rec.rows, rec.recording = [], True
    trainer.evaluate()
    rec.recording = False
    return np.asarray(rec.rows)


def run_all(reward, weights, modes, n_steps: int) -> dict:
    """{"before": (N, R), (mode, seed): ((N, R) after, mean per-step influence (R,))}."""
    train = make_mini_math(2000, seed=0, split="train")
    test = make_mini_math(N_EVAL, seed=1, split="test")
    rec = Recorder(reward)
    out = {}
    for mode in modes:
        for seed in SEEDS:
            tr = GRPOTrainer(GRPOConfig.tiny(mode=mode, weights=weights, seed=seed, n_steps=n_steps,
                                             progress=False),
                             rec, train, eval_prompts=test)
            if "before" not in out:  # LoRA starts at B = 0: one untrained policy for every run
                out["before"] = evaluate(tr, rec)
            hist = tr.train()
            infl = np.array([np.mean([h[f"influence/{c}"] for h in hist]) for c in rec.channel_names])
            out[mode, seed] = (evaluate(tr, rec), infl)
    return out


def paired(before: np.ndarray, after: np.ndarray, w=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (and aggregate, when ``w``) mean gain and its paired standard error."""
    cols = [before, after] if w is None else [np.c_[x, x @ np.asarray(w)] for x in (before, after)]
    d = cols[1] - cols[0]
    return d.mean(0), d.std(0, ddof=1) / np.sqrt(len(d))


def report(title, runs, names, w=None):
    b = runs["before"]
    bb = b if w is None else np.c_[b, b @ np.asarray(w)]
    se = bb.std(0, ddof=1) / np.sqrt(len(bb))
    print(f"\n{title}: untrained " + ", ".join(f"{n} {m:.3f}+-{s:.3f}" for n, m, s in zip(names, bb.mean(0), se)))
    for key, (after, infl) in ((k, v) for k, v in runs.items() if k != "before"):
        g, gse = paired(b, after, w)
        aa = after if w is None else np.c_[after, after @ np.asarray(w)]
        print(f"  {key[0]} seed {key[1]}: " + ", ".join(
            f"{n} {m:.3f} (gain {x:+.3f}+-{s:.3f})" for n, m, x, s in zip(names, aa.mean(0), g, gse))
            + "; influence " + ", ".join(f"{v:+.3f}" for v in infl))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-math")


@pytest.fixture(scope="module")
def math_runs(tokenizer):
    w = (1.0, 1.0, 0.5)
    runs = run_all(MathRewardFunction(L0=32, tokenizer=tokenizer), w, ("na",), n_steps=30)
    report("mini-math NA", runs, ("correctness", "length", "format", "aggregate"), w)
    return runs


@pytest.fixture(scope="module")
def prop1_runs():
    runs = run_all(FormatVsVerbosity(), (1.0, 1.0), ("na", "an", "single"), n_steps=20)
    report("format vs verbosity", runs, FormatVsVerbosity.channel_names)
    return runs


def test_tiny_recipe_targets_only_the_last_block():
    from peft import LoraConfig, get_peft_model

    cfg = GRPOConfig.tiny().validate()
    model = get_peft_model(load_model(cfg.model)[0], LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_target_modules)))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert len(adapted) == len(cfg.lora_target_modules), adapted
    assert all(".layers.3." in n for n in adapted), adapted


def gains(runs, mode, k, w=None):
    return np.array([paired(runs["before"], runs[mode, s][0], w)[0][k] for s in SEEDS])


def ses(runs, mode, k, w=None):
    return np.array([paired(runs["before"], runs[mode, s][0], w)[1][k] for s in SEEDS])


def test_na_raises_held_out_mini_math_aggregate_beyond_seed_spread(math_runs):
    w = (1.0, 1.0, 0.5)
    g, se = gains(math_runs, "na", 3, w), ses(math_runs, "na", 3, w)
    assert g.min() > g.max() - g.min(), g               # above the untrained policy by more than the spread
    assert (g > 3 * se).all(), (g, se)                  # and by more than 3 paired SEs in every seed
    # the format channel carries it; correctness does not fall (3 paired SEs)
    assert (gains(math_runs, "na", 2) > 3 * ses(math_runs, "na", 2)).all()
    assert (gains(math_runs, "na", 0) > -3 * ses(math_runs, "na", 0)).all()


def test_an_favours_the_high_variance_channel(prop1_runs):
    fmt_an, fmt_na = gains(prop1_runs, "an", 0), gains(prop1_runs, "na", 0)
    verb_an, verb_na = gains(prop1_runs, "an", 1), gains(prop1_runs, "na", 1)
    se_an = ses(prop1_runs, "an", 0)
    assert (fmt_an > 3 * se_an).all(), (fmt_an, se_an)  # AN buys format ...
    assert fmt_an.min() > fmt_na.max() + (fmt_na.max() - fmt_na.min()), (fmt_an, fmt_na)
    assert verb_na.min() > verb_an.max(), (verb_na, verb_an)  # ... at verbosity's expense; NA does not
    # the mechanism on the training batches (Prop 1): AN's influence is positive on
    # format and negative on verbosity; NA's two influences are both small
    for s in SEEDS:
        infl_an, infl_na = prop1_runs["an", s][1], prop1_runs["na", s][1]
        assert infl_an[0] > 0 > infl_an[1], (s, infl_an)
        assert np.abs(infl_na).max() < 0.5 * infl_an[0], (s, infl_na, infl_an)


def test_single_reward_improves_channel_0_only(prop1_runs):
    fmt, se = gains(prop1_runs, "single", 0), ses(prop1_runs, "single", 0)
    assert (fmt > 3 * se).all() and fmt.min() > fmt.max() - fmt.min(), (fmt, se)
    verb, verb_se = gains(prop1_runs, "single", 1), ses(prop1_runs, "single", 1)
    assert (verb < verb_se).all(), (verb, verb_se)      # verbosity does not improve
