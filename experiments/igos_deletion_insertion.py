"""I-GOS deletion / insertion (Qi, Khorram & Li, AAAI 2020): I-GOS maps against gradient, IG and FullGrad.

For every image this explains the model's top class with each method, and records the deletion and
insertion areas (``workbench.metrics``: trapezoid over the whole curve, blurred canvas, class
probability), FullGrad's pixel perturbation, and -- the paper's point about the descent direction --
the same I-GOS optimizer run with the plain gradient direction (equal iterations): final objectives
and network passes of both, tested with a one-sided paired Wilcoxon test in the summary.

Default (small CPU run): the digits CNN on held-out digits; on these 8 px images I-GOS runs with a
full-resolution mask and lambda2 = 0.5 (the reference's 20 is tuned for 224 px images under a
28x28 mask; see ``workbench.explain.SMALL_IMAGE_IGOS``). At ImageNet scale, with the reference settings:
``--set source=/data/imagenet/val --set model=resnet50 --set weights=ckpt.pt --set igos=igos --set images=5000 --device cuda``.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import workbench
from workbench.runner import experiment as X
from workbench.methods.igos import IGOS
from workbench.studies.igos_directions import CaseResult, case_result, paired_comparison
from workbench.metrics import deletion_insertion, pixel_perturbation


@X.register
@dataclass(frozen=True)
class IGOSDeletionInsertion(X.ImageExperiment):
    name_prefix = "igos-deletion-insertion"
    claim = "I-GOS maps delete / insert the class evidence faster than gradient, IG and FullGrad maps; integrated-gradient descent beats plain gradient descent (Qi et al. 2020)"

    images: int = 16
    igos: str = "igos[resolution='full',tv=0.5]"
    others: tuple = ("gradient", "integrated-gradients[baseline='blurred',tolerance=None,steps=32]", "fullgrad")
    compare_directions: bool = True
    step: int | None = None
    score: str = "probability"
    curve_points: int = 51

    def _methods(self) -> dict:
        main = workbench.method(self.igos)
        if not isinstance(main, IGOS):
            raise workbench.InputError(f"igos must configure the igos method, got {self.igos!r}")
        return {"igos": main, **{spec: workbench.method(spec) for spec in self.others}}

    def run_item(self, key: str, ctx: X.Context) -> dict:
        model = self.loaded_model(ctx).model
        item = self.images_of(ctx)[key]
        x = self.batch(ctx, [key])
        with torch.no_grad():
            probs = torch.softmax(model(x), 1)
        target = int(probs.argmax(1)[0])
        record: dict = {"target": target, "label": item.label, "p_target": float(probs[0, target]), "methods": {}}
        methods = self._methods()
        igos_run = methods["igos"].optimize(model, x, target=target)
        for name, method in methods.items():
            sal = igos_run.saliency if name == "igos" else method.attribute(model, x, target=target)
            record["methods"][name] = self._evaluate(model, x, sal, target, reduction="abs-sum" if name == "gradient" else "sum")
        record["igos_passes"] = {"gradient": int(igos_run.gradient_passes[0]), "forward": int(igos_run.forward_passes[0])}
        if self.compare_directions:
            plain = IGOS(**{**methods["igos"].options, "direction": "gradient"})
            plain_run = plain.optimize(model, x, target=target)
            record["methods"]["igos-gradient-direction"] = self._evaluate(model, x, plain_run.saliency, target, reduction="sum")
            record["directions"] = asdict(case_result(key, igos_run, plain_run))
        return record

    def _evaluate(self, model, x, sal, target: int, *, reduction: str) -> dict:
        d, i = deletion_insertion(model, x, sal, target=target, step=self.step, score=self.score, channel_reduction=reduction)
        pp = pixel_perturbation(model, x, sal, target=target, score=self.score, channel_reduction=reduction)
        grid = np.linspace(0.0, 1.0, self.curve_points)
        fr = d.fractions.cpu().numpy()
        return {
            "deletion_area": float(d.area[0]),
            "insertion_area": float(i.area[0]),
            "pixel_perturbation": dict(zip([f"{p:g}" for p in pp.percentages.tolist()], pp.change[0].tolist())),
            "deletion_curve": np.interp(grid, fr, d.scores[0].cpu().numpy()).tolist(),
            "insertion_curve": np.interp(grid, fr, i.scores[0].cpu().numpy()).tolist(),
        }

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        from scipy.stats import wilcoxon

        names = list(records[0]["methods"])
        table = {}
        for name in names:
            d = [r["methods"][name]["deletion_area"] for r in records]
            i = [r["methods"][name]["insertion_area"] for r in records]
            pp = {k: statistics.mean(r["methods"][name]["pixel_perturbation"][k] for r in records) for k in records[0]["methods"][name]["pixel_perturbation"]}
            table[name] = {"deletion_median": statistics.median(d), "deletion_mean": statistics.mean(d),
                           "insertion_median": statistics.median(i), "insertion_mean": statistics.mean(i),
                           "pixel_perturbation_mean": pp}
        tests = {}
        for name in names:
            if name == "igos":
                continue
            diff_d = [r["methods"]["igos"]["deletion_area"] - r["methods"][name]["deletion_area"] for r in records]
            diff_i = [r["methods"]["igos"]["insertion_area"] - r["methods"][name]["insertion_area"] for r in records]
            tests[name] = {
                "deletion_p (igos lower)": _wilcoxon(wilcoxon, diff_d, "less"),
                "insertion_p (igos higher)": _wilcoxon(wilcoxon, diff_i, "greater"),
                "igos_better_deletion": sum(v < 0 for v in diff_d),
                "igos_better_insertion": sum(v > 0 for v in diff_i),
            }
        from workbench.runner import summary as S

        areas = S.table(["method", "deletion (median)", "insertion (median)", "deletion (mean)", "insertion (mean)"],
                        [[name, row["deletion_median"], row["insertion_median"], row["deletion_mean"], row["insertion_mean"]]
                         for name, row in table.items()],
                        title="deletion / insertion areas (deletion lower is better, insertion higher)")
        versus = S.table(["I-GOS vs", "deletion p", "I-GOS lower on", "insertion p", "I-GOS higher on"],
                         [[name, t["deletion_p (igos lower)"], f"{t['igos_better_deletion']} of {len(records)}",
                           t["insertion_p (igos higher)"], f"{t['igos_better_insertion']} of {len(records)}"] for name, t in tests.items()],
                         title="I-GOS against each map (one-sided paired Wilcoxon over images)")
        compared = {n: t for n, t in tests.items() if n != "igos-gradient-direction"}
        pvalues = {**{f"{n} (deletion)": t["deletion_p (igos lower)"] for n, t in compared.items()},
                   **{f"{n} (insertion)": t["insertion_p (igos higher)"] for n, t in compared.items()}}
        outcome = S.worst_p(pvalues, n=len(records), what="I-GOS deletes lower and inserts higher than every other map")
        summary: dict = {"table": table, "tests": tests}
        notes = []
        if self.compare_directions:
            comp = paired_comparison(self.igos, self.igos + " with direction='gradient'",
                                     [CaseResult(**r["directions"]) for r in records])
            summary["directions"] = comp.to_dict()
            notes.append("Descent direction (equal iterations): " + comp.summary())
        text = S.write(ctx.out_dir, title=f"I-GOS deletion / insertion on {len(records)} images ({self.source}, {self.model}, score {self.score})",
                       claim=self.claim, outcome=outcome, tables=[areas, versus], notes=notes)
        summary["claim"] = outcome.to_dict()
        summary["text"] = text
        _plot(ctx.out_dir / "curves.png", records, names, self.curve_points)
        return summary


def _wilcoxon(test, diffs, alternative: str) -> float:
    if all(d == 0 for d in diffs):
        return 1.0
    return float(test(diffs, alternative=alternative).pvalue)


def plot_figure(records: list[dict], names: list[str], points: int):
    """Mean deletion and insertion curves of every method; the legend (with areas) below the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0.0, 1.0, points)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for name in names:
        for ax, kind in zip(axes, ("deletion", "insertion")):
            mean = np.mean([r["methods"][name][f"{kind}_curve"] for r in records], 0)
            ax.plot(grid, mean, label=f"{name[:48]} (area {np.trapezoid(mean, grid):.3f})")
    axes[0].set(title="deletion (mean curve; lower is better)", xlabel="fraction of pixels deleted (most salient first)", ylabel="class probability")
    axes[1].set(title="insertion onto the blurred image (higher is better)", xlabel="fraction of pixels inserted (most salient first)", ylabel="class probability")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    return fig


def _plot(path: Path, records: list[dict], names: list[str], points: int) -> None:
    import matplotlib.pyplot as plt

    fig = plot_figure(records, names, points)
    fig.savefig(path, dpi=110)
    plt.close(fig)
