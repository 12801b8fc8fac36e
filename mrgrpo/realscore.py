"""Theorem 3 under real policy scores.

The paper checks Theorem 3 with a score ``g ~ N(0, 1)`` drawn independently of
the rewards, which makes the check an identity. Here the score of rollout ``j``
is the real one, ``g_j = v^T grad_theta log pi(y_j | x)`` along a random unit
direction ``v`` (:mod:`mrgrpo.scores`), computed on the same completion that the
rewards score. For each prompt ``p`` and group size ``m``:

- realized MSE: ``g_hat_pk = (1/m) sum_j A_pkj g_pkj`` for each of the ``K``
  seeds; its variance across seeds with ``ddof = 1`` (the mean ``E[g_hat]``, the
  policy-gradient signal, is not zero with real scores and is estimated);
- prediction: ``(tau_p^2 / m) w^T C_p w`` with ``tau_p^2`` the variance of ``g`` and
  ``C_p`` the correlation of the rewards over all ``K * m_max`` rollouts of the prompt;
- ratio: ``sum_p realized_p / sum_p predicted_p`` (summed over directions too), with a
  prompt-level bootstrap CI.

Decomposition of the gap:

- **reshuffle control**: scores permuted within each group, which makes them
  independent of the advantages. Its expected realized MSE is available exactly,
  ``mean_k mean_j(A_kj^2) s^2_{g,k} / m`` (``s^2_g`` the within-group variance of
  ``g``, ``ddof = 1``), so no permutation noise enters;
  :func:`reshuffle_within_groups` draws actual permutations (tests check the two agree);
- **diagonal term**: ``mean_kj A_kj^2 g_kj^2 / m``, the part of ``E[g_hat^2]`` from each
  rollout with itself; it differs from the reshuffle term through
  ``Cov(A^2, g^2)`` (reported relative, ``kappa``). The rest of the realized MSE
  (``realized - diagonal``) is the cross-rollout part net of the squared mean;
- **degenerate groups** (a channel constant within the group, so NA drops it): their
  share of the groups and their share of the shortfall ``w^T C w - mean_j A_j^2``.

Data come from :func:`collect` (roll out a policy, score the completions, along
``n_directions`` directions) or :meth:`RealScoreData.load`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mrgrpo._checks import SeedLike, as_generator, check_rewards, check_weights

__all__ = ["RealScoreData", "collect", "analyze_real_scores", "reshuffle_within_groups", "group_terms",
           "plot_ratios", "PAPER_PARAMETERS", "DEFAULT_W", "DEFAULT_M_GRID"]

DEFAULT_W = (1.0, 1.0, 0.5)
DEFAULT_M_GRID = (4, 8, 16, 32)
#: The papermill parameters of ``chapters/real_scores.md`` for a run at paper scale on a GPU.
PAPER_PARAMETERS = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "adapter": None, "n_prompts": 150, "K": 16,
                    "m_max": 32, "n_directions": 4, "device": "cuda", "dtype": "bfloat16",
                    "params": "all", "max_new_tokens": 512, "L0": 200, "gen_batch_size": 512,
                    "score_batch_size": 32}


# ----------------------------------------------------------------------------- data
@dataclass
class RealScoreData:
    """Rewards and score projections of ``P x K x M`` rollouts.

    Attributes
    ----------
    rewards : ``(P, K, M, R)``
    scores : ``(P, K, M, D)``
        ``v_d^T grad log pi(y | x)`` of the whole completion (EOS included when it
        ended on one) along ``D`` directions.
    n_tokens : ``(P, K, M)``
        Tokens in each completion's log-probability (for the length-normalized score).
    channel_names : tuple of str
    meta : dict
        How the data were made (model, sizes, seeds, timings).
    """

    rewards: np.ndarray
    scores: np.ndarray
    n_tokens: np.ndarray
    channel_names: tuple = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rewards = check_rewards(self.rewards, exact_ndim=4)
        P, K, M, R = self.rewards.shape
        self.scores = np.asarray(self.scores, dtype=float)
        if self.scores.ndim != 4 or self.scores.shape[:3] != (P, K, M):
            raise ValueError(f"scores must have shape (P, K, M, D) = ({P}, {K}, {M}, D), got {self.scores.shape}")
        if not np.isfinite(self.scores).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(self.scores))[0])
            raise ValueError(f"scores has a non-finite value at (prompt, seed, rollout, direction) {bad}")
        self.n_tokens = np.asarray(self.n_tokens)
        if self.n_tokens.shape != (P, K, M):
            raise ValueError(f"n_tokens must have shape {(P, K, M)}, got {self.n_tokens.shape}")
        if K < 2:
            raise ValueError(f"need K >= 2 seeds per prompt to measure an MSE, got K = {K}")
        self.channel_names = tuple(self.channel_names) or tuple(f"r{c}" for c in range(R))

    def g(self, normalize: str = "sum") -> np.ndarray:
        """Scores ``(P, K, M, D)`` of the summed or the length-normalized log-probability."""
        if normalize == "sum":
            return self.scores
        if normalize == "mean":
            return self.scores / np.maximum(self.n_tokens, 1)[..., None]
        raise ValueError(f"normalize must be 'sum' or 'mean', got {normalize!r}")

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, rewards=self.rewards, scores=self.scores, n_tokens=self.n_tokens,
                            channel_names=np.array(self.channel_names), meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path) -> "RealScoreData":
        with np.load(Path(path), allow_pickle=False) as z:
            return cls(z["rewards"], z["scores"], z["n_tokens"], tuple(str(c) for c in z["channel_names"]),
                       json.loads(str(z["meta"])))


def collect(model: str | os.PathLike | None = None, *, n_prompts: int = 16, K: int = 8, m_max: int = 32,
            n_directions: int = 2, device: str = "cpu", dtype: Any = None, adapter: Optional[str] = None,
            params: str = "auto", seed: int = 0, prompt_seed: int = 0, direction_seed: int = 0,
            temperature: float = 1.0, max_new_tokens: Optional[int] = None, L0: Optional[float] = None,
            gen_batch_size: int = 512, score_batch_size: int = 256, progress: bool = True) -> RealScoreData:
    """Roll out a policy on held-out mini-math, reward the completions and score them.

    ``n_prompts`` test-split problems x ``K`` seeds x ``m_max`` rollouts, sampled by
    :class:`mrgrpo.generation.HFBackend` (seeds ``seed, ..., seed + K - 1``) and
    rewarded by ``MathRewardFunction`` (correctness, length, format); the scores
    come from :func:`mrgrpo.scores.score_projections` along ``n_directions`` random
    unit directions (seed ``direction_seed``) in the ``params`` space.

    ``model`` defaults to the shipped tiny policy; ``max_new_tokens`` and ``L0``
    default to the tiny policy's values (:data:`mrgrpo.tiny.TINY_MAX_NEW_TOKENS`,
    :data:`mrgrpo.tiny.TINY_L0`).

    Notes
    -----
    The backend returns completion *texts*; the scores are of their re-encoding, and a
    completion counts as ended on EOS when it re-encodes to fewer than
    ``max_new_tokens`` tokens. Both are exact for the character-level tiny policy. For
    a BPE tokenizer the re-encoding can differ from the sampled tokens in rare cases
    (the score is then that of an equivalent spelling of the same text).
    """
    from mrgrpo.generation import HFBackend
    from mrgrpo.scores import score_projections
    from mrgrpo.tasks.mini_math import make_mini_math
    from mrgrpo.tiny import DEFAULT_MODEL_DIR, TINY_L0, TINY_MAX_NEW_TOKENS, tiny_reward_fn

    for name, v, lo in (("n_prompts", n_prompts, 1), ("K", K, 2), ("m_max", m_max, 2),
                        ("n_directions", n_directions, 1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    model = DEFAULT_MODEL_DIR if model is None else model
    max_new_tokens = TINY_MAX_NEW_TOKENS if max_new_tokens is None else int(max_new_tokens)
    L0 = TINY_L0 if L0 is None else float(L0)
    backend = HFBackend(model, None, device=device, dtype=dtype, temperature=temperature,
                        max_new_tokens=max_new_tokens, batch_size=gen_batch_size, adapter=adapter,
                        progress=progress)
    backend.reward_fn = tiny_reward_fn(backend.tokenizer, L0)
    backend.reward_names = tuple(backend.reward_fn.channel_names)
    problems = make_mini_math(n_prompts, seed=prompt_seed, split="test")
    t0 = time.perf_counter()
    groups = backend.generate_groups(problems, m_max, list(range(seed, seed + K)))
    t_gen = time.perf_counter() - t0
    R = groups[0].rewards.shape[1]
    rewards = np.stack([gr.rewards for gr in groups]).reshape(n_prompts, K, m_max, R)
    prompts = [problems[gr.prompt_idx] for gr in groups for _ in range(m_max)]
    comps = [c for gr in groups for c in gr.completions]
    tok = backend.tokenizer
    enc = tok(comps, add_special_tokens=False)["input_ids"]
    # the sampler stops at EOS (excluded from the text) or at max_new_tokens; the
    # character-level tiny tokenizer re-encodes a completion to its sampled tokens
    eos = [len(e) < max_new_tokens for e in enc]
    t0 = time.perf_counter()
    g = score_projections(backend.model, tok, prompts, comps, directions=int(n_directions), seed=direction_seed,
                          params=params, normalize="sum", eos=eos, batch_size=score_batch_size, progress=progress)
    t_score = time.perf_counter() - t0
    n_tok = np.array([len(e) + int(f) for e, f in zip(enc, eos)]).reshape(n_prompts, K, m_max)
    meta = {"model": os.fspath(model), "adapter": adapter, "n_prompts": n_prompts, "K": K, "m_max": m_max,
            "n_directions": int(n_directions), "params": params, "device": device, "dtype": str(dtype),
            "seeds": [seed, seed + K - 1], "prompt_seed": prompt_seed, "direction_seed": direction_seed,
            "temperature": temperature, "max_new_tokens": max_new_tokens, "L0": L0,
            "prompts": f"make_mini_math({n_prompts}, seed={prompt_seed}, split='test')",
            "generate_seconds": round(t_gen, 2), "score_seconds": round(t_score, 2),
            "truncated_fraction": float(1 - np.mean(eos)), "mean_completion_tokens": float(n_tok.mean())}
    return RealScoreData(rewards, g.reshape(n_prompts, K, m_max, -1), n_tok, backend.reward_names, meta)


# ----------------------------------------------------------------------------- per-group terms
def reshuffle_within_groups(g: np.ndarray, seed: SeedLike = 0) -> np.ndarray:
    """Permute the scores ``(..., m, D)`` across the rollouts of each group (axis ``-2``).

    One permutation per group (shared by the directions of a rollout), which makes
    the scores independent of the group's rewards while keeping its scores.
    """
    g = np.asarray(g, dtype=float)
    rng = as_generator(seed)
    keys = rng.random(g.shape[:-1])
    perm = np.argsort(keys, axis=-1)
    return np.take_along_axis(g, perm[..., None], axis=-2)


def group_terms(rewards: np.ndarray, g: np.ndarray, w, mode: str) -> dict:
    """Per-group quantities of one estimator for groups of size ``m``.

    Parameters
    ----------
    rewards : ``(P, K, m, R)``; g : ``(P, K, m, D)``; w : ``(R,)``; mode : "na" or "an"

    Returns
    -------
    dict of arrays: ``ghat`` ``(P, K, D)``; ``a2`` ``(P, K)`` (``mean_j A_j^2``);
    ``shuffle`` ``(P, K, D)`` (``E_perm[g_hat^2] = a2 s_g^2 / m``); ``diag`` ``(P, K, D)``
    (``mean_j A_j^2 g_j^2 / m``); ``degenerate`` ``(P, K)`` bool (NA: a channel with
    nonzero weight constant in the group; AN: the weighted sum constant).
    """
    from mrgrpo.advantage import compute_advantage_batch, constant_channel_mask

    m = rewards.shape[-2]
    A = compute_advantage_batch(rewards, w, mode=mode)  # (P, K, m)
    a2 = (A * A).mean(axis=-1)
    ghat = np.einsum("pkj,pkjd->pkd", A, g) / m
    s2 = g.var(axis=-2, ddof=1)
    shuffle = a2[..., None] * s2 / m
    diag = np.einsum("pkj,pkjd->pkd", A * A, g * g) / m / m
    if mode == "na":
        degenerate = (constant_channel_mask(rewards) & (np.asarray(w) != 0)).any(axis=-1)
    else:
        s = rewards @ np.asarray(w, dtype=float)
        degenerate = constant_channel_mask(s[..., None])[..., 0]
    return {"ghat": ghat, "a2": a2, "shuffle": shuffle, "diag": diag, "degenerate": degenerate, "A": A}


# ----------------------------------------------------------------------------- analysis
def _pooled_quadratic(rewards: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w^T C_p w`` with ``C_p`` the correlation over all of prompt ``p``'s rollouts, ``(P,)``."""
    from mrgrpo.stats import sample_correlation

    P, K, M, R = rewards.shape
    C = sample_correlation(rewards.reshape(P, K * M, R))
    return np.einsum("i,pij,j->p", w, C, w)


def analyze_real_scores(data: RealScoreData, w: Sequence[float] = DEFAULT_W, m_grid: Sequence[int] = DEFAULT_M_GRID,
                        normalize: str = "sum", n_boot: int = 2000, boot_seed: int = 0, ci: float = 0.95) -> dict:
    """Realized vs Theorem-3 MSE with real scores, per ``m``, for NA and AN.

    Groups of size ``m`` are the first ``m`` rollouts of each stored group.

    Returns
    -------
    dict of pandas DataFrames
        ``"ratios"``: one row per (m, mode, control in {"real", "reshuffled"}): ``ratio``,
        ``lo``, ``hi`` (bootstrap over prompts), ``realized`` and ``predicted`` (means
        over prompts and directions);
        ``"decomposition"``: one row per (m, mode): the real, reshuffle and diagonal
        ratios, the dependence gap ``real - reshuffled`` with its CI, ``kappa``
        (``Cov(A^2, g^2) / (E[A^2] E[g^2])``), the fraction of degenerate groups, the
        shortfall of ``mean_j A_j^2`` below ``w^T C w`` and the share of it from
        degenerate groups, and the reshuffle ratio over non-degenerate groups only;
        ``"per_direction"``: the real and reshuffled NA/AN ratios per direction;
        ``"score_checks"``: per direction, the mean score in units of its sd (the
        score identity says ``E[g] = 0``) and ``tau^2``.
    """
    import pandas as pd

    from mrgrpo.analysis.bootstrap import bootstrap_weights, percentile_ci

    P, K, M, R = data.rewards.shape
    wv = check_weights(w, R)
    m_grid = [int(m) for m in m_grid]
    for m in m_grid:
        if not 2 <= m <= M:
            raise ValueError(f"every m must be in [2, {M}] (the stored group size), got {m}")
    g_all = data.g(normalize)
    D = g_all.shape[-1]
    tau2 = g_all.reshape(P, K * M, D).var(axis=1, ddof=1)  # (P, D)
    q_pop = _pooled_quadratic(data.rewards, wv)  # (P,)
    W = bootstrap_weights(P, n_boot, boot_seed)

    def rci(num, den):
        """ratio of sums and its bootstrap CI; num/den (P, ...) summed over trailing axes."""
        n_p = num.reshape(P, -1).sum(axis=1)
        d_p = den.reshape(P, -1).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = (W @ n_p) / (W @ d_p)
            return float(n_p.sum() / d_p.sum()), percentile_ci(boot[:, None], ci)[0]

    rows, dec, per_dir = [], [], []
    for m in m_grid:
        r = data.rewards[:, :, :m]
        g = g_all[:, :, :m]
        pred = tau2 * q_pop[:, None] / m  # (P, D)
        for mode in ("na", "an"):
            t = group_terms(r, g, wv, mode)
            realized = t["ghat"].var(axis=1, ddof=1)  # (P, D)
            shuffled = t["shuffle"].mean(axis=1)      # (P, D): exact permutation average
            diag = t["diag"].mean(axis=1)
            for control, num in (("real", realized), ("reshuffled", shuffled)):
                ratio, (lo, hi) = rci(num, pred)
                rows.append({"m": m, "mode": mode.upper(), "control": control, "ratio": ratio, "lo": lo, "hi": hi,
                             "realized": float(num.mean()), "predicted": float(pred.mean())})
                for d in range(D):
                    rd, (ld, hd) = rci(num[:, d], pred[:, d])
                    per_dir.append({"m": m, "mode": mode.upper(), "control": control, "direction": d,
                                    "ratio": rd, "lo": ld, "hi": hd})
            # dependence gap (real - reshuffled) with a bootstrap CI of the difference
            n1, n2, dd = realized.sum(axis=1), shuffled.sum(axis=1), pred.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                boot_gap = (W @ n1 - W @ n2) / (W @ dd)
            gap_lo, gap_hi = percentile_ci(boot_gap[:, None], ci)[0]
            # kappa: relative covariance of A^2 and g^2 over all K*m rollouts of a prompt, pooled
            A2 = (t["A"] ** 2)[..., None]                          # (P, K, m, 1)
            g2 = g * g                                             # (P, K, m, D)
            EA2 = A2.mean(axis=(1, 2))                             # (P, 1)
            Eg2 = g2.mean(axis=(1, 2))                             # (P, D)
            cov = (A2 * g2).mean(axis=(1, 2)) - EA2 * Eg2
            with np.errstate(divide="ignore", invalid="ignore"):
                kappa = float(cov.sum() / (EA2 * Eg2).sum())
            deg = t["degenerate"]
            short = q_pop[:, None] - t["a2"]                       # (P, K) shortfall of mean A^2
            tot_short = float(short.sum())
            nd = ~deg
            num_nd = (t["shuffle"] * nd[..., None]).sum(axis=1)    # (P, D)
            den_nd = pred * nd.sum(axis=1)[:, None]                # (P, D): pred per non-degenerate group
            ratio_nd = float(num_nd.sum() / den_nd.sum()) if den_nd.sum() > 0 else float("nan")
            ratio_real, _ = rci(realized, pred)
            ratio_shuf, _ = rci(shuffled, pred)
            ratio_diag, _ = rci(diag, pred)
            dec.append({"m": m, "mode": mode.upper(), "ratio_real": ratio_real, "ratio_reshuffled": ratio_shuf,
                        "ratio_diagonal": ratio_diag, "dependence_gap": ratio_real - ratio_shuf,
                        "gap_lo": gap_lo, "gap_hi": gap_hi, "kappa": kappa,
                        "frac_degenerate": float(deg.mean()),
                        "mean_A2_over_wCw": float(t["a2"].sum() / (q_pop.sum() * K)) if q_pop.sum() > 0 else np.nan,
                        "shortfall_share_degenerate": float(short[deg].sum() / tot_short) if tot_short != 0
                        else float("nan"),
                        "ratio_reshuffled_nondegenerate": ratio_nd})
    sd = g_all.reshape(P * K * M, D).std(axis=0, ddof=1)
    checks = pd.DataFrame({"direction": np.arange(D),
                           "mean_over_sd": g_all.reshape(-1, D).mean(axis=0) / sd,
                           "se_of_mean_over_sd": 1 / np.sqrt(P * K * M),
                           "tau2_mean": tau2.mean(axis=0)})
    return {"ratios": pd.DataFrame(rows), "decomposition": pd.DataFrame(dec),
            "per_direction": pd.DataFrame(per_dir), "score_checks": checks}


# ----------------------------------------------------------------------------- figure
def plot_ratios(ratios, path=None, title: str = ""):
    """Realized / predicted MSE against ``m`` for NA and AN, real vs reshuffled scores, with CIs.

    Parameters
    ----------
    ratios : DataFrame
        ``analyze_real_scores(...)["ratios"]``.
    path : optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    styles = {"real": dict(marker="o", ls="-"), "reshuffled": dict(marker="s", ls="--", mfc="white")}
    shift = {"real": 0.97, "reshuffled": 1.03}  # side by side on the log axis, so the bars do not overlap
    for ax, mode in zip(axes, ("NA", "AN")):
        for control, st in styles.items():
            sub = ratios[(ratios["mode"] == mode) & (ratios["control"] == control)].sort_values("m")
            if sub.empty:
                continue
            yerr = np.vstack([sub["ratio"] - sub["lo"], sub["hi"] - sub["ratio"]])
            ax.errorbar(sub["m"] * shift[control], sub["ratio"], yerr=yerr, capsize=3, label=f"{control} scores",
                        **st)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ms = sorted(ratios["m"].unique())
        ax.set_xticks(ms)
        ax.set_xticklabels([str(m) for m in ms])
        ax.set_xlabel("group size m")
        ax.set_title(f"{mode}")
    axes[0].set_ylabel("realized / predicted MSE")
    axes[0].legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig
