"""FullGrad: full_gradients and the FullGrad / Grad-CAM maps against one forward + input-gradient backward.

For resnet18 and vgg16 (CPU, random weights with randomized biases and BatchNorm statistics,
one 224x224 image, float32): median wall time of
  * gradient      - one forward + input-gradient backward (the unit; ratio 1.0)
  * full_gradients - the decomposition (all bias terms, per position)
  * fullgrad      - the FullGrad saliency map (decomposition + channel sums + upsampling)
  * gradcam       - Grad-CAM on the last conv layer
and, for comparison, Captum's LayerGradCam + bilinear upsampling and Captum's InputXGradient.
Also each decomposition's relative completeness residual (float32 here; float64 in the tests).
Target: full_gradients and fullgrad <= 1.5 x gradient.

Run:  python benchmarks/bench_fullgrad.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import workbench
from workbench.core.autograd import target_gradients
from workbench.methods.fullgrad import full_gradients

from _common import header, randomize_affine


def last_conv(model: torch.nn.Module) -> torch.nn.Module:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def run(arch: str, size: int, repeats: int) -> list[tuple]:
    from captum.attr import InputXGradient, LayerAttribution, LayerGradCam

    model = randomize_affine(getattr(torchvision.models, arch)(weights=None)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([3])
    fullgrad, gradcam = workbench.method("fullgrad"), workbench.method("gradcam")
    lgc, ixg = LayerGradCam(model, last_conv(model)), InputXGradient(model)
    fns = {
        "gradient": lambda: target_gradients(model, x, t),
        "full_gradients": lambda: full_gradients(model, x, t),
        "fullgrad": lambda: fullgrad.attribute(model, x, target=t),
        "gradcam": lambda: gradcam.attribute(model, x, target=t),
        "captum_cam": lambda: LayerAttribution.interpolate(lgc.attribute(x, target=3, relu_attributions=True), (size, size), "bilinear"),
        "captum_ixg": lambda: ixg.attribute(x.clone().requires_grad_(True), target=3),
    }
    # interleaved rounds: load from other processes hits every function alike
    times = {k: [] for k in fns}
    for k, fn in fns.items():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    t_grad, t_fg, t_map, t_cam, t_ccam, t_cixg = (med[k] for k in fns)
    fg = full_gradients(model, x, t)
    res = float(fg.relative_residual)
    return [
        (arch, "gradient (unit)", t_grad, 1.0, ""),
        (arch, "full_gradients", t_fg, t_fg / t_grad, f"residual {res:.1e}, {len(fg.bias_terms)} bias terms"),
        (arch, "fullgrad map", t_map, t_map / t_grad, ""),
        (arch, "gradcam", t_cam, t_cam / t_grad, ""),
        (arch, "captum LayerGradCam+upsample", t_ccam, t_ccam / t_grad, ""),
        (arch, "captum InputXGradient", t_cixg, t_cixg / t_grad, ""),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="112x112, one repeat")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    size, repeats = (112, 1) if args.quick else (224, args.repeats)
    print(header(f"FullGrad vs one forward + input-gradient backward ({size}x{size}, float32, median of {repeats})"))
    rows = []
    for arch in ("resnet18", "vgg16"):
        rows += run(arch, size, repeats)
    print(f"{'model':10s} {'what':30s} {'seconds':>9s} {'ratio':>7s}  note")
    for arch, what, t, r, note in rows:
        print(f"{arch:10s} {what:30s} {t:9.4f} {r:7.2f}  {note}")
    worst = max(r for _, what, _, r, _ in rows if what in ("full_gradients", "fullgrad map"))
    print(f"\nworst full_gradients / fullgrad ratio: {worst:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
