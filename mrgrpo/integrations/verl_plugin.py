"""verl plugin: importing this module readies a verl process for the ``mrgrpo_*`` estimators.

verl imports it at ``import verl`` through either of its hooks:

- the ``verl.plugins`` entry point that ``pip install mrgrpo[verl]`` declares, or
- ``VERL_USE_EXTERNAL_MODULES=mrgrpo.integrations.verl_plugin`` in the environment.

It registers ``mrgrpo_na``, ``mrgrpo_an`` and ``mrgrpo_single`` and makes verl's
``compute_advantage`` hand them the per-channel rewards (:func:`mrgrpo.integrations.verl.install`).
"""
from mrgrpo.integrations.verl import install

install()
