"""Pixel perturbation (Srinivas & Fleuret, FullGrad, NeurIPS 2019, Section 5.1).

Remove the k% *least* salient pixels of each image under each method's map, replace them by the
data mean, and measure the absolute fractional change of the class output: a faithful map puts
the pixels the output does not need at the bottom, so lower is better. The paper reports
FullGrad below input-gradient, integrated gradients, SmoothGrad and Grad-CAM on ImageNet/VGG-16.

Default: the digits CNN on held-out digits (replacement: the images' per-channel mean), removing
5-50% of the 64 pixels. At the paper's scale: ``--set source=/data/imagenet/val --set model=vgg16
--set weights=ckpt.pt --set images=1000 --set replacement=0 --set percentages=0.1,1,3,5,10
--device cuda`` (0 is the mean of ImageNet-normalized images; those are the paper's percentages).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

import workbench
from workbench.runner import experiment as X
from workbench.metrics import pixel_perturbation
from workbench.data.pipeline import chunk_rows, with_chunk

RANDOM = "random"


@X.register
@dataclass(frozen=True)
class PixelPerturbation(X.ImageExperiment):
    name_prefix = "pixel-perturbation"
    claim = "removing the pixels FullGrad ranks least salient changes the output least (Srinivas & Fleuret 2019, Fig. 3)"

    images: int = 64
    methods: tuple = (RANDOM, "fullgrad", "gradient", "input-x-gradient", "integrated-gradients[tolerance=None,steps=32]",
                      "smoothgrad", "gradcam")
    percentages: tuple = (5, 10, 20, 30, 50)  # an 8x8 digit has 64 pixels; the paper's axis is FULLGRAD_PERCENTAGES
    replacement: Union[float, str] = "mean"  # "mean" (per-channel mean of the images used) or a number
    score: str = "probability"  # "probability" or "logit"
    batch_size: int = 16
    memory_budget: str = "2GB"  # bounds every pass: rows per pass measured on one probe (workbench.data.pipeline)

    batches_images = True  # batch_size images per pass; each image's changes do not depend on it

    def items(self) -> list[str]:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise workbench.InputError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        keys = self.image_source().keys()
        return [f"batch-{i // self.batch_size}" for i in range(0, len(keys), self.batch_size)]

    def item_images(self, key: str) -> list[str]:
        i = int(key.split("-")[1])
        return self.image_keys()[i * self.batch_size:(i + 1) * self.batch_size]

    def _replacement(self, ctx: X.Context):
        if isinstance(self.replacement, str):
            if self.replacement != "mean":
                raise workbench.InputError(f"replacement must be 'mean' or a number, got {self.replacement!r}")
        else:
            return float(self.replacement)

        def mean():  # a running sum over DataLoader batches: memory of one batch, not of the data set
            from workbench.data.pipeline import image_batches

            total, count = None, 0
            for _, x in image_batches(self.images_of(ctx), batch_size=64, dtype=torch.float64):
                s = x.sum(dim=(0, 2, 3), keepdim=True)
                total, count = (s if total is None else total + s), count + x.shape[0] * x.shape[2] * x.shape[3]
            return (total / count).to(self.torch_dtype())
        return ctx.cached("mean", mean)

    def run_item(self, key: str, ctx: X.Context) -> dict:
        model = self.loaded_model(ctx).model
        keys = self.item_images(key)
        x = self.batch(ctx, keys)
        rows, forward_rows = ctx.cached("rows", lambda: (chunk_rows(model, x[:1], self.memory_budget), chunk_rows(model, x[:1], self.memory_budget, backward=False)))
        with torch.no_grad():
            target = torch.cat([model(x[s:s + forward_rows]).argmax(1) for s in range(0, x.shape[0], forward_rows)]).cpu()
        fill = self._replacement(ctx)
        fill = fill.to(ctx.device, x.dtype).expand_as(x) if isinstance(fill, torch.Tensor) else fill
        changes = {}
        for m in self.methods:
            if m == RANDOM:
                # one draw per image, seeded by the image: the same map whatever batch the image is in
                saliency = torch.cat([torch.rand(1, 1, *x.shape[2:], generator=ctx.generator(f"{k}/random")) for k in keys]).to(ctx.device)
            else:
                method = with_chunk(workbench.method(m), rows)
                # images in groups of `rows`: a method's own per-image tensors (path points) stay bounded too
                saliency = torch.cat([method.attribute(model, x[s:s + rows], target=target[s:s + rows]) for s in range(0, x.shape[0], rows)])
            r = pixel_perturbation(model, x, saliency, target=target, percentages=self.percentages, replacement=fill, score=self.score, seed=self.seed, chunk_size=forward_rows)
            changes[m] = r.change.cpu().tolist()
        return {"images": keys, "changes": changes}

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        from scipy import stats

        from workbench.runner import summary as S

        ks = [float(k) for k in self.percentages]
        per = {m: np.concatenate([np.asarray(r["changes"][m]) for r in records]) for m in self.methods}
        mean = {m: per[m].mean(0) for m in self.methods}
        n = per[self.methods[0]].shape[0]
        best = {f"{k:g}": min(self.methods, key=lambda m: mean[m][j]) for j, k in enumerate(ks)}
        changes = S.table(["method"] + [f"{k:g}%" for k in ks], [[m] + [float(v) for v in mean[m]] for m in self.methods],
                          title="mean absolute fractional output change after removing the k% least salient pixels (lower is better)")
        pvalues: dict = {}
        if "fullgrad" in per:
            fg = per["fullgrad"].mean(1)
            for m in self.methods:
                if m != "fullgrad":
                    other = per[m].mean(1)
                    pvalues[m] = float(stats.wilcoxon(fg, other, alternative="less").pvalue) if np.any(other != fg) else 1.0
        tests = S.table(["FullGrad vs", "one-sided paired Wilcoxon p (FullGrad lower)", "n"], [[m, p, n] for m, p in pvalues.items()],
                        title="one-sided paired Wilcoxon on each image's change averaged over k: is FullGrad's lower?")
        outcome = S.worst_p(pvalues, n=n, what="FullGrad's change lower than every other map's") if "fullgrad" in per else \
            S.Outcome(None, "fullgrad is not among the methods")
        text = S.write(ctx.out_dir, title=f"pixel perturbation on {n} images ({self.source}, {self.model}, {self.score}, replacement {self.replacement})",
                       claim=self.claim, outcome=outcome, tables=[changes] + ([tests] if pvalues else []),
                       notes=["lowest at each k: " + ", ".join(f"{k}%: {m}" for k, m in best.items())])
        _plot(ctx.out_dir / "pixel_perturbation.png", ks, mean)
        return {"mean_change": {m: v.tolist() for m, v in mean.items()}, "lowest": best, "images": n, "wilcoxon_p": pvalues,
                "claim": outcome.to_dict(), "text": text}


def plot_figure(ks: list[float], mean: dict):
    """Mean change against k (log axis with plain tick labels), legend beside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(8.2, 4.2))
    for m, v in mean.items():
        ax.plot(ks, v, marker="o", label=m, ls="--" if m == RANDOM else "-")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{k:g}" for k in ks])
    ax.set(xlabel="% least salient pixels removed", ylabel="mean |f(x_k) - f(x)| / |f(x)|", title="pixel perturbation (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _plot(path: Path, ks: list[float], mean: dict) -> None:
    import matplotlib.pyplot as plt

    fig = plot_figure(ks, mean)
    fig.savefig(path, dpi=110)
    plt.close(fig)
