"""Faithfulness metrics: how well a saliency map of *any* method explains the model's output.

Each metric takes ``(model, x, saliency, *, target, ...)`` with a batched image tensor x
(N, C, H, W) and a map of x's shape (or one channel), evaluates all images of all samples in
batches, and leaves the model as it found it.

* ``deletion_curve`` / ``insertion_curve`` / ``deletion_insertion`` -> ``Curve`` (``.area``):
  RISE / I-GOS deletion and insertion (``workbench.metrics.deletion``);
* ``pixel_perturbation`` -> ``PixelPerturbation`` (``.change``): FullGrad's removal of the
  least salient pixels (``workbench.metrics.perturbation``);
* ``map_similarity`` / ``spearman`` / ``ssim`` / ``hog_similarity``: how alike two maps are, per
  sample (the randomization sanity checks; ``workbench.metrics.similarity``);
* ``PatchFixture``: a constructed CNN with a known perfect map, to test metrics and methods
  (``workbench.metrics.fixtures``).
"""

from workbench.metrics.deletion import BLURRED_CANVAS, Curve, deletion_curve, deletion_insertion, insertion_curve
from workbench.metrics.fixtures import Patch, PatchFixture
from workbench.metrics.perturbation import FULLGRAD_PERCENTAGES, PixelPerturbation, pixel_perturbation
from workbench.metrics.scores import class_scores
from workbench.metrics.similarity import MEASURES, applicable_measures, hog_similarity, map_similarity, spearman, ssim

__all__ = [
    "BLURRED_CANVAS", "Curve", "FULLGRAD_PERCENTAGES", "MEASURES", "Patch", "PatchFixture", "PixelPerturbation",
    "applicable_measures", "class_scores", "deletion_curve", "deletion_insertion", "hog_similarity", "insertion_curve",
    "map_similarity", "pixel_perturbation", "spearman", "ssim",
]
