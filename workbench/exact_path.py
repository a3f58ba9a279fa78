"""Exact Integrated Gradients for piecewise-linear networks: the oracle for quadrature error.

Along the straight path gamma(s) = x' + s (x - x'), s in [0, 1], a piecewise-linear network is
affine inside each linear region, so the path integral is a finite sum

    mean_gradient = int_0^1 grad F(gamma(s)) ds = sum_r (hi_r - lo_r) * grad F(gamma(p_r)),

p_r any point inside region r = [lo_r, hi_r]. A region is found from one probe p: a forward
pass in forward-mode AD (tangent x - x') gives every kink unit's value z and slope dz/ds, and
the region ends at the nearest s where some unit reaches a kink, s = p + (k - z) / (dz/ds).
Gaps of [0, 1] not yet covered are probed at their midpoints, all samples' probes batched in
one forward-AD pass and one gradient pass per round. IG is (x - x') * mean_gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn

from .autograd import target_outputs
from .errors import ConvergenceError, InputError, UnsupportedModelError
from .modelguard import preserved
from .validation import check_input, check_model, check_output

#: leaf modules that are affine (no kink) on every sample
_AFFINE_LEAVES: tuple[type, ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
)
#: leaf modules with kinks: elementwise (kink values) or max pools (window ties)
ELEMENTWISE_KINKS: tuple[type, ...] = (nn.ReLU, nn.LeakyReLU, nn.Hardtanh)  # ReLU6 is a Hardtanh
MAX_POOLS: tuple[type, ...] = (nn.MaxPool1d, nn.MaxPool2d)

DEFAULT_CHUNK = 4096


@dataclass(frozen=True)
class ExactPathIntegral:
    """The exact path integral of the gradient along x' + s (x - x') for each sample."""

    mean_gradient: Tensor  # (N, ...) = int_0^1 grad F_t(x' + s (x - x')) ds
    breakpoints: list[Tensor] = field(repr=False)  # per sample, sorted s in (0, 1) where the region changes
    regions: Tensor  # (N,) long: linear pieces integrated per sample
    passes: int  # forward-AD passes + gradient passes


# -- model check ----------------------------------------------------------------------------
def _check_piecewise_linear(model: nn.Module) -> None:
    """Raise UnsupportedModelError naming the first leaf module that is not piecewise linear."""
    for name, m in model.named_modules():
        if any(True for _ in m.children()):
            continue  # a container: composes children (its own arithmetic is caught by the self-check)
        where = f"layer {name!r}" if name else "the model"
        if isinstance(m, MAX_POOLS):
            if m.ceil_mode or m.return_indices:
                raise UnsupportedModelError(
                    f"exact IG supports max pools with ceil_mode=False and return_indices=False; "
                    f"{where} is {m!r}"
                )
            continue
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.running_mean is None:
            raise UnsupportedModelError(
                f"exact IG needs BatchNorm with running statistics (each sample then maps affinely); "
                f"{where} has track_running_stats=False"
            )
        if isinstance(m, _AFFINE_LEAVES + ELEMENTWISE_KINKS):
            continue
        raise UnsupportedModelError(
            f"exact IG needs a piecewise-linear network; {where} is {type(m).__name__}"
        )


# -- region finding -------------------------------------------------------------------------
class RegionTracker:
    """Forward pre-hook state: per probe row, the distances to the nearest kink above and below."""

    def __init__(self, rows: int, dtype: torch.dtype, device: torch.device) -> None:
        self.up = torch.full((rows,), math.inf, dtype=dtype, device=device)
        self.down = torch.full((rows,), math.inf, dtype=dtype, device=device)

    def _update(self, delta: Tensor) -> None:
        """delta (rows, units): signed displacements in s to a kink (NaN/inf = none)."""
        inf = torch.tensor(math.inf, dtype=delta.dtype, device=delta.device)
        up = torch.where(delta >= 0, delta, inf).amin(1) if delta.shape[1] else self.up
        down = torch.where(delta <= 0, -delta, inf).amin(1) if delta.shape[1] else self.down
        torch.minimum(self.up, up, out=self.up)
        torch.minimum(self.down, down, out=self.down)

    def elementwise(self, module: nn.Module, args: tuple) -> None:
        z, dz = _unpack(args[0])
        kinks = [0.0] if isinstance(module, (nn.ReLU, nn.LeakyReLU)) else [module.min_val, module.max_val]
        z, dz = z.reshape(z.shape[0], -1), dz.reshape(dz.shape[0], -1)
        moving = dz != 0
        safe = torch.where(moving, dz, torch.ones_like(dz))
        for k in kinks:
            delta = torch.where(moving, (k - z) / safe, torch.full_like(z, math.inf))
            self._update(delta)

    def max_pool(self, module: nn.Module, args: tuple) -> None:
        z, dz = _unpack(args[0])
        nd = 1 if isinstance(module, nn.MaxPool1d) else 2
        k, s, p, d = (as_tuple(v, nd) for v in (module.kernel_size, module.stride or module.kernel_size, module.padding, module.dilation))
        pad = [q for i in reversed(range(nd)) for q in (p[i], p[i])]
        v = F.pad(z, pad, value=-math.inf) if any(p) else z
        t = F.pad(dz, pad, value=0.0) if any(p) else dz
        first = v.dim() - nd
        for i in range(nd):  # windows: (..., out_1, .., out_nd, k_1, .., k_nd)
            span = d[i] * (k[i] - 1) + 1
            v = v.unfold(first + i, span, s[i])[..., :: d[i]]
            t = t.unfold(first + i, span, s[i])[..., :: d[i]]
        v = v.reshape(z.shape[0], -1, math.prod(k))
        t = t.reshape(z.shape[0], -1, math.prod(k))
        m = v.argmax(-1, keepdim=True)
        gap_v = v.gather(-1, m) - v  # >= 0; +inf on padding
        gap_t = t - t.gather(-1, m)  # candidate j overtakes the max at s = p + gap_v / gap_t
        moving = (gap_t != 0) & torch.isfinite(gap_v)
        safe = torch.where(moving, gap_t, torch.ones_like(gap_t))
        delta = torch.where(moving, gap_v / safe, torch.full_like(gap_v, math.inf))
        self._update(delta.reshape(z.shape[0], -1))


def as_tuple(v: object, nd: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * nd  # type: ignore[arg-type]


def _unpack(t: Tensor) -> tuple[Tensor, Tensor]:
    primal, tangent = fwAD.unpack_dual(t)
    return primal, (torch.zeros_like(primal) if tangent is None else tangent)


def probe_kinks(model: nn.Module, points: Tensor, direction: Tensor, tracker: "RegionTracker") -> tuple[Tensor, Tensor]:
    """One forward-AD pass at `points` with tangent `direction`; every kink unit (elementwise
    kinks, max-pool windows) reports to `tracker`. Returns the output's value and slope d/ds.
    Modules used twice are hooked once; the hooks are removed in ``finally``."""
    handles = []
    try:
        seen: set[int] = set()
        for m in model.modules():
            if id(m) in seen:
                continue
            seen.add(id(m))
            if isinstance(m, ELEMENTWISE_KINKS):
                handles.append(m.register_forward_pre_hook(lambda mod, a: tracker.elementwise(mod, a)))
            elif isinstance(m, MAX_POOLS):
                handles.append(m.register_forward_pre_hook(lambda mod, a: tracker.max_pool(mod, a)))
        with torch.no_grad(), fwAD.dual_level():
            out = model(fwAD.make_dual(points.clone(), direction))
            value, slope = _unpack(out)
    finally:
        for h in handles:
            h.remove()
    return value, slope


def _probe_regions(
    model: nn.Module, points: Tensor, direction: Tensor, target: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One forward-AD pass at `points` with tangent `direction`: (up, down, F, dF/ds) per row.

    up/down are the distances in s from each point to the nearest kink above/below (inf if none).
    """
    tracker = RegionTracker(points.shape[0], points.dtype, points.device)
    value, slope = probe_kinks(model, points, direction, tracker)
    check_output(value, points.shape[0])
    idx = target.view(-1, 1)
    return tracker.up, tracker.down, value.gather(1, idx).squeeze(1), slope.gather(1, idx).squeeze(1)


def _gradients(model: nn.Module, points: Tensor, target: Tensor) -> Tensor:
    """dF_target/dx at each row (the input is cloned so an in-place first layer is allowed)."""
    xs = points.detach().requires_grad_(True)
    with torch.enable_grad():
        f = target_outputs(model, xs.clone(), target)
        (g,) = torch.autograd.grad(f.sum(), xs)
    return g


def min_gap(dtype: torch.dtype) -> float:
    """Shortest uncovered stretch of s worth probing: eps^(3/4) (~1.8e-12 float64, ~6e-6 float32)."""
    return float(torch.finfo(dtype).eps) ** 0.75


def completeness_rtol(dtype: torch.dtype) -> float:
    """Relative tolerance of the self-check: 1e-8 in float64, 1e-3 in float32."""
    return 1e-8 if dtype == torch.float64 else 1e-3


# -- the integral ---------------------------------------------------------------------------
def exact_path_integral(
    model: nn.Module,
    x: Tensor,
    baseline: Tensor,
    target: Tensor,
    *,
    max_regions: int = 100_000,
    chunk_size: Optional[int] = DEFAULT_CHUNK,
) -> ExactPathIntegral:
    """int_0^1 grad F_target(x' + s (x - x')) ds exactly, for a piecewise-linear `model`.

    Raises UnsupportedModelError for a layer that is not piecewise linear, or when the result
    fails the completeness self-check sum((x - x') * mean_gradient) = F(x) - F(x') (a
    nonlinearity hidden in a forward, e.g. torch.relu); ConvergenceError beyond `max_regions`.
    """
    check_model(model)
    check_input(x, model)
    if not isinstance(baseline, Tensor) or baseline.shape != x.shape or baseline.dtype != x.dtype:
        raise InputError(f"baseline must be a tensor of the input's shape {tuple(x.shape)} and dtype {x.dtype}")
    if not torch.isfinite(baseline).all():
        raise InputError("baseline contains NaN or inf")
    target = torch.as_tensor(target)
    if target.shape != (x.shape[0],) or target.is_floating_point() or target.dtype == torch.bool:
        raise InputError(f"target must be a long tensor of shape ({x.shape[0]},), got {target.dtype} {tuple(target.shape)}")
    if (target < 0).any():
        raise InputError(f"target {int(target.min())} is negative")
    _check_piecewise_linear(model)

    n, dtype, device = x.shape[0], x.dtype, x.device
    target = target.to(device=device, dtype=torch.long)
    x, baseline = x.detach(), baseline.detach()
    direction = x - baseline
    eps_s = min_gap(dtype)
    step = n * 4 if not chunk_size or chunk_size <= 0 else chunk_size
    view = (-1,) + (1,) * (x.dim() - 1)

    with preserved(model):
        with torch.no_grad():
            ends = target_outputs(model, torch.cat([x, baseline]), torch.cat([target, target]))
        f_x, f_base = ends[:n].double().cpu(), ends[n:].double().cpu()

        total = torch.zeros_like(x)
        regions = torch.zeros(n, dtype=torch.long)
        probes = torch.zeros(n, dtype=torch.long)
        found: list[list[Tensor]] = [[] for _ in range(n)]  # region rows: (lo, hi, p, F(p), dF/ds)
        kinks: list[list[Tensor]] = [[] for _ in range(n)]
        passes = 0
        # pending gaps (sample, a, b), bookkept in float64 on the CPU
        who = torch.arange(n)
        a = torch.zeros(n, dtype=torch.float64)
        b = torch.ones(n, dtype=torch.float64)
        while who.numel():
            p = (a + b) / 2
            ups, downs, values, slopes = [], [], [], []
            for lo_i in range(0, who.numel(), step):
                sl = slice(lo_i, lo_i + step)
                w = who[sl].to(device)
                pts = baseline[w] + p[sl].to(device=device, dtype=dtype).view(view) * direction[w]
                up, down, val, slope = _probe_regions(model, pts, direction[w], target[w])
                passes += 1
                ups.append(up.double().cpu())
                downs.append(down.double().cpu())
                values.append(val.double().cpu())
                slopes.append(slope.double().cpu())
            up, down = torch.cat(ups), torch.cat(downs)
            value, slope = torch.cat(values), torch.cat(slopes)
            probes.index_add_(0, who, torch.ones_like(who))

            on_kink = torch.minimum(up, down) < eps_s
            ok = ~on_kink
            lo = torch.maximum(p - down, a)
            hi = torch.minimum(p + up, b)

            # integrate the regions found: total += (hi - lo) * grad F(probe)
            rw, rlo, rhi, rp = who[ok], lo[ok], hi[ok], p[ok]
            for lo_i in range(0, rw.numel(), step):
                sl = slice(lo_i, lo_i + step)
                w = rw[sl].to(device)
                pts = baseline[w] + rp[sl].to(device=device, dtype=dtype).view(view) * direction[w]
                g = _gradients(model, pts, target[w])
                passes += 1
                width = (rhi[sl] - rlo[sl]).to(device=device, dtype=dtype).view(view)
                total.index_add_(0, w, g * width)
            regions.index_add_(0, rw, torch.ones_like(rw))
            rows = torch.stack([rlo, rhi, rp, value[ok], slope[ok]], 1)
            for i, row in zip(rw.tolist(), rows):
                found[i].append(row)
            for i, s in zip(who[ok & (lo > a)].tolist(), lo[ok & (lo > a)]):
                kinks[i].append(s.view(1))
            for i, s in zip(who[ok & (hi < b)].tolist(), hi[ok & (hi < b)]):
                kinks[i].append(s.view(1))
            for i, s in zip(who[on_kink].tolist(), p[on_kink]):
                kinks[i].append(s.view(1))

            # the gaps left: beside each region, or both halves around a probe that sat on a kink
            left_end = torch.where(ok, lo, p)
            right_start = torch.where(ok, hi, p)
            keep_l = left_end - a > eps_s
            keep_r = b - right_start > eps_s
            who = torch.cat([who[keep_l], who[keep_r]])
            a, b = torch.cat([a[keep_l], right_start[keep_r]]), torch.cat([left_end[keep_l], b[keep_r]])

            over = (regions > max_regions) | (probes > 4 * max_regions + 64)
            if over.any():
                i = int(over.nonzero()[0])
                uncovered = float((b - a)[who == i].sum())
                raise ConvergenceError(
                    f"sample {i}: the path crosses more than max_regions={max_regions} linear regions "
                    f"({int(regions[i])} integrated, {uncovered:.3g} of the path still uncovered); "
                    "raise max_regions or use quadrature",
                    residual=uncovered,
                    steps=int(regions[i]),
                )

    breakpoints = [_merge(kinks[i], eps_s) for i in range(n)]
    _self_check(total, direction, f_x, f_base, found, dtype)
    return ExactPathIntegral(total, breakpoints, regions, passes)


def _merge(points: list[Tensor], eps_s: float) -> Tensor:
    """Sorted breakpoints in (0, 1), points closer than eps_s merged into the first."""
    if not points:
        return torch.zeros(0, dtype=torch.float64)
    s = torch.cat(points).sort().values
    s = s[(s >= eps_s) & (s <= 1 - eps_s)]
    if s.numel() <= 1:
        return s
    keep = torch.ones_like(s, dtype=torch.bool)
    last = float(s[0])
    for j in range(1, s.numel()):
        if float(s[j]) - last <= eps_s:
            keep[j] = False
        else:
            last = float(s[j])
    return s[keep]


def _self_check(
    total: Tensor, direction: Tensor, f_x: Tensor, f_base: Tensor, found: list[list[Tensor]], dtype: torch.dtype
) -> None:
    """Completeness, globally and between consecutive probes; raise if a kink went unseen.

    Between probes p_r < p_{r+1}: F(p_{r+1}) - F(p_r) = F'_r (hi_r - p_r) + F'_{r+1} (p_{r+1} - lo_{r+1}),
    F'_r = dF/ds at p_r from the forward-AD pass; the ends use F(x') at s=0 and F(x) at s=1.
    """
    rtol = completeness_rtol(dtype)
    ig_sum = (direction * total).flatten(1).sum(1).double().cpu()
    ig_abs = (direction * total).flatten(1).abs().sum(1).double().cpu()
    for i in range(total.shape[0]):
        rows = torch.stack(found[i]) if found[i] else torch.zeros(0, 5, dtype=torch.float64)
        rows = rows[rows[:, 0].argsort()]
        lo, hi, p, val, slope = rows.unbind(1)
        points = torch.cat([p.new_zeros(1), p, p.new_ones(1)])
        values = torch.cat([f_base[i].view(1), val, f_x[i].view(1)])
        zero = p.new_zeros(1)
        predicted = torch.cat([zero, slope * (hi - p)]) + torch.cat([slope * (p - lo), zero])
        scale = max(1.0, float(values.abs().max()), float(ig_abs[i]), float((slope.abs() * (hi - lo)).sum()) if p.numel() else 0.0)
        local = (values.diff() - predicted).abs()
        expected = float(f_x[i] - f_base[i])
        global_err = abs(float(ig_sum[i]) - expected)
        if global_err > rtol * scale or (local.numel() and float(local.max()) > rtol * scale):
            where = int(local.argmax()) if local.numel() else 0
            raise UnsupportedModelError(
                f"exact IG failed its completeness self-check on sample {i}: sum (x - x') * mean_gradient "
                f"= {float(ig_sum[i]):.10g} but F(x) - F(x') = {expected:.10g}; largest local residual "
                f"{float(local.max()) if local.numel() else 0.0:.3g} between s={float(points[where]):.6g} and "
                f"s={float(points[where + 1]):.6g}. The model has nonlinearities not visible as modules "
                "(e.g. torch.relu or max called in a forward); use nn.ReLU / nn.MaxPool modules, or quadrature"
            )
