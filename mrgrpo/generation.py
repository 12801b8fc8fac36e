"""Generation backends: sample groups of completions from a causal LM and score them.

:class:`HFBackend` runs any Hugging Face causal LM (a local directory such as the
shipped tiny policy ``data/tiny-math``, or a hub id at paper scale) and implements
the :class:`mrgrpo.rollouts.Backend` protocol, so :func:`run_corpus` turns its
groups into a corpus for the Theorem-3 harness. The mock backend and the corpus
helpers live in :mod:`mrgrpo.rollouts` and are re-exported here.

Reproducibility
---------------
Sampling uses our own loop (KV cache, inverse-CDF sampling) rather than
``model.generate``, because ``generate`` draws every row from one global
generator, so a row's tokens would depend on which other rows share its batch.
Here the randomness of a group is fixed before any batching: the group for
``(prompt, seed)`` gets a ``numpy`` generator seeded with
``SeedSequence([seed, *sha256(prompt text)[:16 bytes] as 4 uint32])`` and draws
an ``(m, max_new_tokens)`` array of uniforms; completion ``j`` of the group takes
token ``t`` as the first vocabulary index whose cumulative probability exceeds
``u[j, t]`` (inverse-CDF sampling; a zero-probability token is never drawn).
The same prompt and seed therefore give the same completions whatever the
batch size, the other prompts in the batch, or the prompt's
position in the list. (The probabilities themselves are computed in a padded
batch; float rounding that depends on the padding could in principle move a
cumulative probability across a uniform, an event of order 1e-7 per token.)
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mrgrpo.kvcache import cache_kwarg, cache_of, preallocate
from mrgrpo.rollouts import Backend, Corpus, MockBackend, Rollouts, pack_for_analysis, run_corpus

__all__ = [
    "HFBackend",
    "sample_completions",
    "group_uniforms",
    "prompt_to_text",
    "load_model",
    "MockBackend",
    "Rollouts",
    "run_corpus",
    "pack_for_analysis",
    "Corpus",
    "Backend",
]

logger = logging.getLogger(__name__)

TINY_BUILD_HINT = ("`python -m mrgrpo.tiny pretrain --out data/tiny-math` builds the tiny in-repo policy "
                   "(minutes on a CPU)")


# ----------------------------------------------------------------------------- seeds
def _prompt_words(text: str) -> list[int]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()[:16]
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def group_uniforms(prompt_text: str, seed: int, m: int, n_tokens: int) -> np.ndarray:
    """The uniforms that drive one group's sampling.

    Parameters
    ----------
    prompt_text : str
        The text the model is given (after any chat template).
    seed : int
        Non-negative seed of the group.
    m, n_tokens : int
        Group size and ``max_new_tokens``.

    Returns
    -------
    numpy.ndarray, shape ``(m, n_tokens)``, in ``[0, 1)``
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    ss = np.random.SeedSequence([int(seed), *_prompt_words(prompt_text)])
    return np.random.default_rng(ss).random((m, n_tokens))


# ----------------------------------------------------------------------------- prompts
def prompt_to_text(prompt: Any, tokenizer: Any) -> str:
    """The text a prompt item becomes before tokenization.

    A dict contributes its ``"messages"`` (a chat list) or its ``"prompt"``. A chat
    list goes through the tokenizer's chat template (an error if it has none). A
    string goes through the chat template as one user turn when the tokenizer has a
    template, else is used as is. The shipped tiny policy's template turns a
    question into ``"Q: <question>\\nA:"``.
    """
    item = prompt
    if isinstance(item, dict):
        if "messages" in item:
            item = item["messages"]
        elif "prompt" in item:
            item = item["prompt"]
        else:
            raise ValueError(f"a prompt dict needs a 'prompt' or 'messages' key, got keys {sorted(item)}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if isinstance(item, str):
        if not has_template:
            return item
        item = [{"role": "user", "content": item}]
    if isinstance(item, (list, tuple)) and all(isinstance(mg, dict) for mg in item):
        if not has_template:
            raise ValueError("a chat-message prompt needs a tokenizer with a chat template; "
                             f"this tokenizer ({type(tokenizer).__name__}) has none")
        return tokenizer.apply_chat_template(list(item), tokenize=False, add_generation_prompt=True)
    raise ValueError(f"a prompt must be a string, a chat-message list or a dict, got {type(item).__name__}")


# ----------------------------------------------------------------------------- loading
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def _is_hub_id(name: str) -> bool:
    """Whether a missing local name should be tried as a hub id (``"owner/model"``).

    ``"data/tiny-math"`` has the hub shape too; when its first component exists
    here it is a relative path that was not built yet, not a hub id.
    """
    if not _HUB_ID.match(name):
        return False
    return not ("/" in name and Path(name.split("/")[0]).exists())


def _hub_unreachable(timeout: float = 3.0) -> str:
    """Why the hub cannot be reached ('' if it may be), decided in seconds, not minutes of retries."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""  # behind a proxy a direct probe proves nothing; let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"the hub ({host}:{port}) is unreachable ({type(exc).__name__}: {exc})"
    return ""


def load_model(model: str | os.PathLike, *, device: str = "cpu", dtype: Any = None,
               adapter: str | os.PathLike | None = None):
    """Load a causal LM and its tokenizer; clear errors for a missing path or an offline hub id.

    Returns
    -------
    (model, tokenizer)
        The model in eval mode on ``device``; the tokenizer with a pad token
        (EOS when it had none) and left padding.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = os.fspath(model)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model directory {str(path)!r} has no config.json; "
                                    f"it is not a Hugging Face model ({TINY_BUILD_HINT})")
        source, local_only = str(path), True
    elif not _is_hub_id(name):
        raise FileNotFoundError(f"model path {name!r} does not exist; {TINY_BUILD_HINT}. A Hugging Face hub id "
                                "(such as 'Qwen/Qwen2.5-1.5B-Instruct') also works where the hub is reachable")
    else:
        source, local_only = name, False
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    try:
        try:
            # a local path, or a hub id already in the cache: no network
            tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
            lm = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype)
        except OSError:
            if local_only:
                raise
            why = _hub_unreachable()
            if why:
                raise OSError(why) from None
            tok = AutoTokenizer.from_pretrained(source)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        if local_only:
            raise
        raise FileNotFoundError(
            f"could not load {name!r}: it is not in the local Hugging Face cache and {exc}. Offline, download it "
            f"on a connected machine (`huggingface-cli download {name}`) and copy the cache, or pass a local "
            f"directory; {TINY_BUILD_HINT}") from None
    if adapter is not None:
        adapter_path = Path(os.fspath(adapter)).expanduser()
        if not adapter_path.exists() and not _is_hub_id(os.fspath(adapter)):
            raise FileNotFoundError(f"adapter path {os.fspath(adapter)!r} does not exist")
        from peft import PeftModel
        lm = PeftModel.from_pretrained(lm, os.fspath(adapter))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    lm.to(device)
    lm.eval()
    return lm, tok


# ----------------------------------------------------------------------------- sampling
def _sample_batch(model, prompt_ids: Sequence[Sequence[int]], uniforms: np.ndarray, *, temperature: float,
                  eos_id: int | None, pad_id: int) -> tuple[list[list[int]], np.ndarray]:
    """Sample one batch of rows with a KV cache.

    Parameters
    ----------
    prompt_ids : n lists of token ids (left-padded here)
    uniforms : array, shape ``(n, T)``; row ``i`` drives row ``i``'s draws.

    Returns
    -------
    tokens : n lists of generated ids (EOS excluded)
    finished : bool array, shape ``(n,)``, whether the row stopped on EOS
    """
    import torch

    n, T = uniforms.shape
    device = next(model.parameters()).device
    # rows of one group share their prompt: run each distinct prompt once and
    # copy its KV cache to its rows (most of the cost for short completions)
    uniq: dict[tuple[int, ...], int] = {}
    inv_list = [uniq.setdefault(tuple(p), len(uniq)) for p in prompt_ids]
    heads = list(uniq)
    L = max(len(p) for p in heads)
    ids = torch.full((len(heads), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(heads), L), dtype=torch.long)
    for i, p in enumerate(heads):
        if len(p) == 0:
            raise ValueError("a prompt of the batch tokenizes to nothing")
        ids[i, L - len(p):] = torch.as_tensor(p, dtype=torch.long)
        attn[i, L - len(p):] = 1
    ids, attn = ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    u = torch.as_tensor(uniforms, dtype=torch.float64, device=device)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
    past, logits = cache_of(out), out.logits[:, -1, :]
    cache_kw = cache_kwarg(model)
    inv = torch.as_tensor(inv_list, dtype=torch.long, device=device)
    if len(heads) != n:
        past.reorder_cache(inv)
        logits, attn, pos = logits[inv], attn[inv], pos[inv]
    preallocate(past, T)
    pos = pos[:, -1:]
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    steps: list[torch.Tensor] = []
    for t in range(T):
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(-1)
            nxt = torch.searchsorted(cdf, (u[:, t] * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
            nxt = nxt.clamp(max=logits.shape[-1] - 1)
        nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
        steps.append(nxt)
        if eos_id is not None:
            finished = finished | (nxt == eos_id)
        if bool(finished.all()) or t == T - 1:
            break
        attn = torch.cat([attn, torch.ones((n, 1), dtype=attn.dtype, device=device)], dim=1)
        pos = pos + 1
        out = model(input_ids=nxt.unsqueeze(-1), attention_mask=attn, position_ids=pos,
                    use_cache=True, **{cache_kw: past})
        past, logits = cache_of(out), out.logits[:, -1, :]
    gen = torch.stack(steps, dim=1).cpu().numpy()
    done = finished.cpu().numpy()
    tokens: list[list[int]] = []
    for i in range(n):
        row = gen[i].tolist()
        if eos_id is not None and eos_id in row:
            row = row[:row.index(eos_id)]
        tokens.append(row)
    return tokens, done


def _generate_rows(model, tokenizer, texts: Sequence[str], uniforms: Sequence[np.ndarray], *,
                   temperature: float, batch_size: int, progress: Any = None) -> tuple[list[str], list[int], np.ndarray]:
    """Generate one completion per (text, uniform row); rows are batched ``batch_size`` at a time.

    Returns completions, their token counts and an EOS-reached flag per row.
    """
    import torch

    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    enc = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_id or 0)
    # sort rows by prompt length so batches carry little padding; results are
    # independent of the grouping anyway
    order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
    completions: list[str] = [""] * len(enc)
    n_tokens = [0] * len(enc)
    eos_seen = np.zeros(len(enc), dtype=bool)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            toks, done = _sample_batch(model, [enc[i] for i in rows], np.stack([uniforms[i] for i in rows]),
                                       temperature=temperature, eos_id=eos_id, pad_id=pad_id)
            texts_out = tokenizer.batch_decode(toks, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for i, tk, tx, d in zip(rows, toks, texts_out, done):
                completions[i], n_tokens[i], eos_seen[i] = tx, len(tk), bool(d)
            if progress is not None:
                progress.update(len(rows))
    return completions, n_tokens, eos_seen


def sample_completions(model, tokenizer, prompts: Sequence[Any], n: int, *, temperature: float = 1.0,
                       max_new_tokens: int = 64, seed: int = 0, batch_size: int = 256) -> list[list[str]]:
    """Sample ``n`` completions for each prompt.

    Parameters
    ----------
    prompts : sequence of prompt items (strings, chat lists or dicts), length ``P``
    n : int
        Completions per prompt.
    temperature : float
        0 means greedy.
    seed : int
        Group seed: prompt ``p`` uses :func:`group_uniforms` ``(text_p, seed, n, max_new_tokens)``.

    Returns
    -------
    list of ``P`` lists of ``n`` strings
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    texts = [prompt_to_text(p, tokenizer) for p in prompts]
    rows_text, rows_u = [], []
    for t in texts:
        u = group_uniforms(t, seed, n, max_new_tokens)
        rows_text += [t] * n
        rows_u += list(u)
    flat, _, _ = _generate_rows(model, tokenizer, rows_text, rows_u, temperature=temperature, batch_size=batch_size)
    return [flat[i * n:(i + 1) * n] for i in range(len(texts))]


# ----------------------------------------------------------------------------- backend
class HFBackend:
    """A Hugging Face causal LM as a rollout backend.

    Parameters
    ----------
    model : str or path
        A local model directory (e.g. ``"data/tiny-math"``) or a hub id
        (``"Qwen/Qwen2.5-1.5B-Instruct"``).
    reward_fn : callable or None
        ``reward_fn(completion, prompt) -> R floats``, ideally with
        ``channel_names``; an optional ``raw_length(completion, prompt)`` is kept.
        None defers the choice (e.g. to a reward that counts tokens with this
        backend's tokenizer): call :meth:`set_reward_fn` before generating.
    device : str
        ``"cpu"``, ``"cuda"``, ...
    dtype : torch dtype or its name, optional
        e.g. ``"bfloat16"`` on a GPU; default the checkpoint's.
    temperature : float
        Sampling temperature; 0 is greedy (every row of a group then agrees).
    max_new_tokens : int
        Completion budget; a row that reaches it without EOS is cut there.
    batch_size : int
        Rows (completions) per forward batch.
    adapter : path, optional
        A peft LoRA adapter to load on top of ``model``.
    progress : bool
        Show a tqdm bar over completions.

    Attributes
    ----------
    completions_per_second : float
        Throughput of the last :meth:`generate_groups` call (generation and
        scoring), also logged at INFO level.
    """

    def __init__(self, model: str | os.PathLike, reward_fn: Any, device: str = "cpu", dtype: Any = None,
                 temperature: float = 1.0, max_new_tokens: int = 64, batch_size: int = 256,
                 adapter: str | os.PathLike | None = None, progress: bool = True):
        if not (isinstance(max_new_tokens, (int, np.integer)) and max_new_tokens >= 1):
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not (math.isfinite(float(temperature)) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self.model_name = os.fspath(model)
        self.model, self.tokenizer = load_model(model, device=device, dtype=dtype, adapter=adapter)
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.progress = progress
        self.name = f"hf:{Path(self.model_name).name or self.model_name}"
        self.set_reward_fn(reward_fn)
        self.completions_per_second = float("nan")
        self.last_stats: dict[str, float] = {}

    def set_reward_fn(self, reward_fn: Any) -> "HFBackend":
        """Use ``reward_fn`` from now on (its ``channel_names`` become ``reward_names``)."""
        if reward_fn is not None and not callable(reward_fn):
            raise ValueError(f"reward_fn must be callable(completion, prompt), got {type(reward_fn).__name__}")
        self.reward_fn = reward_fn
        names = getattr(reward_fn, "channel_names", None)
        self.reward_names = tuple(names) if names is not None else ()
        return self

    def generation_params(self) -> dict[str, Any]:
        """The parameters that define this backend's samples (stored with a corpus)."""
        return {"model": self.model_name, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens,
                "sampler": "mrgrpo.generation inverse-CDF with SeedSequence([seed, sha256(prompt)])",
                "reward_fn": type(self.reward_fn).__name__, "reward_names": list(self.reward_names)}

    def generate_groups(self, prompts: Sequence[Any], m: int, seeds: Sequence[int]) -> list:
        """Sample and score ``m`` completions for every (prompt, seed).

        Returns
        -------
        list of :class:`mrgrpo.rollouts.Rollouts`, prompt-major
            ``len(prompts) * len(seeds)`` groups: all seeds of prompt 0, then prompt 1, ...
        """
        from mrgrpo.rewards.base import prompt_text, score_completions
        from mrgrpo.rollouts import Rollouts

        if not (isinstance(m, (int, np.integer)) and m >= 1):
            raise ValueError(f"m must be a positive int, got {m!r}")
        if self.reward_fn is None:
            raise ValueError("HFBackend has no reward function: pass reward_fn or call set_reward_fn first")
        prompts, seeds = list(prompts), [int(s) for s in seeds]
        texts = [prompt_to_text(p, self.tokenizer) for p in prompts]
        rows_text: list[str] = []
        rows_u: list[np.ndarray] = []
        for t in texts:
            for s in seeds:
                rows_text += [t] * m
                rows_u += list(group_uniforms(t, s, m, self.max_new_tokens))
        total = len(rows_text)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, desc=f"{self.name} generate", unit="compl", leave=False)
        t0 = time.perf_counter()
        try:
            comps, n_tok, eos_seen = _generate_rows(self.model, self.tokenizer, rows_text, rows_u,
                                                    temperature=self.temperature, batch_size=self.batch_size,
                                                    progress=bar)
        finally:
            if bar is not None:
                bar.close()
        t_gen = time.perf_counter() - t0
        row_prompts = [p for p in prompts for _ in seeds for _ in range(m)]
        rewards = score_completions(self.reward_fn, comps, row_prompts)
        if not self.reward_names:
            self.reward_names = tuple(f"r{c}" for c in range(rewards.shape[1]))
        raw_fn = getattr(self.reward_fn, "raw_length", None)
        raw = np.array([float(raw_fn(c, p)) for c, p in zip(comps, row_prompts)]) if callable(raw_fn) else None
        elapsed = time.perf_counter() - t0
        self.completions_per_second = total / elapsed if elapsed > 0 else float("inf")
        self.last_stats = {"completions": total, "seconds": elapsed, "generate_seconds": t_gen,
                           "completions_per_second": self.completions_per_second,
                           "mean_new_tokens": float(np.mean(n_tok)) if total else 0.0,
                           "truncated_fraction": float(1 - eos_seen.mean()) if total else 0.0}
        logger.info("%s: %d completions in %.1f s (%.1f completions/s)", self.name, total, elapsed,
                    self.completions_per_second)
        out = []
        k = 0
        for pi, p in enumerate(prompts):
            gold = str(p.get("gold", "")) if isinstance(p, dict) else ""
            for si, s in enumerate(seeds):
                sl = slice(k, k + m)
                out.append(Rollouts(prompt_idx=pi, seed_idx=si, prompt=prompt_text(p), gold=gold, seed=s, m=m,
                                    rewards=rewards[sl], raw_length=None if raw is None else raw[sl],
                                    completions=comps[sl]))
                k += m
        return out
