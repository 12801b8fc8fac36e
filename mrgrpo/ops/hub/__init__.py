"""Share a trained adapter or a rollout corpus on the Hugging Face Hub.

Two steps each, so that a dry run is exactly the upload minus the network:
*stage* writes every file that would be uploaded into a folder (with a generated
card as ``README.md``), *push* creates the repo and uploads that folder with
``huggingface_hub.HfApi.create_repo`` + ``upload_folder``.

- :mod:`~mrgrpo.ops.hub.stage`  what is uploaded: an allow-list (adapter weights and
  config, tokenizer files, metrics, config, curve, card); everything else is listed
  and left out; staging is atomic and refuses files that hold a token or key (by value or by
  shape) or that lead outside the run folder (symbolic links)
- :mod:`~mrgrpo.ops.hub.cards`  the model and dataset cards, the training-curve figure
- :mod:`~mrgrpo.ops.hub.push`   the upload (or the dry run)

A run folder is read through :mod:`mrgrpo.train.checkpoint` (its
:class:`~mrgrpo.train.checkpoint.RunLayout`, ``read_run_config`` and
``read_run_table``), the one module that knows the run-folder layout.

Model repo layout: the adapter files at the top (``PeftModel.from_pretrained(repo)``
works), ``README.md``, ``training_curve.png`` and ``training/`` (config and the
metrics/eval tables). Dataset repo layout (the released corpora's):
``data/train.parquet``, the ``.npz`` at the top, ``README.md``.
"""
from __future__ import annotations

from .cards import card_cell, dataset_card, markdown_table, model_card, training_curve_figure
from .push import PushResult, hub_token, push_adapter, push_corpus
from .stage import (ADAPTER_FILES, REQUIRED_CORPUS_COLUMNS, TOKENIZER_FILES, RunFiles, Staged,
                    find_secrets, read_run_dir, stage_adapter, stage_corpus)

__all__ = ["RunFiles", "Staged", "PushResult", "read_run_dir", "model_card", "dataset_card",
           "training_curve_figure", "markdown_table", "card_cell", "stage_adapter",
           "stage_corpus", "push_adapter", "push_corpus", "hub_token", "find_secrets",
           "ADAPTER_FILES", "TOKENIZER_FILES", "REQUIRED_CORPUS_COLUMNS"]
