"""Micro-batches of a GRPO step's rows, grouped by length so the forward passes carry little padding.

A step's rollouts come as one batch: the prompts left-padded to the longest prompt ``Lp``,
the completions right-padded (after their first EOS) to the longest completion ``C``. Every
forward pass over that batch computes all ``N (Lp + C)`` positions, padding included.
:func:`length_chunks` sorts the rows by length and cuts them into contiguous runs, each
trimmed to its own longest prompt and completion; the cut minimizes the padded positions
plus :data:`CHUNK_COST` positions per extra pass (a pass has a fixed cost: its Python
dispatch, smaller matrix products), with at most ``max_rows`` rows per pass (the memory
bound that ``grad_accum`` sets). The reference, old and policy log-probabilities of a row are
all computed in the same chunk.

Every per-row quantity is unchanged by the grouping (a row's positions and its attention
over its own tokens are the same); the loss of a chunk is its share of the batch's loss
(:func:`mrgrpo.train.losses.aggregate` divides by the batch's totals), so the summed
gradient is the full batch's up to floating-point rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CHUNK_COST", "Chunk", "row_lengths", "length_chunks", "padded_fraction"]

#: The padded token positions an extra forward pass must save to be worth running (see the module docstring).
CHUNK_COST = 64


@dataclass(frozen=True)
class Chunk:
    """The rows of one micro-batch, trimmed to their own longest prompt and completion.

    Attributes
    ----------
    rows : torch.LongTensor, shape ``(n,)``
        Their indices in the step's batch.
    input_ids, attention_mask : torch.Tensor, shape ``(n, lp + c)``
        Prompt left-padded to ``lp``, completion right-padded to ``c``.
    loss_mask : torch.Tensor, shape ``(n, c)``
    n_completion : int
        ``c``.
    """

    rows: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    n_completion: int


def row_lengths(roll: dict) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and completion lengths (EOS included) of a rollout batch's rows, shapes ``(N,)`` and ``(N,)``.

    Parameters
    ----------
    roll : dict
        ``input_ids`` / ``attention_mask`` of shape ``(N, Lp + C)`` and ``n_completion`` ``C``
        (:meth:`mrgrpo.train.GRPOTrainer.rollout`).
    """
    C = int(roll["n_completion"])
    attn = roll["attention_mask"]
    return attn[:, :-C].sum(1).cpu().numpy(), attn[:, -C:].sum(1).cpu().numpy()


def _cuts(prompt: np.ndarray, comp: np.ndarray, max_rows: int, cost: int) -> list[int]:
    """Segment ends (exclusive) of the cheapest cut of rows already sorted by length (dynamic programming)."""
    n = len(prompt)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        lp = lc = 0
        for start in range(end - 1, max(end - max_rows, 0) - 1, -1):  # the segment rows[start:end]
            lp, lc = max(lp, prompt[start]), max(lc, comp[start])
            total = best[start] + (end - start) * (lp + lc) + cost
            if total < best[end]:
                best[end], back[end] = total, start
    ends, end = [], n
    while end > 0:
        ends.append(end)
        end = int(back[end])
    return ends[::-1]


def length_chunks(roll: dict, max_rows: int, cost: int = CHUNK_COST) -> list[Chunk]:
    """Cut a step's batch into length-sorted micro-batches (see the module docstring).

    Parameters
    ----------
    roll : dict
        ``input_ids``, ``attention_mask`` (``(N, Lp + C)``), ``loss_mask`` (``(N, C)``), ``n_completion``.
    max_rows : int
        At most this many rows per chunk (``N // grad_accum``).
    cost : int
        Padded positions an extra pass must save (:data:`CHUNK_COST`).

    Returns
    -------
    list of Chunk
        Covering every row once.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    ids, attn, lmask = roll["input_ids"], roll["attention_mask"], roll["loss_mask"]
    C = int(roll["n_completion"])
    Lp = ids.shape[1] - C
    prompt, comp = row_lengths(roll)
    order = np.lexsort((np.arange(len(prompt)), prompt, prompt + comp))  # by total length, then prompt, then row
    start, chunks = 0, []
    for end in _cuts(prompt[order], comp[order], max_rows, cost):
        rows = order[start:end]
        lp, c = int(prompt[rows].max()), int(comp[rows].max())
        idx = torch.as_tensor(rows, dtype=torch.long, device=ids.device)
        cols = slice(Lp - lp, Lp + c)
        chunks.append(Chunk(rows=idx, input_ids=ids[idx, cols], attention_mask=attn[idx, cols],
                            loss_mask=lmask[idx, :c], n_completion=c))
        start = end
    return chunks


def padded_fraction(chunks: list[Chunk]) -> float:
    """The share of the computed token positions that are padding, over ``chunks`` (a list of one: the whole batch)."""
    computed = sum(ch.attention_mask.numel() for ch in chunks)
    real = sum(int(ch.attention_mask.sum()) for ch in chunks)
    return 1.0 - real / max(computed, 1)
