"""The global RNG states a training run touches (torch, numpy's legacy generator, python's
``random``, CUDA), as JSON-ready integers and floats: saved without pickle, restored
bit for bit (a float survives JSON exactly, through its shortest repr)."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]


def capture_rng_state() -> dict:
    """Every global RNG the training loop may touch, as JSON-ready integers and floats."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"format": 1, "torch": torch.get_rng_state().tolist(),
             "numpy": {"bit_generator": str(name), "keys": [int(k) for k in keys], "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": int(version), "state": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _int_list(value: Any, field: str, length: int | None = None) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in value):
        raise ValueError(f"RNG state field {field!r} must be a list of integers")
    if length is not None and len(value) != length:
        raise ValueError(f"RNG state field {field!r} must hold {length} integers, got {len(value)}")
    return value


def restore_rng_state(state: dict) -> None:
    """Set the global RNGs from :func:`capture_rng_state`'s dict.

    Raises
    ------
    ValueError
        If a field is missing or has the wrong type or length (naming it).
    """
    try:
        np_state, py_state = state["numpy"], state["python"]
        torch_state = torch.tensor(_int_list(state["torch"], "torch"), dtype=torch.uint8)
        np_tuple = (str(np_state["bit_generator"]),
                    np.array(_int_list(np_state["keys"], "numpy.keys", 624), dtype=np.uint32),
                    int(np_state["pos"]), int(np_state["has_gauss"]),
                    float(np_state["cached_gaussian"]))
        gauss = py_state["gauss_next"]
        if gauss is not None and not isinstance(gauss, float):
            raise ValueError("RNG state field 'python.gauss_next' must be a float or null")
        py_tuple = (int(py_state["version"]), tuple(_int_list(py_state["state"], "python.state", 625)),
                    gauss)
        cuda = [torch.tensor(_int_list(s, "cuda"), dtype=torch.uint8) for s in state.get("cuda", [])]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"RNG state is malformed: missing or wrong field {exc}") from None
    torch.set_rng_state(torch_state)
    np.random.set_state(np_tuple)
    random.setstate(py_tuple)
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
