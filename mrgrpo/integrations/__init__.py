"""mrgrpo inside the engines that scale: TRL and verl.

- :mod:`mrgrpo.integrations.trl`: ``MultiRewardGRPOTrainer``, TRL's ``GRPOTrainer`` with
  mrgrpo's advantages (NA / AN / single, the paper's or TRL's convention, conditioning);
  :mod:`mrgrpo.integrations.trl_inputs` turns an mrgrpo task into TRL's reward functions
  and dataset. Needs ``pip install mrgrpo[trl]``.
- :mod:`mrgrpo.integrations.verl`: the verl advantage estimators ``mrgrpo_na``,
  ``mrgrpo_an`` and ``mrgrpo_single``; :mod:`mrgrpo.integrations.verl_plugin` is what
  verl's plugin hook loads. Needs ``pip install mrgrpo[verl]``.
- :mod:`mrgrpo.integrations.trl_engine`: the ``trl`` training engine, ``GRPOConfig(engine="trl")``
  run by TRL with mrgrpo's run folder (:mod:`~mrgrpo.integrations.trl_callbacks` keeps its records);
  :func:`mrgrpo.integrations.engines.make_trainer` picks the engine a config names.
- :mod:`mrgrpo.integrations.engine_conventions`: how TRL, verl, ms-swift and NVlabs/GDPO compute
  their NA advantage (read from their code), and those advantages on finite rewards.
- :mod:`mrgrpo.integrations.estimator`: what both share, the advantages of an engine's
  flat reward batch (with TRL's ``None`` = unscored) and their metrics.

Importing this package loads none of TRL, verl or torch; import the submodule you use.
"""
