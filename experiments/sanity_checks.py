"""Model-randomization sanity checks (Adebayo et al., NeurIPS 2018, arXiv 1810.03292), with the
alignment theory's prediction (Zheng, Sang & Xu 2025): under cascading randomization the
negative-filtering methods' maps stay close to the trained model's maps, the gradient's do not.

Items are (mode, randomization seed, batch of images): the model's Linear/Conv layers are
randomized top first, cumulatively (``cascading``) or one at a time (``independent``), and every
method's map on each image is compared with its map on the trained model by Spearman rank
correlation with and without absolute values, SSIM and HOG (``workbench.studies.sanity``). The summary
has per-layer medians, one-sided paired Wilcoxon tests of each method against the gradient at
the top layer and with every layer randomized, and the per-layer plot (similarity against the
randomized layer, one line per method) for each mode.

Default (CPU, under a minute): the digits CNN on 40 held-out digits, two randomization seeds.
At scale: ``--set model=vgg16 --set weights=ckpt.pt --set source=/data/imagenet/val --set size=224
--set images=200 --set batch=10 --set methods=gradient,guided-backprop,rectgrad,"lrp[composite='epsilon-plus-flat']"
--device cuda``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import workbench
from workbench.runner import experiment as X
from workbench.studies import sanity as SN


@X.register
@dataclass(frozen=True)
class SanityChecks(X.ImageExperiment):
    name_prefix = "sanity-checks"
    claim = "under cascading randomization GBP / RectGrad / LRP z+ maps stay close to the trained model's, the gradient's do not (Adebayo et al. 2018; Zheng, Sang & Xu 2025)"

    methods: tuple = ("gradient", "guided-backprop", "rectgrad", "lrp[composite='zplus']", "deconvnet", "integrated-gradients[tolerance=None,steps=32]")
    images: int = 40
    batch_size: int = 20
    modes: tuple = ("cascading", "independent")
    seeds: int = 2
    scale: str = "matched"
    dtype: str = "float64"

    batches_images = True  # batch_size images per pass; each image's scores do not depend on it

    def item_images(self, key: str) -> list[str]:
        b = int(key.rsplit("-batch", 1)[1])
        return self.image_keys()[b * self.batch_size:(b + 1) * self.batch_size]

    def items(self) -> list[str]:
        n = len(self.image_source())
        return [f"{mode}-seed{s}-batch{b}" for mode in self.modes for s in range(self.seeds) for b in range((n + self.batch_size - 1) // self.batch_size)]

    def run_item(self, key: str, ctx: X.Context) -> dict:
        mode, seed, _ = key.split("-")
        model = self.loaded_model(ctx).model
        keys = self.item_images(key)
        x = self.batch(ctx, keys)
        methods = [workbench.method(m) for m in self.methods]
        r = SN.randomization_test(methods, model, x, mode=mode, seed=ctx.seed_for(f"{mode}-{seed}"), scale=self.scale)
        return {"images": keys, **r.to_dict()}

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        keys = self.items()
        labels = [workbench.method(m).label for m in self.methods]
        reference = labels[0]
        out: dict = {"reference": reference, "modes": {}}
        from workbench.runner import summary as S

        tables, pvalues, n_used = [], {}, 0
        for mode in self.modes:
            recs = [r for k, r in zip(keys, records) if k.startswith(mode + "-")]
            measures = list(recs[0]["scores"][reference])
            scores = {lab: {m: np.concatenate([np.asarray(r["scores"][lab][m]) for r in recs]) for m in measures} for lab in labels}
            result = SN.RandomizationResult(mode, recs[0]["layers"], scores, tuple(recs[0].get("layer_types", ())))
            png = SN.plot_randomization(result, ctx.out_dir / f"{mode}_randomization.png", title=f"{self.model} on {self.source}: {mode} randomization")
            entry: dict = {"layers": result.layers, "figure": png.name, "medians": {}, "contrasts": {}}
            for m in measures:
                entry["medians"][m] = {lab: result.medians(lab, m).tolist() for lab in labels}
                layer_cols = [f"L{i + 1}" for i in range(len(result.layers))]
                tables.append(S.table(["method"] + layer_cols, [[lab] + [float(v) for v in result.medians(lab, m)] for lab in labels],
                                      title=f"{mode} randomization, median {m} to the original map",
                                      legend=["layers randomized (top first): " + ", ".join(f"L{i + 1} = {n}" for i, n in enumerate(result.layers))]))
            n_steps = len(result.layers)
            rows = []
            for lab in labels[1:]:
                row = {}
                for step, name in ((0, "top layer"), (n_steps - 1, "all layers" if mode == "cascading" else "bottom layer")):
                    diff, p, n = result.contrast(lab, reference, "spearman_abs", step)
                    row[name] = {"median_difference": diff, "wilcoxon_p": p, "n": n}
                    rows.append([lab, name, diff, p, n])
                    if mode == "cascading" and name == "all layers":
                        pvalues[lab], n_used = p, n
                entry["contrasts"][lab] = row
            tables.append(S.table(["method", "randomized", "median diff", "Wilcoxon p", "n"], rows,
                                  title=f"{mode}: paired one-sided Wilcoxon (method stays closer than {reference}), spearman_abs"))
            out["modes"][mode] = entry
        outcome = S.worst_p(pvalues, n=n_used, what=f"every method stays closer than {reference} under full cascading randomization") \
            if pvalues else S.Outcome(None, "needs the cascading mode and a method besides the reference")
        text = S.write(ctx.out_dir, title=f"sanity checks ({self.model} on {self.source}, {len(keys)} item(s))", claim=self.claim,
                       outcome=outcome, tables=tables)
        out["claim"] = outcome.to_dict()
        out["text"] = text
        return out
