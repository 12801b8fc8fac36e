"""The tiny in-repo policy: a small Qwen2 causal LM that solves mini-math, sometimes.

It exists so that every real-policy experiment of the book (Tier 2 rollouts,
GRPO training) runs on a laptop CPU, offline, with the same code that takes a
Hugging Face model id at paper scale. Build it with::

    mrgrpo tiny pretrain --out data/tiny-math      # or: python -m mrgrpo tiny pretrain ...
    mrgrpo tiny corpus --out data/mini-corpus       # its Tier-2 rollout corpus

Pieces: :mod:`~mrgrpo.tiny.tokenizer` (character-level, byte-level spelling),
:mod:`~mrgrpo.tiny.pretrain` (the training loop), :mod:`~mrgrpo.tiny.evaluate`
(base-policy metrics), :mod:`~mrgrpo.tiny.card` (the model card) and
:mod:`~mrgrpo.tiny.corpus` (its Tier-2 rollout corpus). The policy's files are
package data (:data:`mrgrpo.lm.models.TINY_MATH_DIR`, model id ``"tiny-math"``).
"""
from __future__ import annotations

from mrgrpo.tiny.card import write_model_card
from mrgrpo.tiny.corpus import DEFAULT_CORPUS_DIR, build_mini_corpus, corpus_summary
from mrgrpo.tiny.evaluate import DEFAULT_MODEL_DIR, TINY_L0, TINY_MAX_NEW_TOKENS, evaluate_policy, tiny_reward_fn

__all__ = ["DEFAULT_MODEL_DIR", "DEFAULT_CORPUS_DIR", "TINY_L0", "TINY_MAX_NEW_TOKENS", "tiny_reward_fn",
           "evaluate_policy", "build_mini_corpus", "corpus_summary", "write_model_card"]
