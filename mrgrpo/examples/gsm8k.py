"""GSM8K loaders under the paper package's module name (see :mod:`mrgrpo.tasks.gsm8k`)."""
from __future__ import annotations

from mrgrpo.tasks.gsm8k import (
    DatasetUnavailableError,
    gsm8k_prompts_with_gold,
    load_gsm8k,
    load_gsm8k_prompts,
    parse_gsm8k_gold,
)

__all__ = ["load_gsm8k", "load_gsm8k_prompts", "gsm8k_prompts_with_gold", "parse_gsm8k_gold",
           "DatasetUnavailableError"]
