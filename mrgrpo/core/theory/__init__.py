"""The paper's closed forms.

Each function states its equation in the docstring and validates its input
(``ValueError`` naming the problem). Notation: ``R`` channels, weights
``w (R,)``, per-channel scales ``sigma (R,)``, population correlation
``C (R, R)``, group size ``m``.

Batches: the Prop-1 and Theorem-3 closed forms also take stacks
``w (..., R)``, ``sigma (..., R)``, ``C (..., R, R)`` (and an array ``m``);
the leading dimensions broadcast against each other by numpy's rules, and a
bad matrix is named by its batch index. Their unvalidated kernels
(``influence_an_unchecked``, ``influence_na_unchecked``, ``expected_sample_correlation_unchecked``) serve
callers that build valid inputs themselves (:mod:`mrgrpo.analysis`).

- Prop 1 (influence law): :func:`influence_an`, :func:`influence_na`.
- Prop 2 (resolution): :func:`lattice_count`, :func:`sum_lattice_bound`,
  :func:`product_lattice_condition`.
- Theorem 3 (MSE law): :func:`thm3_oracle_mse`, :func:`expected_sample_correlation`,
  :func:`thm3_selfnorm_mse`; the exact Gaussian :func:`gaussian_expected_correlation`.
- Supplement (figS3): :func:`gaussian_sigma_hat_mean`, :func:`gaussian_sigma_hat_bias`.
- Baseline bias (fig2a): :func:`single_reward_theta`, :func:`baseline_estimator_mean`.
- Prop 4 (bias law): :func:`prop4_beta`, :func:`prop4_gamma_star`.
"""
from __future__ import annotations

from mrgrpo.core.theory.bias import (baseline_estimator_mean, gaussian_sigma_hat_bias, gaussian_sigma_hat_mean,
                                     prop4_beta, prop4_gamma_star, single_reward_theta)
from mrgrpo.core.theory.influence import influence_an, influence_na
from mrgrpo.core.theory.lattice import lattice_count, product_lattice_condition, sum_lattice_bound
from mrgrpo.core.theory.mse import (expected_sample_correlation, gaussian_expected_correlation, thm3_oracle_mse,
                                    thm3_selfnorm_mse)
from mrgrpo.core.theory.validation import check_correlation

__all__ = [
    "influence_an",
    "influence_na",
    "lattice_count",
    "sum_lattice_bound",
    "product_lattice_condition",
    "thm3_oracle_mse",
    "expected_sample_correlation",
    "thm3_selfnorm_mse",
    "gaussian_expected_correlation",
    "gaussian_sigma_hat_mean",
    "gaussian_sigma_hat_bias",
    "single_reward_theta",
    "baseline_estimator_mean",
    "prop4_beta",
    "prop4_gamma_star",
    "check_correlation",
]
