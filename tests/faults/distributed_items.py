"""A test-only experiment for the torchrun tests (imported by a ``sitecustomize`` the tests put
on the subprocesses' PYTHONPATH, so that ``python -m workbench experiment dist-test`` finds it).

Items are pure functions of (seed, key); ``WORKBENCH_TEST_ITEM_PAUSE`` seconds per item (outside
the config, so it does not change the results folder) gives a window to kill a run in."""

import os
import time
from dataclasses import dataclass

import torch

from workbench.runner import experiment as X


@X.register
@dataclass(frozen=True)
class DistItems(X.Experiment):
    name_prefix = "dist-test"
    n: int = 12

    def items(self):
        return [f"item-{k:02d}" for k in range(self.n)]

    def run_item(self, key, ctx):
        pause = float(os.environ.get("WORKBENCH_TEST_ITEM_PAUSE", "0"))
        if pause:
            time.sleep(pause)
        v = ctx.seed_for(key) % 1000
        return {"value": v, "noise": float(torch.rand(1, generator=ctx.generator(key)))}

    def summarize(self, records, ctx):
        # order-sensitive: equal only when the records come in the experiment's item order
        return {"n": len(records), "total": sum(r["value"] for r in records), "order": [r["value"] for r in records],
                "weighted": sum(i * r["noise"] for i, r in enumerate(records))}
