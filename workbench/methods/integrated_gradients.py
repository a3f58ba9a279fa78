"""Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017).

IG_i(x) = (x_i - x'_i) * int_0^1 dF/dx_i(x' + s (x - x')) ds, and completeness
sum_i IG_i = F(x) - F(x') holds for F differentiable almost everywhere.

Three ways to evaluate the integral, chosen by ``rule`` and ``tolerance``:

* fixed quadrature (``tolerance=None``): one rule with ``steps`` nodes on [0, 1];
* error-controlled (``tolerance=t``, default ``"auto"``: 1e-6, or the dtype's floor when that is
  larger): composite panels on nodes 0 = s_0 < ... < s_K = 1, each a Simpson panel (a, m, b) or a
  5-point Gauss-Lobatto panel (a, m -+ c (b - a), m, b), c = sqrt(3/7) / 2, degree 7 (Abramowitz &
  Stegun 25.4.32). Every node is one gradient pass that also gives phi(s) = F(x' + s (x - x'))
  and phi'(s) = (x - x') . grad F, so each panel's completeness residual
  r_p = (b - a) sum_j w_j phi'(s_j) - (phi_b - phi_a) is measured, not estimated (fundamental
  theorem of calculus). Starting from ``panels`` equal Simpson panels, the panels with the
  largest |r_p| are refined, two new nodes each: a Simpson panel at least
  ``LOBATTO_MIN_WIDTH`` wide is raised to Lobatto (on a large network a wide panel holds many kinks
  and the integrand is smooth on average), any other panel is split into two Simpson panels at its
  midpoint (a kink is resolved by narrowing, not by degree), until the *total* residual
  |sum_p r_p| = |sum IG - (F(x) - F(x'))| is below t * scale + round-off,
  scale = max(|F(x)|, |F(x')|, |F(x) - F(x')|). No forward-only passes are needed. The
  completeness residual is not the error of the map (errors of opposite sign cancel in it); it
  is the quantity a user can check. Measured (benchmarks/bench_ig_passes.py --map-error): on
  resnet18 at 224 px a map within tolerance 1e-3 was 8-35% (relative L1) from a 4x finer
  Gauss-Legendre map, one within 1e-2 22-40%; fixed Gauss-Legendre on 4-6 nodes was 17-38% off.
  On a budget (``max_steps`` passes, ``memory_budget``) it stops with the best answer, its measured
  residual and a ConvergenceWarning, or a ConvergenceError under ``strict=True``. A tolerance
  below 10x the dtype's round-off (1e-8 in float64, 1e-3 in float32) is raised to that floor
  with a ToleranceWarning (an InputError under ``strict=True``).
* ``rule="exact"``: exact integration over the linear pieces of a piecewise-linear network
  (see ``workbench.paths.exact``); the oracle for the other two. Max-pool ties follow ``max_pool_ties``.

Memory is bounded: path points are evaluated in chunks of ``chunk_size`` rows; by default the
chunk is set from ``memory_budget`` and the activation size measured on one probe pass
(``workbench.core.memory``); the error-controlled mode keeps its node gradients within the budget.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from workbench.paths import baselines as baselines_mod
from workbench.core.autograd import forward_targets, target_outputs
from workbench.core.coverage import LINEAR_KINDS, Coverage, precheck
from workbench.core.errors import ConvergenceError, ConvergenceWarning, InputError, ToleranceWarning
from workbench.paths.exact import ELEMENTWISE_KINKS, MAX_POOLS
from workbench.core.memory import cached_row_bytes, check_budget, remember_row_bytes, rows_per_chunk, saved_bytes
from workbench.core.modelguard import preserved
from workbench.paths.quadrature import LOBATTO_PANEL, RULES, SIMPSON_PANEL, quadrature
from workbench.core.tolerance import rtol_for
from workbench.core.validation import captum_names, check_input, check_model, resolve_baseline
from workbench.methods.base import Method, _normalize_target
from workbench.methods.registry import register

BaselineSpec = Union[str, float, Callable[..., Tensor]]

#: tie conventions at max-pool windows: "first" (the first maximum in window order gets the
#: gradient, as PyTorch's max pools do for exact ties), "split" (shared equally; rule="exact" only)
TIES = ("first", "split")
#: tolerance of the error-controlled mode when none is named (raised to the dtype's floor)
AUTO_TOLERANCE = 1e-6
#: per round, the fraction of candidate panels refined (the largest |residual| first)
REFINE_FRACTION = 0.25
#: the narrowest panel the error-controlled mode raises from Simpson to Gauss-Lobatto before splitting
#: it: on a large ReLU network a wide panel holds many kinks and its integrand is smooth on average,
#: where degree 7 pays; a narrower one is split to resolve its few kinks, where no degree pays. The
#: Lobatto detour costs at most two passes per panel of width 1, 1/2 or 1/4 (14 in all with
#: panels=1). Measured on benchmarks/bench_ig_passes.py's cases; at 1/16 `workbench check --all`
#: (tiny networks, tolerance 1e-6) took 22% longer, with no fewer passes on the benchmark.
LOBATTO_MIN_WIDTH = 1 / 4
#: share of the memory budget for activations; the rest holds the error-controlled mode's nodes
ACTIVATION_SHARE = 1 / 3


def tolerance_floor(dtype: torch.dtype) -> float:
    """The smallest relative tolerance the error-controlled mode can meet: 10x round-off."""
    return 10 * rtol_for(dtype)


@dataclass(frozen=True)
class PathIntegral:
    """IG with its bookkeeping: residual = sum(attribution) - (F(x) - F(x')), per sample."""

    attribution: Tensor
    residual: Tensor
    output: Tensor  # F(x), per sample
    baseline_output: Tensor  # F(x'), per sample
    gradient_evaluations: Tensor  # per sample: gradient passes (path points) used
    forward_evaluations: Tensor  # per sample: extra forward-only passes used
    tolerance: Optional[float] = None  # relative tolerance aimed at (error-controlled mode), after the dtype floor
    converged: Optional[Tensor] = None  # per sample (error-controlled mode): tolerance met


@register
class IntegratedGradients(Method):
    """Integrated Gradients along the straight path from the baseline."""

    name = "integrated-gradients"
    description = "Integrated Gradients (fixed, error-controlled or exact path integral)"
    uses_baseline = True

    @classmethod
    def variants(cls) -> tuple[dict[str, Any], ...]:
        """The exact path walk and the fixed-step quadrature claim more / other axioms."""
        return ({"rule": "exact"}, {"tolerance": None})

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """Error-controlled (default), exact, and a fixed rule too coarse to be complete."""
        return ({}, {"rule": "exact"}, {"tolerance": None, "steps": 8, "rule": "right"})

    def __init__(
        self,
        *,
        rule: str = "gauss-legendre",
        steps: int = 16,
        tolerance: Union[float, str, None] = "auto",
        max_steps: int = 4096,
        panels: int = 1,
        chunk_size: Optional[int] = None,
        memory_budget: Optional[int] = None,
        strict: bool = False,
        max_pool_ties: str = "first",
        max_regions: int = 100_000,
        baseline: BaselineSpec = "zero",
    ) -> None:
        if rule != "exact" and rule not in RULES:
            raise InputError(f"unknown quadrature rule {rule!r}; choose one of {', '.join(RULES + ('exact',))}")
        if tolerance != "auto" and tolerance is not None and (isinstance(tolerance, (bool, str)) or not tolerance > 0):
            raise InputError(f"tolerance must be positive, 'auto' or None, got {tolerance!r}")
        for label, v in (("steps", steps), ("max_steps", max_steps), ("panels", panels), ("max_regions", max_regions)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{label} must be a positive integer, got {v!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise InputError(f"chunk_size must be a positive integer or None (from memory_budget), got {chunk_size!r}")
        check_budget(memory_budget)
        if max_pool_ties not in TIES:
            raise InputError(f"unknown max_pool_ties convention {max_pool_ties!r}; choose one of {', '.join(TIES)}")
        if max_pool_ties != "first" and rule != "exact":
            raise InputError(
                f"max_pool_ties={max_pool_ties!r} is available with rule='exact' only; quadrature takes PyTorch's "
                "max-pool gradient, which follows max_pool_ties='first'"
            )
        if rule not in ("gauss-legendre", "exact") and tolerance is not None:
            raise InputError(
                f"rule={rule!r} is a fixed-step rule: pass tolerance=None with it; the error-controlled "
                "mode (tolerance set) always uses its own Simpson and Gauss-Lobatto panels"
            )
        super().__init__(
            rule=rule, steps=steps, tolerance=tolerance, max_steps=max_steps, panels=panels, chunk_size=chunk_size,
            memory_budget=memory_budget, strict=strict, max_pool_ties=max_pool_ties, max_regions=max_regions, baseline=baseline,
        )
        self.rule, self.steps, self.tolerance = rule, steps, tolerance
        self.max_steps, self.panels, self.chunk_size, self.memory_budget = max_steps, panels, chunk_size, memory_budget
        self.strict, self.max_pool_ties, self.max_regions = bool(strict), max_pool_ties, max_regions
        self.default_baseline = baseline

    # -- claims ---------------------------------------------------------------------------
    @property
    def domain(self) -> str:  # type: ignore[override]
        """The exact rule needs ReLU/max-pool networks: the checker then draws no smooth ones."""
        return "piecewise-linear" if self.rule == "exact" else "any"

    @property
    def claims(self) -> dict[str, Optional[float]]:
        exact = {"dummy": None, "symmetry": None}
        if self.rule == "exact":
            return {**exact, "completeness": None, "sensitivity-a": None, "implementation-invariance": None, "linearity": None}
        if self.tolerance is None:
            # a fixed rule is linear in the gradient and uses the same nodes for every network
            return {**exact, "implementation-invariance": None, "linearity": None}
        # no linearity claim: the adaptive nodes are placed per network, and the completeness
        # residual bounds the sum of the per-feature errors, not each of them
        t = AUTO_TOLERANCE if self.tolerance == "auto" else float(self.tolerance)
        return {**exact, "completeness": t, "sensitivity-a": t, "implementation-invariance": t}

    # -- public ---------------------------------------------------------------------------
    @captum_names
    def attribute(self, model: nn.Module, x: Tensor, *, target: Any, baseline: Any = None, return_residual: bool = False):  # type: ignore[override]
        """IG of F_target at x; with ``return_residual`` also sum(IG) - (F(x) - F(x')) per sample."""
        if not return_residual:
            return super().attribute(model, x, target=target, baseline=baseline)
        r = self.integrate(model, x, target=target, baseline=baseline)
        return r.attribution, r.residual

    @property
    def coverage(self) -> Optional[Coverage]:
        """Layer coverage (``workbench.core.coverage``): the exact rule models the kinks of ReLU, LeakyReLU,
        Hardtanh and max pools only; quadrature needs no model of any differentiable operation."""
        if self.rule != "exact":
            return None
        return Coverage("integrated-gradients[rule='exact']", ELEMENTWISE_KINKS + MAX_POOLS, LINEAR_KINDS,
                        "use a quadrature rule (e.g. rule='gauss-legendre') for a network that is not piecewise linear",
                        traced_by_method=False)

    def integrate(self, model: nn.Module, x: Tensor, *, target: Any, baseline: Any = None) -> PathIntegral:
        """IG with residual and the number of network evaluations used."""
        check_model(model)
        check_input(x, model)
        t = _normalize_target(target, x.shape[0])
        b = self._baseline(x, baseline)
        with preserved(model, freeze_parameters=True):
            precheck(self, model, x)  # the exact rule's layer coverage (attribute() checks it too)
            return self._integrate(model, x.detach(), t, b, need_residual=True)

    def resolved_tolerance(self, dtype: torch.dtype) -> Optional[float]:
        """The relative tolerance the error-controlled mode aims at for `dtype` (None: fixed steps).

        'auto' is max(1e-6, floor); a smaller requested tolerance is raised to the floor with a
        ToleranceWarning naming it, or refused under strict=True.
        """
        if self.tolerance is None or self.rule == "exact":
            return None
        floor = tolerance_floor(dtype)
        if self.tolerance == "auto":
            return max(AUTO_TOLERANCE, floor)
        t = float(self.tolerance)
        if t < floor:
            msg = (
                f"integrated gradients: tolerance {t:g} is below the {dtype} round-off floor {floor:g}; "
                f"using {floor:g}. "
                + ("Pass float64 inputs (and model) for a tighter tolerance, or " if dtype != torch.float64 else "Pass ")
                + f"tolerance>={floor:g}"
            )
            if self.strict:
                raise InputError(msg + " (strict=True refuses to loosen it)")
            warnings.warn(ToleranceWarning(msg), stacklevel=4)
            return floor
        return t

    def _baseline(self, x: Tensor, baseline: Any) -> Tensor:
        if baseline is None:
            return baselines_mod.resolve(self.default_baseline, x)
        return resolve_baseline(baseline, x)

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        b = self._baseline(x, None) if baseline is None else baseline
        return self._integrate(model, x, target, b, need_residual=False).attribution

    # -- evaluation -----------------------------------------------------------------------
    def _integrate(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, need_residual: bool) -> PathIntegral:
        if self.rule == "exact":
            return self._exact(model, x, target, baseline)
        rtol = self.resolved_tolerance(x.dtype)
        budget = check_budget(self.memory_budget)
        path = _Path(model, x, baseline, target, self.chunk_size, int(budget * ACTIVATION_SHARE))
        if rtol is None:
            return self._fixed(path, need_residual)
        return self._adaptive(path, rtol, budget - int(budget * ACTIVATION_SHARE))

    def _fixed(self, path: "_Path", need_residual: bool) -> PathIntegral:
        x = path.x
        q = quadrature(self.rule, self.steps)
        n, k = x.shape[0], len(q.nodes)
        idx = torch.arange(n).repeat_interleave(k)
        # summed in float64: chunk after chunk, float32 round-off would grow with the step count
        mean_grad = torch.zeros_like(x, dtype=torch.float64)
        path.evaluate(idx, q.nodes.repeat(n), weights=q.weights.repeat(n), into=mean_grad)
        attribution = path.delta * mean_grad.to(x.dtype)
        steps = torch.full((n,), k)
        if need_residual:
            f = forward_targets(path.model, torch.cat([x, path.baseline]), torch.cat([path.target, path.target]), chunk_size=path.chunk)
            fx, fb = f[:n], f[n:]
            residual = attribution.reshape(n, -1).sum(1) - (fx - fb)
            return PathIntegral(attribution, residual, fx, fb, steps, torch.full((n,), 2))
        nan = torch.full((n,), float("nan"), dtype=x.dtype)
        return PathIntegral(attribution, nan, nan, nan, steps, torch.zeros(n, dtype=torch.long))

    def _adaptive(self, path: "_Path", rtol: float, store_budget: int) -> PathIntegral:
        x = path.x
        n = x.shape[0]
        row_bytes = max(1, x[0].numel() * x.element_size())
        store_rows = max(1, store_budget // row_bytes)
        # samples in groups whose stored node gradients fit the budget, each up to `cap` nodes
        want = min(self.max_steps, 1024)
        group = n if store_rows // n >= want else max(1, store_rows // want)
        cap = max(2 * self.panels + 1, min(self.max_steps, store_rows // group))
        mean_grad = torch.zeros_like(x)
        fx = torch.zeros(n, dtype=torch.float64)
        fb = torch.zeros(n, dtype=torch.float64)
        passes = torch.zeros(n, dtype=torch.long)
        converged = torch.zeros(n, dtype=torch.bool)
        stops: dict[int, str] = {}
        for lo in range(0, n, group):
            members = list(range(lo, min(n, lo + group)))
            self._adaptive_group(path, members, rtol, cap, mean_grad, fx, fb, passes, converged, stops)
        attribution = path.delta * mean_grad
        fxt, fbt = fx.to(x.dtype), fb.to(x.dtype)
        residual = attribution.reshape(n, -1).sum(1) - (fxt - fbt)
        if not bool(converged.all()):
            i = int((~converged).nonzero()[0])
            scale = max(abs(float(fx[i])), abs(float(fb[i])), abs(float(fx[i] - fb[i])))
            msg = (
                f"integrated gradients did not reach tolerance {rtol:g} on {int((~converged).sum())} of {n} samples: "
                f"sample {i} stopped at {stops[i]} after {int(passes[i])} gradient passes with relative residual "
                f"{abs(float(residual[i])) / max(scale, 1e-300):.3g}. Raise max_steps or memory_budget, loosen "
                "tolerance, or use rule='exact' for a piecewise-linear network"
            )
            if self.strict:
                raise ConvergenceError(msg, residual=abs(float(residual[i])), steps=int(passes[i]))
            warnings.warn(ConvergenceWarning(msg + "; the best answer is returned"), stacklevel=4)
        return PathIntegral(attribution, residual, fxt, fbt, passes, torch.zeros(n, dtype=torch.long), rtol, converged)

    def _adaptive_group(self, path, members, rtol, cap, mean_grad, fx, fb, passes, converged, stops) -> None:
        """The panel ladder on each member's path: a wide Simpson panel with a large residual becomes
        a 5-point Gauss-Lobatto panel; a Lobatto panel, or a narrow Simpson one, with a large residual
        splits into two Simpson panels (two new nodes either way; every node is kept)."""
        dtype = path.x.dtype
        floor_abs = rtol_for(dtype)
        min_width = float(torch.finfo(dtype).eps) ** 0.75
        k0 = 2 * self.panels + 1
        grid = np.linspace(0.0, 1.0, k0)
        idx = torch.tensor(members).repeat_interleave(k0)
        phi, dphi, grads = path.evaluate(idx, torch.from_numpy(grid).repeat(len(members)))
        phi, dphi = phi.numpy(), dphi.numpy()
        ladders = {i: _Ladder(grid, phi[j * k0:(j + 1) * k0], dphi[j * k0:(j + 1) * k0], grads[j * k0:(j + 1) * k0])
                   for j, i in enumerate(members)}
        active = list(members)
        while active:
            ask_idx, ask_s, still, plans = [], [], [], {}
            for i in active:
                lad = ladders[i]
                r = lad.residuals()
                allowed = rtol * lad.scale() + floor_abs
                if abs(float(r.sum())) <= allowed:
                    converged[i] = True
                    continue
                if not np.isfinite(r).all():
                    at = lad.s[lad.nodes[~np.isfinite(r), 0]].min()
                    stops[i] = f"a non-finite output or gradient on the path (in the panel from s={at:.6g})"
                    continue
                room = (cap - lad.rows()) // 2
                # refine among panels that could keep the total above the target on their own share
                refinable = (lad.width() > min_width) & (np.abs(r) > allowed / r.size)
                if room <= 0 or not refinable.any():
                    stops[i] = (
                        (f"max_steps={self.max_steps}" if cap >= self.max_steps else f"the memory budget ({cap} stored path points)")
                        if room <= 0 else "panels at the dtype's resolution"
                    )
                    continue
                k = min(room, max(1, math.ceil(REFINE_FRACTION * int(refinable.sum()))))
                # the order by |r_p| coarsened to 1/8 octave, ties by position: round-off (a permuted
                # twin of the network) does not change which panels are refined
                level = np.floor(8 * np.log2(np.maximum(np.abs(r), 1e-300)))
                key = np.where(refinable, level, -np.inf)
                pick = np.argsort(-key, kind="stable")[:k]
                plans[i] = lad.refine(pick)
                ask_idx.append(torch.full((plans[i][2].size,), i, dtype=torch.long))
                ask_s.append(plans[i][2])
                still.append(i)
            active = still
            if not active:
                break
            phi, dphi, grads = path.evaluate(torch.cat(ask_idx), torch.from_numpy(np.concatenate(ask_s)))
            phi, dphi = phi.numpy(), dphi.numpy()
            start = 0
            for i, s_i in zip(active, ask_s):
                m = s_i.size
                ladders[i].add(plans[i], phi[start:start + m], dphi[start:start + m], grads[start:start + m])
                start += m
        for i in members:
            lad = ladders.pop(i)  # its node gradients are views of the group's batches, freed with the group
            g, w = lad.gradients(), torch.from_numpy(lad.node_weights())
            wv = w.to(device=g.device).view(-1, *([1] * (g.dim() - 1)))
            acc = torch.zeros(g.shape[1:], dtype=torch.float64, device=g.device)
            for lo in range(0, g.shape[0], 64):  # in float64, a few nodes at a time (bounded memory)
                acc += (g[lo:lo + 64].double() * wv[lo:lo + 64]).sum(0)
            mean_grad[i] = acc.to(g.dtype)
            fb[i], fx[i] = lad.ends()
            passes[i] = lad.rows()

    def _exact(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor) -> PathIntegral:
        from workbench.paths.exact import exact_path_integral

        r = exact_path_integral(
            model, x, baseline, target, max_pool_ties=self.max_pool_ties, max_regions=self.max_regions,
            chunk_size=self.chunk_size, memory_budget=self.memory_budget,
        )
        attribution = (x - baseline) * r.mean_gradient
        n = x.shape[0]
        f = forward_targets(model, torch.cat([x, baseline]), torch.cat([target, target]))
        fx, fb = f[:n], f[n:]
        residual = attribution.reshape(n, -1).sum(1) - (fx - fb)
        return PathIntegral(attribution, residual, fx, fb, r.regions, torch.full((n,), 2))


class _Ladder:
    """One sample's panels on [0, 1] and the path nodes evaluated so far (rows in evaluation order).

    A panel [a, b] is Simpson (nodes a, m, b) or 5-point Gauss-Lobatto (a, m -+ c (b - a), m, b),
    ``workbench.paths.quadrature.SIMPSON_PANEL`` / ``LOBATTO_PANEL``. Its completeness residual
    r_p = (b - a) sum_j w_j phi'(s_j) - (phi(b) - phi(a)) is measured: every node gives phi and
    phi' (fundamental theorem of calculus). ``refine`` raises a Simpson panel at least
    LOBATTO_MIN_WIDTH wide to Lobatto (p) and splits any other panel into two Simpson panels (h),
    two new nodes either way. The bookkeeping is numpy (float64): it runs once per round, where
    torch's per-call overhead would rival a tiny network's gradient pass.
    """

    #: per node slot (a, left, m, right, b): the weights of each rule on a unit panel
    SIMPSON = np.insert(SIMPSON_PANEL.weights.numpy(), [1, 2], 0.0)
    LOBATTO = LOBATTO_PANEL.weights.numpy()
    #: m - left = right - m on a unit panel
    OFFSET = float(LOBATTO_PANEL.nodes[2] - LOBATTO_PANEL.nodes[1])

    def __init__(self, s: np.ndarray, phi: np.ndarray, dphi: np.ndarray, grads: Tensor) -> None:
        k = (s.size - 1) // 2
        self.s, self.phi, self.dphi, self.grads = s.copy(), phi.copy(), dphi.copy(), [grads]
        self.rows_at_one = s.size - 1
        # per panel: node rows (a, left, m, right, b; -1 where a Simpson panel has none) and kind
        first = np.arange(k) * 2
        none = np.full(k, -1)
        self.nodes = np.stack([first, none, first + 1, none, first + 2], 1)
        self.lobatto = np.zeros(k, dtype=bool)

    def rows(self) -> int:
        return int(self.s.size)

    def ends(self) -> tuple[float, float]:
        """(F(x'), F(x)): phi at s = 0 and s = 1."""
        return float(self.phi[0]), float(self.phi[self.rows_at_one])

    def scale(self) -> float:
        """max(|F(x)|, |F(x')|, |F(x) - F(x')|)."""
        f0, f1 = self.ends()
        return max(abs(f0), abs(f1), abs(f1 - f0))

    def width(self) -> np.ndarray:
        return self.s[self.nodes[:, 4]] - self.s[self.nodes[:, 0]]

    def _weights(self) -> np.ndarray:
        """Per panel and node slot: (b - a) w_j of the panel's rule (0 in an empty slot)."""
        return np.where(self.lobatto[:, None], self.LOBATTO, self.SIMPSON) * self.width()[:, None]

    def residuals(self) -> np.ndarray:
        filled = self.nodes >= 0  # an empty slot adds nothing (not 0 * phi'(0), which is NaN at an infinite slope)
        d = np.where(filled, self.dphi[np.where(filled, self.nodes, 0)], 0.0)
        return (self._weights() * d).sum(1) - (self.phi[self.nodes[:, 4]] - self.phi[self.nodes[:, 0]])

    def refine(self, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plan for the picked panels: (pick, raised or not, the positions of the two new nodes
        of each picked panel: all left ones, then all right ones); ``add`` stores them."""
        a, m, b = (self.s[self.nodes[pick, j]] for j in (0, 2, 4))
        up = ~self.lobatto[pick] & (b - a >= LOBATTO_MIN_WIDTH)
        left = np.where(up, m - self.OFFSET * (b - a), (a + m) / 2)
        right = np.where(up, m + self.OFFSET * (b - a), (m + b) / 2)
        return pick, up, np.concatenate([left, right])

    def add(self, plan: tuple[np.ndarray, np.ndarray, np.ndarray], phi: np.ndarray, dphi: np.ndarray, grads: Tensor) -> None:
        """Store the evaluated nodes of a ``refine`` plan; a raised panel gets its two Lobatto nodes,
        a split one becomes (a, q1, m) and (m, q3, b), in position order."""
        pick, up, s = plan
        n0, k = self.rows(), pick.size
        self.s, self.phi, self.dphi = np.concatenate([self.s, s]), np.concatenate([self.phi, phi]), np.concatenate([self.dphi, dphi])
        self.grads.append(grads)
        left, right = n0 + np.arange(k), n0 + k + np.arange(k)
        nodes, kind = self.nodes.copy(), self.lobatto.copy()
        raised, split = pick[up], pick[~up]
        nodes[raised, 1], nodes[raised, 3], kind[raised] = left[up], right[up], True
        a, m, b, none = nodes[split, 0], nodes[split, 2], nodes[split, 4], np.full(split.size, -1)
        nodes[split], kind[split] = np.stack([a, none, left[~up], none, m], 1), False
        self.nodes = np.insert(nodes, split + 1, np.stack([m, none, right[~up], none, b], 1), axis=0)
        self.lobatto = np.insert(kind, split + 1, False)

    def node_weights(self) -> np.ndarray:
        """The weight of each row in the composite rule (rows in no panel: 0)."""
        w = np.zeros(self.rows())
        filled = self.nodes >= 0
        np.add.at(w, self.nodes[filled], self._weights()[filled])
        return w

    def gradients(self) -> Tensor:
        return torch.cat(self.grads) if len(self.grads) > 1 else self.grads[0]


class _Path:
    """Gradient passes at points x' + s (x - x') of each sample's path, chunked within a budget.

    Each pass gives phi(s) = F_t(point), phi'(s) = (x - x') . grad F_t(point) (float64, on the
    CPU) and the gradient. With ``chunk_size=None`` the first pass runs on one row and measures
    the activation bytes autograd saves (``workbench.core.memory``); the chunk follows from the budget.
    """

    def __init__(self, model: nn.Module, x: Tensor, baseline: Tensor, target: Tensor, chunk_size: Optional[int], budget: int) -> None:
        self.model, self.x, self.baseline, self.target = model, x, baseline, target
        self.delta = x - baseline
        self.chunk = chunk_size
        self.budget = budget

    def points(self, idx: Tensor, s: Tensor) -> Tensor:
        x = self.x
        idx = idx.to(x.device)
        sv = s.to(dtype=x.dtype, device=x.device).view(-1, *([1] * (x.dim() - 1)))
        pts = self.baseline[idx] + sv * self.delta[idx]
        ends = (s == 1).to(x.device)
        if bool(ends.any()):  # s = 1 is x itself, not x' + (x - x') (which may differ in the last bit)
            pts[ends] = x[idx[ends]]
        return pts

    def _pass(self, idx: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        pts = self.points(idx, s).requires_grad_(True)
        with torch.enable_grad():
            f = target_outputs(self.model, pts, self.target[idx.to(self.target.device)])
            (g,) = torch.autograd.grad(f.sum(), pts)
        return f.detach(), g

    def evaluate(self, idx: Tensor, s: Tensor, *, weights: Optional[Tensor] = None, into: Optional[Tensor] = None):
        """(phi, phi', gradients) at the rows (idx, s); with ``weights`` the gradients are summed
        into ``into[idx] += w g`` chunk by chunk instead (nothing of size rows x input is kept)."""
        m = idx.numel()
        phis, slopes, grads = [], [], []

        def take(lo: int, hi: int, f: Tensor, g: Tensor) -> None:
            rows = idx[lo:hi].to(self.x.device)
            phis.append(f.double().cpu())
            slopes.append((g * self.delta[rows]).flatten(1).sum(1).double().cpu())
            if into is not None:
                w = weights[lo:hi].to(dtype=into.dtype, device=g.device).view(-1, *([1] * (g.dim() - 1)))
                into.index_add_(0, rows, g.to(into.dtype) * w)
            else:
                grads.append(g)

        start = 0
        if self.chunk is None:
            known = cached_row_bytes(self.model, self.x)
            if known is None and m:
                (f, g), known = saved_bytes(self.model, lambda: self._pass(idx[:1], s[:1]))
                remember_row_bytes(self.model, self.x, known)
                take(0, 1, f, g)
                start = 1
            self.chunk = rows_per_chunk(known or 0, self.budget)
        for lo in range(start, m, self.chunk):
            hi = min(m, lo + self.chunk)
            f, g = self._pass(idx[lo:hi], s[lo:hi])
            take(lo, hi, f, g)
        empty = torch.zeros(0, dtype=torch.float64)
        phi = torch.cat(phis) if phis else empty
        dphi = torch.cat(slopes) if slopes else empty
        if into is not None:
            return phi, dphi, None
        return phi, dphi, (torch.cat(grads) if grads else self.x.new_zeros((0, *self.x.shape[1:])))
