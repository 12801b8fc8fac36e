"""Left padding and the position ids that go with it.

Prompts of different lengths are left-padded to a common length, so every
completion starts in the same column; the model's position ids then start at
0 on each row's first real token.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["left_pad", "position_ids"]


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token-id lists into a batch.

    Parameters
    ----------
    seqs : sequence of ``N`` non-empty token-id sequences
    pad_id : int

    Returns
    -------
    ids : torch.LongTensor, shape ``(N, L)``
    mask : torch.LongTensor, shape ``(N, L)``, 1 on real tokens, 0 on padding.
    """
    if len(seqs) == 0:
        raise ValueError("left_pad needs at least one sequence")
    if any(len(s) == 0 for s in seqs):
        raise ValueError("left_pad got an empty prompt; every prompt needs at least one token")
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, L - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, L - len(s):] = 1
    return ids, mask


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on the first real token of each left-padded row."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
