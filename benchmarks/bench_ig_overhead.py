"""Per-call cost of IG on tiny fixture networks (where the checker spends its time): workbench
vs Captum at equal Gauss-Legendre steps, interleaved in one process (ratio < 1: ours faster).

Random weights, biases and BatchNorm statistics; Gaussian-noise baselines; float64; one thread.

Run:  python benchmarks/bench_ig_overhead.py [--calls 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import workbench
from workbench.nets import spec as S

from _common import header, randomize_affine

NETS = {
    "mlp 3-3-2": S.NetSpec((3,), (S.Linear(3), S.ReLU(), S.Linear(2))),
    "cnn 3x8x8": S.NetSpec((3, 8, 8), (S.Conv2d(4, 3, padding=1), S.BatchNorm(), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(8), S.ReLU(), S.Linear(3))),
    "cnn 2x5x5": S.NetSpec((2, 5, 5), (S.Conv2d(2, 2), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(2))),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args(argv)
    from captum.attr import IntegratedGradients as CaptumIG

    torch.set_num_threads(1)
    print(header(f"IG per-call time on fixture networks, {args.steps} GL steps: workbench / Captum"))
    for name, spec in NETS.items():
        net = randomize_affine(S.build(spec, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 0).eval()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(1, *spec.input_shape, generator=g, dtype=torch.float64)
        b = torch.randn(x.shape, generator=g, dtype=torch.float64)
        ours = workbench.method("integrated-gradients", tolerance=None, steps=args.steps)
        captum = CaptumIG(net)
        fns = {
            "ours": lambda: ours.attribute(net, x, target=0, baseline=b),
            "captum": lambda: captum.attribute(x, baselines=b, target=0, n_steps=args.steps, method="gausslegendre"),
        }
        for f in fns.values():
            f()
        ratios, per = [], {k: [] for k in fns}
        for _ in range(args.rounds):  # interleaved A/B
            for k, f in fns.items():
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    f()
                per[k].append((time.perf_counter() - t0) / args.calls)
            ratios.append(per["ours"][-1] / per["captum"][-1])
        print(f"{name:12} ours {statistics.median(per['ours']) * 1e3:7.2f} ms  captum {statistics.median(per['captum']) * 1e3:7.2f} ms  "
              f"ratio {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
