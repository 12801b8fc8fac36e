"""mrgrpo.core.stats.sample_correlation against the paper's analysis code and the NA identity."""
from __future__ import annotations

import numpy as np
import pytest

from multireward_grpo.analysis import sample_correlation as ref_sample_correlation
from mrgrpo.core.advantage import compute_advantage_batch
from mrgrpo.core.stats import sample_correlation


@pytest.mark.parametrize("seed", range(8))
def test_matches_reference_per_group(seed):
    rng = np.random.default_rng(seed)
    P, K, m, R = 3, 4, int(rng.integers(2, 20)), int(rng.integers(1, 5))
    r = rng.normal(size=(P, K, m, R)) * rng.exponential(size=R) + rng.normal(size=R)
    r[0, 0, :, 0] = (rng.random(m) < 0.5)  # binary channel
    got = sample_correlation(r)
    assert got.shape == (P, K, R, R)
    for idx in np.ndindex(P, K):
        np.testing.assert_allclose(got[idx], ref_sample_correlation(r[idx]), rtol=0, atol=1e-12)


def test_constant_channel_row_and_column_are_zero():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(10, 3))
    r[:, 1] = 0.1
    C = sample_correlation(r)
    np.testing.assert_array_equal(C[1, :], 0.0)
    np.testing.assert_array_equal(C[:, 1], 0.0)
    # the reference agrees up to its rounding artefact in the constant channel
    np.testing.assert_allclose(C, ref_sample_correlation(r), rtol=0, atol=1e-12)
    assert np.isfinite(sample_correlation(r, eps=0.0)).all()


def test_properties_symmetric_unit_diagonal_psd():
    rng = np.random.default_rng(2)
    r = rng.normal(size=(50, 12, 4))
    C = sample_correlation(r, eps=0.0)
    np.testing.assert_allclose(C, np.swapaxes(C, -1, -2), atol=1e-15)
    np.testing.assert_allclose(np.diagonal(C, axis1=-2, axis2=-1), 1.0, atol=1e-14)
    assert np.linalg.eigvalsh(C).min() > -1e-12
    # with the default eps the diagonal is var / (var + eps)
    C8 = sample_correlation(r)
    var = r.var(axis=-2)
    np.testing.assert_allclose(np.diagonal(C8, axis1=-2, axis2=-1), var / (var + 1e-8), rtol=1e-14)


def test_na_identity_mean_square_advantage_is_wCw():
    # mean_j A_j^2 = w^T C_hat w exactly in every group (eps = 0 in both conventions)
    rng = np.random.default_rng(3)
    r = rng.normal(size=(20, 9, 3)) * [1.0, 4.0, 0.3]
    w = np.array([1.0, 1.0, 0.5])
    A = compute_advantage_batch(r, w, "na", eps=0.0)
    C = sample_correlation(r, eps=0.0)
    np.testing.assert_allclose((A**2).mean(-1), np.einsum("i,pij,j->p", w, C, w), rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        sample_correlation(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="group size m >= 2"):
        sample_correlation(np.ones((1, 2)))
    with pytest.raises(ValueError, match="eps must be"):
        sample_correlation(np.ones((3, 2)), eps=-1)
