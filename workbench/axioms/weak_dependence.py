"""Weak dependence on the input (FullGrad, Srinivas & Fleuret 2019), and the completeness of a
full-gradient representation.

Definition used here (a reconstruction; the paper: "restricted to a linear region U_i, the
saliency depends on x only through that region's parameters (w_i, b_i)"). For a piecewise-linear
F with linear regions U_i (open, connected; F(x) = w_i . x + b_i on U_i), a representation S is
weakly dependent when, on each U_i, S(x) = sigma(w_i, b_i) for some sigma. Operationally: for two
inputs x, x2 in the SAME region, S(x2) = S(x). The gradient passes (S = w_i); input x gradient
(x * w_i) and Integrated Gradients (which depend on x itself) fail; the full-gradient
representation (dF/dx, grad_b F * b) passes.

Case construction (valid by construction, nothing filtered): draw a network, an input x and a
direction d. One forward-mode pass along d gives every ReLU pre-activation z and dz/ds and every
max-pool window, hence s*, the distance to the nearest kink (a unit crossing 0 or a pool switch)
strictly ahead of x. On the open segment x + s d, s in (0, s*), the activation pattern and the
pool switches are constant, so the segment lies in one region (a convex polyhedron of fixed
pattern). When x sits exactly on a kink, the tangents past that unit are those of one side only
(torch's ReLU has slope 0 at 0), so s* is confirmed from the segment's midpoint, where the
tangents are right, and shortened until the midpoint's region covers the whole segment. The case compares x1 = x + s*/3 d with x2 = x + 2 s*/3 d (s* capped at 3). As a guard
against round-off, ``evaluate`` recomputes both patterns and reports "not applicable" if they
differ. Networks with smooth activations have no linear regions: not applicable.

A method may expose a richer representation than its input-sized attribution by defining
``representation(model, x, *, target) -> dict[str, Tensor]`` (the ``full-gradients`` method
does); every part is compared. Otherwise the attribution is compared.

``full-gradient-completeness``: a representation is complete when some phi gives
phi(S(x), x) = F(x); a method exposing ``reconstruct(model, x, *, target) -> (N,)`` is checked
against F(x); other methods are "not applicable" (see ``completeness`` for sum(A) = F(x) - F(x')).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor, nn

from workbench.testing import strategies as wst
from workbench.paths.exact import RegionTracker, as_tuple, probe_kinks
from workbench.axioms.base import Axiom, Case, Outcome, attribute, not_applicable, output, register_axiom, relative

#: kinks closer than this (in s) to x are kinks x sits on, not kinks ahead of it
_AT_X = 1e-12
#: the segment used when no kink lies ahead
_MAX_STEP = 3.0


class _AheadTracker(RegionTracker):
    """Distances to the nearest kink strictly ahead (s > _AT_X) along the direction."""

    def _update(self, delta: Tensor) -> None:
        super()._update(torch.where(delta > _AT_X, delta, torch.full_like(delta, math.inf)))


class _AroundTracker(RegionTracker):
    """Distances to the nearest kinks on either side, ignoring kinks within _AT_X of the point."""

    def _update(self, delta: Tensor) -> None:
        super()._update(torch.where(delta.abs() > _AT_X, delta, torch.full_like(delta, math.inf)))


def distance_to_kink(net: nn.Module, x: Tensor, direction: Tensor) -> Tensor:
    """Per row: the smallest s > 0 at which x + s d crosses a ReLU kink or a max-pool switch (inf: none).

    Exact when x is inside a region; when x sits on a kink, see ``same_region_pair``."""
    return _probe(net, x, direction, _AheadTracker).up


def _probe(net: nn.Module, x: Tensor, direction: Tensor, tracker_type: type) -> RegionTracker:
    tracker = tracker_type(x.shape[0], x.dtype, x.device)
    probe_kinks(net, x, direction, tracker)
    return tracker


def activation_pattern(net: nn.Module, x: Tensor) -> list:
    """The region's signature at x: (z > 0) of every ReLU input, argmax of every max-pool window."""
    pattern: list = []

    def relu(mod: nn.Module, args: tuple) -> None:
        pattern.append(args[0] > 0)

    def pool(mod: nn.Module, args: tuple) -> None:
        z = args[0]
        nd = 1 if isinstance(mod, nn.MaxPool1d) else 2
        fn = F.max_pool1d if nd == 1 else F.max_pool2d
        _, idx = fn(z, as_tuple(mod.kernel_size, nd), as_tuple(mod.stride or mod.kernel_size, nd), as_tuple(mod.padding, nd), as_tuple(mod.dilation, nd), return_indices=True)
        pattern.append(idx)

    handles = []
    try:
        for m in set(net.modules()):
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(relu))
            elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
                handles.append(m.register_forward_pre_hook(pool))
        with torch.no_grad():
            net(x.clone())
    finally:
        for h in handles:
            h.remove()
    return pattern


def same_region(net: nn.Module, x: Tensor, x2: Tensor) -> bool:
    """Whether x and x2 have the same ReLU pattern and max-pool switches."""
    a, b = activation_pattern(net, x), activation_pattern(net, x2)
    return len(a) == len(b) and all(torch.equal(p, q) for p, q in zip(a, b))


def same_region_pair(net: nn.Module, x: Tensor, direction: Tensor) -> tuple[Tensor, Tensor, float]:
    """(x1, x2, s*): two points of the open segment x + s d, 0 < s < s*, which lies in one region.

    s* starts as the kink distance seen from x and is checked from the midpoint m = x + s*/2 d
    (inside a region, so its tangents are exact): while m's region (m - down, m + up) does not
    cover the segment, s* shrinks to the kink found inside it. Each round removes a kink, so the
    loop ends; the segment then lies in m's region, a convex polyhedron."""
    s = min(float(distance_to_kink(net, x, direction)[0]), _MAX_STEP)
    for _ in range(1000):
        around = _probe(net, x + (s / 2) * direction, direction, _AroundTracker)
        lo, hi = s / 2 - float(around.down[0]), s / 2 + float(around.up[0])
        slack = 1e-9 * s
        if lo > slack:
            s = lo  # a kink inside (0, s/2) that the tangents at x could not see
        elif hi < s - slack:
            s = hi
        else:
            break
    return x + (s / 3) * direction, x + (2 * s / 3) * direction, s


@st.composite
def _region_cases(draw: st.DrawFn, family: wst.Family, dtype: torch.dtype) -> Case:
    c = draw(family.cases(dtype))
    seed = draw(st.integers(0, 2**16))
    d = torch.randn(c.x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    if c.net.spec.piecewise_linear:
        x1, x2, s = same_region_pair(c.net, c.x, d)
    else:  # no linear regions; evaluate says "not applicable"
        x1, x2, s = c.x, c.x + d, math.nan
    params = {"x2": x2.tolist(), "direction_seed": seed, "kink_distance": s}
    return Case({"f": c.net}, x1, c.baseline, c.target, params)


def representation(method, net: nn.Module, x: Tensor, target: int, baseline: Tensor) -> dict:
    """The parts of a method's representation: its ``representation()`` if any, else the attribution."""
    rep = getattr(method, "representation", None)
    if callable(rep):
        return dict(rep(net, x, target=target))
    return {"attribution": attribute(method, net, x, target, baseline)}


@register_axiom
class WeakDependence(Axiom):
    name = "weak-dependence"
    abbreviation = "weakD"
    description = "x, x2 in the same linear region -> the same representation (depends on x only through (w, b))"

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return _region_cases(family, dtype)

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f = case.nets["f"]
        if not f.spec.piecewise_linear:
            return not_applicable("weak dependence is defined on linear regions; the network has smooth activations")
        x2 = torch.tensor(case.params["x2"], dtype=case.x.dtype)
        if not same_region(f, case.x, x2):
            return not_applicable("round-off moved x2 out of x's linear region")
        r1 = representation(method, f, case.x, case.target, case.baseline)
        r2 = representation(method, f, x2, case.target, case.baseline)
        worst, where, diff_at = 0.0, "", 0.0
        for key in r1:
            a, b = r1[key], r2[key]
            diff = float((a - b).abs().max()) if a.numel() else 0.0
            rel = relative(diff, float(torch.maximum(a.abs(), b.abs()).max()) if a.numel() else 0.0)
            if rel >= worst:
                worst, where, diff_at = rel, key, diff
        step = float((x2 - case.x).abs().max())
        note = f"max |S(x2) - S(x)| = {diff_at:.6g} ({where}) for x2 in x's region, |x2 - x|_max = {step:.3g}"
        return Outcome(worst, rtol, True, note)


@register_axiom
class FullGradientCompleteness(Axiom):
    name = "full-gradient-completeness"
    abbreviation = "fgCmp"
    description = "the representation recovers the output: phi(S(x), x) = F(x)"

    def cases(self, family: wst.Family, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        return family.cases(dtype).map(lambda c: Case({"f": c.net}, c.x, c.baseline, c.target))

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        f = case.nets["f"]
        smooth = "" if f.spec.piecewise_linear else "; smooth activations add implicit biases the representation does not hold (needs positive homogeneity)"
        return reconstruction_outcome(method, f, case.x, case.target, rtol, note=smooth)


def reconstruction_outcome(method, f, x, target, rtol: float, *, note: str = "") -> Outcome:
    """|phi(S(x), x) - F(x)| relative to max(|F(x)|, |phi|), phi = ``method.reconstruct`` (the
    full-gradient representation's reconstruction, Srinivas & Fleuret 2019); n/a without one."""
    rec = getattr(method, "reconstruct", None)
    if not callable(rec):
        return not_applicable("the method has no reconstruct(); for sum(A) = F(x) - F(x') see 'completeness'")
    fx = output(f, x, target)
    got = float(rec(f, x, target=target)[0])
    return Outcome(relative(got - fx, max(abs(fx), abs(got))), rtol, True, f"phi(S(x), x) = {got:.6g}, F(x) = {fx:.6g}{note}")
