"""The network check as a job of independent units, run in memory or through the results store
(and so across torchrun processes, resumable per shard).

A unit (an item of the store) is one axiom on one image: ``"<axiom>/<image key>"``, in report
order (axiom-major). Its verdict is ``check_network_item``'s: ``examples`` shared out over the
images and a search seed derived from (seed, axiom, image key) only, never from the rank or the
order -- so one process, K processes, and a job resumed with another number of processes give
the same verdicts, and ``summarize`` merges them (``merge_verdicts``) into the Report that
``check_network`` returns for the same settings.

    exp = NetworkCheck.of("integrated-gradients", model="resnet18", weights="W.pt", source="DIR")
    report = run_network_check(exp)                        # in memory
    report = run_network_check(exp, results="results")     # resumable: results/<exp.name>/
    torchrun --nproc-per-node=2 -m workbench check integrated-gradients --model resnet18 --weights W.pt --source DIR

Under torchrun (``workbench.runner.distributed``), each rank loads the checkpoint and images once, runs
its share of the units and appends them to its own shard; rank 0 merges the shards and returns
the Report (the other ranks return None).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Optional, Union

import torch

from workbench.core.errors import InputError
from workbench.runner.experiment import Context, Experiment, _plain, resolve_device
from workbench.check.network.axioms import NETWORK_AXIOMS, get_network_axiom
from workbench.check.network.check import Report, check_network_item, merge_verdicts, network_settings, report_from_dict, verdict_from_record, verdict_record
from workbench.check.network.network import Network, load_network, sha256_file

if TYPE_CHECKING:
    from workbench.runner.distributed import Group

__all__ = ["NetworkCheck", "run_network_check"]


@dataclass(frozen=True)
class NetworkCheck(Experiment):
    """Settings of a network check (``workbench check METHOD --model ARCH --weights W --source DIR``);
    the fields name the results folder, so another checkpoint (by sha256) or setting never resumes
    into it. ``method`` and ``option`` are as on the command line (``NAME[k=v]`` or
    ``module:callable``; ``key=value`` strings)."""

    name_prefix: ClassVar[str] = "network-check"
    claim: ClassVar[str] = "a method's claimed axioms hold on a given trained network"

    method: str = "integrated-gradients"
    option: tuple = ()
    model: str = "resnet18"
    weights: str = ""
    weights_sha256: str = ""
    source: str = ""
    images: int = 4
    size: int = 224
    dtype: str = "float64"
    axioms: tuple = ()  # empty: every network axiom
    examples: int = 10
    shrink_evaluations: int = 30
    shrink_seconds: float = 120.0
    memory_budget: Optional[str] = None
    out: Optional[str] = "counterexamples"  # where counterexample files go (None: not saved)

    @classmethod
    def of(cls, method: str, *, weights: Union[str, Path], source: Union[str, Path], **fields) -> "NetworkCheck":
        """Validated settings: the checkpoint exists (named by its sha256), the source is a
        folder, the axioms are network axioms, the dtype is float32 or float64."""
        if not Path(weights).is_file():
            raise InputError(f"weights file {str(weights)!r} does not exist")
        if not Path(source).is_dir():
            raise InputError(f"--source must be an ImageFolder directory, got {str(source)!r}")
        for a in fields.get("axioms") or ():
            get_network_axiom(a)
        exp = cls(method=method, weights=str(weights), weights_sha256=sha256_file(weights), source=str(source),
                  **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        exp.torch_dtype()
        if exp.images < 1 or exp.examples < 1:
            raise InputError(f"--images and --examples must be at least 1 (got {exp.images}, {exp.examples})")
        return exp

    def torch_dtype(self) -> torch.dtype:
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return getattr(torch, self.dtype)

    def axiom_names(self) -> list[str]:
        return list(self.axioms) if self.axioms else list(NETWORK_AXIOMS)

    def image_keys(self) -> list[str]:
        from workbench.data.sources import image_source

        return image_source(self.source, count=self.images, size=self.size, seed=self.seed).keys()

    def items(self) -> list[str]:
        keys = self.image_keys()
        return [f"{a}/{k}" for a in self.axiom_names() for k in keys]

    # -- per run (cached in the context: once per process) -------------------------------------
    def resolved(self, ctx: Context):
        """(method, claimed-override): the method as the command line builds it."""
        def build():
            from workbench.cli import _parse_options, _resolve_method
            from workbench.methods.base import CallableMethod

            m = _resolve_method(self.method, _parse_options(list(self.option)))
            return m, (True if isinstance(m, CallableMethod) and not m.declared else None)
        return ctx.cached("method", build)

    def network(self, ctx: Context) -> Network:
        def build():
            net = load_network(self.model, self.weights, self.source, images=self.images, size=self.size, seed=self.seed,
                               dtype=self.torch_dtype(), device=ctx.device)
            if net.weights_sha256 != self.weights_sha256:
                raise InputError(f"{self.weights} changed since the check began (sha256 {net.weights_sha256} != {self.weights_sha256}); "
                                 "every process must read the same checkpoint")
            if net.model.training:
                raise InputError("the model is in training mode")
            return net
        return ctx.cached("network", build)

    def chunked(self, ctx: Context):
        """The method with a chunk size for ``memory_budget`` (measured once per process)."""
        def build():
            method, _ = self.resolved(ctx)
            if self.memory_budget is None:
                return method
            from workbench.data.pipeline import chunk_rows, with_chunk

            net = self.network(ctx)
            return with_chunk(method, chunk_rows(net.model, net.images[:1], self.memory_budget))
        return ctx.cached("chunked", build)

    def run_item(self, key: str, ctx: Context) -> dict:
        axiom, _, image_key = key.partition("/")
        net = self.network(ctx)
        method, claimed = self.resolved(ctx)
        if image_key not in net.keys:
            raise InputError(f"{image_key!r} is not among the images of {self.source}")
        v = check_network_item(self.chunked(ctx), net, axiom, net.keys.index(image_key), examples=self.examples, seed=self.seed,
                               save_dir=self.out, claimed=claimed, shrink_evaluations=self.shrink_evaluations,
                               shrink_seconds=self.shrink_seconds)
        from dataclasses import replace

        # named by the method as given: a chunk size (from the memory measured in this process) changes no value
        return {"axiom": axiom, "image": image_key, "verdict": verdict_record(replace(v, method=method.label))}

    def summarize(self, records: list[dict], ctx: Context) -> dict:
        method, _ = self.resolved(ctx)
        verdicts = [merge_verdicts([(r["image"], verdict_from_record(r["verdict"])) for r in records if r["axiom"] == a]) for a in self.axiom_names()]
        images = len({r["image"] for r in records})
        net = {"arch": self.model, "weights_sha256": self.weights_sha256, "source": self.source, "size": self.size}
        report = Report(method.label, verdicts, network_settings(net, images, self.examples, self.seed, self.torch_dtype()))
        return {"report": report.to_dict()}


def run_network_check(
    exp: NetworkCheck,
    *,
    results: Optional[Union[str, Path]] = None,
    group: Optional["Group"] = None,
    log: Optional[Callable[[str], None]] = None,
    wait: float = 0.0,
) -> Optional[Report]:
    """Run every unit of `exp` and merge them into a Report.

    ``results`` None and no ``group``: in memory. Otherwise through the results store
    (``workbench.runner.experiment.run``; under torchrun, ``group`` shares the units out over the ranks,
    each appending to its own shard): finished units are kept and a rerun resumes. Returns None
    on ranks other than 0, and when the job did not finish."""
    from workbench.runner import experiment as X

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if results is None and group is None:
        from workbench.data.pipeline import Progress

        ctx = Context(Path("."), resolve_device(exp.device), exp.seed, say)
        keys = exp.items()
        progress = Progress(len(keys), "network check")
        records = []
        for key in keys:
            records.append(json.loads(json.dumps(_plain(exp.run_item(key, ctx)))))  # the form the store reads back
            progress.update()
            say(f"{key} done; {progress.line()}")
        summary = _plain(exp.summarize(records, ctx))
    else:
        summary = X.run(exp, results=results if results is not None else "results", log=say, wait=wait, dist=group).summary
        if group is not None and group.rank != 0:
            return None
    return report_from_dict(summary["report"]) if summary else None
