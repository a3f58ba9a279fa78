"""Similarity of two saliency maps, per sample: the measures of the randomization sanity checks
(Adebayo et al., NeurIPS 2018, arXiv 1810.03292).

Maps of images (N, C, H, W) are first reduced to one value per pixel (``ranking.pixel_saliency``):
``"abs-sum"`` (sum over channels of |A|) for the absolute measures, ``"sum"`` for the signed one;
flat maps (N, D) are compared as they are.

* ``spearman(a, b, absolute=True)``: Spearman rank correlation of the reduced maps -- with absolute
  values (the paper's main measure: the visualizations show |A|) or signed (``absolute=False``),
  which also sees a sign flip;
* ``ssim(a, b)``: structural similarity (scikit-image) of the absolute maps, each scaled to [0, 1]
  by its maximum (images only; the window is the largest odd size up to 7 that fits);
* ``hog_similarity(a, b)``: Pearson correlation of the histogram-of-oriented-gradients features
  (scikit-image) of the absolute maps scaled to [0, 1] (images of at least 8 x 8 pixels);
* ``map_similarity(a, b, measures)``: a dict of the above, measure -> (N,) array.

Degenerate cases are defined, not NaN: two constant maps are identical (1), a constant map
against a varying one is unrelated (0).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor

from workbench.core.errors import InputError
from workbench.metrics.ranking import pixel_saliency

MEASURES: tuple[str, ...] = ("spearman_abs", "spearman", "ssim", "hog")


def _check_pair(a: Tensor, b: Tensor) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise InputError(f"map {name} must be a torch.Tensor, got {type(t).__name__}")
    if a.shape != b.shape:
        raise InputError(f"maps to compare must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 2 or a.shape[0] == 0:
        raise InputError(f"maps must be batched (N, ...), got shape {tuple(a.shape)}")


def reduced(a: Tensor, *, absolute: bool) -> np.ndarray:
    """(N, pixels) float64: channels reduced for images (abs-sum or sum), flattened otherwise."""
    t = a.detach().cpu().double()
    if t.dim() == 4:
        return pixel_saliency(t, t, "abs-sum" if absolute else "sum").numpy()
    t = t.reshape(t.shape[0], -1)
    return (t.abs() if absolute else t).numpy()


def _images(a: Tensor, what: str) -> np.ndarray:
    if a.dim() != 4:
        raise InputError(f"{what} compares image maps (N, C, H, W), got shape {tuple(a.shape)}")
    m = reduced(a, absolute=True).reshape(a.shape[0], a.shape[2], a.shape[3])
    top = m.reshape(m.shape[0], -1).max(axis=1)
    return m / np.where(top > 0, top, 1.0)[:, None, None]


def _degenerate(u: np.ndarray, v: np.ndarray) -> float | None:
    cu, cv = np.ptp(u) == 0, np.ptp(v) == 0
    if cu and cv:
        return 1.0
    if cu or cv:
        return 0.0
    return None


def spearman(a: Tensor, b: Tensor, *, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation per sample of the reduced maps (absolute or signed)."""
    from scipy import stats

    _check_pair(a, b)
    ra, rb = reduced(a, absolute=absolute), reduced(b, absolute=absolute)
    out = []
    for u, v in zip(ra, rb):
        d = _degenerate(u, v)
        out.append(d if d is not None else float(stats.spearmanr(u, v).statistic))
    return np.asarray(out)


def ssim(a: Tensor, b: Tensor) -> np.ndarray:
    """Structural similarity per sample of the absolute maps scaled to [0, 1] (images only)."""
    from skimage.metrics import structural_similarity

    _check_pair(a, b)
    ma, mb = _images(a, "ssim"), _images(b, "ssim")
    side = min(ma.shape[1:])
    if side < 3:
        raise InputError(f"ssim needs maps of at least 3 x 3 pixels, got {tuple(ma.shape[1:])}")
    win = min(7, side if side % 2 else side - 1)
    out = []
    for u, v in zip(ma, mb):
        d = _degenerate(u, v)
        out.append(d if d is not None else float(structural_similarity(u, v, data_range=1.0, win_size=win)))
    return np.asarray(out)


def hog_similarity(a: Tensor, b: Tensor) -> np.ndarray:
    """Pearson correlation per sample of the HOG features of the absolute maps (images >= 8 x 8)."""
    from skimage.feature import hog

    _check_pair(a, b)
    ma, mb = _images(a, "hog_similarity"), _images(b, "hog_similarity")
    side = min(ma.shape[1:])
    if side < 8:
        raise InputError(f"hog_similarity needs maps of at least 8 x 8 pixels, got {tuple(ma.shape[1:])}")
    cell = max(2, side // 8)
    feats = lambda m: hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)
    out = []
    for u, v in zip(ma, mb):
        fu, fv = feats(u), feats(v)
        d = _degenerate(fu, fv)
        out.append(d if d is not None else float(np.corrcoef(fu, fv)[0, 1]))
    return np.asarray(out)


def applicable_measures(shape: Sequence[int]) -> tuple[str, ...]:
    """The measures defined for maps of this shape (SSIM needs images >= 3 px, HOG >= 8 px)."""
    if len(shape) != 4:
        return ("spearman_abs", "spearman")
    side = min(shape[2], shape[3])
    return ("spearman_abs", "spearman") + (("ssim",) if side >= 3 else ()) + (("hog",) if side >= 8 else ())


def map_similarity(a: Tensor, b: Tensor, measures: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """measure -> per-sample similarity of maps a and b; default: every measure that applies."""
    _check_pair(a, b)
    names = tuple(measures) if measures is not None else applicable_measures(tuple(a.shape))
    unknown = [m for m in names if m not in MEASURES]
    if unknown:
        raise InputError(f"unknown similarity measures {unknown}; known: {', '.join(MEASURES)}")
    funcs = {
        "spearman_abs": lambda: spearman(a, b, absolute=True),
        "spearman": lambda: spearman(a, b, absolute=False),
        "ssim": lambda: ssim(a, b),
        "hog": lambda: hog_similarity(a, b),
    }
    return {m: funcs[m]() for m in names}
