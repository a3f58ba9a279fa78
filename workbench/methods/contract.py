"""The method contract, checked before any axiom and reported rather than repaired.

A method ``A(model, x, target, baseline)`` must return a detached, finite tensor of x's shape,
dtype and device; leave the model as it found it (parameter and buffer values, training flags,
module hooks of every kind, torch's global module hooks, instance-level ``forward``); give the
same map when called twice on the same case without the RNG being reset in between
(deterministic); and give, for a batch with mixed targets, the rows of the one-by-one calls
(batch consistent). ``check_contract`` runs the method on small fixed networks (an MLP with
BatchNorm, a CNN with max pooling and, unless the method's domain is
piecewise-linear networks, a softplus/GELU MLP; random weights, biases and BatchNorm statistics, a
non-zero baseline) and lists every breach as a sentence; the model guard still restores the
model after each call (``workbench.core.modelguard.reporting``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from workbench.core.errors import ConvergenceError, UnsupportedModelError
from workbench.methods.base import Method
from workbench.core.modelguard import reporting
from workbench.nets import spec as S
from workbench.core.tolerance import rtol_for

#: the networks of the contract check: (name, spec, targets of the batch)
CONTRACT_NETS = (
    ("mlp", S.NetSpec((3,), (S.Linear(4), S.BatchNorm(), S.ReLU(), S.Linear(3))), (0, 1, 2)),
    ("cnn", S.NetSpec((2, 4, 4), (S.Conv2d(3, 3, padding=1), S.BatchNorm(), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(3))), (2, 0)),
    ("smooth", S.NetSpec((4,), (S.Linear(3), S.Softplus(), S.Linear(3), S.GELU(), S.Linear(2))), (1, 0, 1, 0)),
)


@dataclass
class ContractResult:
    """What ``check_contract`` found: breaches (sentences), an error (the method raised), counts."""

    breaches: list = field(default_factory=list)
    error: str = ""
    networks: int = 0
    evaluations: int = 0
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches and not self.error

    def to_dict(self) -> dict:
        return {"breaches": list(self.breaches), "error": self.error, "networks": self.networks, "evaluations": self.evaluations, "notes": list(self.notes)}


def error_text(e: BaseException, limit: int = 300) -> str:
    """One line naming an exception: ``TypeName: message``."""
    text = f"{type(e).__name__}: {e}".replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _spread(a: Tensor, b: Tensor) -> float:
    """max |a - b| relative to 1 + max(|a|, |b|)."""
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(torch.maximum(a.abs(), b.abs()).max()) if a.numel() else 0.0
    return diff / (1.0 + scale)


def _call(method: Method, net: S.SpecNet, x: Tensor, target: Tensor, baseline: Tensor, breaches: list) -> Tensor:
    with reporting() as found:
        try:
            return method.attribute(net, x, target=target, baseline=baseline if method.uses_baseline else None)
        finally:
            breaches += [f for f in found if f not in breaches]


def _output_breaches(a: Tensor, x: Tensor) -> list:
    out = []
    if a.dtype != x.dtype:
        out.append(f"output dtype {str(a.dtype).replace('torch.', '')} for {str(x.dtype).replace('torch.', '')} input")
    if a.device != x.device:
        out.append(f"output on device {a.device} for input on {x.device}")
    if a.is_floating_point() and not bool(torch.isfinite(a).all()):
        out.append("output not finite (nan or inf)")
    if a.requires_grad:
        out.append("output attached to the autograd graph (requires_grad=True); return a detached tensor")
    return out


def check_contract(method: Method, *, dtype: torch.dtype = torch.float64, seed: Optional[int] = None) -> ContractResult:
    """Run the contract check of `method` (see the module docstring); never raises for the method."""
    result = ContractResult()
    # determinism at round-off; batch rows within the method's loosest claimed tolerance (an
    # error-controlled method may refine a batch and a single row differently)
    same = rtol_for(dtype)
    tol = max([same] + [t for t in method.claims.values() if t is not None])
    g = torch.Generator().manual_seed(1000 + (seed or 0))
    for name, spec, targets in CONTRACT_NETS:
        if getattr(method, "domain", "any") == "piecewise-linear" and not spec.piecewise_linear:
            continue
        net = S.build(spec, dtype=dtype, generator=g)
        n = len(targets)
        x = torch.randn((n, *spec.input_shape), generator=g, dtype=torch.float64).to(dtype)
        baseline = (0.25 * torch.randn((n, *spec.input_shape), generator=g, dtype=torch.float64)).to(dtype)
        t = torch.tensor(targets)
        breaches: list = []
        try:
            first = _call(method, net, x, t, baseline, breaches)
            result.evaluations += 1
            breaches += [b for b in _output_breaches(first, x) if b not in breaches]
            second = _call(method, net, x, t, baseline, breaches)
            result.evaluations += 1
            if first.shape == second.shape and first.dtype == second.dtype:
                spread = _spread(first.double(), second.double())
                if not spread <= same:
                    breaches.append(f"nondeterministic: the same case twice gave maps {spread:.3g} apart (relative; tolerance {same:.1e})")
            rows = []
            for i in range(n):
                rows.append(_call(method, net, x[i : i + 1], t[i : i + 1], baseline[i : i + 1], breaches))
                result.evaluations += 1
            one_by_one = torch.cat(rows).double()
            worst = max(_spread(first[i].double(), one_by_one[i]) for i in range(n))
            if not worst <= tol and not any(b.startswith("nondeterministic") for b in breaches):
                breaches.append(f"batch inconsistent: a batch with targets {list(targets)} differs from the one-by-one calls by {worst:.3g} (relative)")
        except UnsupportedModelError as e:
            result.notes.append(f"{name}: not supported ({e})")
            continue
        except ConvergenceError as e:
            result.notes.append(f"{name}: did not converge ({e})")
            continue
        except Exception as e:  # noqa: BLE001 - the method's own failure is the finding
            if breaches:  # e.g. a wrong output shape, recorded before the ModelError
                result.breaches += [f"{name} network: {b}" for b in breaches]
                result.networks += 1
                continue
            result.error = error_text(e)
            return result
        result.networks += 1
        result.breaches += [f"{name} network: {b}" for b in breaches]
    return result
