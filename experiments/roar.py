"""Remove and retrain (ROAR; Hooker et al., NeurIPS 2019; FullGrad Section 5.2 on CIFAR-100).

Each method's map ranks the pixels of every training and test image (computed once, with a
model trained on the clean data); the k% most salient pixels are replaced by the training
set's per-channel mean; a fresh model is trained on the modified training set and tested on the
modified test set. A map that finds the pixels the task needs makes the retrained accuracy
drop faster than removing random pixels does -- retraining rules out the objection that the
drop only comes from images leaving the training distribution.

Known caveat, visible at small scale: the removal mask itself can carry the class (on digits,
the removed pixels trace the strokes), so a retrained model may read the mask and a good map can
score *above* random (Rong et al., ICML 2022, "A consistent and efficient evaluation strategy
for attribution methods"). The summary reports the comparison with random either way.

Default: the digits CNN on scikit-learn digits (80/20 split), 6 epochs per training.
At the paper's scale: ``--set source=/data/cifar100 --set model=resnet18 --set size=32
--set epochs=30 --device cuda`` with ``train/`` and ``val/`` ImageFolders under the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import workbench
from workbench.runner import experiment as X
from workbench.data.sources import fresh_model, labeled_split
from workbench.core.errors import InputError
from workbench.metrics.ranking import pixel_saliency, salience_ranks
from workbench.data.training import TrainingConfig, accuracy, train_classifier

RANDOM = "random"


@X.register
@dataclass(frozen=True)
class RemoveAndRetrain(X.Experiment):
    name_prefix = "roar"
    claim = "removing the pixels a faithful map ranks highest hurts a retrained model more than random removal (Hooker et al. 2019)"

    source: str = "digits"
    model: str = "digits-cnn"
    methods: tuple = (RANDOM, "gradient", "integrated-gradients[tolerance=None,steps=32]", "fullgrad", "guided-backprop")
    percentages: tuple = (25, 50, 75)
    repeats: int = 2
    epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    explain: str = "label"  # the class each map explains: "label" (ROAR's choice here) or "prediction"
    size: int = 32
    map_batch: int = 64

    def items(self) -> list[str]:
        if self.explain not in ("label", "prediction"):
            raise InputError(f"explain must be 'label' or 'prediction', got {self.explain!r}")
        if any(not 0 < float(k) < 100 for k in self.percentages):
            raise InputError(f"percentages must lie in (0, 100), got {self.percentages}")
        keys = [f"clean/0/r{r}" for r in range(self.repeats)]
        return keys + [f"{m}/{k}/r{r}" for m in self.methods for k in self.percentages for r in range(self.repeats)]

    # -- shared state (built once per run, kept on disk for resumed runs) -----------------------
    def _data(self, ctx: X.Context):
        return ctx.cached("data", lambda: labeled_split(self.source, size=self.size))

    def _config(self, seed: int) -> TrainingConfig:
        return TrainingConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=seed)

    def _trained(self, x: torch.Tensor, y: torch.Tensor, seed: int, ctx: X.Context) -> torch.nn.Module:
        torch.manual_seed(seed)  # initialization
        model = fresh_model(self.model, self._data(ctx).classes).to(ctx.device)
        return train_classifier(model, x, y, self._config(seed))

    def _base_model(self, ctx: X.Context) -> torch.nn.Module:
        def build():
            data = self._data(ctx)
            path = ctx.out_dir / "base_model.pt"
            model = fresh_model(self.model, data.classes).to(ctx.device)
            if path.exists():
                model.load_state_dict(torch.load(path, map_location=ctx.device, weights_only=True))
                return model.eval()
            model = self._trained(data.x_train, data.y_train, self.seed, ctx)
            torch.save(model.state_dict(), path)
            return model
        return ctx.cached("base", build)

    def _ranks(self, method: str, ctx: X.Context) -> tuple[torch.Tensor, torch.Tensor]:
        """Most-salient-first pixel ranks of the training and test images under `method`'s maps."""
        def build():
            path = ctx.out_dir / f"ranks-{_safe(method)}.pt"
            if path.exists():
                saved = torch.load(path, weights_only=True)
                return saved["train"].long(), saved["test"].long()
            data = self._data(ctx)
            out = (self._rank_all(method, data.x_train, data.y_train, ctx), self._rank_all(method, data.x_test, data.y_test, ctx))
            torch.save({"train": out[0].int(), "test": out[1].int()}, path)
            return out
        return ctx.cached(f"ranks/{method}", build)

    def _rank_all(self, method: str, x: torch.Tensor, y: torch.Tensor, ctx: X.Context) -> torch.Tensor:
        n, _, h, w = x.shape
        if method == RANDOM:
            g = ctx.generator(f"random-map/{n}")
            return salience_ranks(torch.rand(n, h * w, generator=g), seed=self.seed)
        base, m = self._base_model(ctx), workbench.method(method)
        ranks = []
        for i in range(0, n, self.map_batch):
            xb = x[i:i + self.map_batch].to(ctx.device)
            if self.explain == "label":
                t = y[i:i + self.map_batch]
            else:
                with torch.no_grad():
                    t = base(xb).argmax(1).cpu()
            a = m.attribute(base, xb, target=t)
            ranks.append(salience_ranks(pixel_saliency(a, xb), seed=self.seed).cpu())
        return torch.cat(ranks)

    # -- one retraining ----------------------------------------------------------------------
    def run_item(self, key: str, ctx: X.Context) -> dict:
        method, k, rep = key.rsplit("/", 2)
        data = self._data(ctx)
        seed = ctx.seed_for(f"retrain/{k}/{rep}")  # the same seeds for every method: paired comparison
        if method == "clean":
            model = self._trained(data.x_train, data.y_train, seed, ctx)
            return {"method": method, "k": 0.0, "accuracy": accuracy(model, data.x_test, data.y_test)}
        fill = data.x_train.mean(dim=(0, 2, 3), keepdim=True)
        ranks_train, ranks_test = self._ranks(method, ctx)
        x_train = remove_most_salient(data.x_train, ranks_train, float(k), fill)
        x_test = remove_most_salient(data.x_test, ranks_test, float(k), fill)
        model = self._trained(x_train, data.y_train, seed, ctx)
        return {"method": method, "k": float(k), "accuracy": accuracy(model, x_test, data.y_test)}

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        clean = [r["accuracy"] for r in records if r["method"] == "clean"]
        ks = [float(k) for k in self.percentages]
        acc = {m: {k: [r["accuracy"] for r in records if r["method"] == m and r["k"] == k] for k in ks} for m in self.methods}
        mean = {m: {k: float(np.mean(v)) for k, v in acc[m].items()} for m in self.methods}
        # area under accuracy-vs-k (trapezoid, k from 0 with the clean accuracy): lower = better map
        area = {m: _area([0.0] + ks, [float(np.mean(clean))] + [mean[m][k] for k in ks]) for m in self.methods}
        from workbench.runner import summary as S

        accuracy_table = S.table(["method"] + [f"{k:g}%" for k in ks] + ["area"],
                                 [[m] + [f"{mean[m][k]:.3f} +- {np.std(acc[m][k]):.3f}" for k in ks] + [area[m]] for m in self.methods],
                                 title=f"retrained test accuracy (clean {np.mean(clean):.3f} +- {np.std(clean):.3f}); "
                                       "area under accuracy vs k: lower = more faithful")
        others = [m for m in self.methods if m != RANDOM]
        if RANDOM in area and others:
            worst = max(others, key=lambda m: area[m])
            outcome = S.Outcome(bool(area[worst] < area[RANDOM]), f"every map's area below random's? largest: {worst} {area[worst]:.3f} "
                                                                  f"vs random {area[RANDOM]:.3f} ({self.repeats} repeat(s))")
        else:
            outcome = S.Outcome(None, "random and at least one map are needed for the comparison")
        text = S.write(ctx.out_dir, title=f"remove and retrain on {self.source} ({self.model}, {self.epochs} epochs, {self.repeats} repeats, "
                                          f"maps explain the {self.explain})", claim=self.claim, outcome=outcome, tables=[accuracy_table])
        _plot(ctx.out_dir / "roar.png", ks, float(np.mean(clean)), mean)
        return {"clean_accuracy": float(np.mean(clean)), "accuracy": {m: {str(k): v for k, v in mean[m].items()} for m in self.methods},
                "area": area, "claim": outcome.to_dict(), "text": text}


def remove_most_salient(x: torch.Tensor, ranks: torch.Tensor, k: float, fill: torch.Tensor) -> torch.Tensor:
    """x with its k% most salient pixels (all channels) replaced by `fill` (per channel)."""
    n, c, h, w = x.shape
    count = int(round(k / 100.0 * h * w))
    drop = (ranks < count).view(n, 1, h, w)
    return torch.where(drop, fill.expand_as(x), x)


def _area(xs: list[float], ys: list[float]) -> float:
    span = xs[-1] - xs[0]
    return float(np.trapezoid(ys, xs) / span) if span else float(ys[0])


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _plot(path: Path, ks: list[float], clean: float, mean: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for m, v in mean.items():
        ax.plot([0.0] + ks, [clean] + [v[k] for k in ks], marker="o", label=m, ls="--" if m == RANDOM else "-")
    ax.set(xlabel="% most salient pixels removed (train and test)", ylabel="retrained test accuracy", title="remove and retrain")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
