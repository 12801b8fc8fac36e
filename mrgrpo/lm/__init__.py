"""Language models (torch and Hugging Face), one home for each piece.

- :mod:`~mrgrpo.lm.models`   model ids (``tiny-math``, ``smollm2-135m-instruct``) and the tiny policy's files
- :mod:`~mrgrpo.lm.loader`   the one loader (:func:`load_model`) and the one EOS rule (:func:`eos_token_ids`)
- :mod:`~mrgrpo.lm.gguf`     GGUF files dequantized once into a safetensors cache
- :mod:`~mrgrpo.lm.prompts`  the one :class:`Prompt` type and normalizer, chat template, system prompt
- :mod:`~mrgrpo.lm.sampling` the one sampler (reproducible per prompt and seed; keeps token ids and EOS flags)
- :mod:`~mrgrpo.lm.padding`  left padding and position ids
- :mod:`~mrgrpo.lm.kvcache`  KV-cache plumbing
- :mod:`~mrgrpo.lm.scores`   score projections ``v^T grad log pi(y | x)``

``model_path(model_id)`` is the folder any library loads a model id from by path.

Importing this package imports nothing heavy; ``prompts`` and ``models`` never import torch.
"""
from mrgrpo.lm.loader import model_path

__all__ = ["model_path"]
