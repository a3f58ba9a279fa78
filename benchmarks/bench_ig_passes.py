"""Error-controlled IG vs fixed Gauss-Legendre: network passes to reach a completeness residual.

For each case and tolerance t: the gradient passes the error-controlled mode (``tolerance=t``) used,
and the smallest Gauss-Legendre step count n on a geometric grid (ratio 2^(1/4), 4..MAX_GL) whose
residual is within the same bound, |sum IG - (F(x) - F(x'))| <= t * scale + round-off, scale =
max(|F(x)|, |F(x')|, |F(x) - F(x')|). Fixed GL with n steps is n gradient passes; its residual needs
only phi'(s_i) = (x - x') . grad F at the nodes, evaluated here by forward-mode AD (the same number;
checked against the IG method at one n). The error-controlled mode uses no forward-only passes.

Columns: "ratio" = adaptive / GL stays; "+resid" = adaptive / (GL stays + 2), GL charged the two
forward rows F(x), F(x') without which it does not know its residual (the error-controlled mode
knows it). "GL first" is the smallest n within the bound on the grid; on ReLU networks the GL
residual is erratic in n (digits CNN, noise baseline, 1e-3: n = 4 and 9 within, 5-8 and 10-24 not),
so "GL first" is luck that no controller which checks its residual can be asked to beat.

The completeness residual is not the error of the map (errors of opposite sign cancel in it): the
last columns give each map's distance to a reference IG (GL with 4x the larger step count).

Every model has random biases and BatchNorm statistics; baselines are noise or blurred inputs.
Counts are passes, not seconds (the machine may be loaded).

Run:  python benchmarks/bench_ig_passes.py [--cases resnet18-224-noise,digits-noise,...] [--seeds 0,1,2] [--json FILE]
      python benchmarks/bench_ig_passes.py --cases vgg16-224-noise,vgg16-224-blur --chunk 1   (heavy: batch 1)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

import torch
import torch.autograd.forward_ad as fwAD

import workbench
from workbench.paths.baselines import gaussian_blur
from workbench.paths.quadrature import quadrature
from workbench.core.tolerance import rtol_for

from _common import header, randomize_affine

MAX_GL = 1024
TOLERANCES = (1e-2, 1e-3)


def grid(limit: int = MAX_GL) -> list[int]:
    """4..64 at ratio 2^(1/4), then ratio 2^(1/2) up to `limit`."""
    out, k = [], 8
    while True:
        n = int(round(2 ** (k / 4)))
        if n > limit:
            return out
        if not out or n != out[-1]:
            out.append(n)
        k += 1 if n < 64 else 2


def torchvision_case(name: str, size: int, baseline: str, seed: int = 0):
    import torchvision

    torch.manual_seed(seed)  # the weights do not depend on which cases ran before
    model = randomize_affine(getattr(torchvision.models, name)(weights=None), seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    b = _baseline(x, baseline, g)
    return model, x, b


def digits_case(baseline: str, seed: int = 0):
    from workbench.data.digits import digits_split, train_digits

    model, _ = train_digits()
    x = digits_split()[2][seed : seed + 1].to(next(model.parameters()).dtype)
    g = torch.Generator().manual_seed(seed + 1)
    return model, x, _baseline(x, baseline, g)


def _baseline(x, kind, g):
    if kind == "noise":
        return torch.rand(x.shape, generator=g, dtype=x.dtype) * (x.max() - x.min()) + x.min()
    if kind == "blur":
        return gaussian_blur(x, sigma=max(1.0, x.shape[-1] / 16))
    raise ValueError(kind)


CASES = {  # name -> case(seed): the seed draws the weights and input (torchvision) or the test digit, and the noise baseline
    "resnet18-224-noise": lambda seed: torchvision_case("resnet18", 224, "noise", seed),
    "resnet18-224-blur": lambda seed: torchvision_case("resnet18", 224, "blur", seed),
    "vgg16-224-noise": lambda seed: torchvision_case("vgg16", 224, "noise", seed),
    "vgg16-224-blur": lambda seed: torchvision_case("vgg16", 224, "blur", seed),
    "vgg16-112-noise": lambda seed: torchvision_case("vgg16", 112, "noise", seed),
    "vgg16-112-blur": lambda seed: torchvision_case("vgg16", 112, "blur", seed),
    "digits-noise": lambda seed: digits_case("noise", seed),
    "digits-blur": lambda seed: digits_case("blur", seed),
}


def slopes(model, x, b, target: int, s: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """phi'(s) = (x - x') . grad F_target(x' + s (x - x')) by forward-mode AD, float64."""
    d = x - b
    out = []
    with torch.no_grad():
        for lo in range(0, s.numel(), chunk):
            sl = s[lo : lo + chunk].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
            pts = b + sl * d
            with fwAD.dual_level():
                y = model(fwAD.make_dual(pts, d.expand_as(pts).contiguous()))
                out.append(fwAD.unpack_dual(y).tangent[:, target].double())
    return torch.cat(out)


def gl_scan(model, x, b, target, fx, fb, ns, chunk: int = 8):
    """Relative GL residual |sum_i w_i phi'(s_i) - (F(x) - F(x'))| / scale for every n in ns."""
    scale = max(abs(fx), abs(fb), abs(fx - fb))
    out = {}
    for n in ns:
        q = quadrature("gauss-legendre", n)
        out[n] = abs(float((q.weights * slopes(model, x, b, target, q.nodes, chunk)).sum()) - (fx - fb)) / scale
    return out


def gl_summary(scan: dict, t: float, bound: float) -> dict:
    """first: smallest n within the bound (found only by trying: `tries` passes for all n up to it);
    stays: smallest n from which every larger n scanned stays within."""
    ns = sorted(scan)
    first = next((n for n in ns if scan[n] <= bound), None)
    tries = sum(n for n in ns if first is not None and n <= first) if first else None
    stays = None
    for n in reversed(ns):
        if scan[n] > bound:
            break
        stays = n
    return dict(gl_first=first, gl_first_residual=scan.get(first, math.nan) if first else math.nan, gl_tries=tries, gl_stays=stays)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--seeds", default="0", help="comma-separated seeds: each case is run once per seed")
    p.add_argument("--json", default=None)
    p.add_argument("--budget", type=int, default=2 << 30, help="memory_budget of the error-controlled runs (bytes)")
    p.add_argument("--max-gl", type=int, default=MAX_GL, help="largest Gauss-Legendre step count scanned")
    p.add_argument("--grid", default=None, help="comma-separated GL step counts to scan instead of the default grid")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chunk", type=int, default=None, help="rows per pass (vgg16 at 224 px on a small machine: 1)")
    p.add_argument("--map-error", action="store_true", help="also each map's distance to a finer GL reference")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print(header("IG passes to a completeness residual: error control vs fixed Gauss-Legendre"))
    rows = []
    for name, seed in [(n, int(v)) for n in args.cases.split(",") for v in args.seeds.split(",")]:
        model, x, b = CASES[name](seed)
        name = f"{name}:{seed}"
        for prm in model.parameters():
            prm.requires_grad_(False)
        with torch.no_grad():
            target = int(model(x).argmax())
            fx, fb = float(model(x)[0, target]), float(model(b)[0, target])
        scale = max(abs(fx), abs(fb), abs(fx - fb))
        runs = {}
        for t in TOLERANCES:
            ig = workbench.method("integrated-gradients", tolerance=t, max_steps=8192, memory_budget=args.budget, chunk_size=args.chunk)
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                r = ig.integrate(model, x, target=target, baseline=b)
            runs[t] = (r, w)
            print(f"{name} tolerance {t:g}: {int(r.gradient_evaluations[0])} passes, residual {abs(float(r.residual[0])) / scale:.2e}", flush=True)
        ns = [int(v) for v in args.grid.split(",")] if args.grid else grid(args.max_gl)
        scan = gl_scan(model, x, b, target, fx, fb, ns, chunk=args.chunk or 8)
        for t in TOLERANCES:
            r, w = runs[t]
            # the same bound as the error-controlled mode: t * scale + round-off, relative to scale
            bound = t + rtol_for(x.dtype) / scale
            row = dict(case=name, tolerance=t, adaptive_passes=int(r.gradient_evaluations[0] + r.forward_evaluations[0]),
                       adaptive_residual=abs(float(r.residual[0])) / scale, converged=bool(r.converged[0]),
                       **gl_summary(scan, t, bound), gl_min=min(scan), gl_max=max(scan), warnings=[str(m.message)[:160] for m in w])
            if args.map_error and row["gl_stays"]:
                ref_n = 4 * max(row["gl_stays"], row["adaptive_passes"])
                ref = workbench.method("integrated-gradients", tolerance=None, steps=ref_n).attribute(model, x, target=target, baseline=b)
                norm = float(ref.abs().sum())
                row["adaptive_map_err"] = float((r.attribution - ref).abs().sum()) / norm
                for key in ("gl_first", "gl_stays"):
                    fixed = workbench.method("integrated-gradients", tolerance=None, steps=row[key]).attribute(model, x, target=target, baseline=b)
                    row[key + "_map_err"] = float((fixed - ref).abs().sum()) / norm
                row["reference_steps"] = ref_n
            rows.append(row)
            print(json.dumps(row), flush=True)
        print("GL residuals: " + " ".join(f"{n}:{v:.1e}" for n, v in scan.items()), flush=True)
    table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def table(rows: list) -> None:
    print(f"\n{'case':20} {'tol':>6} {'adaptive':>8} {'GL stays':>8} {'ratio':>6} {'+resid':>6} {'GL first':>8} {'GL tries':>8} {'resid ad.':>9} {'resid GL1':>9} {'map ad.':>8} {'map GL1':>8} {'map GLs':>8}")
    for r in rows:
        st = r["gl_stays"]
        ratio = f"{r['adaptive_passes'] / st:.2f}" if st else "-"
        known = f"{r['adaptive_passes'] / (st + 2):.2f}" if st else "-"  # GL plus F(x), F(x'): its residual known
        print(f"{r['case']:20} {r['tolerance']:6.0e} {r['adaptive_passes']:8d} {str(st or '>' + str(r['gl_max'])):>8} {ratio:>6} {known:>6} "
              f"{str(r['gl_first']):>8} {str(r['gl_tries']):>8} {r['adaptive_residual']:9.1e} {r['gl_first_residual']:9.1e} "
              f"{r.get('adaptive_map_err', math.nan):8.1e} {r.get('gl_first_map_err', math.nan):8.1e} {r.get('gl_stays_map_err', math.nan):8.1e}")

    def wins(extra: int) -> int:
        """Cells where error control converged in fewer passes than GL stays (+ extra); where GL never
        stays within the bound up to the largest n scanned, fewer passes than that n."""
        return sum(1 for r in rows if r["converged"] and r["adaptive_passes"] < (r["gl_stays"] or r["gl_max"]) + extra)

    n = len(rows)
    print(f"\nerror control in fewer passes than GL stays: {wins(0)} of {n} cells; "
          f"than GL stays + 2 (GL charged F(x), F(x') to know its residual): {wins(2)} of {n}")
    # a controller that checks its residual evaluates both ends; on 3 nodes the only degree-3 rule
    # with both ends is Simpson's, which the error-controlled mode tries first (3 passes)
    closed = sum(1 for r in rows if r["gl_stays"] == r["gl_min"] == 4 and r["adaptive_passes"] > 3)
    print(f"cells where GL stays from 4 nodes on and Simpson on 3 nodes misses: {closed} of {n}")


if __name__ == "__main__":
    sys.exit(main())
