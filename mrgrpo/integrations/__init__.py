"""mrgrpo inside the engines that scale: TRL and verl.

- :mod:`mrgrpo.integrations.trl`: ``MultiRewardGRPOTrainer``, TRL's ``GRPOTrainer`` with
  mrgrpo's advantages (NA / AN / single, the paper's or TRL's normalization, conditioning);
  :mod:`mrgrpo.integrations.trl_inputs` turns an mrgrpo task into TRL's reward functions
  and dataset; :mod:`mrgrpo.integrations.trl_config` holds ``MultiRewardGRPOConfig`` (the settings
  as ``GRPOConfig`` fields) and :mod:`mrgrpo.integrations.trl_cli` the command
  ``python -m mrgrpo.integrations.trl --config my.yaml``. Needs the ``[trl]`` extra
  (``pip install -e '.[trl]'`` in a clone).
- :mod:`mrgrpo.integrations.verl`: the verl advantage estimators ``mrgrpo_na``,
  ``mrgrpo_an`` and ``mrgrpo_single``; :mod:`mrgrpo.integrations.verl_plugin` is what
  verl's plugin hook loads. Needs the ``[verl]`` extra (``pip install -e '.[verl]'``).

Both read their settings into one :class:`mrgrpo.core.advantage_spec.AdvantageSpec`, which
computes the advantages (with TRL's ``None`` = unscored); the metrics are
:mod:`mrgrpo.core.advantage_diagnostics`.

Importing this package loads none of TRL, verl or torch; import the submodule you use.
"""
