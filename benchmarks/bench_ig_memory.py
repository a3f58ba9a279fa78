"""Peak memory of IG on resnet18 at 224 px: workbench's default vs Captum's internal_batch_size.

Each configuration runs in a fresh subprocess; the figure is the growth of the process's peak
resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over the call, after torch, the
model and the inputs are loaded (tracemalloc does not see torch's allocations). The absolute
peak is printed too. Random biases and BatchNorm statistics, a uniform-noise baseline.

Run:  python benchmarks/bench_ig_memory.py [--size 224] [--only workbench-default]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CONFIGS = {
    "workbench-default": "ig = workbench.method('integrated-gradients'); r = ig.integrate(model, x, target=t, baseline=b); "
                         "info = dict(passes=int(r.gradient_evaluations[0]), residual=rel(r.residual), converged=bool(r.converged[0]))",
    "workbench-gl128": "ig = workbench.method('integrated-gradients', tolerance=None, steps=128); a = ig.attribute(model, x, target=t, baseline=b); "
                       "info = dict(passes=128, residual=rel(a.sum() - (fx - fb)))",
    "captum-gl128-ibs16": "from captum.attr import IntegratedGradients as C; a = C(model).attribute(x, baselines=b, target=t, n_steps=128, "
                          "method='gausslegendre', internal_batch_size=16); info = dict(passes=128, residual=rel(a.sum() - (fx - fb)))",
}

CHILD = r"""
import json, resource, time, warnings, torch, torchvision
torch.set_num_threads(int({threads}))
import workbench
from workbench.nets.randomize import randomize_affine
model = randomize_affine(torchvision.models.resnet18(weights=None), torch.Generator().manual_seed(0)).eval()
g = torch.Generator().manual_seed(1)
x = torch.rand(1, 3, {size}, {size}, generator=g) * 2 - 1
b = torch.rand(x.shape, generator=g) * 2 - 1
with torch.no_grad():
    t = int(model(x).argmax()); fx = float(model(x)[0, t]); fb = float(model(b)[0, t])
scale = max(abs(fx), abs(fb), abs(fx - fb))
rel = lambda r: abs(float(r if not hasattr(r, 'sum') else r.sum())) / scale
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    {code}
info.update(seconds=time.perf_counter() - t0, warnings=[str(m.message)[:200] for m in w])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(info, before_mb=before / 1024, peak_mb=after / 1024, growth_mb=(after - before) / 1024)))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=",".join(CONFIGS))
    args = p.parse_args(argv)
    print(f"== IG peak memory, resnet18 {args.size}px, noise baseline (ru_maxrss growth over the call) ==")
    for name in args.only.split(","):
        code = CHILD.format(size=args.size, threads=args.threads, code=CONFIGS[name])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
        if out.returncode:
            print(name, "FAILED", out.stderr[-2000:])
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:22} growth {row['growth_mb']:7.0f} MB  peak {row['peak_mb']:6.0f} MB  (before {row['before_mb']:.0f} MB)  "
              f"passes {row['passes']}  residual {row['residual']:.2e}  {row['seconds']:.0f} s  {row.get('converged', '')} {row['warnings']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
