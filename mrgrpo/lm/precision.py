"""The one precision rule: which dtype a policy's weights load in, and whether its forward passes autocast.

Both training engines and the held-out evaluation ask :func:`precision` (TRL's ``bf16`` / ``fp16``
flags are the same decision, spelled TRL's way: :attr:`Precision.trl_flags`).

Which dtype
-----------
- An explicit ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``) always wins, on any device.
- ``"auto"`` on a CUDA GPU is bfloat16.
- ``"auto"`` on the CPU is bfloat16 when the CPU computes bfloat16 natively
  (:func:`cpu_has_native_bf16`: AVX512-BF16 or AMX on x86, the BF16 extension on Arm) *and*
  the model is large enough to gain (:func:`gains_from_bf16`: not the shipped tiny policy,
  nor a local model whose hidden size is under :data:`MIN_BF16_HIDDEN`); float32 elsewhere. A CPU
  without those instructions (AVX-512 with VNNI only, say) runs bfloat16 matrix products by
  emulation, several times *slower* than float32, so ``auto`` keeps float32 there. (torch's
  ``mkldnn._is_mkldnn_bf16_supported`` says True on such a CPU: it is not the probe to ask.)

What runs in which precision (compute dtype ``c``, bfloat16 or float16)
-----------------------------------------------------------------------
- **Frozen base weights** (LoRA): stored in ``c`` (:attr:`Precision.weights`). They are never
  updated, and float32 copies under autocast would be cast again at every forward, every
  decoded token included. The residual stream then runs in ``c`` too, as in bf16 inference.
- **Trained weights and their optimizer state**: float32. peft keeps LoRA adapters in float32
  on a bf16 base (``autocast_adapter_dtype``), full fine-tuning keeps float32 master weights,
  and AdamW's moments follow their parameter's dtype; gradients reach them in float32.
- **Matrix products**: in ``c`` under ``torch.autocast(device type, c)`` (:meth:`Precision.autocast`),
  the lm head included, for the sampler, the reference and the policy passes alike. (An lm head
  in float32 was measured too: it moves SmolLM2's mean log-prob difference from float32 only from
  0.027 to 0.022, for a fifth of the forward FLOPs at float32's rate.)
- **KV cache**: in ``c`` (the keys and values the autocast projections write) under LoRA; the
  sampler preallocates it in that dtype (:func:`mrgrpo.lm.kvcache.preallocate`). (Under full
  fine-tuning the float32 residual stream makes the rotary-embedded keys float32.)
- **Log-probabilities**: the ``c`` logits are cast to float32 before the log-softmax
  (:func:`mrgrpo.train.losses.selected_logprobs`); the ratio, the k3 KL, the loss and its
  reduction are float32. The ratio's old and new log-probabilities of one step come from
  the same forward pass in the same precision (the old ones are the first pass's, detached),
  so the on-policy ratio is exactly 1 (``tests/test_train_precision.py``); the reference
  log-probabilities come from the same weights with the adapter off, in the same precision.

bfloat16 keeps 8 bits of mantissa: log-probabilities of SmolLM2-135M-Instruct under bf16 differ
from float32 ones on the same 384 sampled tokens by 0.027 on average (median 0.019, max 0.20;
per-token probability ratios 0.88 to 1.22). Both sides of a ratio and of the KL carry the same
rounding, which is why they must come from one precision. On a CPU without bf16 instructions the
same SmolLM2 GRPO step ran at 0.40x its float32 tokens/s (``benchmarks/bench_flops.py``).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Optional

import torch

__all__ = ["DTYPES", "MIN_BF16_HIDDEN", "Precision", "precision", "resolve_device", "cpu_has_native_bf16",
           "gains_from_bf16"]

#: The ``dtype`` settings :func:`precision` accepts (``GRPOConfig.dtype``'s choices; a test keeps them equal).
DTYPES = ("auto", "float32", "bfloat16", "float16")

#: ``auto`` keeps float32 on the CPU for a local model whose hidden size is below this: its matrix
#: products are too small for bfloat16 to pay (the shipped tiny policy's hidden size is 128).
MIN_BF16_HIDDEN = 256


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` as CUDA when a GPU is visible, else the CPU; any other name as ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX on x86, BF16 on Arm).

    Asks torch's own probes (``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``, the
    ones its kernels dispatch on); on Arm, or a torch without them, reads the CPU flags in
    ``/proc/cpuinfo``.
    """
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None and platform.machine().lower() in ("x86_64", "amd64"):
            try:
                if fn():
                    return True
            except RuntimeError:  # pragma: no cover - a torch built without the probe's backend
                pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.split(":")[0].strip().lower() in ("flags", "features"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _hidden_size(folder: Path) -> Optional[int]:
    """The hidden size in a Hugging Face folder's ``config.json`` (None when unreadable)."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    cfg = cfg.get("text_config", cfg) if isinstance(cfg, dict) else {}
    for key in ("hidden_size", "n_embd", "d_model"):
        if isinstance(cfg.get(key), int):
            return cfg[key]
    return None


def gains_from_bf16(model: Any) -> bool:
    """Whether ``model`` (an id, a folder, a hub id; None: unknown) is large enough for bfloat16 to pay on a CPU.

    False for the shipped tiny policy and for a local folder whose hidden size is under
    :data:`MIN_BF16_HIDDEN`; True otherwise (a model id such as SmolLM2, a hub id, unknown).
    """
    from mrgrpo.lm.models import is_tiny_math

    if model is None:
        return True
    if is_tiny_math(model):
        return False
    try:
        folder = Path(os.fspath(model)).expanduser()
        local = folder.is_dir()
    except (TypeError, OSError):
        return True
    hidden = _hidden_size(folder) if local else None
    return hidden is None or hidden >= MIN_BF16_HIDDEN


@dataclass(frozen=True)
class Precision:
    """What :func:`precision` decided for one device.

    Attributes
    ----------
    device_type : str
        ``"cuda"`` or ``"cpu"`` (the autocast device type).
    compute : torch.dtype
        The dtype the matrix products compute in.
    weights : torch.dtype
        The dtype to load the weights in (:func:`mrgrpo.lm.loader.load_model`'s ``dtype``): ``compute``
        under LoRA (frozen base), float32 otherwise (master weights).
    """

    device_type: str
    compute: torch.dtype
    weights: torch.dtype

    @property
    def on_gpu(self) -> bool:
        """The device is a CUDA GPU."""
        return self.device_type == "cuda"

    @property
    def autocasts(self) -> bool:
        """Whether forward passes run under ``torch.autocast`` (in :attr:`compute`)."""
        return self.compute != torch.float32

    def autocast(self) -> ContextManager[Any]:
        """A fresh context for one forward region: ``torch.autocast(device_type, compute)``, or a no-op."""
        if self.autocasts:
            return torch.autocast(self.device_type, dtype=self.compute)
        return contextlib.nullcontext()

    @property
    def trl_flags(self) -> dict[str, bool]:
        """``{"bf16": ..., "fp16": ...}`` for ``trl.GRPOConfig`` (TRL autocasts in that dtype, on the CPU
        too with ``use_cpu``)."""
        return {"bf16": self.compute == torch.bfloat16, "fp16": self.compute == torch.float16}


def precision(dtype: str, device: str | torch.device, *, lora: bool = False, model: Any = None) -> Precision:
    """The precision of a policy on ``device`` (see the module docstring).

    Parameters
    ----------
    dtype : {"auto", "float32", "bfloat16", "float16"}
        The setting (``GRPOConfig.dtype``); anything but ``"auto"`` is taken as given.
    device : str or torch.device
        Where the policy runs (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    lora : bool
        Whether only LoRA adapters train (the base weights then load in the compute dtype).
    model : str or path, optional
        The model (``GRPOConfig.model``); ``auto`` on a CPU keeps float32 for a small one
        (:func:`gains_from_bf16`).

    Returns
    -------
    Precision
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dev = resolve_device(device)
    on_gpu = dev.type == "cuda" and torch.cuda.is_available()
    if dtype != "auto":
        name = dtype
    elif on_gpu:
        name = "bfloat16"
    else:
        name = "bfloat16" if cpu_has_native_bf16() and gains_from_bf16(model) else "float32"
    compute = getattr(torch, name)
    return Precision(device_type="cuda" if on_gpu else "cpu", compute=compute,
                     weights=compute if lora else torch.float32)
