"""IG baselines (Sturmfels, Lundberg & Lee, Distill 2020): what the choice of baseline does.

For each image and each baseline (black, maximum distance, blurred, uniform noise, Gaussian
noise, and expected gradients over uniform noise) this records F(x'), F(x) - F(x'), the
completeness residual, the *blind fraction* -- the share of features where x' = x, which get
zero attribution by construction whatever their importance (the article's point about black
pixels under the black baseline) -- and the Spearman rank correlation between the maps of every
pair of baselines. A figure shows the maps side by side.

Default: the digits CNN on held-out digits, float64 (digits are mostly black background, so the
black baseline is blind to most of the image). At scale:
``--set source=/data/imagenet/val --set model=resnet50 --set weights=ckpt.pt --set blur_sigma=5 --device cuda``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import workbench
from workbench.paths import baselines as B
from workbench.runner import experiment as X


@X.register
@dataclass(frozen=True)
class IGBaselines(X.ImageExperiment):
    name_prefix = "ig-baselines"
    claim = "the IG baseline decides what the map can see: black baselines are blind to black pixels (Sturmfels et al. 2020)"

    baselines: tuple = ("zero", "maximum-distance", "blurred", "uniform", "gaussian", "expected-uniform")
    blur_sigma: float = 1.0
    noise_sigma: float = 0.2
    expected_samples: int = 8
    steps: int = 64
    figure_images: int = 3
    dtype: str = "float64"
    chunk_size: int = 256

    def _baseline(self, name: str, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if name == "blurred":
            return B.resolve(B.blurred(self.blur_sigma), x, g)
        if name == "gaussian":
            return B.resolve(B.gaussian(self.noise_sigma), x, g)
        return B.resolve(name, x, g)

    def run_item(self, key: str, ctx: X.Context) -> dict:
        model = self.loaded_model(ctx).model
        x = self.batch(ctx, [key])
        with torch.no_grad():
            fx_all = model(x)
        target = int(fx_all.argmax(1)[0])
        ig = workbench.method("integrated-gradients", rule="gauss-legendre", steps=self.steps, tolerance=None, chunk_size=self.chunk_size)
        per, maps = {}, {}
        for name in self.baselines:
            g = ctx.generator(f"{key}/{name}")
            if name.startswith("expected-"):
                eg = workbench.method("expected-gradients", distribution=name.split("-", 1)[1], samples=self.expected_samples,
                                      seed=ctx.seed_for(key), integrator=ig)
                refs = eg.references(x)
                a = eg.attribute(model, x, target=target)
                with torch.no_grad():
                    fb = float(model(refs.reshape(-1, *x.shape[1:]))[:, target].mean())
                blind = float(((refs - x.unsqueeze(0)).abs() <= 1e-12).all(0).double().mean())
            else:
                b = self._baseline(name, x, g)
                r = ig.integrate(model, x, target=target, baseline=b)
                a = r.attribution
                fb = float(r.baseline_output[0])
                blind = float(((x - b).abs() <= 1e-12).double().mean())
            fx = float(fx_all[0, target])
            delta = fx - fb
            per[name] = {
                "f_baseline": fb,
                "delta_f": delta,
                "residual": abs(float(a.sum()) - delta) / max(abs(delta), 1e-300),
                "blind_fraction": blind,
            }
            maps[name] = a[0].detach().sum(0).cpu().double()
        spearman = {f"{p}|{q}": _spearman(maps[p], maps[q]) for p, q in combinations(self.baselines, 2)}
        record = {"target": target, "f_x": float(fx_all[0, target]), "baselines": per, "spearman": spearman}
        if self.items().index(key) < self.figure_images:
            record["image"] = _thumbnail(x[0].detach().cpu().double().mean(0)).tolist()
            record["maps"] = {k: _thumbnail(v).tolist() for k, v in maps.items()}
        return record

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        names = list(self.baselines)
        stats = {n: {k: float(np.median([r["baselines"][n][k] for r in records])) for k in ("f_baseline", "delta_f", "residual", "blind_fraction")} for n in names}
        corr = {p: float(np.median([r["spearman"][p] for r in records])) for p in records[0]["spearman"]}
        from workbench.runner import summary as S

        per_baseline = S.table(["baseline", "F(baseline)", "F(x) - F(b)", "residual", "blind"],
                               [[n, stats[n]["f_baseline"], stats[n]["delta_f"], stats[n]["residual"], stats[n]["blind_fraction"]] for n in names],
                               title="medians over images", legend=["blind: share of features with x' = x (IG gives them 0 whatever their role)"])

        def rho(p, q):
            return 1.0 if p == q else corr.get(f"{p}|{q}", corr.get(f"{q}|{p}"))

        spearman = S.table(["baseline"] + names, [[p] + [rho(p, q) for q in names] for p in names],
                           title="median Spearman rank correlation between the (channel-summed, signed) maps")
        others = [n for n in names if n != "zero"]
        if "zero" in names and others:
            blind0, blind_other = stats["zero"]["blind_fraction"], max(stats[n]["blind_fraction"] for n in others)
            outcome = S.Outcome(bool(blind0 > blind_other), f"median blind fraction of the black (zero) baseline {blind0:.2f} vs at most "
                                                            f"{blind_other:.2f} for the others (n = {len(records)} images)")
        else:
            outcome = S.Outcome(None, "the zero baseline and another one are needed for the comparison")
        text = S.write(ctx.out_dir, title=f"IG baselines on {len(records)} images ({self.source}, {self.model}, {self.steps}-step Gauss-Legendre, {self.dtype})",
                       claim=self.claim, outcome=outcome, tables=[per_baseline, spearman])
        _figure(ctx.out_dir / "baselines.png", [r for r in records if "maps" in r], names)
        return {"per_baseline": stats, "median_spearman": corr, "claim": outcome.to_dict(), "text": text}


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy import stats

    r = stats.spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    return 0.0 if r != r else float(r)


def _thumbnail(m: torch.Tensor, side: int = 56) -> torch.Tensor:
    """A (H, W) map reduced to at most side x side (area average), for the figure."""
    if max(m.shape) <= side:
        return m
    return F.adaptive_avg_pool2d(m[None, None], (min(side, m.shape[0]), min(side, m.shape[1])))[0, 0]


def _figure(path: Path, records: list[dict], names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return
    fig, axes = plt.subplots(len(records), len(names) + 1, figsize=(2.3 * (len(names) + 1), 2.0 * len(records)), squeeze=False)
    for i, r in enumerate(records):
        axes[i, 0].imshow(np.asarray(r["image"]), cmap="gray")
        axes[i, 0].set_title("input" if i == 0 else "", fontsize=8)
        for j, n in enumerate(names, 1):
            m = np.asarray(r["maps"][n])
            v = np.abs(m).max() or 1.0
            im = axes[i, j].imshow(m, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
            fig.colorbar(im, ax=axes[i, j], fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
            if i == 0:
                axes[i, j].set_title(n, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("IG maps by baseline (red positive, blue negative)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
