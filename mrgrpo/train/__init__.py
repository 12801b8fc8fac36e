"""Multi-reward GRPO training: :class:`GRPOConfig` and :class:`GRPOTrainer`.

``config`` (the dataclass), ``trainer`` (the loop), ``sampling`` (KV-cache
sampling), ``masks`` (which tokens count), ``losses`` (surrogate, k3 KL),
``checkpoint`` (atomic save / resume), ``metrics`` (what is logged).
"""
from .config import GRPOConfig, default_model_path
from .trainer import GRPOTrainer

__all__ = ["GRPOConfig", "GRPOTrainer", "default_model_path"]
