"""What an axiom check is: cases (drawn or named), an evaluation per case, an Outcome.

An axiom never raises on a violation; it returns an Outcome whose residual is compared with a
tolerance. A Case holds everything needed to replay it: networks (spec + weights), input,
baseline, target and the axiom's own parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from hypothesis import strategies as st
from torch import Tensor

from workbench.core.autograd import forward_targets
from workbench.methods.contract import error_text
from workbench.core.degenerate import degenerate_reason
from workbench.core.errors import ConvergenceError, UnsupportedModelError
from workbench.methods.base import Method
from workbench.nets import spec as S
from workbench.testing.strategies import Family


@dataclass(frozen=True)
class Case:
    """One concrete instance an axiom is evaluated on."""

    nets: dict  # name -> SpecNet
    x: Tensor  # (1, ...) input
    baseline: Tensor  # (1, ...) baseline
    target: int
    params: dict = field(default_factory=dict)
    label: str = ""  # name of a paper fixture, if the case is one

    def to_dict(self) -> dict:
        return {
            "networks": {k: S.to_dict(n) for k, n in self.nets.items()},
            "x": self.x.tolist(),
            "baseline": self.baseline.tolist(),
            "target": self.target,
            "params": self.params,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict, dtype: torch.dtype = torch.float64) -> "Case":
        nets = {k: S.from_dict(v, dtype=dtype) for k, v in d["networks"].items()}
        return cls(
            nets,
            torch.tensor(d["x"], dtype=dtype),
            torch.tensor(d["baseline"], dtype=dtype),
            int(d["target"]),
            dict(d.get("params", {})),
            d.get("label", ""),
        )

    def describe(self, max_weights: int = 64) -> str:
        """Readable text: each network's layers and (when small) its weights, then the input."""
        lines = []
        for k, n in self.nets.items():
            lines.append(f"{k}: {n.spec.describe()}")
            state = {name: t for name, t in n.state_dict().items() if t.is_floating_point()}
            if sum(t.numel() for t in state.values()) <= max_weights:
                lines += [f"    {name} = {t.tolist()}" for name, t in state.items()]
        lines.append(f"x = {self.x.flatten().tolist()}")
        lines.append(f"baseline = {self.baseline.flatten().tolist()}")
        lines.append(f"target = {self.target}")
        if self.params:
            lines.append(f"params = {self.params}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Outcome:
    """Result of one case: residual vs tolerance (relative), or not applicable with a reason."""

    residual: float = 0.0
    tolerance: float = 0.0
    applicable: bool = True
    note: str = ""
    #: the method's exception (``TypeName: message``) when it raised on a valid case
    error: str = ""

    @property
    def violated(self) -> bool:
        return self.applicable and not (self.residual <= self.tolerance)


def not_applicable(reason: str) -> Outcome:
    return Outcome(applicable=False, note=reason)


def relative(residual: float, scale: float) -> float:
    """|residual| / (1 + |scale|): the dtype tolerances are relative to this."""
    r = abs(float(residual))
    return r / (1.0 + abs(float(scale))) if math.isfinite(r) else math.inf


#: calls of ``attribute`` so far (the checker's evaluation count; budgets count these, not seconds)
CALLS = [0]


def attribute(method: Method, net: S.SpecNet, x: Tensor, target: int, baseline: Tensor) -> Tensor:
    """Run the method once. The torch RNG is not reset per call: a method drawing from torch's
    generator without seeding it is then seen to be nondeterministic (the checker seeds torch
    once per check, so a whole report still repeats)."""
    CALLS[0] += 1
    return method.attribute(net, x, target=target, baseline=baseline if method.uses_baseline else None)


def output(net: S.SpecNet, x: Tensor, target: int) -> float:
    return float(forward_targets(net, x, torch.full((x.shape[0],), target, dtype=torch.long))[0])


class Axiom:
    """Base class: a name, a case strategy, named paper cases, and ``evaluate``."""

    name: ClassVar[str] = "axiom"
    #: the matrix column header (at most 6 characters; "" -> generated from the name)
    abbreviation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: a core axiom (Sundararajan et al. 2017's list) binds every method; a plain callable that
    #: declares no claims is held to the core axioms only, not to other methods' identities
    core: ClassVar[bool] = False

    def cases(self, family: Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """Hypothesis strategy drawing cases for this axiom from a network family."""
        raise NotImplementedError(f"{type(self).__name__} must define cases()")

    def named_cases(self, dtype: torch.dtype) -> list[Case]:
        return []

    def evaluate(self, method: Method, case: Case, rtol: float) -> Outcome:
        """Residual of one case; may raise, ``run`` turns errors into outcomes."""
        raise NotImplementedError(f"{type(self).__name__} must define evaluate()")

    def degenerate(self, method: Method, case: Case) -> Optional[str]:
        """Why the case is no evidence (its path or input stays on a kink or tie), or None."""
        return degenerate_reason(case.nets, case.x, case.baseline if method.uses_baseline else None)

    def run(self, method: Method, case: Case, rtol: float) -> Outcome:
        """``evaluate`` with the method's failures turned into outcomes (never raises).

        A degenerate case is not applicable; a method that does not support the network is not
        applicable; a ConvergenceError is a violation (the method missed its own tolerance);
        any other exception is an error outcome carrying the method's message."""
        reason = self.degenerate(method, case)
        if reason:
            return not_applicable(reason)
        try:
            return self.evaluate(method, case, rtol)
        except UnsupportedModelError as e:
            return not_applicable(f"method does not support this network: {e}")
        except ConvergenceError as e:
            return Outcome(math.inf, rtol, True, f"method did not converge: {e}")
        except Exception as e:  # noqa: BLE001 - a crash on a valid case is the method's error
            text = error_text(e)
            return Outcome(math.inf, rtol, True, f"method raised {text}", error=text)


_AXIOMS: dict[str, Axiom] = {}


def register_axiom(cls: type) -> type:
    _AXIOMS[cls.name] = cls()
    return cls


def axioms() -> dict[str, Axiom]:
    """All registered axioms by name."""
    return dict(_AXIOMS)


def get_axiom(name: str) -> Axiom:
    from workbench.core.errors import InputError

    try:
        return _AXIOMS[name]
    except KeyError:
        raise InputError(f"unknown axiom {name!r}; known axioms: {', '.join(_AXIOMS)}") from None
