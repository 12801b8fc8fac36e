"""The one sampler: groups of completions from a causal LM, reproducible per (prompt, seed).

Every completion in the package (the Tier-2 corpora, the trainer's rollouts and
evaluations, the real-score data, the tiny policy's evaluation) is drawn here.

Reproducibility
---------------
``model.generate`` draws every row from one global generator, so a row's tokens
would depend on which other rows share its batch. Here the randomness of a
group is fixed before any batching: the group for ``(prompt, seed)`` gets a
numpy generator seeded with ``SeedSequence([seed, *sha256(prompt text)[:16
bytes] as 4 uint32])`` and draws an ``(m, max_new_tokens)`` array of uniforms
(:func:`group_uniforms`); completion ``j`` takes token ``t`` as the first
vocabulary index whose cumulative probability exceeds ``u[j, t]``
(inverse-CDF sampling; a zero-probability token is never drawn). The same
prompt and seed give the same completions whatever the batch size, the other
prompts in the batch, or the prompt's position in the list. (The
probabilities are computed in a padded batch; rounding that depends on the
padding could in principle move a cumulative probability across a uniform, an
event of order 1e-7 per token.)

End of sequence
---------------
A row stops at its first token in ``eos_ids`` (:func:`mrgrpo.lm.loader.eos_token_ids`:
the tokenizer's EOS and the generation config's), or after ``max_new_tokens``.
The sampler keeps the token ids it drew, that EOS token included, and a flag
per row; nothing downstream re-encodes text to recover them.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch

from mrgrpo.lm.kvcache import cache_kwarg, cache_of, preallocate
from mrgrpo.lm.padding import left_pad, position_ids
from mrgrpo.lm.prompts import as_prompts, encode, render

__all__ = ["group_uniforms", "sample_tokens", "sample_rows", "Completions", "sample_groups", "sample_completions",
           "check_context"]


def group_uniforms(key: str, seed: int, m: int, n_tokens: int) -> np.ndarray:
    """The uniforms that drive one group's sampling.

    Parameters
    ----------
    key : str
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
    digest = hashlib.sha256(key.encode("utf-8")).digest()[:16]
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words])).random((m, n_tokens))


@torch.no_grad()
def sample_tokens(model: Any, prompt_ids: Sequence[Sequence[int]], uniforms: np.ndarray, *, temperature: float,
                  eos_ids: Iterable[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one completion per row, in one batch, with a KV cache.

    Rows that share a prompt (the rows of a group) run its prefill once and
    copy the cache; the prefill keeps only its last position's logits; once a
    quarter of the batch has ended, the ended rows leave it (and the cache), so
    the decode steps compute only rows still sampling. Under ``torch.autocast``
    (a bf16 policy) the whole loop, its KV cache included, runs in that dtype;
    the sampling distribution is computed in float64 from the logits.

    Parameters
    ----------
    prompt_ids : ``n`` non-empty token-id sequences
    uniforms : array, shape ``(n, T)``
        Row ``i``'s draws; ``T`` is the completion budget.
    temperature : float
        ``> 0`` samples from ``softmax(logits / T)``; ``0`` is greedy.
    eos_ids : iterable of int
        Tokens that end a completion.
    pad_id : int
        Written after a row's first EOS.

    Returns
    -------
    tokens : torch.LongTensor, shape ``(n, C)``, ``C <= T``, on the model's device
        The drawn tokens, each row's EOS included, ``pad_id`` after it.
    ended : torch.BoolTensor, shape ``(n,)``
        Whether the row stopped on EOS (else it was cut at ``T``).
    """
    n, T = uniforms.shape
    check_context(model, max(len(p) for p in prompt_ids), T)  # every sampler path stops here, trainer included
    device = next(model.parameters()).device
    heads: dict[tuple[int, ...], int] = {}
    inv_list = [heads.setdefault(tuple(p), len(heads)) for p in prompt_ids]
    ids, attn = left_pad(list(heads), pad_id)
    ids, attn = ids.to(device), attn.to(device)
    pos = position_ids(attn)
    eos = torch.as_tensor(sorted({int(e) for e in eos_ids}), dtype=torch.long, device=device)
    u = torch.as_tensor(uniforms, dtype=torch.float64, device=device)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1)
    past, logits = cache_of(out), out.logits[:, -1, :]  # the prefill's last position only: no (P, Lp, V) logits
    if len(heads) != n:
        inv = torch.as_tensor(inv_list, dtype=torch.long, device=device)
        past.reorder_cache(inv)
        logits, attn, pos = logits[inv], attn[inv], pos[inv]
    preallocate(past, T)
    cache_kw = cache_kwarg(model)
    pos = pos[:, -1:]
    ended = torch.zeros(n, dtype=torch.bool, device=device)
    tokens = torch.full((n, T), pad_id, dtype=torch.long, device=device)
    live = torch.arange(n, device=device)  # the rows still in the batch, in batch order
    for t in range(T):
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(-1)
            nxt = torch.searchsorted(cdf, (u[live, t] * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
            nxt = nxt.clamp(max=logits.shape[-1] - 1)
        nxt = torch.where(ended[live], torch.full_like(nxt, pad_id), nxt)
        tokens[live, t] = nxt
        ended[live] |= torch.isin(nxt, eos)
        if bool(ended.all()) or t == T - 1:
            break
        done = ended[live]
        if 4 * int(done.sum()) >= len(live):  # a quarter of the batch has ended: stop computing those rows
            keep = (~done).nonzero().squeeze(1)
            past.reorder_cache(keep)
            live, attn, pos, nxt = live[keep], attn[keep], pos[keep], nxt[keep]
        attn = torch.cat([attn, torch.ones((len(live), 1), dtype=attn.dtype, device=device)], dim=1)
        pos = pos + 1
        out = model(input_ids=nxt.unsqueeze(-1), attention_mask=attn, position_ids=pos,
                    use_cache=True, logits_to_keep=1, **{cache_kw: past})
        past, logits = cache_of(out), out.logits[:, -1, :]
    return tokens[:, :t + 1], ended


def check_context(model: Any, prompt_len: int, max_new_tokens: int, *, budget: str = "max_new_tokens") -> None:
    """Refuse, before sampling, a prompt that leaves no room for ``max_new_tokens`` in the context window.

    ``budget`` is how the message names the completion budget (a caller may add its flag).
    """
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and prompt_len + max_new_tokens > limit:
        raise ValueError(f"a prompt of {prompt_len} tokens plus {budget} = {max_new_tokens} exceeds the "
                         f"model's context window of {limit} tokens; shorten the prompt or the completion budget")


def _trim(row: list[int], eos: set[int]) -> list[int]:
    """A row's tokens up to and including its first EOS."""
    for k, t in enumerate(row):
        if t in eos:
            return row[:k + 1]
    return row


def sample_rows(model: Any, prompt_ids: Sequence[Sequence[int]], uniforms: Sequence[np.ndarray], *,
                temperature: float, eos_ids: Iterable[int], pad_id: int, batch_size: int = 256,
                progress: Any = None) -> tuple[list[list[int]], np.ndarray]:
    """:func:`sample_tokens` over many rows, ``batch_size`` at a time.

    Rows are sorted by prompt length so batches carry little padding; the
    results do not depend on the grouping. ``progress`` (a tqdm bar) is
    advanced by the rows done.

    Returns
    -------
    tokens : list of ``n`` token-id lists, each row's EOS included when it ended on one
    ended : numpy.ndarray of bool, shape ``(n,)``
    """
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    eos = {int(e) for e in eos_ids}
    n = len(prompt_ids)
    order = sorted(range(n), key=lambda i: (len(prompt_ids[i]), i))
    tokens: list[list[int]] = [[] for _ in range(n)]
    ended = np.zeros(n, dtype=bool)
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        toks, done = sample_tokens(model, [prompt_ids[i] for i in rows], np.stack([uniforms[i] for i in rows]),
                                   temperature=temperature, eos_ids=eos, pad_id=pad_id)
        for i, row, d in zip(rows, toks.tolist(), done.tolist()):
            tokens[i], ended[i] = _trim(row, eos), d
        if progress is not None:
            progress.update(len(rows))
    return tokens, ended


@dataclass
class Completions:
    """Sampled completions of ``n`` rows (prompt-major: prompt 0's groups first, then prompt 1's, ...).

    Attributes
    ----------
    texts : list of str
        The decoded completions (EOS and other special tokens left out).
    tokens : list of list of int
        The drawn token ids, the EOS token included when the row ended on one.
    ended : numpy.ndarray of bool, shape ``(n,)``
        Whether each row stopped on EOS (else it reached ``max_new_tokens``).
    prompt_ids : list of list of int
        The token ids of each row's prompt.
    """

    texts: list
    tokens: list
    ended: np.ndarray
    prompt_ids: list

    @property
    def n_tokens(self) -> np.ndarray:
        """Tokens drawn per row, EOS included, shape ``(n,)``."""
        return np.array([len(t) for t in self.tokens], dtype=np.int64)


def _pad_id(tokenizer: Any, eos: Sequence[int]) -> int:
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else int(eos[0])


def sample_groups(model: Any, tokenizer: Any, prompts: Sequence[Any], m: int, seeds: Sequence[int], *,
                  temperature: float = 1.0, max_new_tokens: int = 64, batch_size: int = 256,
                  eos_ids: Optional[Sequence[int]] = None, system_prompt: Optional[str] = None,
                  use_chat_template: bool | str = "auto", progress: Any = None) -> Completions:
    """Sample ``m`` completions for every (prompt, seed).

    Parameters
    ----------
    prompts : sequence of ``P`` prompt items (see :mod:`mrgrpo.lm.prompts`)
    m : int
        Completions per group.
    seeds : sequence of ``K`` non-negative ints
        Group ``(p, k)`` uses :func:`group_uniforms` ``(text_p, seeds[k], m, max_new_tokens)``.
    eos_ids : sequence of int, optional
        Default :func:`mrgrpo.lm.loader.eos_token_ids` of the tokenizer and model.
    system_prompt, use_chat_template
        How prompts become text (:func:`mrgrpo.lm.prompts.render`).

    Returns
    -------
    Completions
        ``P * K * m`` rows: prompt-major, then seed, then the ``m`` rows of the group.
    """
    from mrgrpo.lm.loader import eos_token_ids

    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    if isinstance(max_new_tokens, (bool, np.bool_)) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    items = as_prompts(prompts)
    eos = tuple(eos_ids) if eos_ids is not None else eos_token_ids(tokenizer, model)
    texts = [render(p, tokenizer, system_prompt=system_prompt, use_chat_template=use_chat_template) for p in items]
    ids = [encode(p, tokenizer, system_prompt=system_prompt, use_chat_template=use_chat_template) for p in items]
    check_context(model, max(len(i) for i in ids), int(max_new_tokens))  # before any batch: rows run shortest first
    rows_ids: list[list[int]] = []
    rows_u: list[np.ndarray] = []
    for text, pid in zip(texts, ids):
        for s in seeds:
            rows_ids += [pid] * m
            rows_u += list(group_uniforms(text, s, m, int(max_new_tokens)))
    tokens, ended = sample_rows(model, rows_ids, rows_u, temperature=float(temperature), eos_ids=eos,
                                pad_id=_pad_id(tokenizer, eos), batch_size=batch_size, progress=progress)
    eos_set = set(eos)
    bodies = [t[:-1] if t and t[-1] in eos_set else t for t in tokens]
    decoded = tokenizer.batch_decode(bodies, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return Completions(list(decoded), tokens, ended, rows_ids)


def sample_completions(model: Any, tokenizer: Any, prompts: Sequence[Any], n: int, *, temperature: float = 1.0,
                       max_new_tokens: int = 64, seed: int = 0, batch_size: int = 256) -> list[list[str]]:
    """``n`` completion texts per prompt (one group per prompt, seed ``seed``).

    Returns
    -------
    list of ``P`` lists of ``n`` strings
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = sample_groups(model, tokenizer, prompts, n, [seed], temperature=temperature,
                        max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [out.texts[i * n:(i + 1) * n] for i in range(len(out.texts) // n)]
