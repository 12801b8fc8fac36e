"""KV-cache plumbing shared by every sampling and scoring loop in ``mrgrpo``.

transformers 5.x renamed the cache argument of ``forward`` (``past_key_values``
to ``cache``) and grows its dynamic cache by ``torch.cat``. The helpers here
hide the first difference and remove the second's cost, in one place for
:mod:`mrgrpo.lm.sampling` and :mod:`mrgrpo.lm.scores`.
"""
from __future__ import annotations

import inspect
from typing import Any

__all__ = ["cache_kwarg", "cache_of", "preallocate"]


def cache_kwarg(model) -> str:
    """Name of the KV-cache argument of ``model.forward``: ``cache`` in transformers 5.x,
    ``past_key_values`` for older models and peft wrappers."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def cache_of(out) -> Any:
    """The KV cache a forward pass returned, whichever name it has."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def preallocate(cache: Any, extra: int) -> None:
    """Give each plain dynamic cache layer room for ``extra`` more positions.

    transformers' ``DynamicLayer`` appends by ``torch.cat``, which copies the
    whole cache at every token (half the decode time for a tiny model). Layers
    of exactly that class are switched to :class:`_BufferedLayer`, which writes
    into a preallocated buffer (in the cache's own dtype: bfloat16 under a bf16
    policy) and keeps ``reorder_cache`` (dropping ended rows) working; any other
    cache is left as it is.
    """
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # pragma: no cover - older transformers
        return
    for layer in getattr(cache, "layers", ()):
        if type(layer) is not DynamicLayer or not getattr(layer, "is_initialized", False) or layer.keys.numel() == 0:
            continue
        n = layer.keys.shape[-2]
        for name in ("keys", "values"):
            old = getattr(layer, name)
            buf = old.new_empty((*old.shape[:-2], n + extra, old.shape[-1]))
            buf[..., :n, :] = old
            setattr(layer, "_buf_" + name, buf)
            setattr(layer, name, buf[..., :n, :])
        layer.__class__ = _get_buffered_layer()


_BUFFERED: Any = None


def _get_buffered_layer():
    global _BUFFERED
    if _BUFFERED is None:
        from transformers.cache_utils import DynamicLayer

        class _BufferedLayer(DynamicLayer):
            def update(self, key_states, value_states, *args, **kwargs):
                n, q = self.keys.shape[-2], key_states.shape[-2]
                if n + q > self._buf_keys.shape[-2]:  # out of room: fall back to concatenation
                    self.__class__ = DynamicLayer
                    return DynamicLayer.update(self, key_states, value_states, *args, **kwargs)
                self._buf_keys[..., n:n + q, :] = key_states
                self._buf_values[..., n:n + q, :] = value_states
                self.keys = self._buf_keys[..., :n + q, :]
                self.values = self._buf_values[..., :n + q, :]
                return self.keys, self.values

            def reorder_cache(self, beam_idx):
                """Keep (or reorder) batch rows: the buffers too, so later updates write the kept rows."""
                n = self.keys.shape[-2]
                idx = beam_idx.to(self._buf_keys.device)
                self._buf_keys = self._buf_keys.index_select(0, idx)
                self._buf_values = self._buf_values.index_select(0, idx)
                self.keys = self._buf_keys[..., :n, :]
                self.values = self._buf_values[..., :n, :]

        _BUFFERED = _BufferedLayer
    return _BUFFERED
