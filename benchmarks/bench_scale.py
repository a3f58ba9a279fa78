"""Scale: items/s and peak memory of pixel-perturbation and of the network check, by batch size.

A random checkpoint of ``--arch`` (biases and BatchNorm statistics randomized, saved as a state
dict) and a generated ImageFolder; each configuration runs as the user would run it, in its own
subprocess (``python -m workbench.cli ...``), whose peak resident memory is read with
``resource.getrusage(RUSAGE_CHILDREN)`` by a fresh wrapper process. items/s counts images (pixel
perturbation: from the per-item seconds the results store records, without start-up; network
check: drawn cases over the check's wall time).

Not yet here: 1 vs 2 processes (torchrun, gloo) -- waits for the distributed runner.

Run:  python benchmarks/bench_scale.py [--arch resnet18] [--size 224] [--batch-sizes 1,8,32]
          [--methods 'random;gradient'] [--percentages 10] [--memory-budget 2GB] [--check-examples 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
_WRAPPER = (
    "import resource, subprocess, sys, json, time\n"
    "t = time.monotonic(); rc = subprocess.call(sys.argv[1:])\n"
    "print(json.dumps({'rc': rc, 'seconds': time.monotonic() - t, 'max_rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def measured(argv: list[str], env: dict) -> dict:
    """Run `argv` under a fresh wrapper; its exit code, wall seconds and peak RSS (MB)."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, env=env)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["peak_mb"] = rec.pop("max_rss_kb") / 1024
    if rec["rc"] != 0:
        rec["stderr"] = out.stderr[-600:]
    return rec


def fixtures(tmp: Path, arch: str, images: int, size: int) -> tuple[Path, Path]:
    import torchvision
    from PIL import Image

    from workbench.nets.randomize import randomize_affine

    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp / "images" / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        arr = rng.integers(0, 255, (size + size // 7, size + size // 7, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp / "images" / f"class{i % 2}" / f"{i}.png")
    model = randomize_affine(torchvision.models.get_model(arch, weights=None), torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), tmp / "weights.pt")
    return tmp / "weights.pt", tmp / "images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--methods", default="random;gradient", help="pixel-perturbation methods (';'-separated)")
    p.add_argument("--percentages", default="10", help="comma-separated")
    p.add_argument("--memory-budget", default="2GB")
    p.add_argument("--check-method", default="integrated-gradients[tolerance=None,steps=4]")
    p.add_argument("--check-examples", type=int, default=2, help="drawn cases per axiom of the network check (0: skip it)")
    p.add_argument("--check-axioms", default="completeness,implementation-invariance")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": str(args.threads)}
    print(f"== scale: {args.arch} at {args.size} px, memory budget {args.memory_budget}, {args.threads} thread(s), torch {torch.__version__} ==")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        weights, images = fixtures(tmp, args.arch, max(sizes), args.size)
        rows = []
        for b in sizes:
            results = tmp / f"results-{b}"
            argv = [sys.executable, "-m", "workbench.cli", "experiment", "pixel-perturbation", "--quiet", "--results", str(results),
                    "--set", f"model={args.arch}", "--set", f"weights={weights}", "--set", f"source={images}", "--set", f"images={b}",
                    "--set", f"size={args.size}", "--set", f"batch_size={b}", "--set", f"methods={args.methods.split(';')!r}",
                    "--set", f"percentages=[{args.percentages}]", "--set", "replacement=0", "--set", f"memory_budget={args.memory_budget}", "--limit", "1"]
            rec = measured(argv, env)
            items = [json.loads(line) for f in results.glob("*/items.jsonl") for line in f.read_text().splitlines()]
            seconds = sum(i["seconds"] for i in items)
            n = sum(len(i["record"]["images"]) for i in items)
            rows.append(("pixel-perturbation", b, n / seconds if seconds else float("nan"), rec["peak_mb"], rec["rc"], rec.get("stderr", "")))
        if args.check_examples > 0:
            for b in sizes:
                argv = [sys.executable, "-m", "workbench.cli", "check", args.check_method, "--model", args.arch, "--weights", str(weights),
                        "--source", str(images), "--images", str(b), "--size", str(args.size), "--examples", str(args.check_examples),
                        "--axioms", args.check_axioms, "--dtype", "float64", "--quiet", "--json", "--out", str(tmp / "cx"), "--shrink-seconds", "1"]
                rec = measured(argv, env)
                cases = args.check_examples * len(args.check_axioms.split(","))
                rows.append(("network check", b, cases / rec["seconds"], rec["peak_mb"], rec["rc"], rec.get("stderr", "")))
    print(f"{'what':20s} {'images':>6s} {'items/s':>9s} {'peak MB':>9s}  rc")
    for what, b, rate, peak, rc, err in rows:
        print(f"{what:20s} {b:6d} {rate:9.3f} {peak:9.0f}  {rc}" + (f"  {err.strip().splitlines()[-1]}" if err else ""))
    print("pixel-perturbation items/s: images per second of item time (start-up excluded); network check: cases per second"
          " of wall time (start-up included; --images is the pool cases draw one image from)")


if __name__ == "__main__":
    main()
