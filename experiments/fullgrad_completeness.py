"""FullGrad completeness on real CNNs (Srinivas & Fleuret 2019): F(x) = grad_x F . x + sum grad_b F * b.

For each architecture: the relative reconstruction residual |F - (input term + bias terms)| / |F|
in float64 and float32, the number of bias terms (implicit BatchNorm biases included), and the
share of the output the bias terms carry (what input-gradient x input misses). Then the same
architecture with its ReLUs swapped for a smooth activation (GELU), where the theorem's positive
homogeneity is gone: the decomposition is computed with ``strict=False`` and its residual is the
size of the implicit biases, reported, not hidden.

Default: torchvision architectures with random weights and randomized biases and BatchNorm
statistics (fresh torchvision models have zero biases: the decomposition would be trivial), on
scikit-image photographs at 224 px. With ``--set weights=ckpt.pt`` and one architecture, the
user's trained network; ``--set source=/data/imagenet/val`` for its images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workbench.runner import experiment as X
from workbench.data.sources import image_source, torchvision_model
from workbench.core.errors import InputError
from workbench.data.pipeline import load_images
from workbench.methods.fullgrad import full_gradients
from workbench.nets.randomize import randomize_affine


def smooth_copy(model: nn.Module) -> nn.Module:
    """The same network with every ReLU replaced by GELU (a non-homogeneous activation)."""
    import copy

    out = copy.deepcopy(model)
    for parent in out.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.GELU())
    return out.eval()


@X.register
@dataclass(frozen=True)
class FullGradCompleteness(X.Experiment):
    name_prefix = "fullgrad-completeness"
    claim = "a ReLU network's output is exactly its input-gradient term plus all bias-gradient terms (Srinivas & Fleuret 2019)"

    architectures: tuple = ("vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet50")
    weights: str | None = None
    source: str = "skimage"
    images: int = 2
    size: int = 224
    smooth: bool = True

    def items(self) -> list[str]:
        if self.weights is not None and len(self.architectures) != 1:
            raise InputError("weights= names one checkpoint: give exactly one architecture")
        return list(self.architectures)

    def run_item(self, key: str, ctx: X.Context) -> dict:
        model, random_weights = torchvision_model(key, self.weights)
        if random_weights:
            randomize_affine(model, ctx.generator(key))
        # the images once per run, through the pipeline's DataLoader (pinned memory on CUDA)
        x = ctx.cached("images", lambda: load_images(image_source(self.source, count=self.images, size=self.size, seed=self.seed), ctx.device, torch.float32))
        record: dict = {"random_weights": random_weights}
        for dtype in (torch.float64, torch.float32):
            net = model.to(ctx.device, dtype)
            xd = x.to(dtype)
            with torch.no_grad():
                target = net(xd).argmax(1)
            fg = full_gradients(net, xd, target)
            out = fg.output.abs()
            record[str(dtype).replace("torch.", "")] = {
                "relative_residual": float((fg.residual.abs() / out).max()),
                "bias_share": float((fg.bias_total.abs() / out).median()),
                "bias_terms": len(fg.bias_terms),
                "batchnorm_terms": sum(t.kind.startswith("BatchNorm") for t in fg.bias_terms),
            }
        if self.smooth:
            net = smooth_copy(model).to(ctx.device, torch.float64)
            xd = x.double()
            with torch.no_grad():
                target = net(xd).argmax(1)
            fg = full_gradients(net, xd, target, strict=False)
            record["gelu_float64"] = {
                "relative_residual": float((fg.residual.abs() / fg.output.abs()).max()),
                "implicit_bias_layers": len(fg.implicit_bias_layers),
            }
        return record

    def summarize(self, records: list[dict], ctx: X.Context) -> dict:
        from workbench.runner import summary as S

        rows = []
        for arch, r in zip(self.items(), records):
            gelu = r["gelu_float64"]["relative_residual"] if "gelu_float64" in r else None
            rows.append([arch, r["float64"]["relative_residual"], r["float32"]["relative_residual"], r["float64"]["bias_terms"],
                         r["float64"]["batchnorm_terms"], r["float64"]["bias_share"], gelu])
        residuals = S.table(["architecture", "float64", "float32", "terms", "BN", "bias share", "GELU f64"], rows,
                            title="residual = max |F - sum of terms| / |F|",
                            legend=["bias share: median |sum of bias terms| / |F| -- what x * grad_x F alone would miss",
                                    "GELU f64: the same on a GELU network, where the decomposition is not exact (a control)"])
        worst = float(np.max([r["float64"]["relative_residual"] for r in records]))
        outcome = S.Outcome(bool(worst <= 1e-8), f"worst float64 relative residual {worst:.1e} over {len(records)} architecture(s) "
                                                 f"x {self.images} image(s) (exact up to round-off: <= 1e-8)")
        notes = ["random weights with randomized biases and BatchNorm statistics"] if any(r["random_weights"] for r in records) else []
        text = S.write(ctx.out_dir, title=f"full-gradient completeness, {self.images} images ({self.source}, {self.size} px)",
                       claim=self.claim, outcome=outcome, tables=[residuals], notes=notes)
        return {"per_architecture": dict(zip(self.items(), records)), "worst_float64_residual": worst, "claim": outcome.to_dict(), "text": text}
