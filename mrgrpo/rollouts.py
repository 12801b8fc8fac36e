"""Rollout corpora: groups of scored completions, backends that make them, and files.

A *group* is ``m`` rollouts of one prompt under one seed, scored on ``R``
reward channels (:class:`Rollouts`). A :class:`Corpus` holds every group of a
run (``P`` prompts x ``K`` seeds, for each ``m`` of a grid) and packs into the
``(P, K, m, R)`` tensor the Theorem-3 harness (:mod:`mrgrpo.analysis`) reads.

Backends implement :class:`Backend`. :class:`MockBackend` draws rewards with a
requested correlation matrix (Gaussian and Bernoulli channels through a
Gaussian copula whose latent correlation is solved so that the *rewards*, not
the latent normals, have the requested correlation). The Hugging Face backend
lives in :mod:`mrgrpo.generation`.

Files
-----
Parquet (:meth:`Corpus.save_parquet`) uses the columns of the paper's released
GSM8K rollouts: ``model, prompt_idx, seed_idx, rollout_idx, group_size_m_max``,
one column per reward channel, ``raw_length, question, gold_answer,
gold_reasoning`` and, when present, ``completion``. With the three math channels
the channel columns are the released names ``correctness, length, format``.
Any other channel set is stored the same way, one float column per channel
named after the channel (``reward_<name>`` if the name collides with a fixed
column); the channel list, ``m_grid`` and the other corpus fields are kept as
JSON in the Parquet schema metadata under ``b"mrgrpo.corpus"``, so a file
written here round-trips exactly. Two extra columns are written: ``seed`` (the
integer seed of the group) and, for a corpus whose smaller groups are *not*
prefixes of the largest, ``group_size_m`` (then every group is stored). A
corpus made with ``subsample_from_max=True`` (and the released files) stores
only the ``max(m_grid)`` groups; smaller ``m`` are their leading prefixes.

``.npz`` (:meth:`Corpus.save_npz`) holds ``rewards_m{m}`` ``(P, K, m, R)`` and,
when every group has it, ``raw_length_m{m}`` ``(P, K, m)``, plus ``m_grid``,
``K_seeds``, ``n_prompts``, ``reward_names``, ``backend_name``, ``questions``,
``golds`` (string arrays; no pickles).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

MATH_REWARD_NAMES = ("correctness", "length", "format")
PARQUET_FIXED_COLUMNS = ("model", "prompt_idx", "seed_idx", "rollout_idx", "group_size_m_max",
                         "raw_length", "question", "gold_answer", "gold_reasoning", "completion",
                         "seed", "group_size_m")
PARQUET_META_KEY = b"mrgrpo.corpus"
RELEASED_DATASETS = {
    "1.5b": "eagle0504/multireward-grpo-gsm8k-rewards",
    "7b": "eagle0504/multireward-grpo-gsm8k-rewards-qwen2.5-7b",
}
RELEASED_FILES = {"parquet": "data/train.parquet", "npz": "llm_rewards_gsm8k.npz"}

__all__ = [
    "Rollouts", "Corpus", "Backend", "MockBackend", "run_corpus", "pack_for_analysis",
    "load_released_rollouts", "ReleasedDataUnavailable", "group_generator",
    "MATH_REWARD_NAMES", "RELEASED_DATASETS",
]


# ----------------------------------------------------------------------------
# one group
# ----------------------------------------------------------------------------
@dataclass
class Rollouts:
    """One group: ``m`` rollouts of prompt ``prompt_idx`` under seed ``seed_idx``.

    Attributes
    ----------
    prompt_idx, seed_idx : int
        Position of the prompt in the corpus and of the seed in ``range(K)``.
    prompt, gold : str
        Prompt text and reference answer.
    seed : int
        The integer seed the backend used for this group.
    m : int
        Group size (``>= 1``; the analysis needs ``m >= 2``).
    rewards : numpy.ndarray, shape ``(m, R)``
    raw_length : numpy.ndarray, shape ``(m,)``, optional
        Ungated length (Proposition 4 sweeps).
    completions : list of str, optional
        ``m`` completion texts.
    """

    prompt_idx: int
    seed_idx: int
    prompt: str
    gold: str
    seed: int
    m: int
    rewards: np.ndarray
    raw_length: Optional[np.ndarray] = None
    completions: Optional[list] = None

    def __post_init__(self) -> None:
        for name in ("prompt_idx", "seed_idx", "seed", "m"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"Rollouts.{name} must be an int, got {v!r}")
            setattr(self, name, int(v))
        if self.m < 1:
            raise ValueError(f"Rollouts.m must be >= 1, got {self.m}")
        if self.prompt_idx < 0 or self.seed_idx < 0:
            raise ValueError(f"prompt_idx and seed_idx must be >= 0, got {self.prompt_idx}, {self.seed_idx}")
        r = np.asarray(self.rewards, dtype=float)
        if r.ndim != 2:
            raise ValueError(f"Rollouts.rewards must be (m, R), got shape {r.shape}")
        if r.shape[0] != self.m:
            raise ValueError(f"Rollouts.rewards has {r.shape[0]} rows but m = {self.m}")
        if r.shape[1] < 1:
            raise ValueError("Rollouts.rewards has no reward channels (R = 0)")
        self.rewards = r
        if self.raw_length is not None:
            rl = np.asarray(self.raw_length, dtype=float)
            if rl.shape != (self.m,):
                raise ValueError(f"Rollouts.raw_length must have shape ({self.m},), got {rl.shape}")
            self.raw_length = rl
        if self.completions is not None:
            if isinstance(self.completions, str) or len(self.completions) != self.m:
                raise ValueError(f"Rollouts.completions must be a list of m = {self.m} strings")
            self.completions = [str(c) for c in self.completions]

    @property
    def R(self) -> int:
        return int(self.rewards.shape[1])

    def prefix(self, m: int) -> "Rollouts":
        """The first ``m`` rollouts of this group (a valid i.i.d. group of size ``m``)."""
        if not 1 <= m <= self.m:
            raise ValueError(f"prefix size must be in [1, {self.m}], got {m}")
        return dataclasses.replace(
            self, m=m, rewards=self.rewards[:m],
            raw_length=None if self.raw_length is None else self.raw_length[:m],
            completions=None if self.completions is None else self.completions[:m])


# ----------------------------------------------------------------------------
# backends
# ----------------------------------------------------------------------------
@runtime_checkable
class Backend(Protocol):
    """What :func:`run_corpus` needs from a rollout generator.

    ``generate_groups(prompts, m, seeds)`` returns, for every prompt (a dict with
    at least ``"prompt"`` and ``"gold"``) and every seed, one :class:`Rollouts`
    of ``m`` rollouts, ordered prompt-major (all seeds of prompt 0 first);
    ``prompt_idx``/``seed_idx`` are positions in the two lists.
    """

    name: str
    reward_names: tuple

    def generate_groups(self, prompts: list, m: int, seeds: list) -> list: ...


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, sort_keys=True, default=str)


def group_generator(base_seed: int, prompt: Any, seed: int) -> np.random.Generator:
    """A generator for one (prompt, seed) group, identical in every process.

    The entropy is ``(base_seed, seed, sha256(prompt text))`` fed to
    :class:`numpy.random.SeedSequence`; Python's ``hash()`` (salted per
    process) is never used.
    """
    for name, v in (("base_seed", base_seed), ("seed", seed)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    digest = hashlib.sha256(_prompt_text(prompt).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(base_seed), int(seed), *words]))


def _bvn_upper(t1: float, t2: float, rho: float) -> float:
    """P(Z1 > t1, Z2 > t2) for a standard bivariate normal with correlation rho."""
    from scipy import integrate, stats

    if rho >= 1.0:
        return float(stats.norm.sf(max(t1, t2)))
    if rho <= -1.0:
        return float(max(0.0, stats.norm.sf(t1) - stats.norm.cdf(-t2)))
    s = np.sqrt(1.0 - rho * rho)
    f = lambda x: stats.norm.pdf(x) * stats.norm.sf((t2 - rho * x) / s)  # noqa: E731
    val, _ = integrate.quad(f, t1, np.inf, epsabs=1e-13, epsrel=1e-11, limit=200)
    return float(val)


def _reward_corr(rho: float, kind_a: str, p_a: float, kind_b: str, p_b: float) -> float:
    """Correlation of two copula marginals given the latent normal correlation ``rho``."""
    from scipy import stats

    if kind_a == "gaussian" and kind_b == "gaussian":
        return rho
    if kind_a == "gaussian" or kind_b == "gaussian":
        p = p_b if kind_a == "gaussian" else p_a
        t = stats.norm.isf(p)
        return rho * stats.norm.pdf(t) / np.sqrt(p * (1 - p))
    ta, tb = stats.norm.isf(p_a), stats.norm.isf(p_b)
    p11 = _bvn_upper(ta, tb, rho)
    return (p11 - p_a * p_b) / np.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))


def _solve_latent(target: float, kind_a: str, p_a: float, kind_b: str, p_b: float, pair) -> float:
    from scipy import optimize

    if target == 0.0 or (kind_a == "gaussian" and kind_b == "gaussian"):
        return float(target)
    lim = 1.0 - 1e-12
    lo, hi = _reward_corr(-lim, kind_a, p_a, kind_b, p_b), _reward_corr(lim, kind_a, p_a, kind_b, p_b)
    if not lo - 1e-9 <= target <= hi + 1e-9:
        raise ValueError(
            f"requested correlation {target:+.3f} between channels {pair} is not attainable with "
            f"these marginals ({kind_a}{'' if kind_a == 'gaussian' else f' p={p_a}'}, "
            f"{kind_b}{'' if kind_b == 'gaussian' else f' p={p_b}'}); attainable range "
            f"[{lo:+.3f}, {hi:+.3f}]")
    target = min(max(target, lo), hi)
    return float(optimize.brentq(lambda r: _reward_corr(r, kind_a, p_a, kind_b, p_b) - target,
                                 -lim, lim, xtol=1e-12))


class MockBackend:
    """Synthetic rewards whose correlation matrix is the requested ``C``.

    Each rollout draws ``z ~ N(0, L)`` with a latent correlation ``L``; channel
    ``l`` is ``loc_l + scale_l * z_l`` (``"gaussian"``) or ``1[z_l > Phi^-1(1-p_l)]``
    (``"bernoulli"``, success probability ``p_l``). ``L`` is solved pair by pair
    so that the *reward* correlation equals ``C`` (for Gaussian pairs ``L = C``;
    a Bernoulli pair needs a larger latent correlation). Unattainable targets
    raise ``ValueError`` with the attainable range.

    Parameters
    ----------
    C : array_like, shape ``(R, R)``
        Target correlation of the rewards (symmetric, unit diagonal).
    p : float or sequence of (float or None), optional
        Bernoulli success probabilities; a channel with a ``p`` is Bernoulli
        unless ``kinds`` says otherwise.
    kinds : sequence of {"gaussian", "bernoulli"}, optional
    loc, scale : float or sequence, optional
        Mean and standard deviation of the Gaussian channels.
    seed : int
        Base seed; group ``(prompt, seed)`` uses :func:`group_generator`.
    reward_names : sequence of str, optional
        Default: the math names for ``R = 3``, else ``r0, r1, ...``.
    """

    def __init__(self, C, p=None, kinds: Optional[Sequence[str]] = None, loc=0.0, scale=1.0,
                 seed: int = 0, reward_names: Optional[Sequence[str]] = None, name: str = "mock"):
        Cm = np.asarray(C, dtype=float)
        if Cm.ndim != 2 or Cm.shape[0] != Cm.shape[1] or Cm.shape[0] < 1:
            raise ValueError(f"C must be a square (R, R) matrix, got shape {Cm.shape}")
        if not np.isfinite(Cm).all():
            raise ValueError("C must be finite")
        if not np.allclose(Cm, Cm.T, atol=1e-12):
            raise ValueError("C must be symmetric")
        if not np.allclose(np.diag(Cm), 1.0):
            raise ValueError(f"C must have a unit diagonal, got {np.diag(Cm).tolist()}")
        if np.abs(Cm).max() > 1 + 1e-12:
            raise ValueError("C entries must lie in [-1, 1]")
        if np.linalg.eigvalsh(Cm).min() < -1e-9:
            raise ValueError(f"C must be positive semi-definite (min eigenvalue {np.linalg.eigvalsh(Cm).min():.3g})")
        R = Cm.shape[0]
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if p is None:
            p_list = [None] * R
        elif np.ndim(p) == 0:
            p_list = [float(p)] * R
        else:
            p_list = [None if v is None else float(v) for v in p]
        if len(p_list) != R:
            raise ValueError(f"p has {len(p_list)} entries but C has R = {R} channels")
        if kinds is None:
            kinds = ["gaussian" if v is None else "bernoulli" for v in p_list]
        kinds = [str(k) for k in kinds]
        if len(kinds) != R or any(k not in ("gaussian", "bernoulli") for k in kinds):
            raise ValueError(f"kinds must be {R} entries of 'gaussian'/'bernoulli', got {kinds}")
        for l, (k, v) in enumerate(zip(kinds, p_list)):
            if k == "bernoulli":
                v = 0.5 if v is None else v
                if not 0.0 < v < 1.0:
                    raise ValueError(f"p for Bernoulli channel {l} must be in (0, 1), got {v}")
                p_list[l] = v
        self.loc = np.broadcast_to(np.asarray(loc, dtype=float), (R,)).copy()
        self.scale = np.broadcast_to(np.asarray(scale, dtype=float), (R,)).copy()
        if not (np.isfinite(self.loc).all() and np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError("loc must be finite and scale finite and > 0")
        self.C = Cm
        self.p = tuple(p_list)
        self.kinds = tuple(kinds)
        self.seed = int(seed)
        self.name = name
        if reward_names is None:
            reward_names = MATH_REWARD_NAMES if R == 3 else tuple(f"r{l}" for l in range(R))
        self.reward_names = tuple(str(n) for n in reward_names)
        if len(self.reward_names) != R or len(set(self.reward_names)) != R:
            raise ValueError(f"reward_names must be {R} distinct names, got {self.reward_names}")
        latent = np.eye(R)
        for a in range(R):
            for b in range(a + 1, R):
                latent[a, b] = latent[b, a] = _solve_latent(
                    Cm[a, b], kinds[a], p_list[a], kinds[b], p_list[b], (a, b))
        lam, vec = np.linalg.eigh(latent)
        if lam.min() < -1e-9:
            raise ValueError(
                "the latent normal correlation needed for this C and these marginals is not "
                f"positive semi-definite (min eigenvalue {lam.min():.3g}); weaken the correlations")
        self.latent_C = latent
        self._factor = vec * np.sqrt(np.clip(lam, 0.0, None))  # z = e @ factor.T
        from scipy import stats

        self._thresholds = np.array([stats.norm.isf(v) if k == "bernoulli" else 0.0
                                     for k, v in zip(kinds, p_list)])
        self._bern = np.array([k == "bernoulli" for k in kinds])

    @property
    def R(self) -> int:
        return self.C.shape[0]

    def population_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Population ``(mean (R,), sd (R,))`` of the reward channels."""
        p = np.array([v if v is not None else 0.0 for v in self.p])
        mean = np.where(self._bern, p, self.loc)
        sd = np.where(self._bern, np.sqrt(p * (1 - p)), self.scale)
        return mean, sd

    def sample(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Draw rewards of shape ``(*shape, R)`` from ``rng``."""
        z = rng.standard_normal((*shape, self.R)) @ self._factor.T
        return np.where(self._bern, (z > self._thresholds).astype(float), self.loc + self.scale * z)

    def generate_groups(self, prompts: list, m: int, seeds: list) -> list:
        """One group of ``m`` rollouts per (prompt, seed), prompt-major."""
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be a positive int, got {m!r}")
        out = []
        for i, item in enumerate(prompts):
            item = _as_prompt_dict(item)
            text = _prompt_text(item["prompt"])
            for k, s in enumerate(seeds):
                rng = group_generator(self.seed, text, int(s))
                out.append(Rollouts(prompt_idx=i, seed_idx=k, prompt=text, gold=str(item["gold"]),
                                    seed=int(s), m=int(m), rewards=self.sample(rng, (int(m),))))
        return out


# ----------------------------------------------------------------------------
# corpora
# ----------------------------------------------------------------------------
def _as_prompt_dict(item: Any) -> dict:
    if isinstance(item, Mapping):
        if "prompt" not in item or "gold" not in item:
            raise ValueError(f"a prompt dict needs 'prompt' and 'gold' keys, got keys {sorted(item)}")
        return dict(item)
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"prompt": item[0], "gold": item[1]}
    raise ValueError(f"a prompt must be a (prompt, gold) pair or a dict with 'prompt' and 'gold', got {item!r}")


@dataclass
class Corpus:
    """Every group of a run: ``n_prompts`` prompts x ``K_seeds`` seeds for each ``m`` in ``m_grid``.

    ``subsample_from_max=True`` means groups of smaller ``m`` are the leading
    prefixes of the ``max(m_grid)`` groups of the same (prompt, seed).
    """

    rollouts: list
    m_grid: list
    K_seeds: int
    n_prompts: int
    reward_names: tuple
    backend_name: str
    subsample_from_max: bool = False
    prompts: Optional[list] = None  # prompt dicts (question, gold and extra keys) by prompt_idx

    def __post_init__(self) -> None:
        self.m_grid = sorted(int(m) for m in self.m_grid)
        self.reward_names = tuple(str(n) for n in self.reward_names)
        R = len(self.reward_names)
        for r in self.rollouts:
            if r.R != R:
                raise ValueError(f"group (prompt {r.prompt_idx}, seed {r.seed_idx}) has {r.R} channels, "
                                 f"the corpus has R = {R} ({self.reward_names})")

    @property
    def R(self) -> int:
        return len(self.reward_names)

    def groups(self, m: int) -> list:
        """Groups of size ``m`` (prefixes of the largest groups when subsampled and not stored)."""
        got = [r for r in self.rollouts if r.m == m]
        if got:
            return got
        m_max = max(self.m_grid)
        if self.subsample_from_max and 1 <= m <= m_max:
            return [r.prefix(m) for r in self.rollouts if r.m == m_max]
        have = sorted({r.m for r in self.rollouts})
        raise ValueError(f"the corpus has no groups of size m = {m}; sizes available: {have}"
                         + (f" (and prefixes up to {m_max})" if self.subsample_from_max else ""))

    # -- tabular views ---------------------------------------------------
    def _stored_groups(self) -> list:
        if self.subsample_from_max:
            m_max = max(self.m_grid)
            return [r for r in self.rollouts if r.m == m_max]
        return list(self.rollouts)

    def _prompt_info(self, idx: int, fallback: Rollouts) -> tuple[str, str, str]:
        info = self.prompts[idx] if self.prompts and idx < len(self.prompts) else {}
        q = info.get("question", info.get("prompt", fallback.prompt)) if info else fallback.prompt
        return (_prompt_text(q), str(info.get("gold_answer", info.get("gold", fallback.gold))),
                str(info.get("gold_reasoning", "")))

    def to_frame(self):
        """One row per stored rollout, in the released Parquet schema (a pandas DataFrame)."""
        import pandas as pd

        groups = self._stored_groups()
        if not groups:
            raise ValueError("the corpus has no rollouts")
        cols = _channel_columns(self.reward_names)
        m_max = max(self.m_grid)
        sizes = np.array([g.m for g in groups])
        n = int(sizes.sum())
        rep = lambda vals: np.repeat(np.asarray(vals), sizes)  # noqa: E731
        info = [self._prompt_info(g.prompt_idx, g) for g in groups]
        data = {
            "model": np.full(n, self.backend_name, dtype=object),
            "prompt_idx": rep([g.prompt_idx for g in groups]).astype(np.int64),
            "seed_idx": rep([g.seed_idx for g in groups]).astype(np.int64),
            "rollout_idx": np.concatenate([np.arange(g.m) for g in groups]).astype(np.int64),
            "group_size_m_max": np.full(n, m_max, dtype=np.int64),
        }
        rewards = np.concatenate([g.rewards for g in groups], axis=0)
        for l, c in enumerate(cols):
            data[c] = rewards[:, l]
        data["raw_length"] = np.concatenate(
            [g.raw_length if g.raw_length is not None else np.full(g.m, np.nan) for g in groups])
        data["question"] = rep([i[0] for i in info]).astype(object)
        data["gold_answer"] = rep([i[1] for i in info]).astype(object)
        data["gold_reasoning"] = rep([i[2] for i in info]).astype(object)
        if any(g.completions is not None for g in groups):
            data["completion"] = np.array(
                [c for g in groups for c in (g.completions or [""] * g.m)], dtype=object)
        data["seed"] = rep([g.seed for g in groups]).astype(np.int64)
        if not self.subsample_from_max:
            data["group_size_m"] = sizes.repeat(sizes).astype(np.int64)
        return pd.DataFrame(data)

    # -- Parquet -----------------------------------------------------------
    def save_parquet(self, path) -> Path:
        """Write the corpus as Parquet in the released schema (see the module docstring)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[PARQUET_META_KEY] = json.dumps({
            "reward_names": list(self.reward_names), "channel_columns": _channel_columns(self.reward_names),
            "m_grid": self.m_grid, "K_seeds": self.K_seeds, "n_prompts": self.n_prompts,
            "backend_name": self.backend_name, "subsample_from_max": self.subsample_from_max,
        }).encode()
        pq.write_table(table.replace_schema_metadata(meta), path)
        return path

    @classmethod
    def load_parquet(cls, path, reward_names: Optional[Sequence[str]] = None,
                     m_grid: Optional[Sequence[int]] = None) -> "Corpus":
        """Read a corpus written by :meth:`save_parquet` or a released rollouts Parquet.

        Without the ``mrgrpo`` metadata, the channels are ``reward_names`` or, by
        default, the released math channels; ``m_grid`` defaults to the group
        size in the file, and smaller sizes are served as prefixes.
        """
        import pandas as pd
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such Parquet file: {path}")
        meta_raw = (pq.read_schema(path).metadata or {}).get(PARQUET_META_KEY)
        meta = json.loads(meta_raw) if meta_raw else {}
        df = pd.read_parquet(path)
        return _corpus_from_frame(df, meta, reward_names, m_grid, source=str(path))

    # -- npz ---------------------------------------------------------------
    def save_npz(self, path) -> Path:
        """Write ``rewards_m{m}`` ``(P, K, m, R)`` (and ``raw_length_m{m}``) for every ``m``."""
        path = Path(path)
        arrays: dict = {}
        for m in self.m_grid:
            arrays[f"rewards_m{m}"] = pack_for_analysis(self, m)
            rl = pack_raw_length(self, m)
            if rl is not None:
                arrays[f"raw_length_m{m}"] = rl
        first = {}
        for r in self.rollouts:
            first.setdefault(r.prompt_idx, r)
        q = [self._prompt_info(i, first[i]) if i in first else ("", "", "") for i in range(self.n_prompts)]
        arrays.update(
            m_grid=np.asarray(self.m_grid, dtype=np.int64), K_seeds=np.int64(self.K_seeds),
            n_prompts=np.int64(self.n_prompts), reward_names=np.asarray(self.reward_names, dtype=str),
            backend_name=np.asarray(self.backend_name, dtype=str),
            subsample_from_max=np.bool_(self.subsample_from_max),
            questions=np.asarray([x[0] for x in q], dtype=str), golds=np.asarray([x[1] for x in q], dtype=str),
        )
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load_npz(cls, path, allow_pickle: bool = False) -> "Corpus":
        """Read an ``.npz`` with ``rewards_m{m}`` keys (written here or released by the paper).

        ``allow_pickle=True`` is needed only for files storing metadata as
        Python objects; use it on trusted files only.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such .npz file: {path}")
        try:
            z = np.load(path, allow_pickle=allow_pickle)
            keys = list(z.keys())
            loaded = {k: z[k] for k in keys}
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise ValueError(f"{path} stores Python objects; if you trust it, pass allow_pickle=True") from exc
            raise
        ms = sorted(int(k[len("rewards_m"):]) for k in keys if k.startswith("rewards_m"))
        if not ms:
            raise ValueError(f"{path} has no rewards_m{{m}} arrays (keys: {keys})")
        rollouts = []
        shape0 = None
        for m in ms:
            t = np.asarray(loaded[f"rewards_m{m}"], dtype=float)
            if t.ndim != 4 or t.shape[2] != m:
                raise ValueError(f"rewards_m{m} must have shape (P, K, {m}, R), got {t.shape}")
            if shape0 is None:
                shape0 = t.shape
            elif (t.shape[0], t.shape[1], t.shape[3]) != (shape0[0], shape0[1], shape0[3]):
                raise ValueError(f"rewards_m{m} has shape {t.shape}, inconsistent with {shape0}")
            rl = loaded.get(f"raw_length_m{m}")
            for p in range(t.shape[0]):
                for k in range(t.shape[1]):
                    rollouts.append(Rollouts(p, k, "", "", k, m, t[p, k],
                                             None if rl is None else np.asarray(rl[p, k], dtype=float)))
        P, K, _, R = shape0
        names = tuple(str(x) for x in np.asarray(loaded.get("reward_names", [])).tolist()) or \
            (MATH_REWARD_NAMES if R == 3 else tuple(f"r{l}" for l in range(R)))
        qs = [str(x) for x in np.asarray(loaded["questions"]).tolist()] if "questions" in loaded else None
        gs = [str(x) for x in np.asarray(loaded["golds"]).tolist()] if "golds" in loaded else None
        prompts = None
        if qs is not None:
            prompts = [{"prompt": q, "gold": g} for q, g in zip(qs, gs or [""] * len(qs))]
            for r in rollouts:
                r.prompt, r.gold = prompts[r.prompt_idx]["prompt"], prompts[r.prompt_idx]["gold"]
        backend = str(np.asarray(loaded["backend_name"])) if "backend_name" in loaded else path.stem
        sub = bool(loaded["subsample_from_max"]) if "subsample_from_max" in loaded else False
        return cls(rollouts=rollouts, m_grid=ms, K_seeds=K, n_prompts=P, reward_names=names,
                   backend_name=backend, subsample_from_max=sub, prompts=prompts)


def _channel_columns(names: Sequence[str]) -> list:
    return [f"reward_{n}" if n in PARQUET_FIXED_COLUMNS else n for n in names]


def _corpus_from_frame(df, meta: dict, reward_names, m_grid, source: str) -> Corpus:
    required = ("prompt_idx", "seed_idx", "rollout_idx")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{source} lacks the columns {missing}; columns present: {list(df.columns)}")
    if reward_names is not None:
        names = tuple(reward_names)
        cols = [c if c in df.columns else f"reward_{c}" for c in names]
    elif meta:
        names, cols = tuple(meta["reward_names"]), list(meta["channel_columns"])
    else:
        names, cols = MATH_REWARD_NAMES, list(MATH_REWARD_NAMES)
    absent = [c for c in cols if c not in df.columns]
    if absent:
        raise ValueError(f"{source} has no reward column(s) {absent}; pass reward_names= to name the "
                         f"channel columns (columns present: {list(df.columns)})")
    if "group_size_m" in df.columns:
        gm = df["group_size_m"].to_numpy(dtype=np.int64)
    elif "group_size_m_max" in df.columns:
        gm = df["group_size_m_max"].to_numpy(dtype=np.int64)
    else:
        gm = np.full(len(df), int(df["rollout_idx"].max()) + 1, dtype=np.int64)
    df = df.assign(_m=gm).sort_values(["_m", "prompt_idx", "seed_idx", "rollout_idx"], kind="stable")
    rewards_all = df[cols].to_numpy(dtype=float)
    bad = ~np.isfinite(rewards_all)
    if bad.any():
        i, l = np.argwhere(bad)[0]
        row = df.iloc[int(i)]
        raise ValueError(f"{source}: non-finite reward in channel {names[l]!r} at prompt_idx "
                         f"{row['prompt_idx']}, seed_idx {row['seed_idx']}, rollout_idx {row['rollout_idx']}")
    raw = df["raw_length"].to_numpy(dtype=float) if "raw_length" in df.columns else None
    comp = df["completion"].astype(str).tolist() if "completion" in df.columns else None
    seeds = df["seed"].to_numpy(dtype=np.int64) if "seed" in df.columns else None
    pidx = df["prompt_idx"].to_numpy(dtype=np.int64)
    kidx = df["seed_idx"].to_numpy(dtype=np.int64)
    jidx = df["rollout_idx"].to_numpy(dtype=np.int64)
    m_sorted = df["_m"].to_numpy(dtype=np.int64)
    qcol = df["question"].astype(str).tolist() if "question" in df.columns else None
    gcol = df["gold_answer"].astype(str).tolist() if "gold_answer" in df.columns else None
    rcol = df["gold_reasoning"].astype(str).tolist() if "gold_reasoning" in df.columns else None
    # group boundaries: a new group wherever (m, prompt, seed) changes
    key_change = np.ones(len(df), dtype=bool)
    key_change[1:] = (np.diff(m_sorted) != 0) | (np.diff(pidx) != 0) | (np.diff(kidx) != 0)
    starts = np.flatnonzero(key_change)
    ends = np.append(starts[1:], len(df))
    rollouts, prompt_info = [], {}
    for s, e in zip(starts, ends):
        m = int(m_sorted[s])
        if e - s != m or not np.array_equal(jidx[s:e], np.arange(m)):
            raise ValueError(f"{source}: group (prompt_idx {pidx[s]}, seed_idx {kidx[s]}, m {m}) has rollout_idx "
                             f"{jidx[s:e].tolist()[:8]}..., expected 0..{m - 1}")
        p = int(pidx[s])
        if qcol is not None and p not in prompt_info:
            prompt_info[p] = {"prompt": qcol[s], "gold": gcol[s] if gcol else "",
                              "gold_reasoning": rcol[s] if rcol else ""}
        rl = None if raw is None or np.isnan(raw[s:e]).all() else raw[s:e]
        rollouts.append(Rollouts(
            prompt_idx=p, seed_idx=int(kidx[s]), prompt=qcol[s] if qcol else "", gold=gcol[s] if gcol else "",
            seed=int(seeds[s]) if seeds is not None else int(kidx[s]), m=m, rewards=rewards_all[s:e],
            raw_length=rl, completions=comp[s:e] if comp is not None else None))
    m_stored = sorted({r.m for r in rollouts})
    sub = bool(meta.get("subsample_from_max", "group_size_m" not in df.columns))
    grid = list(m_grid) if m_grid is not None else list(meta.get("m_grid", m_stored))
    if not sub and any(m not in m_stored for m in grid):
        raise ValueError(f"{source} stores group sizes {m_stored}; m_grid {grid} asks for others")
    if sub and max(grid) > max(m_stored):
        raise ValueError(f"{source} stores groups of size {max(m_stored)}; m_grid {grid} asks for more")
    n_prompts = int(meta.get("n_prompts", int(pidx.max()) + 1))
    K = int(meta.get("K_seeds", int(kidx.max()) + 1))
    prompts = [prompt_info.get(i, {"prompt": "", "gold": ""}) for i in range(n_prompts)] if prompt_info else None
    backend = str(meta.get("backend_name", df["model"].iloc[0] if "model" in df.columns else Path(source).stem))
    if sub and max(grid) != max(m_stored):
        # serve the largest requested size from prefixes too
        grid = sorted(set(grid) | {max(m_stored)})
    return Corpus(rollouts=rollouts, m_grid=grid, K_seeds=K, n_prompts=n_prompts, reward_names=names,
                  backend_name=backend, subsample_from_max=sub, prompts=prompts)


def run_corpus(backend: Backend, prompts_with_gold: Iterable, m_grid: Sequence[int], K_seeds: int,
               subsample_from_max: bool = False, seed: int = 0) -> Corpus:
    """Generate ``K_seeds`` groups per prompt for each ``m`` in ``m_grid``.

    Parameters
    ----------
    backend : Backend
    prompts_with_gold : iterable of ``(prompt, gold)`` pairs or dicts with ``"prompt"`` and ``"gold"``
    m_grid : sequence of int
        Group sizes (each ``>= 2``).
    K_seeds : int
        Seeds (independent groups) per prompt and ``m``; ``>= 1``.
    subsample_from_max : bool
        Generate once at ``max(m_grid)`` and take leading prefixes for smaller
        ``m`` (a prefix of an i.i.d. group is an i.i.d. group).
    seed : int
        Base seed. The group seeds come from ``SeedSequence([seed, m])`` (or
        ``[seed]`` when subsampling), so different ``m`` get independent groups.

    Returns
    -------
    Corpus
    """
    prompts = [_as_prompt_dict(p) for p in prompts_with_gold]
    if not prompts:
        raise ValueError("prompts_with_gold is empty")
    grid = sorted({int(m) for m in m_grid})
    if not grid or any(m < 2 for m in grid):
        raise ValueError(f"m_grid must be non-empty group sizes >= 2, got {list(m_grid)}")
    if isinstance(K_seeds, (bool, np.bool_)) or not isinstance(K_seeds, (int, np.integer)) or K_seeds < 1:
        raise ValueError(f"K_seeds must be a positive int, got {K_seeds!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    def _gen(m: int, seeds: list) -> list:
        groups = backend.generate_groups(prompts, m, seeds)
        if len(groups) != len(prompts) * len(seeds):
            raise ValueError(f"backend {backend.name!r} returned {len(groups)} groups for "
                             f"{len(prompts)} prompts x {len(seeds)} seeds")
        out = []
        for n, g in enumerate(groups):
            i, k = divmod(n, len(seeds))
            if g.m != m:
                raise ValueError(f"backend {backend.name!r} returned a group of size {g.m}, asked for {m}")
            out.append(dataclasses.replace(g, prompt_idx=i, seed_idx=k, seed=int(seeds[k])))
        return out

    sizes = [max(grid)] if subsample_from_max else grid
    bar = tqdm(sizes, desc=f"rollouts ({backend.name})", disable=len(sizes) < 2) if tqdm else sizes
    rollouts: list = []
    for m in bar:
        ss = np.random.SeedSequence([int(seed)] if subsample_from_max else [int(seed), int(m)])
        seeds = [int(s) for s in ss.generate_state(int(K_seeds), dtype=np.uint32)]
        full = _gen(m, seeds)
        rollouts.extend(full)
        if subsample_from_max:
            for mm in grid[:-1]:
                rollouts.extend(g.prefix(mm) for g in full)
    return Corpus(rollouts=rollouts, m_grid=grid, K_seeds=int(K_seeds), n_prompts=len(prompts),
                  reward_names=tuple(backend.reward_names), backend_name=str(backend.name),
                  subsample_from_max=bool(subsample_from_max), prompts=prompts)


def _index_groups(corpus: Corpus, m: int) -> tuple[list, int, int]:
    groups = corpus.groups(m)
    P, K = corpus.n_prompts, corpus.K_seeds
    seen = np.zeros((P, K), dtype=bool)
    for g in groups:
        if g.prompt_idx >= P or g.seed_idx >= K:
            raise ValueError(f"group (prompt {g.prompt_idx}, seed {g.seed_idx}) is outside the corpus "
                             f"({P} prompts x {K} seeds)")
        seen[g.prompt_idx, g.seed_idx] = True
    if not seen.all():
        p, k = np.argwhere(~seen)[0]
        raise ValueError(f"the corpus lacks {int((~seen).sum())} of its {P * K} groups at m = {m} "
                         f"(first missing: prompt {p}, seed {k})")
    return groups, P, K


def pack_for_analysis(corpus: Corpus, m: int, n_prompts: Optional[int] = None,
                      return_raw_length: bool = False):
    """The corpus's groups of size ``m`` as a ``(P, K, m, R)`` reward tensor.

    With ``return_raw_length=True`` also returns the aligned ``(P, K, m)``
    raw lengths (NaN where a group has none).
    """
    groups, P, K = _index_groups(corpus, int(m))
    out = np.empty((P, K, int(m), corpus.R))
    pi = np.fromiter((g.prompt_idx for g in groups), dtype=np.int64, count=len(groups))
    ki = np.fromiter((g.seed_idx for g in groups), dtype=np.int64, count=len(groups))
    out[pi, ki] = np.stack([g.rewards for g in groups])
    if n_prompts is not None:
        out = out[:int(n_prompts)]
    if not return_raw_length:
        return out
    rl = np.full((P, K, int(m)), np.nan)
    rl[pi, ki] = np.stack([g.raw_length if g.raw_length is not None else np.full(int(m), np.nan)
                           for g in groups])
    return out, (rl[:int(n_prompts)] if n_prompts is not None else rl)


def pack_raw_length(corpus: Corpus, m: int) -> Optional[np.ndarray]:
    """``(P, K, m)`` raw lengths, or None unless every group has them."""
    groups = corpus.groups(int(m))
    if any(g.raw_length is None for g in groups):
        return None
    return pack_for_analysis(corpus, m, return_raw_length=True)[1]


# ----------------------------------------------------------------------------
# the paper's released rollouts
# ----------------------------------------------------------------------------
class ReleasedDataUnavailable(FileNotFoundError):
    """The released rollouts are neither local nor downloadable (e.g. offline)."""


def _how_to_get(repo: str, filename: str) -> str:
    return (f"To use the released rollouts offline, download them once on a machine with internet:\n"
            f"    huggingface-cli download {repo} {filename} --repo-type dataset --local-dir DIR\n"
            f"(or hf_hub_download(repo_id={repo!r}, repo_type='dataset', filename={filename!r})), then "
            f"pass local_path='DIR/{filename}' (CLI: mrgrpo analyze DIR/{filename} --w ...).")


def load_released_rollouts(which: str = "1.5b", local_path: Union[str, os.PathLike, None] = None,
                           fmt: str = "parquet", m_grid: Optional[Sequence[int]] = None,
                           revision: Optional[str] = None) -> Corpus:
    """The paper's released GSM8K rollouts as a :class:`Corpus`.

    Parameters
    ----------
    which : {"1.5b", "7b"} or a Hugging Face dataset id
        ``"1.5b"`` is ``eagle0504/multireward-grpo-gsm8k-rewards`` (150 prompts x
        16 seeds x 32 rollouts, Qwen2.5-1.5B-Instruct); ``"7b"`` is
        ``eagle0504/multireward-grpo-gsm8k-rewards-qwen2.5-7b``.
    local_path : path, optional
        A local copy: the Parquet / ``.npz`` file, or a folder holding
        ``data/train.parquet`` (or ``llm_rewards_gsm8k.npz``). Nothing is downloaded.
    fmt : {"parquet", "npz"}
        Parquet holds only the largest groups (``m = 32``; smaller ``m`` are
        served as prefixes); the ``.npz`` holds each released ``rewards_m{m}``.
    m_grid : sequence of int, optional
        Group sizes to expose from the Parquet (default ``[4, 8, 16, 32]``, capped at the stored size).
    revision : str, optional
        A dataset revision (commit) to pin.

    Raises
    ------
    ReleasedDataUnavailable
        (a ``FileNotFoundError``) offline or unreachable, with how to fetch the file.
    """
    if fmt not in RELEASED_FILES:
        raise ValueError(f"fmt must be one of {sorted(RELEASED_FILES)}, got {fmt!r}")
    repo = RELEASED_DATASETS.get(str(which).lower(), str(which))
    if "/" not in repo:
        raise ValueError(f"which must be one of {sorted(RELEASED_DATASETS)} or an 'owner/name' dataset id, got {which!r}")
    filename = RELEASED_FILES[fmt]
    if local_path is not None:
        path = Path(local_path)
        if path.is_dir():
            path = path / filename
        if not path.exists():
            raise ReleasedDataUnavailable(f"no released rollouts at {path}.\n" + _how_to_get(repo, filename))
    else:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:  # pragma: no cover
            raise ReleasedDataUnavailable("huggingface_hub is not installed (pip install 'mrgrpo[data]').\n"
                                          + _how_to_get(repo, filename)) from exc
        try:
            path = Path(hf_hub_download(repo_id=repo, repo_type="dataset", filename=filename, revision=revision))
        except Exception as exc:  # offline mode, no network, missing file: all mean the same to the user
            offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
            why = "HF_HUB_OFFLINE is set and the file is not in the local cache" if offline else \
                f"download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            raise ReleasedDataUnavailable(f"cannot load {repo}:{filename}: {why}.\n"
                                          + _how_to_get(repo, filename)) from exc
    if path.suffix == ".npz":
        return Corpus.load_npz(path)
    corpus = Corpus.load_parquet(path)
    m_max = max(corpus.m_grid)
    grid = [m for m in (m_grid or (4, 8, 16, 32)) if m <= m_max] or [m_max]
    corpus.m_grid = sorted(set(grid) | {m_max})
    return corpus
