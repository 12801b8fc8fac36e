"""Correlated reward generators, Proposition 4's model and the Tier-1 Monte-Carlo.

- :mod:`mrgrpo.sim.copula`      the one Gaussian-copula solver: the latent normal
  correlation that gives a target reward correlation (Gaussian/Bernoulli marginals,
  any mix), the attainable ranges, the PSD check; used by the generators and by
  :class:`mrgrpo.corpus.MockBackend`
- :mod:`mrgrpo.sim.generators`  Gaussian (Cholesky), Bernoulli and mixed
  channels (Gaussian copula) with a target Pearson correlation
- :mod:`mrgrpo.sim.prop4`       the generative model of Proposition 4
- :mod:`mrgrpo.sim.exact`       exact moments of the discrete estimators (enumeration)
- :mod:`mrgrpo.sim.experiments` one function per Tier-1 figure (defined by theme in
  ``exp_theorem3``, ``exp_influence``, ``exp_single_reward``, ``exp_group_size``,
  ``exp_prop4``), :data:`EXPERIMENTS`, :func:`run_all`
"""
from mrgrpo.sim.copula import (bernoulli_thresholds, copula_correlation_bounds, copula_pair_correlation,
                               point_biserial_cap, solve_latent_pair)
from mrgrpo.sim.experiments import (EXPERIMENTS, PAPER_TRIALS, fig1a, fig1b, fig1c, fig2a, fig2b,
                                    fig2c, figM1, figP2, figS1, figS2, figS3, figT1, figT2, figT3,
                                    run_all)
from mrgrpo.sim.generators import (bernoulli_correlation_bounds, bernoulli_pair_correlation,
                                   bernoulli_rewards, copula_latent_correlation, gaussian_rewards,
                                   mixed_rewards)
from mrgrpo.sim.prop4 import prop4_model

__all__ = [
    "gaussian_rewards", "bernoulli_rewards", "mixed_rewards", "copula_latent_correlation",
    "bernoulli_correlation_bounds", "bernoulli_pair_correlation", "copula_pair_correlation",
    "copula_correlation_bounds", "point_biserial_cap", "solve_latent_pair", "bernoulli_thresholds", "prop4_model",
    "fig1a", "fig1b", "fig1c", "figS1", "figS2", "figS3", "fig2a", "fig2b", "fig2c",
    "figM1", "figP2", "figT1", "figT2", "figT3", "EXPERIMENTS", "PAPER_TRIALS", "run_all",
]
