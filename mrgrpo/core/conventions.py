"""The conventions of the estimators, decided once for the whole package.

- Within-group standard deviation: ``ddof = 0`` (the paper's sigma-hat); ``EPS``
  (the paper's delta) is added to the std.
- A channel that is exactly constant within a group standardizes to exactly 0.
- TRL's ``normalize_then_sum`` rescales the summed advantages over the whole
  batch by ``(batch std (ddof 1) + BATCH_RESCALE_EPS)``; its per-group std uses
  ``ddof = 1`` and ``TRL_EPS``.
"""
from __future__ import annotations

__all__ = ["EPS", "MODES", "CONDITIONING", "BATCH_RESCALE_EPS", "TRL_EPS", "TRL_DDOF"]

#: The paper's delta, added to each within-group standard deviation.
EPS = 1e-8
#: Estimators: normalize-then-aggregate, aggregate-then-normalize, channel 0 alone.
MODES = ("na", "an", "single")
#: Conditioning implementations.
CONDITIONING = ("none", "zero_fill", "subgroup")
#: TRL's batch-wide rescale of ``normalize_then_sum`` adds this to the batch std.
BATCH_RESCALE_EPS = 1e-4
#: TRL's per-group std: ``ddof = 1`` and this eps.
TRL_EPS = 1e-4
TRL_DDOF = 1
