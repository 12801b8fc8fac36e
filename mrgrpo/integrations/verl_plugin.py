"""verl plugin: importing this module readies a verl process for the ``mrgrpo_*`` estimators.

verl imports it at ``import verl`` through either of its hooks:

- the ``verl.plugins`` entry point that installing mrgrpo declares (``pip install -e '.[verl]'``), or
- ``VERL_USE_EXTERNAL_MODULES=mrgrpo.integrations.verl_plugin`` in the environment.

It registers ``mrgrpo_na``, ``mrgrpo_an`` and ``mrgrpo_single`` and makes verl's
``compute_advantage`` hand them the per-channel rewards (:func:`mrgrpo.integrations.verl.install`).

verl 0.9.1 logs a plugin that fails to import at DEBUG level only, so a broken install would
show up after a whole rollout, at the first advantage step. This module says so at once: a
WARNING on the ``mrgrpo`` logger (printed to stderr even where logging is not configured) naming
the error, then the error itself.
"""
import logging

try:
    from mrgrpo.integrations.verl import install

    install()
except Exception as _exc:
    _message = (f"mrgrpo's verl plugin failed to load ({type(_exc).__name__}: {_exc}); the mrgrpo_na, "
                "mrgrpo_an and mrgrpo_single estimators are NOT registered in this process. Check "
                "`python -c \"import mrgrpo.integrations.verl_plugin\"` in the environment verl runs in")
    logging.getLogger("mrgrpo").warning(_message)
    raise
