"""I-GOS: time per image by mask resolution, against the network passes it used, replayed alone.

resnet18 (torchvision, random weights with randomized biases and BatchNorm statistics), CPU,
float32, one photograph (scikit-image's astronaut, ImageNet-normalized), reference settings
(15 iterations x 20 path steps, line search from 200 by 0.2) at mask resolutions 7, 14, 28 and 56.
For each resolution:

  * igos      - wall time of ``IGOS(resolution=r).optimize`` on the image;
  * passes    - the images it sent through the network with a backward pass (gradient) and without
                (forward), read from the optimizer's own record and checked against a counting wrapper;
  * replay    - wall time of exactly those network calls alone (same batch sizes, same order, input
                gradients for the gradient calls), on random inputs;
  * ratio     - igos / replay: what the optimizer adds beyond the network's own work (target <= 1.2),
                by wall time and by process CPU time (steadier when other processes share the cores).

For comparison, the reference code's pass count for the same run: per iteration 20 gradient passes,
one forward whose graph is never used, the same line-search forwards and one forward for a plotted
curve (the I-GOS reference implementation, Qi, Khorram & Fuxin, AAAI 2020).

Run:  python benchmarks/bench_igos.py [--quick] [--size N] [--iterations N] [--repeats N] [--resolutions 7,14,28,56] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torchvision

from workbench.methods.igos import IGOS

from _common import header, randomize_affine

RESOLUTIONS = (7, 14, 28, 56)


class Counting(torch.nn.Module):
    """Counts the images the wrapped network sees with and without autograd."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.with_grad = 0
        self.without_grad = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and z.requires_grad:
            self.with_grad += z.shape[0]
        else:
            self.without_grad += z.shape[0]
        return self.inner(z)


def photograph(size: int) -> torch.Tensor:
    import skimage.data
    from skimage.transform import resize

    img = resize(skimage.data.astronaut() / 255.0, (size, size), anti_aliasing=True)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return torch.tensor(((img - mean) / std).transpose(2, 0, 1), dtype=torch.float32).unsqueeze(0)


def replay(model: torch.nn.Module, calls, shape: tuple, target: int) -> None:
    """The same network calls on random inputs: forward + input-gradient backward, or forward only."""
    g = torch.Generator().manual_seed(0)
    for kind, rows in calls:
        z = torch.randn((rows, *shape), generator=g)
        if kind == "gradient":
            z.requires_grad_(True)
            with torch.enable_grad():
                out = torch.log_softmax(model(z), 1)[:, target].exp()
                torch.autograd.grad(out.sum(), z)
        else:
            with torch.no_grad():
                torch.log_softmax(model(z), 1)[:, target].exp()


def run(size: int, iterations: int, repeats: int, resolutions: tuple = RESOLUTIONS) -> list[dict]:
    torch.manual_seed(0)  # torchvision's initialization draws from the global generator
    model = randomize_affine(torchvision.models.resnet18(weights=None)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = photograph(size)
    with torch.no_grad():
        target = int(model(x).argmax(1))
    rows = []
    for res in resolutions:
        if res > size:
            continue
        igos = IGOS(resolution=res, iterations=iterations)
        counted = Counting(model).eval()
        result = igos.optimize(counted, x, target=target)  # warm-up and pass check
        assert counted.with_grad == int(result.gradient_passes[0]) and counted.without_grad == int(result.forward_passes[0])
        t_igos, t_replay, c_igos, c_replay = [], [], [], []
        for _ in range(repeats):  # interleaved: load from other processes hits both alike
            t0, c0 = time.perf_counter(), time.process_time()
            result = igos.optimize(model, x, target=target)
            t_igos.append(time.perf_counter() - t0)
            c_igos.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            replay(model, result.network_calls, tuple(x.shape[1:]), target)
            t_replay.append(time.perf_counter() - t0)
            c_replay.append(time.process_time() - c0)
        trials = sum(s.trials for s in result.steps[0])
        grads, fwds = int(result.gradient_passes[0]), int(result.forward_passes[0])
        rows.append({
            "resolution": res,
            "igos": statistics.median(t_igos),
            "replay": statistics.median(t_replay),
            "igos_cpu": statistics.median(c_igos),
            "replay_cpu": statistics.median(c_replay),
            "gradient_passes": grads,
            "forward_passes": fwds,
            "reference_forward_passes": trials + 2 * iterations + 1,
            "objective": (float(result.objective[0, 0]), float(result.final_objective[0])),
            "accepted": sum(s.accepted for s in result.steps[0]),
        })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="112x112 image, 5 iterations")
    p.add_argument("--size", type=int, help="image side (default 224)")
    p.add_argument("--iterations", type=int, help="I-GOS iterations (default 15, the reference)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared machine)")
    p.add_argument("--resolutions", default=",".join(map(str, RESOLUTIONS)), help="mask sides, comma-separated (default 7,14,28,56)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = args.size or (112 if args.quick else 224)
    iterations = args.iterations or (5 if args.quick else 15)
    print(header(f"I-GOS on resnet18 ({size}x{size}, float32, {iterations} iterations x 20 path steps, median of {args.repeats})"))
    rows = run(size, iterations, args.repeats, tuple(int(r) for r in args.resolutions.split(",")))
    print(f"{'mask':>6s} {'igos s':>8s} {'replay s':>9s} {'ratio':>6s} {'cpu ratio':>9s} {'grad passes':>12s} {'fwd passes':>11s} {'ref fwd':>8s} {'accepted':>9s}  objective")
    for r in rows:
        print(
            f"{r['resolution']:>4d}^2 {r['igos']:8.2f} {r['replay']:9.2f} {r['igos'] / r['replay']:6.2f} {r['igos_cpu'] / r['replay_cpu']:9.2f} "
            f"{r['gradient_passes']:>12d} {r['forward_passes']:>11d} {r['reference_forward_passes']:>8d} {r['accepted']:>9d}  "
            f"{r['objective'][0]:.4f} -> {r['objective'][1]:.4f}"
        )
    worst = max(r["igos"] / r["replay"] for r in rows)
    worst_cpu = max(r["igos_cpu"] / r["replay_cpu"] for r in rows)
    print(f"\nworst igos / replay ratio: {worst:.2f} wall, {worst_cpu:.2f} CPU time (target <= 1.2)")
    print("ref fwd: forwards the reference code spends on the same run (+1 unused-graph forward and +1 curve forward per iteration)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
