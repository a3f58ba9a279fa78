"""Modified backprop: workbench vs Zennit (LRP EpsilonPlusFlat) and Captum (GuidedBackprop), one process.

Models: torchvision resnet18 and vgg16 with random weights (biases and BatchNorm statistics
randomized), CPU, float32, one 224x224 input. Relevance seed: the target logit (one-hot x F_t).
Our composite uses Zennit's conventions for the comparison: stabilizer 1e-6 everywhere, z+ on
convolutions with signed inputs and b+ in the denominator (``zplus_bias=True``); Zennit gets its
ResNet canonizer (BatchNorm merge + explicit residual sums) on resnet18, nothing on vgg16.

Columns: time ratio (workbench / peer; target <= 1.0), max |ours - peer| / max |peer| of the maps,
and each library's sum of input relevance / F_t(x).

Canonizer exactness (second table): the canonized model's output against the original's, for both
libraries. Zennit's BatchNorm merge resets the BatchNorm to mean 0 / var 1 / weight 1 / bias 0 but
keeps its eps, so each merged BatchNorm still divides by sqrt(1 + eps): the canonized ResNet is not
the original network. The "eps = 0" rows set every BatchNorm's eps to 0 (a slightly different
network), where both canonizers are exact: the remaining map difference is float32 round-off.

Run:  python benchmarks/bench_modified_backprop.py [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
import torchvision

import workbench
from workbench.methods.modified_backprop import backward_through
from workbench.rules import composite

from _common import header, randomize_affine, timed


def zennit_lrp(model, x, target, resnet: bool):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    comp = EpsilonPlusFlat(canonizers=[ResNetCanonizer()] if resnet else [])
    one_hot = torch.zeros(1, 1000)
    one_hot[0, target] = 1.0
    with Gradient(model=model, composite=comp) as attributor:
        _, rel = attributor(x, lambda out: one_hot * out)
    return rel


def zennit_canonized_output(model, x, resnet: bool):
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    canonizer = ResNetCanonizer() if resnet else VGGCanonizer()
    handles = canonizer.apply(model)
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for h in handles:
            h.remove()


def ours_canonized_output(model, x):
    from workbench.rules import Composite, MergeBatchNorm, ResidualSum

    with torch.no_grad(), Composite(canonizers=[MergeBatchNorm(), ResidualSum()]).context(model):
        return model(x)


def ours_lrp(model, x, target):
    comp = composite("epsilon-plus-flat", stabilizer=1e-6, zplus_bias=True)
    return backward_through(comp, model, x, torch.tensor([target]), seed="relevance")


def captum_gbp(model, x, target):
    from captum.attr import GuidedBackprop

    return GuidedBackprop(model).attribute(x.clone().requires_grad_(True), target=target).detach()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(header("modified backprop: workbench vs Zennit / Captum"))
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    rows = [("model", "method", "ours s", "peer s", "ratio", "max rel diff", "ours sum/F", "peer sum/F")]
    canon = [("model", "BatchNorm eps", "ours |canonized - original| / |original|", "zennit |canonized - original| / |original|")]
    for name in ("resnet18", "vgg16"):
        model = randomize_affine(getattr(torchvision.models, name)(weights=None), seed=0).eval()
        for p_ in model.parameters():
            p_.requires_grad_(False)
        with torch.no_grad():
            out = model(x)
        target = int(out.argmax())
        f = float(out[0, target])
        resnet = name.startswith("resnet")
        for eps in (None, 0.0):
            if eps is not None:
                if not resnet:
                    continue  # VGG has no BatchNorm
                for m in model.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.eps = eps
                with torch.no_grad():
                    out = model(x)
                f = float(out[0, target])
            scale = float(out.abs().max())
            canon.append((name, "default" if eps is None else "0", f"{float((ours_canonized_output(model, x) - out).abs().max()) / scale:.1e}", f"{float((zennit_canonized_output(model, x, resnet) - out).abs().max()) / scale:.1e}"))
            t_ours, a = timed(lambda: ours_lrp(model, x, target), args.repeats)
            t_peer, b = timed(lambda: zennit_lrp(model, x, target, resnet), args.repeats)
            diff = float((a - b).abs().max() / b.abs().max())
            label = "lrp eps+flat" + ("" if eps is None else " (BN eps=0)")
            rows.append((name, label, f"{t_ours:.3f}", f"{t_peer:.3f}", f"{t_ours / t_peer:.2f}", f"{diff:.2e}", f"{float(a.sum()) / f:.4f}", f"{float(b.sum()) / f:.4f}"))
        gbp = workbench.method("guided-backprop")
        t_ours, a = timed(lambda: gbp.attribute(model, x, target=target), args.repeats)
        t_peer, b = timed(lambda: captum_gbp(model, x, target), args.repeats)
        diff = float((a - b).abs().max() / b.abs().max())
        rows.append((name, "guided backprop", f"{t_ours:.3f}", f"{t_peer:.3f}", f"{t_ours / t_peer:.2f}", f"{diff:.2e}", "", ""))
        t_grad, _ = timed(lambda: workbench.method("gradient").attribute(model, x, target=target), args.repeats)
        rows.append((name, "(plain gradient)", f"{t_grad:.3f}", "", "", "", "", ""))
    from workbench.check.search import format_table

    print(format_table(rows))
    print()
    print(format_table(canon))


if __name__ == "__main__":
    main()
