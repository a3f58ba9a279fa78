"""IG convergence: how many steps each quadrature needs for completeness (Sundararajan et al. 2017).

The paper's advice: 20-300 steps bring sum(IG) within 5% of F(x) - F(x'). For every image and
every rule x step count this records the relative completeness residual
|sum IG - (F(x) - F(x'))| / |F(x) - F(x')|, the passes the error-controlled mode needs for a
tolerance, and -- on piecewise-linear models -- the distance of each rule's map from exact IG
(``rule="exact"``), which the completeness residual alone cannot show (errors of opposite sign
cancel in the sum).

Default: the digits CNN on held-out digits, float64. At scale:
``--set source=/data/imagenet/val --set model=resnet50 --set weights=ckpt.pt --set size=224 --device cuda``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import workbench
from workbench.runner import experiment as X
from workbench.core.errors import UnsupportedModelError


@X.register
@dataclass(frozen=True)
class IGConvergence(X.ImageExperiment):
    name_prefix = "ig-convergence"
    claim = "IG completeness residual vs steps for each quadrature; 20-300 steps reach 5% (Sundararajan et al. 2017)"

    baseline: str = "zero"
    rules: tuple = ("left", "right", "midpoint", "trapezoid", "gauss-legendre")
    steps: tuple = (2, 4, 8, 16, 32, 64, 128, 256)
    tolerances: tuple = (1e-2, 1e-3)
    exact: bool = True
    dtype: str = "float64"
    chunk_size: int = 256

    def run_item(self, key: str, ctx: X.Context) -> dict:
        loaded = self.loaded_model(ctx)
        model, random_weights = loaded.model, loaded.random_weights
        x = self.batch(ctx, [key])
        with torch.no_grad():
            target = int(model(x).argmax(1)[0])
        record: dict = {"target": target, "residual": {}, "passes": {}, "map_error": {}}
        delta_f = None
        for rule in self.rules:
            for n in self.steps:
                ig = workbench.method("integrated-gradients", rule=rule, steps=n, tolerance=None, chunk_size=self.chunk_size, baseline=self.baseline)
                r = ig.integrate(model, x, target=target)
                delta_f = float(r.output[0] - r.baseline_output[0])
                record["residual"].setdefault(rule, {})[str(n)] = abs(float(r.residual[0])) / max(abs(delta_f), 1e-300)
                record.setdefault("_maps", {})[(rule, n)] = r.attribution
        record["delta_f"] = delta_f
        for tol in self.tolerances:
            ig = workbench.method("integrated-gradients", tolerance=tol, chunk_size=self.chunk_size, baseline=self.baseline, max_steps=1 << 16)
            r = ig.integrate(model, x, target=target)
            record["passes"][f"{tol:g}"] = {
                "gradients": int(r.gradient_evaluations[0]),
                "forwards": int(r.forward_evaluations[0]),
                "residual": abs(float(r.residual[0])) / max(abs(delta_f), 1e-300),
            }
        maps = record.pop("_maps")
        if self.exact:
            try:
                ex = workbench.method("integrated-gradients", rule="exact", baseline=self.baseline).integrate(model, x, target=target)
            except UnsupportedModelError as e:
                record["exact"] = f"not piecewise linear: {e}"
            else:
                ref = ex.attribution
                norm = float(ref.norm()) or 1.0
                record["exact"] = {"regions": int(ex.gradient_evaluations[0]), "residual": abs(float(ex.residual[0])) / max(abs(delta_f), 1e-300)}
                for (rule, n), a in maps.items():
                    record["map_error"].setdefault(rule, {})[str(n)] = float((a - ref).norm()) / norm
        record["random_weights"] = random_weights
        return record

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        rules, steps = list(self.rules), [str(n) for n in self.steps]
        med = {r: {n: float(np.median([rec["residual"][r][n] for rec in records])) for n in steps} for r in rules}
        within = {r: {n: float(np.mean([rec["residual"][r][n] <= 0.05 for rec in records])) for n in steps} for r in rules}
        has_exact = all(isinstance(rec.get("exact"), dict) for rec in records)
        map_err = {r: {n: float(np.median([rec["map_error"][r][n] for rec in records])) for n in steps} for r in rules} if has_exact else {}
        passes = {t: {"median_gradients": float(np.median([rec["passes"][t]["gradients"] for rec in records])),
                      "median_forwards": float(np.median([rec["passes"][t]["forwards"] for rec in records])),
                      "max_residual": float(np.max([rec["passes"][t]["residual"] for rec in records]))}
                  for t in records[0]["passes"]}
        from workbench.runner import summary as S

        def grid(values, what):
            return S.table(["rule"] + [f"{n} steps" for n in steps], [[r] + [values[r][n] for n in steps] for r in rules], title=what)

        tables = [grid(med, "median relative completeness residual |sum IG - dF| / |dF|"), grid(within, "fraction of images within 5%")]
        notes = []
        if map_err:
            tables.append(grid(map_err, "median relative L2 distance of the map from exact IG"))
            regions = [rec["exact"]["regions"] for rec in records]
            notes.append(f"exact IG: {int(np.median(regions))} linear pieces per path (median; max {max(regions)})")
        tables.append(S.table(["tolerance", "gradient passes (median)", "forward passes (median)", "worst residual"],
                              [[t, p["median_gradients"], p["median_forwards"], p["max_residual"]] for t, p in passes.items()],
                              title="error-controlled mode (Simpson panels raised to Gauss-Lobatto or split until the measured residual is under tol)"))
        in_range = [n for n in steps if 20 <= int(n) <= 300]
        if in_range:
            best = {r: min(in_range, key=lambda n: med[r][n]) for r in rules}
            worst_rule = max(rules, key=lambda r: med[r][best[r]])
            value = med[worst_rule][best[worst_rule]]
            outcome = S.Outcome(bool(value <= 0.05), f"every rule's median residual within 20-300 steps reaches 5%? worst rule {worst_rule}: "
                                                     f"{value:.2g} at {best[worst_rule]} steps (n = {len(records)} images)")
        else:
            outcome = S.Outcome(None, "no step count between 20 and 300 was run")
        text = S.write(ctx.out_dir, title=f"IG convergence on {len(records)} images ({self.source}, {self.model}, baseline {self.baseline}, {self.dtype})",
                       claim=self.claim, outcome=outcome, tables=tables, notes=notes)
        _plot(ctx.out_dir / "convergence.png", rules, [int(n) for n in steps], med, map_err)
        return {"median_residual": med, "within_5pct": within, "median_map_error": map_err, "adaptive": passes,
                "claim": outcome.to_dict(), "text": text}


def plot_figure(rules, steps, med, map_err):
    """Residual (and distance from exact IG) against steps, log-log with the step counts as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    panels = 2 if map_err else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels + 1.8, 4.2), squeeze=False)
    for r in rules:
        axes[0, 0].loglog(steps, [max(med[r][str(n)], 1e-17) for n in steps], marker="o", label=r)
        if map_err:
            axes[0, 1].loglog(steps, [max(map_err[r][str(n)], 1e-17) for n in steps], marker="o", label=r)
    axes[0, 0].axhline(0.05, color="grey", ls="--", lw=0.8, label="5% (IG paper)")
    axes[0, 0].set(xlabel="steps", ylabel="median |sum IG - dF| / |dF|", title="completeness residual")
    if map_err:
        axes[0, 1].set(xlabel="steps", ylabel="median ||IG - IG_exact|| / ||IG_exact||", title="distance from exact IG")
    for ax in axes[0]:
        ax.xaxis.set_major_locator(FixedLocator(steps))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(n) for n in steps])
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _plot(path: Path, rules, steps, med, map_err) -> None:
    import matplotlib.pyplot as plt

    fig = plot_figure(rules, steps, med, map_err)
    fig.savefig(path, dpi=110)
    plt.close(fig)
