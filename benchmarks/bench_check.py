"""Checker cost per method: wall time and evaluations (top-level method calls) of ``workbench.check``.

Run from the repository root::

    python3 benchmarks/bench_check.py [--examples 60] [--seed 0] [--methods a,b,...] [--json]

Evaluations count the calls of ``Method.attribute`` made by the checker (a method calling
another method inside counts once), so they compare two versions of the checker on a loaded
machine where wall time does not; wall time is printed beside them for reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import workbench  # noqa: E402
from workbench.methods import base as method_base  # noqa: E402

try:
    from _common import header  # type: ignore  # noqa: E402
except ImportError:  # run from another directory
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import header  # type: ignore  # noqa: E402


class CallCounter:
    """Counts top-level ``Method.attribute`` calls (nested calls inside a method are not counted)."""

    def __init__(self) -> None:
        self.calls = 0
        self._depth = 0
        self._original = method_base.Method.attribute

    def __enter__(self) -> "CallCounter":
        counter, original = self, self._original

        def counted(method, *args, **kwargs):
            if counter._depth == 0:
                counter.calls += 1
            counter._depth += 1
            try:
                return original(method, *args, **kwargs)
            finally:
                counter._depth -= 1

        method_base.Method.attribute = counted
        # subclasses overriding attribute (integrated-gradients) call super().attribute: patch them too
        self._patched = []
        for cls in _subclasses(method_base.Method):
            if "attribute" in vars(cls):
                own = vars(cls)["attribute"]
                self._patched.append((cls, own))
                setattr(cls, "attribute", _wrap(counter, own))
        return self

    def __exit__(self, *exc) -> None:
        method_base.Method.attribute = self._original
        for cls, own in self._patched:
            setattr(cls, "attribute", own)


def _wrap(counter: CallCounter, fn):
    def counted(method, *args, **kwargs):
        if counter._depth == 0:
            counter.calls += 1
        counter._depth += 1
        try:
            return fn(method, *args, **kwargs)
        finally:
            counter._depth -= 1

    return counted


def _subclasses(cls: type) -> list:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def main(argv=None) -> int:
    from workbench.methods.registry import matrix_methods

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", help="comma-separated (default: the --all matrix)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = args.methods.split(",") if args.methods else matrix_methods()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            with CallCounter() as counter:
                t0 = time.perf_counter()
                report = workbench.check(name, examples=args.examples, seed=args.seed, save_dir=tmp)
                dt = time.perf_counter() - t0
            cells = [v.cell() for v in report.verdicts]
            rows.append({"method": name, "seconds": round(dt, 2), "evaluations": counter.calls, "cells": cells})
            print(f"{name:60s} {dt:8.1f}s {counter.calls:8d} calls  {' '.join(cells)}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(header(f"workbench check cost per method (examples={args.examples}, seed={args.seed})"))
        print(f"{'method':60s} {'seconds':>8s} {'evaluations':>11s}")
        for r in rows:
            print(f"{r['method']:60s} {r['seconds']:8.1f} {r['evaluations']:11d}")
        print(f"{'total':60s} {sum(r['seconds'] for r in rows):8.1f} {sum(r['evaluations'] for r in rows):11d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
