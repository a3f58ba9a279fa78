"""Scale: items/s, peak memory and the 2-process speed-up of pixel-perturbation and of the network
check, by batch size, on one process and on two (torchrun, gloo, CPU).

A random checkpoint of ``--arch`` (biases and BatchNorm statistics randomized, saved as a state
dict) and a generated ImageFolder; each configuration runs as the user runs it, in its own
subprocess (``python -m workbench ...`` or ``python -m torch.distributed.run --nproc-per-node=2
-m workbench ...``), whose peak resident memory (the largest process: a rank, or the one process)
is read with ``resource.getrusage(RUSAGE_CHILDREN)`` by a fresh wrapper process.

Work time = the run's wall time minus the wall time of the same command run again on the
finished results folder (start-up, loading, rendezvous, merging: everything but the items).
items/s counts images for pixel-perturbation (``2 x batch size`` images: two items, so both
processes get one) and (axiom, image) units for the network check (``batch size`` images).
The speed-up is (1-process work time) / (2-process work time) for the same work.

Measured 2026-11-29 (``--batch-sizes 1,8,32 --size 224``, 12 minutes) on a 2-core machine SHARED
with three other sessions (load average 5-6): 2-process speed-up, pixel-perturbation 2.01x / 1.28x /
2.13x at batch 1 / 8 / 32 (0.15 / 1.30 / 1.59 images/s on one process; batch 1's two images
include loading the model), network check 3.74x / 1.57x / 1.47x at 2 / 16 / 64 units (0.34 / 0.63 /
0.64 units/s); a ratio above 2 is the load's noise on a few seconds of work. Peak memory 0.9-1.2 GB
per process at every batch size (memory budget 2GB).

Run:  python benchmarks/bench_scale.py                  # the small default: minutes on 2 cores
      python benchmarks/bench_scale.py --batch-sizes 1,8,32 --size 224   # the issue's full grid
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
_WRAPPER = (
    "import resource, subprocess, sys, json, time\n"
    "t = time.monotonic(); rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(json.dumps({'rc': rc, 'seconds': time.monotonic() - t, 'max_rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def measured(argv: list[str], env: dict) -> dict:
    """Run `argv` under a fresh wrapper; its exit code, wall seconds and peak RSS (MB)."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, env=env)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["peak_mb"] = rec.pop("max_rss_kb") / 1024
    if rec["rc"] not in (0, 1):  # 1: a claimed axiom failed, a verdict like any other
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
        Image.fromarray(arr).save(tmp / "images" / f"class{i % 2}" / f"{i:04d}.png")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = randomize_affine(torchvision.models.get_model(arch, weights=None), torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), tmp / "weights.pt")
    return tmp / "weights.pt", tmp / "images"


def launcher(nproc: int) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "workbench"]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone", "-m", "workbench"]


def work(argv: list[str], env: dict) -> dict:
    """A run, then the same command again on its finished results: work seconds and peak memory."""
    first = measured(argv, env)
    again = measured(argv, env)
    first["work_seconds"] = max(first["seconds"] - again["seconds"], 1e-9)
    return first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated (the issue's grid: 1,8,32)")
    p.add_argument("--methods", default="random;gradient", help="pixel-perturbation methods (';'-separated)")
    p.add_argument("--percentages", default="10", help="comma-separated")
    p.add_argument("--memory-budget", default="2GB")
    p.add_argument("--check-method", default="integrated-gradients[tolerance=None,steps=4]")
    p.add_argument("--check-axioms", default="completeness,implementation-invariance")
    p.add_argument("--check-dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--skip-check", action="store_true", help="pixel-perturbation only")
    p.add_argument("--threads", type=int, default=1, help="OMP threads per process (torchrun sets 1)")
    args = p.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": str(args.threads)}
    print(f"== scale: {args.arch} at {args.size} px, memory budget {args.memory_budget}, {args.threads} thread(s) per process, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ==")
    print(f"{'what':20s} {'batch':>5s} {'procs':>5s} {'items':>5s} {'work s':>8s} {'items/s':>8s} {'peak MB':>8s} {'speed-up':>8s}  rc", flush=True)
    base: dict = {}

    def row(what: str, b: int, nproc: int, items: int, rec: dict) -> None:
        """One measured line, printed as soon as it is measured."""
        rate = items / rec["work_seconds"]
        if nproc == 1:
            base[(what, b)] = rec["work_seconds"]
        speed = f"{base[(what, b)] / rec['work_seconds']:.2f}x" if nproc == 2 and (what, b) in base else ""
        err = rec.get("stderr", "").strip().splitlines()
        print(f"{what:20s} {b:5d} {nproc:5d} {items:5d} {rec['work_seconds']:8.1f} {rate:8.3f} {rec['peak_mb']:8.0f} {speed:>8s}  {rec['rc']}"
              + (f"  {err[-1]}" if err else ""), flush=True)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        weights, images = fixtures(tmp, args.arch, 2 * max(sizes), args.size)
        for b in sizes:
            for nproc in (1, 2):
                results = tmp / f"pp-{b}-{nproc}"
                argv = [*launcher(nproc), "experiment", "pixel-perturbation", "--quiet", "--results", str(results),
                        "--set", f"model={args.arch}", "--set", f"weights={weights}", "--set", f"source={images}", "--set", f"images={2 * b}",
                        "--set", f"size={args.size}", "--batch-size", str(b), "--set", f"methods={args.methods.split(';')!r}",
                        "--set", f"percentages=[{args.percentages}]", "--set", "replacement=0", "--set", f"memory_budget={args.memory_budget}"]
                row("pixel-perturbation", b, nproc, 2 * b, work(argv, env))
                shutil.rmtree(results, ignore_errors=True)
        if not args.skip_check:
            n_axioms = len(args.check_axioms.split(","))
            for b in sizes:
                for nproc in (1, 2):
                    results = tmp / f"nc-{b}-{nproc}"
                    argv = [*launcher(nproc), "check", args.check_method, "--model", args.arch, "--weights", str(weights),
                            "--source", str(images), "--images", str(b), "--size", str(args.size), "--examples", str(b),
                            "--axioms", args.check_axioms, "--dtype", args.check_dtype, "--quiet", "--json", "--out", str(tmp / "cx"),
                            "--shrink-seconds", "10", "--results", str(results)]
                    row("network check", b, nproc, b * n_axioms, work(argv, env))
                    shutil.rmtree(results, ignore_errors=True)
    print("items: images (pixel-perturbation) or (axiom, image) units (network check); work s: wall time minus the same command's "
          "rerun on the finished folder; speed-up: 1-process work s / 2-process work s; peak MB: the largest process")

if __name__ == "__main__":
    main()
