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

from workbench import experiment as X
from workbench.data import image_source, torchvision_model
from workbench.errors import InputError
from workbench.fullgrad import full_gradients
from workbench.nets.spec import randomize_affine


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
        src = ctx.cached("source", lambda: image_source(self.source, count=self.images, size=self.size, seed=self.seed))
        x = torch.stack([src[k].image for k in src.keys()]).to(ctx.device)
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
        lines = [f"full-gradient completeness, {self.images} images ({self.source}, {self.size} px); "
                 "residual = max |F - sum of terms| / |F|", ""]
        lines.append(f"{'architecture':14s} {'float64':>9s} {'float32':>9s} {'terms':>6s} {'BN':>4s} {'bias share':>10s} {'GELU f64':>9s}")
        for arch, r in zip(self.items(), records):
            gelu = f"{r['gelu_float64']['relative_residual']:9.1e}" if "gelu_float64" in r else f"{'-':>9s}"
            lines.append(f"{arch:14s} {r['float64']['relative_residual']:9.1e} {r['float32']['relative_residual']:9.1e} "
                         f"{r['float64']['bias_terms']:6d} {r['float64']['batchnorm_terms']:4d} {r['float64']['bias_share']:10.2f} {gelu}")
        if any(r["random_weights"] for r in records):
            lines.append("\n(random weights with randomized biases and BatchNorm statistics)")
        lines.append("bias share: median |sum of bias terms| / |F| -- what x * grad_x F alone would miss")
        text = "\n".join(lines)
        (ctx.out_dir / "summary.md").write_text("```\n" + text + "\n```\n")
        worst = float(np.max([r["float64"]["relative_residual"] for r in records]))
        return {"per_architecture": dict(zip(self.items(), records)), "worst_float64_residual": worst, "text": text}
