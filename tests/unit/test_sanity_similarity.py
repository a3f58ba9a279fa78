"""Similarity measures of the sanity checks (workbench.metrics.similarity)."""

import numpy as np
import pytest
import torch

import workbench
from workbench.metrics import similarity as M


def _maps(seed=0, shape=(3, 2, 16, 16)):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_identical_maps_score_one_on_every_measure():
    a = _maps()
    for name, v in M.map_similarity(a, a.clone()).items():
        assert np.allclose(v, 1.0), name


def test_spearman_with_and_without_absolute_values():
    a = _maps()
    assert np.allclose(M.spearman(a, -a, absolute=True), 1.0)  # a sign flip is invisible in |A|
    assert np.allclose(M.spearman(a, -a, absolute=False), -1.0)
    b = a * 3.0 + 1e-9  # monotone: ranks unchanged
    assert np.allclose(M.spearman(a, b, absolute=False), 1.0)
    flat = torch.randn(4, 10, dtype=torch.float64)
    assert M.spearman(flat, flat).shape == (4,)


def test_unrelated_maps_score_low_and_structure_is_seen():
    a, b = _maps(0), _maps(1)
    sims = M.map_similarity(a, b)
    assert all(np.abs(v).max() < 0.35 for v in sims.values()), sims
    # a blurred copy keeps structure: SSIM and HOG see it
    blob = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    blob[..., 4:12, 5:9] = 1.0
    shifted = torch.roll(blob, 1, dims=3)
    other = torch.zeros_like(blob)
    other[..., 1:4, 10:15] = 1.0
    assert M.ssim(blob, shifted)[0] > M.ssim(blob, other)[0]
    assert M.hog_similarity(blob, shifted)[0] > M.hog_similarity(blob, other)[0]


def test_channels_are_reduced_by_abs_sum_and_sum():
    a = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    a[0, 0] = torch.arange(16.0).view(4, 4)
    a[0, 1] = -torch.arange(16.0).view(4, 4)
    assert np.allclose(M.reduced(a, absolute=True), 2 * np.arange(16.0))
    assert np.allclose(M.reduced(a, absolute=False), 0.0)


def test_degenerate_maps_are_defined():
    z = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    a = _maps(shape=(2, 1, 8, 8))
    assert np.allclose(M.spearman(z, z), 1.0) and np.allclose(M.spearman(z, a), 0.0)
    assert np.allclose(M.ssim(z, a), 0.0) and np.allclose(M.hog_similarity(z, z), 1.0)


def test_bad_inputs_get_clear_errors():
    a = _maps()
    with pytest.raises(workbench.InputError, match="same shape"):
        M.spearman(a, a[:, :1])
    with pytest.raises(workbench.InputError, match="image maps"):
        M.ssim(torch.randn(2, 5), torch.randn(2, 5))
    with pytest.raises(workbench.InputError, match="at least 8 x 8"):
        M.hog_similarity(_maps(shape=(1, 1, 6, 6)), _maps(shape=(1, 1, 6, 6)))
    with pytest.raises(workbench.InputError, match="unknown similarity"):
        M.map_similarity(a, a, ["psnr"])
    assert M.applicable_measures((1, 1, 6, 6)) == ("spearman_abs", "spearman", "ssim")
    assert M.applicable_measures((1, 5)) == ("spearman_abs", "spearman")
