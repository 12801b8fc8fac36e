"""Which tokens the GRPO loss sees.

A batch row is ``[left-padded prompt | completion]``:

- the prompt is left-padded to a common length ``Lp`` (:func:`mrgrpo.lm.padding.left_pad`;
  ``prompt_mask`` is 0 on the padding), so every completion starts at the same
  column and the model's position ids are ``cumsum(attention) - 1``;
- the completion is ``C`` sampled tokens. Its mask is 1 up to **and including**
  the first EOS and 0 after it. Matching on the first EOS (not on the pad id)
  keeps the EOS token in the loss even when the tokenizer's pad token equals EOS;
- a completion with no EOS hit ``max_new_tokens``: it is *truncated*. It stays in
  the loss unless ``mask_truncated`` drops it.
"""
from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["completion_mask", "full_attention_mask"]


def completion_mask(completion_ids: torch.Tensor, eos_ids: Iterable[int],
                    mask_truncated: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss mask of sampled completions and which of them were truncated.

    Parameters
    ----------
    completion_ids : torch.LongTensor, shape ``(N, C)``
    eos_ids : iterable of int
        Every token id that ends a completion.
    mask_truncated : bool
        Zero the whole row of a completion that never produced EOS.

    Returns
    -------
    mask : torch.LongTensor, shape ``(N, C)``; 1 at positions ``<=`` the first EOS.
    truncated : torch.BoolTensor, shape ``(N,)``; True where no EOS occurs.
    """
    N, C = completion_ids.shape
    eos = torch.as_tensor(sorted(set(int(e) for e in eos_ids)), dtype=completion_ids.dtype,
                          device=completion_ids.device)
    is_eos = torch.isin(completion_ids, eos)
    truncated = ~is_eos.any(dim=1)
    # index of the first EOS; C for rows without one
    first = torch.where(truncated, torch.full_like(truncated, C, dtype=torch.long),
                        is_eos.long().argmax(dim=1))
    cols = torch.arange(C, device=completion_ids.device).unsqueeze(0)
    mask = (cols <= first.unsqueeze(1)).long()
    if mask_truncated:
        mask = mask * (~truncated).long().unsqueeze(1)
    return mask, truncated


def full_attention_mask(prompt_mask: torch.Tensor, comp_mask: torch.Tensor) -> torch.Tensor:
    """``(N, Lp + C)`` attention: prompt padding and post-EOS tokens are invisible.

    ``comp_mask`` must be the mask *before* ``mask_truncated`` is applied (a
    truncated completion is still real text the model attends to).
    """
    return torch.cat([prompt_mask, comp_mask], dim=1)
