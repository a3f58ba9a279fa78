"""Integrated Gradients: workbench vs Captum, side by side in one process.

For each model and quadrature rule at equal steps: time ratio (workbench / Captum; target <= 1.0)
and each library's relative completeness residual |sum IG - (F(x) - F(x'))| / |F(x) - F(x')|.
Then the error-controlled mode: passes needed to reach 1% relative residual, against a fixed
50-step Gauss-Legendre run (bench_ig_passes.py has the full passes-to-tolerance table).
Noise baselines throughout.

Run:  python benchmarks/bench_integrated_gradients.py [--quick]
"""

from __future__ import annotations

import argparse
import sys

import torch
import torchvision

import workbench
from workbench.nets import spec as S

from _common import header, randomize_affine, timed

RULES = {"gauss-legendre": "gausslegendre", "trapezoid": "riemann_trapezoid", "midpoint": "riemann_middle", "left": "riemann_left"}


def small_cnn(dtype: torch.dtype) -> torch.nn.Module:
    spec = S.NetSpec(
        (3, 32, 32),
        (S.Conv2d(16, 3, padding=1), S.BatchNorm(), S.ReLU(inplace=True), S.MaxPool2d(2),
         S.Conv2d(32, 3, padding=1), S.BatchNorm(), S.ReLU(inplace=True), S.MaxPool2d(2),
         S.Flatten(), S.Linear(64), S.ReLU(), S.Linear(10)),
    )
    return S.build(spec, dtype=dtype, generator=torch.Generator().manual_seed(0))


def noise_baseline(x: torch.Tensor) -> torch.Tensor:
    """Uniform noise over x's range (a zero baseline on a bias-free network makes IG exact)."""
    g = torch.Generator().manual_seed(2)
    return torch.rand(x.shape, generator=g, dtype=x.dtype) * (x.max() - x.min()) + x.min()


def relative_residual(attr: torch.Tensor, model, x, baseline, target) -> float:
    with torch.no_grad():
        fx = model(x)[0, target].item()
        fb = model(baseline)[0, target].item()
    return abs(attr.sum().item() - (fx - fb)) / abs(fx - fb)


def run(model, x, target, steps: int, batch: int, repeats: int) -> list[tuple]:
    from captum.attr import IntegratedGradients as CaptumIG

    baseline = noise_baseline(x)
    rows = []
    captum = CaptumIG(model)
    for ours_rule, captum_rule in RULES.items():
        ours = workbench.method("integrated-gradients", rule=ours_rule, steps=steps, tolerance=None, chunk_size=batch)
        t_ours, a_ours = timed(lambda: ours.attribute(model, x, target=target, baseline=baseline), repeats)
        t_cap, a_cap = timed(
            lambda: captum.attribute(x, baselines=baseline, target=target, n_steps=steps, method=captum_rule, internal_batch_size=batch),
            repeats,
        )
        rows.append((ours_rule, steps, t_ours, t_cap, t_ours / t_cap,
                     relative_residual(a_ours, model, x, baseline, target),
                     relative_residual(a_cap.detach(), model, x, baseline, target)))
    return rows


def controlled(model, x, target, batch: int) -> tuple:
    baseline = noise_baseline(x)
    adaptive = workbench.method("integrated-gradients", tolerance=1e-2, chunk_size=batch)
    t_ad, r = timed(lambda: adaptive.integrate(model, x, target=target, baseline=baseline), repeats=1)
    fixed = workbench.method("integrated-gradients", steps=50, tolerance=None, chunk_size=batch)
    t_fx, a_fx = timed(lambda: fixed.attribute(model, x, target=target, baseline=baseline), repeats=1)
    dF = (r.output - r.baseline_output).abs().item()
    return (int(r.gradient_evaluations[0]), int(r.forward_evaluations[0]), abs(r.residual.item()) / dF, t_ad,
            50, relative_residual(a_fx, model, x, baseline, target), t_fx)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="small CNN only, fewer repeats")
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    print(header("Integrated Gradients: workbench vs Captum 0.9 (CPU)"))
    cases = [("small CNN 3x32x32, float64", randomize_affine(small_cnn(torch.float64)).eval(), torch.randn(1, 3, 32, 32, dtype=torch.float64), 16, 3)]
    if not args.quick:
        rn = randomize_affine(torchvision.models.resnet18(weights=None)).eval()
        cases.append(("resnet18 1x3x224x224, float32 (random weights, random biases/BN stats)", rn, torch.randn(1, 3, 224, 224), 16, 3))
    for title, model, x, batch, repeats in cases:
        target = int(model(x).argmax())
        print(f"\n-- {title}; target {target}; internal batch {batch}")
        print(f"{'rule':16} {'steps':>5} {'ours s':>8} {'captum s':>9} {'ratio':>6} {'ours resid':>11} {'captum resid':>13}")
        for rule, steps, t_o, t_c, ratio, r_o, r_c in run(model, x, target, args.steps, batch, repeats):
            print(f"{rule:16} {steps:5d} {t_o:8.3f} {t_c:9.3f} {ratio:6.2f} {r_o:11.2e} {r_c:13.2e}")
        g, f, res, t_ad, n_fx, res_fx, t_fx = controlled(model, x, target, batch)
        print(f"error-controlled (tolerance 1e-2): {g} gradient + {f} forward passes, residual {res:.2e}, {t_ad:.3f} s")
        print(f"fixed Gauss-Legendre, {n_fx} steps: {n_fx} gradient passes, residual {res_fx:.2e}, {t_fx:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
