"""Input alignment of modified-backprop signals (Zheng, Sang & Xu, arXiv 2503.11160).

Claim: the negative-filtering methods (GBP, RectGrad, LRP z+ / DTD) combine the weights of
activated neurons into a signal aligned with the input, far more than the plain gradient; the
alignment holds layer by layer, exactly cascading through orthogonal equal-norm layers. See
``workbench.studies.alignment`` for the measures and our reconstruction of the two theorems.

Items are networks: ``isotropic-K`` and ``orthogonal-K`` re-draw the weights of ``random_model``
(Gaussian N(0, 1/fan_in), or orthogonal rows of equal norm; zero biases, BatchNorm as identity)
and explain the photographs of ``random_source``; ``trained`` explains held-out images of
``trained_source`` with ``trained_model``. Every item records, per image and method, the cosine
with the input of the signal (``input_signal``) and of the published map, and the layer-wise
cosines. The summary has medians, one-sided paired Wilcoxon and sign tests against the gradient
(paired by network and image), per-layer medians, and a figure.

Default (CPU, about a minute): a small CNN (``small-cnn``) on scikit-image photographs at 32 px,
20 isotropic + 20 orthogonal networks, and the digits CNN on 40 held-out digits. At scale:
``--set random_model=vgg16 --set random_source=/data/imagenet/val --set size=224 --set photos=8
--set trained_model=vgg16 --set weights=ckpt.pt --set trained_source=/data/imagenet/val
--set images=200 --set methods=gradient,guided-backprop,rectgrad,"lrp[composite='dtd-zb',low=-2.2,high=2.7]"
--device cuda`` (orthogonal re-draws of ImageNet-size layers cost one QR per layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import workbench
from workbench.studies import alignment as A
from workbench.runner import experiment as X
from workbench.data.sources import image_source, load_model
from workbench.nets import spec as S
from workbench.nets import randomize as NR

SMALL_CNN = "small-cnn"


def small_cnn(channels: int, size: int) -> S.NetSpec:
    """conv8-relu-conv8-relu-maxpool-conv16-relu-maxpool-linear32-relu-linear10 (the tests' CNN)."""
    return S.NetSpec(
        (channels, size, size),
        (S.Conv2d(8, 3, padding=1), S.ReLU(), S.Conv2d(8, 3, padding=1), S.ReLU(), S.MaxPool2d(2),
         S.Conv2d(16, 3, padding=1), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(32), S.ReLU(), S.Linear(10)),
    )


@X.register
@dataclass(frozen=True)
class InputAlignment(X.Experiment):
    name_prefix = "input-alignment"
    claim = "negative-filtering BP signals (GBP, RectGrad, LRP z+, DTD) are far more aligned with the input than the gradient, layer by layer (Zheng, Sang & Xu 2025)"

    methods: tuple = ("gradient", "guided-backprop", "deconvnet", "rectgrad", "lrp[composite='zplus']", "lrp[composite='epsilon']")
    networks: int = 20
    kinds: tuple = ("isotropic", "orthogonal", "trained")
    random_model: str = SMALL_CNN
    random_source: str = "skimage"
    photos: int = 4
    size: int = 32
    trained_model: str = "digits-cnn"
    weights: str | None = None
    trained_source: str = "digits"
    images: int = 40
    dtype: str = "float64"

    def items(self) -> list[str]:
        keys = [f"{k}-{i}" for k in ("isotropic", "orthogonal") if k in self.kinds for i in range(self.networks)]
        return keys + (["trained"] if "trained" in self.kinds else [])

    def _template(self, ctx: X.Context, channels: int):
        def build():
            if self.random_model == SMALL_CNN:
                return S.build(small_cnn(channels, self.size), dtype=getattr(torch, self.dtype))
            return load_model(self.random_model, device=ctx.device).model.to(getattr(torch, self.dtype))
        return ctx.cached("template", build)

    def _batch(self, ctx: X.Context, source: str, count: int) -> torch.Tensor:
        def build():
            from workbench.data.pipeline import load_images  # through the pipeline's DataLoader (pinned memory on CUDA)

            return load_images(image_source(source, count=count, size=self.size, seed=self.seed), ctx.device, getattr(torch, self.dtype))
        return ctx.cached(f"images:{source}:{count}", build)

    def run_item(self, key: str, ctx: X.Context) -> dict:
        methods = [workbench.method(m) for m in self.methods]
        if key == "trained":
            model = ctx.cached("trained", lambda: load_model(self.trained_model, weights=self.weights, device=ctx.device).model.to(getattr(torch, self.dtype)))
            x = self._batch(ctx, self.trained_source, self.images)
        else:
            kind, seed = key.rsplit("-", 1)
            x = self._batch(ctx, self.random_source, self.photos)
            model = NR.random_weights(self._template(ctx, x.shape[1]), ctx.seed_for(key), orthogonal=kind == "orthogonal")
        with torch.no_grad():
            target = model(x).argmax(1)
        record: dict = {"signal": {}, "map": {}, "layers": {}, "layer_names": []}
        for m in methods:
            record["signal"][m.label] = A.cosine(A.input_signal(m, model, x, target=target), x).tolist()
            record["map"][m.label] = A.cosine(m.attribute(model, x, target=target), x).tolist()
            layers = A.layerwise_alignment(m, model, x, target=target)
            record["layer_names"] = [l.name for l in layers]
            record["layers"][m.label] = [l.input_cosine.tolist() for l in layers]
        record["map_measure_bias"] = A.map_measure_bias(x).tolist()
        return record

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        keys = self.items()
        labels = [workbench.method(m).label for m in self.methods]
        reference = labels[0]
        summary: dict = {"reference": reference, "kinds": {}}
        from workbench.runner import summary as S

        tables, pvalues, notes = [], {}, []
        for kind in self.kinds:
            recs = [r for k, r in zip(keys, records) if k == kind or k.startswith(kind + "-")]
            if not recs:
                continue
            entry: dict = {"n": 0, "signal": {}, "map": {}, "layers": {}}
            for measure in ("signal", "map"):
                vals = {lab: np.concatenate([r[measure][lab] for r in recs]) for lab in labels}
                entry["n"] = int(len(vals[reference]))
                rows = []
                for lab in labels:
                    wp, sp = A.paired_tests(vals[lab], vals[reference]) if lab != reference else (None, None)
                    entry[measure][lab] = {"median": float(np.median(vals[lab])), "wilcoxon_p": wp, "sign_p": sp}
                    rows.append([lab, float(np.median(vals[lab])), wp, sp])
                    if measure == "signal" and wp is not None:
                        pvalues[f"{lab} ({kind})"] = wp
                tables.append(S.table(["method", "median cos", "Wilcoxon p", "sign p"], rows,
                                      title=f"[{kind}] {measure}: n = {entry['n']} (networks x images), one-sided against {reference}"))
            names = recs[0]["layer_names"]
            for lab in labels:
                per = np.concatenate([np.asarray(r["layers"][lab]).T for r in recs])  # (samples, layers)
                entry["layers"][lab] = np.median(per, axis=0).tolist()
            entry["layer_names"] = names
            tables.append(S.table(["method"] + list(names), [[lab] + [float(v) for v in entry["layers"][lab]] for lab in labels],
                                  title=f"[{kind}] layer-wise median cos(W^T c, layer input), output layer first"))
            bias = np.concatenate([r["map_measure_bias"] for r in recs])
            notes.append(f"[{kind}] cos(x^2, x) (what the map measure gives a perfectly aligned s * x map): median {np.median(bias):.3f}")
            summary["kinds"][kind] = entry
        outcome = S.worst_p(pvalues, what=f"every signal more aligned with the input than {reference}'s")
        text = S.write(ctx.out_dir, title=f"input alignment: cos(signal or map, input), paired one-sided tests against {reference}",
                       claim=self.claim, outcome=outcome, tables=tables, notes=notes)
        summary["claim"] = outcome.to_dict()
        _plot(ctx.out_dir / "layerwise_alignment.png", summary["kinds"], labels)
        summary["text"] = text
        return summary


def _plot(path: Path, kinds: dict, labels: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds) + 2.2, 3.8), squeeze=False)
    for ax, (kind, entry) in zip(axes[0], kinds.items()):
        names = entry["layer_names"][::-1]  # input layer first
        for lab in labels:
            ax.plot(range(len(names)), entry["layers"][lab][::-1], marker="o", label=lab)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=8)
        ax.set(title=f"{kind} weights", xlabel="layer (input first)", ylim=(-0.3, 1.0))
        ax.axhline(0, color="grey", lw=0.5)
    axes[0][0].set_ylabel("median cos(signal at layer input, layer input)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
