"""The Theorem-3 harness: ``analyze`` a ``(P, K, m, R)`` reward tensor, and the checks that can fail.

- :func:`analyze` / :class:`Thm3Result` / :func:`summary_print`  (:mod:`.harness`)
- :func:`identity_demo`, :func:`identity_gap`  why the random-score check is an identity (:mod:`.identity`)
- :func:`floor_check` / :class:`FloorResult`  ``E[C_hat_m]`` vs the population ``C`` (:mod:`.floor`)
- :func:`realized_influence`, :func:`predicted_influence`  Prop 1 (:mod:`.influence`)
- :func:`money_plot`, :func:`mse_vs_m_plot`, :func:`floor_plot`  figures (:mod:`.plots`)
- :mod:`.engine_conventions`  how TRL, verl, ms-swift and NVlabs/GDPO compute their NA advantage
  (read from their code; reference data for the integrations chapter)
"""
from .bootstrap import bootstrap_sums, bootstrap_weights, mean_ci, ratio_ci
from .floor import FloorResult, floor_check, population_stats
from .harness import MSE_ESTIMATORS, Thm3Result, analyze, loglog_fit, summary_print
from .identity import IdentityDemo, cauchy_cubed, identity_demo, identity_gap, identity_sides
from .influence import predicted_influence, realized_influence
from .plots import floor_plot, money_plot, mse_vs_m_plot

__all__ = [
    "analyze", "summary_print", "Thm3Result", "MSE_ESTIMATORS", "loglog_fit",
    "floor_check", "FloorResult", "population_stats",
    "identity_demo", "identity_gap", "identity_sides", "cauchy_cubed", "IdentityDemo",
    "realized_influence", "predicted_influence",
    "money_plot", "mse_vs_m_plot", "floor_plot",
    "bootstrap_weights", "bootstrap_sums", "mean_ci", "ratio_ci",
]
