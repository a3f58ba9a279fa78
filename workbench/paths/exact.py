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

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.autograd import target_outputs
from workbench.core.errors import ConvergenceError, InputError, UnsupportedModelError
from workbench.core.memory import check_budget, rows_per_chunk, saved_bytes
from workbench.core.modelguard import preserved
from workbench.core.validation import check_input, check_model, check_output

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

#: a fused pass (forward with tangents, then backward) keeps about this much more than autograd saves
FUSED_FACTOR = 1.5
#: relative round-off below which two values are tied (see RegionTracker)
TIE_RTOL: dict[torch.dtype, float] = {
    torch.float64: 64 * torch.finfo(torch.float64).eps,
    torch.float32: 64 * torch.finfo(torch.float32).eps,
    torch.float16: 16 * torch.finfo(torch.float16).eps,
    torch.bfloat16: 16 * torch.finfo(torch.bfloat16).eps,
}
#: max-pool tie conventions: the gradient goes to the first tied maximum, or is shared equally
TIES = ("first", "split")


@dataclass(frozen=True)
class ExactPathIntegral:
    """The exact path integral of the gradient along x' + s (x - x') for each sample."""

    mean_gradient: Tensor  # (N, ...) = int_0^1 grad F_t(x' + s (x - x')) ds
    breakpoints: list[Tensor] = field(repr=False)  # per sample, sorted s in (0, 1) where the region changes
    regions: Tensor  # (N,) long: linear pieces integrated per sample
    passes: int  # fused passes (forward with tangent, then one backward), each over a batch of probes
    seconds: float = 0.0  # wall time of the walk


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
def tie_tolerance(v: Tensor) -> Tensor:
    """Per row: TIE_RTOL * max |v| over the finite entries, shaped (rows, 1): values closer than this
    are equal to round-off (a kink between them cannot be located)."""
    finite = torch.where(torch.isfinite(v), v.abs(), torch.zeros_like(v))
    return TIE_RTOL[v.dtype] * finite.reshape(v.shape[0], -1).amax(1, keepdim=True) if v.numel() else v.new_zeros(v.shape[0], 1)


class RegionTracker:
    """Forward pre-hook state: per probe row, the distances to the nearest kink above and below.

    Two quantities equal to round-off (|gap| <= tie_tolerance) whose slopes along the path also
    differ by no more than that are *tied along the path*: they never separate by more than
    round-off on [0, 1], so no kink is recorded between them (the region is one linear piece; the
    gradient follows the tie convention). Modules whose windows hold such ties are in ``tied``.
    """

    def __init__(self, rows: int, dtype: torch.dtype, device: torch.device) -> None:
        self.up = torch.full((rows,), math.inf, dtype=dtype, device=device)
        self.down = torch.full((rows,), math.inf, dtype=dtype, device=device)
        self.tied: set[int] = set()  # id() of max pools with tied window maxima in this pass
        self.near: set[int] = set()  # id() of max pools with a tie that is not an exact equality

    def _update(self, delta: Tensor) -> None:
        """delta (rows, units): signed displacements in s to a kink (NaN/inf = none)."""
        if delta.shape[1]:
            inf = torch.tensor(math.inf, dtype=delta.dtype, device=delta.device)
            torch.minimum(self.up, torch.where(delta >= 0, delta, inf).amin(1), out=self.up)
            torch.minimum(self.down, torch.where(delta <= 0, delta, -inf).amax(1).neg(), out=self.down)

    def _crossings(self, gap: Tensor, rate: Tensor) -> None:
        """Kinks at s = p + gap / rate for every unit (rows, units); a rate that is 0 (round-off,
        see the callers) means none: x/0 is inf and 0/0 NaN, which _update ignores."""
        self._update(gap / rate)

    @torch.no_grad()
    def elementwise(self, module: nn.Module, args: tuple) -> None:
        z, dz = _unpack(args[0])
        kinks = [0.0] if isinstance(module, (nn.ReLU, nn.LeakyReLU)) else [module.min_val, module.max_val]
        z, dz = z.detach().reshape(z.shape[0], -1), dz.detach().reshape(dz.shape[0], -1)
        tol = _row_scale(z) * TIE_RTOL[z.dtype]
        # |dz| <= tol: z - k changes by at most round-off along the whole path (no kink)
        rate = torch.where(dz.abs() > tol, dz, torch.zeros_like(dz))
        for k in kinks:
            self._crossings((k - z) if k else z.neg(), rate)

    @torch.no_grad()
    def max_pool(self, module: nn.Module, args: tuple) -> None:
        z, dz = _unpack(args[0])
        if _tiling(module, z) is not None:
            return self._tiled_pool(module, z.detach(), dz.detach())
        v, t = pool_windows(module, z.detach()), pool_windows(module, dz.detach(), pad_value=0.0)
        m = v.argmax(-1, keepdim=True)
        gap_v = v.gather(-1, m) - v  # >= 0; +inf on padding
        gap_t = t - t.gather(-1, m)  # candidate j overtakes the max at s = p + gap_v / gap_t
        tol = tie_tolerance(v).unsqueeze(-1)
        finite = torch.isfinite(gap_v)
        tied = finite & (gap_v <= tol) & (gap_t.abs() <= tol)  # equal along the whole path
        if bool((tied.sum(-1) > 1).any()):
            self.tied.add(id(module))
        if bool((tied & (gap_v != 0)).any()):
            self.near.add(id(module))
        moving = finite & ~tied & (gap_t != 0)
        safe = torch.where(moving, gap_t, torch.ones_like(gap_t))
        delta = torch.where(moving, gap_v / safe, torch.full_like(gap_v, math.inf))
        self._update(delta.reshape(z.shape[0], -1))

    def _tiled_pool(self, module: nn.Module, z: Tensor, dz: Tensor) -> None:
        """max_pool for windows that tile the input (kernel = stride, no padding or dilation): the
        same crossings as the general path, computed on a view of the input (no window copies)."""
        top, idx = F.max_pool2d(z, module.kernel_size, module.stride, return_indices=True)
        zw, tw = _tiles(module, z), _tiles(module, dz)
        t_top = dz.flatten(2).gather(2, idx.flatten(2)).view(top.shape)
        gap_v = top.unsqueeze(3).unsqueeze(5) - zw  # >= 0
        gap_t = tw - t_top.unsqueeze(3).unsqueeze(5)  # an entry overtakes the max at s = p + gap_v / gap_t
        n = z.shape[0]
        tol = (_row_scale(z.reshape(n, -1)) * TIE_RTOL[z.dtype]).view(n, 1, 1, 1, 1, 1)
        tied = (gap_v <= tol) & (gap_t.abs() <= tol)  # equal along the whole path (the max itself too)
        if bool((tied.sum((3, 5)) > 1).any()):
            self.tied.add(id(module))
            if bool((tied & (gap_v != 0)).any()):
                self.near.add(id(module))
        rate = torch.where(tied, torch.zeros_like(gap_t), gap_t)
        self._crossings(gap_v.reshape(n, -1), rate.reshape(n, -1))


def _row_scale(v: Tensor) -> Tensor:
    """Per row of v (rows, units): max |v| over the finite entries, shaped (rows, 1)."""
    if not v.numel():
        return v.new_zeros(v.shape[0], 1)
    scale = v.abs().amax(1, keepdim=True)
    if not bool(torch.isfinite(scale).all()):
        scale = torch.where(torch.isfinite(v), v.abs(), torch.zeros_like(v)).amax(1, keepdim=True)
    return scale


def _tiling(module: nn.Module, z: Tensor) -> Optional[tuple[int, int]]:
    """(kh, kw) when a MaxPool2d's windows tile z's spatial grid (stride = kernel, no padding or
    dilation); None otherwise (the general window path)."""
    if not isinstance(module, nn.MaxPool2d) or z.dim() != 4:
        return None
    k, s = as_tuple(module.kernel_size, 2), as_tuple(module.stride or module.kernel_size, 2)
    if k != s or any(as_tuple(module.padding, 2)) or any(d != 1 for d in as_tuple(module.dilation, 2)):
        return None
    return k


def _tiles(module: nn.Module, z: Tensor) -> Tensor:
    """z cropped to whole windows and viewed as (rows, C, H_out, kh, W_out, kw) (no copy)."""
    kh, kw = _tiling(module, z)  # type: ignore[misc]
    ho, wo = z.shape[2] // kh, z.shape[3] // kw
    return z[:, :, : ho * kh, : wo * kw].reshape(z.shape[0], z.shape[1], ho, kh, wo, kw)


def pool_windows(module: nn.Module, z: Tensor, pad_value: float = -math.inf) -> Tensor:
    """The windows of a max pool over z: (rows, channels * output positions, window size),
    in the pool's scan order (row-major within a window); padding holds `pad_value`."""
    nd = 1 if isinstance(module, nn.MaxPool1d) else 2
    k, s, p, d = (as_tuple(v, nd) for v in (module.kernel_size, module.stride or module.kernel_size, module.padding, module.dilation))
    pad = [q for i in reversed(range(nd)) for q in (p[i], p[i])]
    v = F.pad(z, pad, value=pad_value) if any(p) else z
    first = v.dim() - nd
    for i in range(nd):  # windows: (..., out_1, .., out_nd, k_1, .., k_nd)
        span = d[i] * (k[i] - 1) + 1
        v = v.unfold(first + i, span, s[i])[..., :: d[i]]
    return v.reshape(z.shape[0], -1, math.prod(k))


def tie_aware_pool(module: nn.Module, z: Tensor, out: Tensor, tie: str) -> Tensor:
    """The max pool's output recomputed so that its gradient follows `tie` where window maxima are
    tied (within tie_tolerance): "first" routes it to the first tied entry in scan order, "split"
    shares it equally. Values change by at most round-off."""
    if _tiling(module, z) is not None:
        return _tie_aware_tiles(module, z, out, tie)
    v = pool_windows(module, z)
    tol = tie_tolerance(v.detach()).unsqueeze(-1)
    top = v.detach().amax(-1, keepdim=True)
    tied = v.detach() >= top - tol
    if tie == "first":
        pick = tied.to(torch.uint8).argmax(-1, keepdim=True)  # the first maximal (True) entry
        chosen = v.gather(-1, pick).squeeze(-1)
    else:
        w = tied.to(v.dtype)
        chosen = (torch.where(tied, v, torch.zeros_like(v)) * w).sum(-1) / w.sum(-1)
    return chosen.reshape(out.shape)


def _tie_aware_tiles(module: nn.Module, z: Tensor, out: Tensor, tie: str) -> Tensor:
    """tie_aware_pool for windows that tile the input (see _tiling), on a view of z."""
    zw = _tiles(module, z)
    n, c, ho, kh, wo, kw = zw.shape
    flat = zw.detach().reshape(n, -1)
    tol = (_row_scale(flat) * TIE_RTOL[z.dtype]).view(n, 1, 1, 1, 1, 1)
    tied = zw.detach() >= out.detach().unsqueeze(3).unsqueeze(5) - tol
    if tie == "split":
        w = tied.to(z.dtype)
        return (zw * w).sum((3, 5)) / w.sum((3, 5))
    pick = tied.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, kh * kw).to(torch.uint8).argmax(-1)  # first in scan order
    rows = torch.arange(ho, device=z.device).view(1, 1, ho, 1) * kh + pick // kw
    cols = torch.arange(wo, device=z.device).view(1, 1, 1, wo) * kw + pick % kw
    return z.flatten(2).gather(2, (rows * z.shape[3] + cols).flatten(2)).view(out.shape)


def as_tuple(v: object, nd: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * nd  # type: ignore[arg-type]


def _unpack(t: Tensor) -> tuple[Tensor, Tensor]:
    primal, tangent = fwAD.unpack_dual(t)
    return primal, (torch.zeros_like(primal) if tangent is None else tangent)


@contextlib.contextmanager
def _hooked(model: nn.Module, tracker: "RegionTracker", tie: Optional[str]) -> Iterator[None]:
    """Kink units report to `tracker` (pre-hooks); with `tie`, max pools whose windows hold tied
    maxima recompute their output so the gradient follows the convention (post-hooks).
    Modules used twice are hooked once; the hooks are removed on exit."""
    handles = []

    def retie(mod: nn.Module, args: tuple, out: Tensor) -> Optional[Tensor]:
        # "first" on exact ties is PyTorch's own choice: only round-off ties need the recomputation
        if (tie == "split" and id(mod) in tracker.tied) or id(mod) in tracker.near:
            return tie_aware_pool(mod, args[0], out, tie)
        return None

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
                if tie is not None:
                    handles.append(m.register_forward_hook(retie))
        yield
    finally:
        for h in handles:
            h.remove()


def probe_kinks(model: nn.Module, points: Tensor, direction: Tensor, tracker: "RegionTracker") -> tuple[Tensor, Tensor]:
    """One forward-AD pass at `points` with tangent `direction`; every kink unit (elementwise
    kinks, max-pool windows) reports to `tracker`. Returns the output's value and slope d/ds."""
    with _hooked(model, tracker, None), torch.no_grad(), fwAD.dual_level():
        out = model(fwAD.make_dual(points.clone(), direction))
        value, slope = _unpack(out)
    return value, slope


def _probe_and_integrate(
    model: nn.Module, points: Tensor, direction: Tensor, target: Tensor, a: Tensor, b: Tensor, p: Tensor, eps_s: float, tie: str
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One pass at `points` (path positions p in gaps [a, b]): forward with tangent `direction`
    and the autograd graph, the kink distances from the tracker, then one backward weighted by
    each row's region width. Returns (lo, hi, F, dF/ds, (hi - lo) * grad F) per row; a row whose
    probe sits on a kink (lo = hi = p) gets weight 0."""
    tracker = RegionTracker(points.shape[0], points.dtype, points.device)
    xs = points.detach().clone().requires_grad_(True)
    with _hooked(model, tracker, tie), torch.enable_grad(), fwAD.dual_level():
        out = model(fwAD.make_dual(xs, direction))
        primal, tangent = fwAD.unpack_dual(out)
        check_output(primal, points.shape[0])
        idx = target.view(-1, 1).to(primal.device)
        f = primal.gather(1, idx).squeeze(1)
        slope = torch.zeros_like(f) if tangent is None else tangent.detach().gather(1, idx).squeeze(1)
        up, down = tracker.up.double().cpu(), tracker.down.double().cpu()
        on_kink = torch.minimum(up, down) < eps_s
        lo = torch.where(on_kink, p, torch.maximum(p - down, a))
        hi = torch.where(on_kink, p, torch.minimum(p + up, b))
        width = (hi - lo).to(dtype=f.dtype, device=f.device)
        (g,) = torch.autograd.grad(f, xs, grad_outputs=width)
    return lo, hi, f.detach().double().cpu(), slope.double().cpu(), g


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
    chunk_size: Optional[int] = None,
    max_pool_ties: str = "first",
    memory_budget: Optional[int] = None,
) -> ExactPathIntegral:
    """int_0^1 grad F_target(x' + s (x - x')) ds exactly, for a piecewise-linear `model`.

    Max-pool windows whose maxima are tied along the path (equal to round-off, see RegionTracker)
    are one linear piece; their gradient follows `max_pool_ties`: "first" (the first tied entry in the
    window's scan order, as PyTorch's max pools do for exact ties) or "split" (shared equally).

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
    if max_pool_ties not in TIES:
        raise InputError(f"unknown max_pool_ties convention {max_pool_ties!r}; choose one of {', '.join(TIES)}")
    tie = max_pool_ties
    if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
        raise InputError(f"max_regions must be a positive integer, got {max_regions!r}")
    _check_piecewise_linear(model)

    started = time.perf_counter()
    n, dtype, device = x.shape[0], x.dtype, x.device
    target = target.to(device=device, dtype=torch.long)
    x, baseline = x.detach(), baseline.detach()
    direction = x - baseline
    eps_s = min_gap(dtype)
    budget = check_budget(memory_budget)
    step = chunk_size if chunk_size and chunk_size > 0 else None  # None: from the budget after one probe row
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
            los, his, values, slopes = [], [], [], []
            lo_i = 0
            while lo_i < who.numel():
                rows = step if step is not None else 1
                sl = slice(lo_i, lo_i + rows)
                lo_i += rows
                w = who[sl].to(device)
                pts = baseline[w] + p[sl].to(device=device, dtype=dtype).view(view) * direction[w]
                args = (model, pts, direction[w], target[w], a[sl], b[sl], p[sl], eps_s, tie)
                if step is None:  # measure the bytes one row keeps for the backward pass
                    (lo_c, hi_c, val, slope, g), nbytes = saved_bytes(model, lambda: _probe_and_integrate(*args))
                    step = rows_per_chunk(int(FUSED_FACTOR * nbytes), budget)
                else:
                    lo_c, hi_c, val, slope, g = _probe_and_integrate(*args)
                passes += 1
                total.index_add_(0, w, g)
                los.append(lo_c)
                his.append(hi_c)
                values.append(val)
                slopes.append(slope)
            lo, hi = torch.cat(los), torch.cat(his)
            value, slope = torch.cat(values), torch.cat(slopes)
            probes.index_add_(0, who, torch.ones_like(who))
            ok = hi > lo
            on_kink = ~ok

            rw, rlo, rhi, rp = who[ok], lo[ok], hi[ok], p[ok]
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
            left_end = lo
            right_start = hi
            keep_l = left_end - a > eps_s
            keep_r = b - right_start > eps_s
            who = torch.cat([who[keep_l], who[keep_r]])
            a, b = torch.cat([a[keep_l], right_start[keep_r]]), torch.cat([left_end[keep_l], b[keep_r]])

            over = (regions > max_regions) | (probes > 4 * max_regions + 64)
            if over.any():
                i = int(over.nonzero()[0])
                uncovered = float((b - a)[who == i].sum())
                if int(regions[i]) > max_regions:
                    why = (f"the path crosses more than max_regions={max_regions} linear regions ({int(regions[i])} "
                           f"integrated in {time.perf_counter() - started:.1f} s, {uncovered:.3g} of the path still uncovered)")
                else:
                    why = (f"{int(probes[i])} probes sat on kinks and found only {int(regions[i])} regions ({uncovered:.3g} of "
                           "the path uncovered): the path runs along a kink that is not a round-off tie")
                raise ConvergenceError(
                    f"exact IG, sample {i}: {why}. Each region costs one batched pass: raise max_regions "
                    f"(e.g. max_regions={10 * max_regions}) if that time is acceptable, or use quadrature "
                    "(integrated-gradients with a tolerance), whose completeness residual reports its error",
                    residual=uncovered,
                    steps=int(regions[i]),
                )

    breakpoints = [_merge(kinks[i], eps_s) for i in range(n)]
    _self_check(total, direction, f_x, f_base, found, dtype)
    return ExactPathIntegral(total, breakpoints, regions, passes, time.perf_counter() - started)


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
