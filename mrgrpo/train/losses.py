"""The GRPO objective, token by token.

For completion token ``t`` of rollout ``i`` with advantage ``A_i``:

- importance ratio ``rho = exp(logp - old_logp)`` (``old_logp``: the policy that
  sampled the batch, fixed over the ``num_iterations`` updates);
- clipped surrogate ``-min(rho A, clip(rho, 1 - eps, 1 + eps) A)``;
- KL anchor, the k3 estimator ``exp(d) - d - 1`` with ``d = ref_logp - logp``.
  It is non-negative per token; on tokens sampled from the policy its value is
  an unbiased estimate of ``KL(pi || pi_ref)`` and, used as a loss, its expected
  gradient is exactly ``grad KL(pi_ref || pi)`` at each position, which pulls the
  policy back to the reference. (A mean log-ratio of sequence log-probs,
  ``logp - ref_logp``, has expected gradient ``E[grad log pi] = 0``: it anchors
  nothing. ``tests/train/test_train_losses.py`` checks both by exact enumeration.)

Log-probabilities are of the *sampling* distribution, ``softmax(logits / T)``,
so the ratio compares like with like.
"""
from __future__ import annotations

import torch

__all__ = ["selected_logprobs", "sequence_token_logprobs", "clipped_surrogate", "k3_kl",
           "aggregate", "clip_fraction"]


def selected_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / T)[targets]`` without materialising the full log-softmax.

    Parameters
    ----------
    logits : shape ``(N, C, V)``
    targets : shape ``(N, C)``

    Returns
    -------
    torch.Tensor, shape ``(N, C)``, float32 (or the logits' dtype if wider).
    """
    x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    if temperature != 1.0:
        x = x / temperature
    picked = x.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(x, dim=-1)


def sequence_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            n_completion: int, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of the last ``n_completion`` tokens of each row under ``model``.

    Parameters
    ----------
    input_ids, attention_mask : shape ``(N, Lp + C)``; prompt left-padded.
    n_completion : int
        ``C``.

    Returns
    -------
    torch.Tensor, shape ``(N, C)``
    """
    from mrgrpo.lm.padding import position_ids

    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids(attention_mask), use_cache=False,
                logits_to_keep=n_completion + 1)
    logits = out.logits[:, :-1, :]  # position k predicts token k + 1
    return selected_logprobs(logits, input_ids[:, -n_completion:], temperature)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                      eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped policy-gradient loss.

    Parameters
    ----------
    logp, old_logp : shape ``(N, C)``
    adv : shape ``(N,)``

    Returns
    -------
    loss : shape ``(N, C)``, ``-min(rho A, clip(rho) A)``
    ratio : shape ``(N, C)``, detached ``rho``
    """
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(1)
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1.0 - eps, 1.0 + eps) * a
    return -torch.minimum(unclipped, clipped), ratio.detach()


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of ``KL(pi || pi_ref)``: ``exp(d) - d - 1``, ``d = ref - logp``."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str,
              n_tokens: float, n_seqs: int) -> torch.Tensor:
    """Reduce a ``(n, C)`` micro-batch of per-token values to this micro-batch's share of the loss.

    ``n_tokens`` / ``n_seqs`` are totals over the *whole* batch, so summing the
    micro-batch results gives the full-batch loss exactly (gradient accumulation).

    - ``"token"``: ``sum(per_token * mask) / n_tokens``
    - ``"sequence"``: ``sum_i mean_t(per_token_i) / n_seqs``
    """
    m = mask.to(per_token.dtype)
    if how == "token":
        return (per_token * m).sum() / max(float(n_tokens), 1.0)
    if how == "sequence":
        per_seq = (per_token * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        return per_seq.sum() / max(int(n_seqs), 1)
    raise ValueError(f"unknown loss aggregation {how!r}; use 'token' or 'sequence'")


def clip_fraction(ratio: torch.Tensor, mask: torch.Tensor, eps: float) -> tuple[float, float]:
    """(number of masked tokens with ``|rho - 1| > eps``, number of masked tokens)."""
    m = mask.bool()
    return float(((ratio - 1.0).abs() > eps)[m].sum()), float(m.sum())
