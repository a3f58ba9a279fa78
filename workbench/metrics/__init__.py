"""Faithfulness metrics: how well a saliency map of *any* method explains the model's output.

Each metric takes ``(model, x, saliency, *, target, ...)`` with a batched image tensor x
(N, C, H, W) and a map of x's shape (or one channel), evaluates all images of all samples in
batches, and leaves the model as it found it.

* ``deletion_curve`` / ``insertion_curve`` / ``deletion_insertion`` -> ``Curve`` (``.area``):
  RISE / I-GOS deletion and insertion (``workbench.metrics.deletion``);
* ``pixel_perturbation`` -> ``PixelPerturbation`` (``.change``): FullGrad's removal of the
  least salient pixels (``workbench.metrics.perturbation``);
* ``PatchFixture``: a constructed CNN with a known perfect map, to test metrics and methods
  (``workbench.metrics.fixtures``).
"""

from .deletion import BLURRED_CANVAS, Curve, deletion_curve, deletion_insertion, insertion_curve
from .fixtures import Patch, PatchFixture
from .perturbation import FULLGRAD_PERCENTAGES, PixelPerturbation, pixel_perturbation
from .scores import class_scores

__all__ = [
    "BLURRED_CANVAS", "Curve", "FULLGRAD_PERCENTAGES", "Patch", "PatchFixture", "PixelPerturbation",
    "class_scores", "deletion_curve", "deletion_insertion", "insertion_curve", "pixel_perturbation",
]
