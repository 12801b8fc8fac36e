"""A lean sampling loop with a KV cache (reproducible from a ``torch.Generator``).

``model.generate`` spends most of its time in logits processors and stopping
criteria when the model is tiny; this loop does only what GRPO needs: prefill the
left-padded prompts, then draw one token per step at temperature ``T`` (``T = 0``
is greedy), writing ``pad_id`` after a row's first EOS and stopping when every row
has finished.
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch

from ..kvcache import cache_kwarg, cache_of, preallocate
from .masks import position_ids

__all__ = ["sample_completions"]


@torch.no_grad()
def sample_completions(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
                       temperature: float, eos_ids: Iterable[int], pad_id: int,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample one completion per row.

    Parameters
    ----------
    prompt_ids, prompt_mask : torch.LongTensor, shape ``(N, Lp)``, left-padded.
    max_new_tokens : int
    temperature : float
        ``> 0`` samples from ``softmax(logits / T)``; ``0`` takes the argmax.
    eos_ids : iterable of int
    pad_id : int
        Written after a row's first EOS.
    generator : torch.Generator, optional
        The only source of randomness; same generator state, same samples.

    Returns
    -------
    torch.LongTensor, shape ``(N, C)`` with ``C <= max_new_tokens``.
    """
    key = cache_kwarg(model)
    eos = torch.as_tensor(sorted(set(int(e) for e in eos_ids)), device=prompt_ids.device)
    N = prompt_ids.shape[0]
    attn = prompt_mask
    pos = position_ids(attn)
    out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1)
    preallocate(cache_of(out), max_new_tokens)
    next_pos = pos[:, -1:] + 1
    done = torch.zeros(N, dtype=torch.bool, device=prompt_ids.device)
    ones = torch.ones((N, 1), dtype=attn.dtype, device=attn.device)
    tokens = []
    for t in range(max_new_tokens):
        logits = out.logits[:, -1, :].float()
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            tok = logits.argmax(dim=-1)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        tokens.append(tok)
        done = done | torch.isin(tok, eos)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        attn = torch.cat([attn, ones], dim=1)
        out = model(input_ids=tok.unsqueeze(1), attention_mask=attn, position_ids=next_pos,
                    use_cache=True, **{key: cache_of(out)})
        next_pos = next_pos + 1
    return torch.stack(tokens, dim=1)
