"""Multi-reward GRPO training: :class:`GRPOConfig` and :class:`GRPOTrainer`.

``config`` (the dataclass), ``trainer`` (the loop), ``masks`` (which tokens count), ``losses`` (surrogate, k3 KL),
``checkpoint`` (atomic save / resume), ``metrics`` (what is logged).
"""
from .config import GRPOConfig
from .trainer import GRPOTrainer
from .experiment import MODE_LABELS, Comparison, compare_estimators, evaluate_adapters, held_out_summary

__all__ = ["GRPOConfig", "GRPOTrainer", "MODE_LABELS", "Comparison", "compare_estimators",
           "held_out_summary", "evaluate_adapters"]
