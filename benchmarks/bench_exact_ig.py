"""Exact IG vs Captum's Gauss-Legendre IG on the small CNN, in one process, interleaved.

Exact IG integrates every linear region of the path (round-off accuracy); Captum's error at n
steps is its distance to the exact map. Reported: regions, passes, the time ratio exact / Captum
at 1024 steps (median of interleaved runs, so machine load cancels), and each map's relative L1
distance to the exact one and completeness residual. Random biases and BatchNorm statistics,
uniform-noise baseline, float64.

Each region costs one fused pass (a forward with the path tangent, the kink search, a backward)
against Captum's one gradient pass per step, so the ratio is bounded below by about
(regions / steps) x (backward share of a gradient pass): 14,871 regions against 1024 steps is
>= ~10x before any kink search (measured, 1 thread: 36.9x, exact 77-89 s, Captum 2.2-2.4 s).

Run:  python benchmarks/bench_exact_ig.py [--repeats 3] [--samples 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import workbench

from _common import header, randomize_affine
from bench_integrated_gradients import small_cnn


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (exact, then each Captum step count)")
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--steps", default="1024,4096")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from captum.attr import IntegratedGradients as CaptumIG

    print(header("Exact IG vs Captum IG (small CNN 3x32x32, float64, noise baseline)"))
    model = randomize_affine(small_cnn(torch.float64), 0).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.samples, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    b = torch.rand(x.shape, generator=g, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        t = model(x).argmax(1)
    exact_m = workbench.method("integrated-gradients", rule="exact")
    captum = CaptumIG(model)
    steps = [int(s) for s in args.steps.split(",")]

    def run_exact():
        return exact_m.integrate(model, x, target=t, baseline=b)

    def run_captum(n):
        return captum.attribute(x, baselines=b, target=t, n_steps=n, method="gausslegendre", internal_batch_size=256).detach()

    run_captum(8)  # warm-up (Captum's first call)
    times = {"exact": []} | {n: [] for n in steps}
    maps = {}
    for i in range(args.repeats):  # interleaved A/B; the first exact map is the reference
        t0 = time.perf_counter(); r = run_exact(); times["exact"].append(time.perf_counter() - t0)
        for n in steps:
            t0 = time.perf_counter(); maps[n] = run_captum(n); times[n].append(time.perf_counter() - t0)
        print(f"round {i}: exact {times['exact'][-1]:.1f} s, " + ", ".join(f"captum {n} {times[n][-1]:.2f} s" for n in steps), flush=True)
    ref = r.attribution
    ratios = {n: statistics.median(e / c for e, c in zip(times["exact"], times[n])) for n in steps}  # per interleaved round
    dF = (r.output - r.baseline_output)
    norm = ref.abs().flatten(1).sum(1)
    print(f"regions per sample {r.gradient_evaluations.tolist()}, exact completeness residual {r.residual.abs().max():.1e}, "
          f"exact seconds {[round(v, 1) for v in times['exact']]}")
    print(f"{'method':14} {'passes':>7} {'time ratio':>10} {'map L1 err':>10} {'residual':>9}")
    print(f"{'exact':14} {'-':>7} {1.0:10.2f} {0.0:10.1e} {float((r.residual / dF).abs().max()):9.1e}")
    for n in steps:
        err = float(((maps[n] - ref).abs().flatten(1).sum(1) / norm).max())
        res = float(((maps[n].flatten(1).sum(1) - dF) / dF).abs().max())
        print(f"{'captum GL ' + str(n):14} {n:7d} {ratios[n]:10.2f} {err:10.1e} {res:9.1e}")
    print("time ratio = exact / captum (median over interleaved rounds of the per-round ratio)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
