"""Model-randomization sanity checks (Adebayo et al., NeurIPS 2018, arXiv 1810.03292).

A map that explains the model must change when the model's weights are replaced by random ones.

* ``cascading``: layers are randomized from the top (output) layer down, cumulatively; after each
  step every method's map is compared with its map on the original model;
* ``independent``: one layer at a time is randomized, the others keep their weights.

Similarity per image: Spearman rank correlation with and without absolute values, SSIM and HOG
(``workbench.metrics.similarity``). The target class stays the original model's prediction.
Randomizing a layer re-draws its weight i.i.d. Gaussian, by default with the layer's own weight
standard deviation (``scale="matched"``: only the direction of the weights changes, so activation
scales stay comparable) or N(0, 1 / fan_in) (``scale="fan-in"``); biases and BatchNorm statistics
are kept (the paper randomizes weights). Randomization always happens on a deep copy.

The alignment theory (``workbench.studies.alignment``) predicts the outcome the paper observed: the
negative-filtering methods (GBP, RectGrad, LRP z+, DTD) stay close to the original map under
cascading randomization -- their maps are dominated by the input -- while the gradient's do not.
``RandomizationResult.contrast`` tests that with a paired one-sided Wilcoxon test over images.
``plot_randomization`` draws similarity against the randomized layer, one line per method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.nets.randomize import randomized_models
from workbench.methods.base import Method
from workbench.metrics.similarity import applicable_measures, map_similarity

@dataclass(frozen=True)
class RandomizationResult:
    """Similarity of each method's map on the randomized models to its map on the original.

    ``scores[label][measure]`` has shape (images, steps); step k is ``layers[k]`` randomized
    (cumulatively from the top for ``cascading``, alone for ``independent``).
    """

    mode: str
    layers: list
    scores: dict
    layer_types: tuple = ()

    @property
    def methods(self) -> list[str]:
        return list(self.scores)

    @property
    def measures(self) -> list[str]:
        return list(next(iter(self.scores.values())))

    def medians(self, label: str, measure: str) -> np.ndarray:
        return np.median(self.scores[label][measure], axis=0)

    def contrast(self, label: str, reference: str, measure: str, step: int) -> tuple[float, float, int]:
        """(median difference, one-sided Wilcoxon p that `label` stays closer than `reference`, n)
        at randomization step `step`, paired by image."""
        from workbench.studies.alignment import paired_tests

        a, b = self.scores[label][measure][:, step], self.scores[reference][measure][:, step]
        return float(np.median(a - b)), paired_tests(a, b)[0], len(a)

    def table(self, measure: str) -> str:
        from workbench.check.search import format_table

        rows = [("method", *self.layers)]
        for k in self.scores:
            rows.append((k, *[f"{v:.3f}" for v in self.medians(k, measure)]))
        return f"{self.mode} randomization, median {measure} (columns: layer randomized, top first)\n" + format_table(rows)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "layers": self.layers, "layer_types": list(self.layer_types), "scores": {k: {m: v.tolist() for m, v in d.items()} for k, d in self.scores.items()}}


def randomization_test(
    methods: Sequence[Method],
    model: nn.Module,
    x: Tensor,
    *,
    mode: str = "cascading",
    target: Optional[Union[int, Tensor]] = None,
    seed: int = 0,
    scale: str = "matched",
    measures: Optional[Sequence[str]] = None,
    layers: Optional[Sequence[str]] = None,
) -> RandomizationResult:
    """Randomize the model's layers (``mode``) and compare every method's maps on a batch of inputs
    with the maps on the original model; the target is the original model's top class unless given."""
    if not methods:
        raise InputError("randomization_test needs at least one method")
    with torch.no_grad():
        t = model(x).argmax(1) if target is None else torch.as_tensor(target).expand(x.shape[0])
    names = tuple(measures) if measures is not None else applicable_measures(tuple(x.shape))
    base = {m.label: m.attribute(model, x, target=t) for m in methods}
    steps = randomized_models(model, mode, seed=seed, scale=scale, layers=layers)
    scores: dict = {m.label: {k: [] for k in names} for m in methods}
    for _, net in steps:
        for m in methods:
            sim = map_similarity(base[m.label], m.attribute(net, x, target=t), names)
            for k in names:
                scores[m.label][k].append(sim[k])
    arrays = {lab: {k: np.stack(v, axis=1) for k, v in d.items()} for lab, d in scores.items()}
    modules = dict(model.named_modules())
    return RandomizationResult(mode, [n for n, _ in steps], arrays, tuple(type(modules[n]).__name__ for n, _ in steps))


MEASURE_TITLES = {
    "spearman_abs": "Spearman rank correlation (absolute)",
    "spearman": "Spearman rank correlation (signed)",
    "ssim": "SSIM",
    "hog": "HOG similarity",
}


def plot_randomization(result: RandomizationResult, path: Union[str, Path], *, measures: Optional[Sequence[str]] = None, title: str = "") -> Path:
    """A PNG: one panel per measure, similarity (median over images, interquartile band) against
    the randomized layer ("original" first, then the layers in randomization order), one line per
    method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(measures) if measures is not None else result.measures
    unknown = [m for m in names if m not in result.measures]
    if unknown:
        raise InputError(f"the result has no measures {unknown}; it has {result.measures}")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 2.2, 3.8), squeeze=False)
    kinds = result.layer_types or ("",) * len(result.layers)
    ticks = ["original", *[f"{n} ({k})" if k else n for n, k in zip(result.layers, kinds)]]
    xs = np.arange(len(ticks))
    for ax, measure in zip(axes[0], names):
        for label in result.methods:
            v = result.scores[label][measure]
            med = np.concatenate([[1.0], np.median(v, axis=0)])
            q1 = np.concatenate([[1.0], np.percentile(v, 25, axis=0)])
            q3 = np.concatenate([[1.0], np.percentile(v, 75, axis=0)])
            (line,) = ax.plot(xs, med, marker="o", label=label)
            ax.fill_between(xs, q1, q3, color=line.get_color(), alpha=0.15)
        ax.set_xticks(xs)
        ax.set_xticklabels(ticks, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(-1.05 if measure == "spearman" else -0.55, 1.05)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_title(MEASURE_TITLES.get(measure, measure), fontsize=10)
        ax.set_xlabel(f"{result.mode} randomization (top layer first)", fontsize=8)
    axes[0][0].set_ylabel("similarity to the original map")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # beside, not over, the curves
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
