"""Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017).

IG_i(x) = (x_i - x'_i) * int_0^1 dF/dx_i(x' + s (x - x')) ds, and completeness
sum_i IG_i = F(x) - F(x') holds for F differentiable almost everywhere.

Three ways to evaluate the integral, chosen by ``rule`` and ``tolerance``:

* fixed quadrature (``tolerance=None``): one rule with ``steps`` nodes on [0, 1];
* error-controlled (``tolerance=t``): a composite rule whose segments are bisected until the sum
  of the segments' completeness residuals is below t * scale, scale = max(|F(x)|, |F(x')|,
  |F(x) - F(x')|). A t below 10x the dtype's round-off tolerance (1e-8 in float64, 1e-3 in
  float32) is raised to it; ``integrate`` reports the tolerance used. On a segment [a, b],
  sum_i (x_i - x'_i) int_a^b dF/dx_i = F(g(b)) - F(g(a)) (fundamental theorem of calculus),
  so each segment's error is measured, not estimated; kinks are found and isolated.
* ``rule="exact"``: exact integration over the linear pieces of a piecewise-linear network
  (see ``workbench.exact_path``); the oracle for the other two.

All path points of all samples are evaluated as one batch, in chunks of ``chunk_size`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from .. import baselines as baselines_mod
from ..autograd import forward_targets, target_gradients
from ..coverage import LINEAR_KINDS, Coverage
from ..errors import ConvergenceError, InputError
from ..exact_path import ELEMENTWISE_KINKS, MAX_POOLS
from ..quadrature import RULES, quadrature
from ..tolerance import rtol_for
from ..validation import captum_names, check_input, check_model, resolve_baseline
from ..modelguard import preserved
from .base import Method, _normalize_target
from .registry import register

BaselineSpec = Union[str, float, Callable[..., Tensor]]


@dataclass(frozen=True)
class PathIntegral:
    """IG with its bookkeeping: residual = sum(attribution) - (F(x) - F(x')), per sample."""

    attribution: Tensor
    residual: Tensor
    output: Tensor  # F(x), per sample
    baseline_output: Tensor  # F(x'), per sample
    gradient_evaluations: Tensor  # per sample: gradient passes (path points) used
    forward_evaluations: Tensor  # per sample: extra forward-only passes used
    tolerance: Optional[float] = None  # relative tolerance met (error-controlled mode), after the dtype floor


@register
class IntegratedGradients(Method):
    """Integrated Gradients along the straight path from the baseline."""

    name = "integrated-gradients"
    description = "Integrated Gradients (fixed, error-controlled or exact path integral)"
    uses_baseline = True

    def __init__(
        self,
        *,
        rule: str = "gauss-legendre",
        steps: int = 16,
        tolerance: Optional[float] = 1e-6,
        max_steps: int = 4096,
        segment_steps: int = 2,
        chunk_size: Optional[int] = None,
        baseline: BaselineSpec = "zero",
    ) -> None:
        if rule != "exact" and rule not in RULES:
            raise InputError(f"unknown quadrature rule {rule!r}; choose one of {', '.join(RULES + ('exact',))}")
        if tolerance is not None and not tolerance > 0:
            raise InputError(f"tolerance must be positive or None, got {tolerance}")
        if steps < 1 or segment_steps < 1 or max_steps < 1:
            raise InputError("steps, segment_steps and max_steps must be positive")
        super().__init__(
            rule=rule, steps=steps, tolerance=tolerance, max_steps=max_steps,
            segment_steps=segment_steps, chunk_size=chunk_size, baseline=baseline,
        )
        self.rule, self.steps, self.tolerance = rule, steps, tolerance
        self.max_steps, self.segment_steps, self.chunk_size = max_steps, segment_steps, chunk_size
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
        # residual bounds the sum of the per-feature errors, not each of them (the checker finds
        # A(f1 + f2) - A(f1) - A(f2) ~ 1e-5 at tolerance 1e-6; rule="exact" holds linearity)
        t = self.tolerance
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
        """Layer coverage (``workbench.coverage``): the exact rule models the kinks of ReLU, LeakyReLU,
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
            return self._integrate(model, x.detach(), t, b, need_residual=True)

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
        if self.tolerance is None:
            return self._fixed(model, x, target, baseline, need_residual)
        return self._adaptive(model, x, target, baseline)

    def _endpoints(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        f = forward_targets(model, torch.cat([x, baseline]), torch.cat([target, target]), chunk_size=self.chunk_size)
        return f[:n], f[n:]

    def _fixed(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, need_residual: bool) -> PathIntegral:
        q = quadrature(self.rule, self.steps)
        n, k = x.shape[0], len(q.nodes)
        s = q.nodes.to(x.dtype).to(x.device)
        w = q.weights.to(x.dtype).to(x.device)
        delta = x - baseline
        view = (1, -1) + (1,) * (x.dim() - 1)
        points = (baseline.unsqueeze(1) + s.view(view) * delta.unsqueeze(1)).reshape(n * k, *x.shape[1:])
        _, g = target_gradients(model, points, target.repeat_interleave(k), chunk_size=self.chunk_size)
        mean_grad = (g.reshape(n, k, *x.shape[1:]) * w.view(view)).sum(1)
        attribution = delta * mean_grad
        steps = torch.full((n,), k)
        if need_residual:
            fx, fb = self._endpoints(model, x, target, baseline)
            residual = attribution.reshape(n, -1).sum(1) - (fx - fb)
            return PathIntegral(attribution, residual, fx, fb, steps, torch.full((n,), 2))
        nan = torch.full((n,), float("nan"), dtype=x.dtype)
        return PathIntegral(attribution, nan, nan, nan, steps, torch.zeros(n, dtype=torch.long))

    def _adaptive(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor) -> PathIntegral:
        n = x.shape[0]
        rule = quadrature(self.rule, self.segment_steps)
        delta = x - baseline
        fx, fb = self._endpoints(model, x, target, baseline)
        rtol = max(self.tolerance, 10 * rtol_for(x.dtype))
        scale = torch.maximum(torch.maximum(fx.abs(), fb.abs()), (fx - fb).abs())
        allowed = rtol * scale + rtol_for(x.dtype)

        n0 = max(1, self.steps // len(rule.nodes))
        edges = torch.linspace(0, 1, n0 + 1, dtype=torch.float64).tolist()
        # per sample: list of [a, b, F(a), F(b), integral of gradient over [a, b], residual]
        segments: list[list[list]] = [[] for _ in range(n)]
        interior = [(i, e) for i in range(n) for e in edges[1:-1]]
        f_edge = self._forward_at(model, x, baseline, target, interior)
        fvals = [dict() for _ in range(n)]
        for (i, e), v in zip(interior, f_edge):
            fvals[i][e] = v
        for i in range(n):
            fvals[i][0.0], fvals[i][1.0] = fb[i], fx[i]
        todo = [(i, a, b) for i in range(n) for a, b in zip(edges[:-1], edges[1:])]
        grads_used = torch.zeros(n, dtype=torch.long)
        forwards_used = torch.full((n,), 2 + len(edges) - 2, dtype=torch.long)
        while True:
            integrals = self._segment_integrals(model, x, baseline, target, rule, todo)
            for (i, a, b), integral in zip(todo, integrals):
                grads_used[i] += len(rule.nodes)
                r = (delta[i] * integral).sum() - (fvals[i][b] - fvals[i][a])
                segments[i].append([a, b, integral, r.abs().item()])
            todo = []
            mids = []
            for i in range(n):
                total = sum(seg[3] for seg in segments[i])
                if total <= allowed[i]:
                    continue
                if grads_used[i] >= self.max_steps:
                    raise ConvergenceError(
                        f"integrated gradients did not reach tolerance {rtol:g} within max_steps={self.max_steps} "
                        f"(sample {i}: summed segment residual {total:.3g}, allowed {allowed[i].item():.3g}); "
                        "raise max_steps, loosen tolerance, or use rule='exact' for a piecewise-linear network",
                        residual=total,
                        steps=int(grads_used[i]),
                    )
                share = allowed[i].item() / len(segments[i])
                keep = []
                for seg in segments[i]:
                    if seg[3] > share:
                        a, b = seg[0], seg[1]
                        m = 0.5 * (a + b)
                        mids.append((i, m))
                        todo += [(i, a, m), (i, m, b)]
                    else:
                        keep.append(seg)
                segments[i] = keep
            if not todo:
                break
            for (i, m), v in zip(mids, self._forward_at(model, x, baseline, target, mids)):
                fvals[i][m] = v
                forwards_used[i] += 1
        mean_grad = torch.stack([sum(seg[2] for seg in segments[i]) for i in range(n)])
        attribution = delta * mean_grad
        residual = attribution.reshape(n, -1).sum(1) - (fx - fb)
        return PathIntegral(attribution, residual, fx, fb, grads_used, forwards_used, rtol)

    def _forward_at(self, model: nn.Module, x: Tensor, baseline: Tensor, target: Tensor, points: list) -> list:
        if not points:
            return []
        idx = torch.tensor([i for i, _ in points], device=x.device)
        s = torch.tensor([p for _, p in points], dtype=x.dtype, device=x.device).view(-1, *([1] * (x.dim() - 1)))
        pts = baseline[idx] + s * (x[idx] - baseline[idx])
        return list(forward_targets(model, pts, target[idx.cpu()], chunk_size=self.chunk_size))

    def _segment_integrals(self, model: nn.Module, x: Tensor, baseline: Tensor, target: Tensor, rule, todo: list) -> list:
        if not todo:
            return []
        k = len(rule.nodes)
        idx, s, w = [], [], []
        for i, a, b in todo:
            q = rule.on(a, b)
            idx += [i] * k
            s += q.nodes.tolist()
            w += q.weights.tolist()
        idx_t = torch.tensor(idx, device=x.device)
        shape = (-1,) + (1,) * (x.dim() - 1)
        s_t = torch.tensor(s, dtype=x.dtype, device=x.device).view(shape)
        w_t = torch.tensor(w, dtype=x.dtype, device=x.device).view(shape)
        pts = baseline[idx_t] + s_t * (x[idx_t] - baseline[idx_t])
        _, g = target_gradients(model, pts, target[idx_t.cpu()], chunk_size=self.chunk_size)
        weighted = (g * w_t).reshape(len(todo), k, *x.shape[1:]).sum(1)
        return list(weighted)

    def _exact(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor) -> PathIntegral:
        from ..exact_path import exact_path_integral

        r = exact_path_integral(model, x, baseline, target)
        attribution = (x - baseline) * r.mean_gradient
        fx, fb = self._endpoints(model, x, target, baseline)
        residual = attribution.reshape(x.shape[0], -1).sum(1) - (fx - fb)
        return PathIntegral(attribution, residual, fx, fb, r.regions, torch.full((x.shape[0],), 2))
