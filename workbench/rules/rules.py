"""Backward rules: the local backward of one layer type, written as named pieces.

Elementwise rules (at ReLU): ``ElementwiseRule.map(x, y, grad) -> grad``.

- ``Gradient``          1[z > 0] g (torch's convention at z = 0 is ``at_zero=False``)
- ``GuidedBackprop``    1[z > 0] 1[g > 0] g; ``at_zero`` says whether z == 0 passes
- ``DeconvNet``         1[g > 0] g (z is ignored; g == 0 contributes 0 either way)
- ``RectGrad``          1[a g > tau] g, tau the q-th percentile (linear interpolation, as
                        numpy.percentile) of a * g over each sample's units (Kim et al. 2019)
- ``Pass``              g (activations under LRP: relevance passes unchanged)

(ReLU rules read the gate off the pre-activation z, the module's input, which the engine keeps
intact for in-place ReLUs; reading it off the output would make ``at_zero=True`` pass every unit.)

LRP rules (``LinearRule``, for any module linear in its input: Linear, Conv, AvgPool, the
canonizer's Sum, an unfolded BatchNorm). A rule is a tuple of *groups*; a group has a
coefficient c and *terms* (input modifier f_k, parameter modifier p_k, sign s_k). With the
layer's forward L(input; params)::

    z     = sum_k s_k L(f_k(x); p_k(params))           (per group: the modified forward)
    q     = R / stabilize(z)                           (gradient mapper)
    R_in  = sum_groups c * sum_k s_k f_k(x) * J_k^T q  (reducer: input times modified gradient)

``J_k^T q`` is the vector-Jacobian product of L at f_k(x) with parameters p_k, computed by
autograd on ``torch.func.functional_call`` -- so a new rule is a few named functions:

- LRP-0        one term (x, W, b)
- epsilon      same, stabilize(z) = z + eps * sign(z) (sign(0) = +1): absorbs relevance
- gamma        (x, W + gamma W+, b + gamma b+)  (classic Montavon et al. 2019 form)
- alpha-beta   alpha * {(x+, W+, b+), (x-, W-)} - beta * {(x+, W-, b-), (x-, W+)}
- z+ (DTD)     (x, W+[, b+]) -- meant for x >= 0; equals alpha=1/beta=0 there
- zB           (x, W) - (low, W+) - (high, W-)      for a box low <= x <= high
- flat         (1, 1): every input shares equally by receptive field
- w-square     (1, W^2)

``bias`` (a named parameter) says whether the (modified) bias enters the denominator. The
``stabilizer`` of the non-epsilon rules defaults to 0: an exact division, with 0/0 := 0 (a
unit with z = 0 passes nothing); Zennit's convention is 1e-6 added with the sign of z.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from workbench.rules.canonizers import Sum
from workbench.rules.engine import Rule
from workbench.rules.pooling import MAX_POOLS, check_ties, rescale_multipliers

#: torch's activation modules that act elementwise (generated from torch; the rest mix entries)
NOT_ELEMENTWISE = {"GLU", "MultiheadAttention", "Softmax", "Softmax2d", "LogSoftmax", "Softmin"}
ELEMENTWISE = tuple(getattr(nn, n) for n in nn.modules.activation.__all__ if n not in NOT_ELEMENTWISE)
#: elementwise activations that are non-decreasing for every parameter value (LRP's pass-through
#: convention is defined for these; GELU, SiLU, Mish, Hardswish, PReLU and Threshold are not)
MONOTONE = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.Softplus, nn.Tanh,
            nn.Sigmoid, nn.Hardsigmoid, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink)
#: modules linear in their input (given their parameters): what an LRP ``LinearRule`` is defined on
LINEAR_MODULES = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, Sum,
)

# -- elementwise rules ---------------------------------------------------------------------


class ElementwiseRule(Rule):
    """A rule of an elementwise activation: ``map(x, y, grad) -> grad``. The ReLU rules model
    ``nn.ReLU`` only (their gate reads z > 0)."""

    models = (nn.ReLU,)

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        return self.map(x, y, grad)


def _active(z: Tensor, at_zero: bool) -> Tensor:
    """The ReLU gate read off the pre-activation z (the module's input): z > 0, or z >= 0 with
    ``at_zero``. (Not off the output: relu(z) >= 0 holds everywhere.)"""
    return (z >= 0) if at_zero else (z > 0)


@dataclass(frozen=True, repr=False)
class Pass(ElementwiseRule):
    """The signal passes unchanged (LRP's rule for activations)."""

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        return grad


@dataclass(frozen=True, repr=False)
class Gradient(ElementwiseRule):
    """The ReLU's own gradient 1[z > 0] g; ``at_zero=True`` passes z == 0 too."""

    at_zero: bool = False

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        return grad * _active(x, self.at_zero).to(grad.dtype)


@dataclass(frozen=True, repr=False)
class GuidedBackprop(ElementwiseRule):
    """1[z > 0] 1[g > 0] g (Springenberg et al. 2015); ``at_zero`` decides z == 0 (torch: blocked)."""

    at_zero: bool = False

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        return grad.clamp(min=0) * _active(x, self.at_zero).to(grad.dtype)


@dataclass(frozen=True, repr=False)
class DeconvNet(ElementwiseRule):
    """1[g > 0] g (Zeiler & Fergus 2014): the forward activation is ignored."""

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


def percentile(v: Tensor, q: float) -> Tensor:
    """Per-row q-th percentile of a (N, D) tensor, linear interpolation (numpy's default):
    ``torch.quantile`` row by row (its input is limited to 2**24 elements per call)."""
    return torch.stack([torch.quantile(row, q / 100.0, interpolation="linear") for row in v])


@dataclass(frozen=True, repr=False)
class RectGrad(ElementwiseRule):
    """Pass g only where a * g > tau, tau = q-th percentile of a * g over the sample (Kim et al. 2019).

    Read literally from the paper's rule R = 1[a * R > tau] R, which replaces the ReLU's own
    mask 1[z > 0]: with tau >= 0 (the usual case at q = 98) inactive units are blocked anyway.
    """

    q: float = 98.0

    def map(self, x: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        n = grad.shape[0]
        score = (y * grad).reshape(n, -1)
        tau = percentile(score, self.q).view(n, *([1] * (grad.dim() - 1)))
        return grad * ((y * grad) > tau).to(grad.dtype)


# -- module-level rules ----------------------------------------------------------------------


def module_vjp(module: nn.Module, x: Tensor, grad: Tensor, params: Optional[dict] = None) -> Tensor:
    """J^T grad: the module's own vector-Jacobian product at input x (x is copied: in-place
    modules), with its own parameters or with `params` (``functional_call``)."""
    xi = x.detach().requires_grad_(True)
    out = module(xi.clone()) if params is None else functional_call(module, params, (xi.clone(),))
    (g,) = torch.autograd.grad(out, xi, grad)
    return g


@dataclass(frozen=True, repr=False)
class LocalGradient(Rule):
    """The module's plain gradient J^T g, as a rule: lets a composite trace a layer it leaves unmodified."""

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        return module_vjp(module, x, grad)


@dataclass(frozen=True, repr=False)
class RelevanceSignal(Rule):
    """s = J^T (R / z): the relevance R at a linear layer's output turned back into a gradient-like
    signal (z the layer's output, 0/0 := 0). LRP-0's input relevance is x * s; on the first layer
    this reads the signal an LRP composite delivers to the input -- the weights of the first layer's
    units combined with the coefficients R_j / z_j (``workbench.studies.alignment.input_signal``)."""

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        return module_vjp(module, x, safe_divide(grad, y, 0.0))


# -- LRP: named pieces -------------------------------------------------------------------

InputModifier = Callable[[Tensor], Tensor]
ParamModifier = Callable[[str, Tensor], Tensor]


def identity_input(x: Tensor) -> Tensor:
    return x


def positive_input(x: Tensor) -> Tensor:
    return x.clamp(min=0)


def negative_input(x: Tensor) -> Tensor:
    return x.clamp(max=0)


def ones_input(x: Tensor) -> Tensor:
    return torch.ones_like(x)


#: the default zB box is [-B, B] with B = max(DEFAULT_BOX, max |x|) per sample
DEFAULT_BOX = 3.0


def box_tensor(value: Any, x: Tensor, *, side: str = "low") -> Tensor:
    """A box bound as a tensor of x's shape: a number, one number per channel (a sequence of
    length C for x of shape (N, C, ...)), anything broadcastable to x, or None: the default box
    [-B, B], B = max(3, max |x|) per sample -- [-3, 3] for standardized data, widened to hold any
    sample that leaves it (``side`` says which bound)."""
    if value is None:
        b = x.detach().reshape(x.shape[0], -1).abs().amax(1).clamp(min=DEFAULT_BOX)
        v = -b if side == "low" else b
        return v.view(-1, *([1] * (x.dim() - 1))).expand_as(x)
    v = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if v.dim() == 1 and x.dim() > 2 and v.numel() == x.shape[1]:
        v = v.view(-1, *([1] * (x.dim() - 2)))
    return v.expand_as(x)


@dataclass(frozen=True)
class ConstantInput:
    """Input modifier returning a box bound (zB), broadcast to x's shape (``box_tensor``)."""

    value: Any
    side: str = "low"

    def __call__(self, x: Tensor) -> Tensor:
        return box_tensor(self.value, x, side=self.side)


def identity_param(name: str, p: Tensor) -> Tensor:
    return p


def positive_param(name: str, p: Tensor) -> Tensor:
    return p.clamp(min=0)


def negative_param(name: str, p: Tensor) -> Tensor:
    return p.clamp(max=0)


def ones_param(name: str, p: Tensor) -> Tensor:
    return torch.ones_like(p)


def square_param(name: str, p: Tensor) -> Tensor:
    return p * p


@dataclass(frozen=True)
class GammaParam:
    """w + gamma w+ (the gamma rule's parameter modifier); ``negative``: w + gamma w-."""

    gamma: float
    negative: bool = False

    def __call__(self, name: str, p: Tensor) -> Tensor:
        return p + self.gamma * (p.clamp(max=0) if self.negative else p.clamp(min=0))


@dataclass(frozen=True)
class Term:
    """One modified forward L(input(x); param(params)) entering the group with ``sign``.

    ``bias``: whether this term's (modified) bias enters the denominator (else it is zeroed).
    """

    input: InputModifier = identity_input
    param: ParamModifier = identity_param
    sign: float = 1.0
    bias: bool = True


@dataclass(frozen=True)
class Group:
    """Terms sharing one denominator, and the group's coefficient in the reducer; ``units``:
    "all", or "positive" / "negative" for a group that serves only the units whose (unmodified)
    pre-activation z is > 0 / < 0 (the generalized gamma rule)."""

    terms: tuple
    coefficient: float = 1.0
    units: str = "all"


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """z + epsilon * sign(z), with sign(0) = +1 (Zennit's convention)."""
    return z + epsilon * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def safe_divide(r: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """r / stabilize(z, epsilon); where the stabilized denominator is 0 the quotient is 0."""
    d = stabilize(z, epsilon) if epsilon else z
    zero = d == 0
    return torch.where(zero, torch.zeros_like(r), r / torch.where(zero, torch.ones_like(d), d))


def _modified_params(module: nn.Module, term: Term) -> dict:
    out = {}
    for name, p in module.named_parameters(recurse=False):
        v = term.param(name, p.detach())
        if name == "bias" and not term.bias:
            v = torch.zeros_like(v)
        out[name] = v
    return out


class StabilizerWarning(UserWarning):
    """An LRP denominator fell far below the unit's pre-activation: its relevance is amplified."""


class LinearRule(Rule):
    """An LRP rule from groups of terms (see the module docstring); ``stabilizer`` is the epsilon.

    ``warn_below`` (rules that modify the forward to stay close to it: gamma): the stabiliser
    diagnostic. Where a unit carrying relevance has a denominator |z_mod| < warn_below * |z|
    (z its unmodified pre-activation, z != 0), a ``StabilizerWarning`` names the layer type, the
    count and the smallest ratio: R / z_mod then amplifies relevance by more than 1 / warn_below.
    """

    models = LINEAR_MODULES
    stabilizer: float = 0.0
    warn_below: float = 0.0

    def groups(self) -> Sequence[Group]:
        raise NotImplementedError

    def _diagnose(self, module: nn.Module, z: Tensor, y: Tensor, grad: Tensor, units: Tensor) -> None:
        z = stabilize(z, self.stabilizer) if self.stabilizer else z
        low = units & (grad != 0) & (y != 0) & (z.abs() < self.warn_below * y.abs())
        if bool(low.any()):
            import warnings

            ratio = float((z.abs() / y.abs())[low].min())
            warnings.warn(
                f"{type(self).__name__} on {type(module).__name__}: {int(low.sum())} denominators fell below "
                f"{self.warn_below:g} x |z| (smallest |z_mod| / |z| = {ratio:.3g}); their relevance is amplified "
                f"up to {1 / max(ratio, 1e-300):.3g}x. Use the generalized gamma (generalized_gamma=True) or a stabilizer.",
                StabilizerWarning,
                stacklevel=2,
            )

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        out = torch.zeros_like(x)
        for group in self.groups():
            inputs, outputs = [], []
            for term in group.terms:
                xi = term.input(x).detach().requires_grad_(True)
                params = _modified_params(module, term)
                outputs.append(functional_call(module, params, (xi,)))
                inputs.append(xi)
            z = sum(t.sign * o for t, o in zip(group.terms, outputs))
            g = grad
            if group.units != "all":
                units = (y > 0) if group.units == "positive" else (y < 0)
                g = torch.where(units, grad, torch.zeros_like(grad))
            else:
                units = torch.ones_like(y, dtype=torch.bool)
            if self.warn_below:
                self._diagnose(module, z.detach(), y, g, units)
            q = safe_divide(g, z.detach(), self.stabilizer)
            grads = torch.autograd.grad(outputs, inputs, grad_outputs=[q] * len(outputs), allow_unused=True)
            for term, xi, g in zip(group.terms, inputs, grads):
                if g is not None:
                    out = out + group.coefficient * term.sign * xi.detach() * g
        return out


@dataclass(frozen=True)
class LRPZero(LinearRule):
    """LRP-0: R_i = sum_j a_i w_ij / z_j R_j (Bach et al. 2015); conservative without bias."""

    bias: bool = True
    stabilizer: float = 0.0

    def groups(self) -> Sequence[Group]:
        return (Group((Term(bias=self.bias),)),)


@dataclass(frozen=True)
class Epsilon(LinearRule):
    """LRP-epsilon: denominator z_j + epsilon sign(z_j); absorbs relevance of weak units."""

    epsilon: float = 1e-6
    bias: bool = True

    @property
    def stabilizer(self) -> float:  # type: ignore[override]
        return self.epsilon

    def groups(self) -> Sequence[Group]:
        return (Group((Term(bias=self.bias),)),)


#: the stabiliser diagnostic's default: warn where |z_mod| < 1% of |z| (relevance amplified > 100x)
WARN_BELOW = 0.01


@dataclass(frozen=True)
class Gamma(LinearRule):
    """LRP-gamma, classic (Montavon et al. 2019): w + gamma w+ (and b + gamma b+ if ``bias``) on
    every unit. Meant for positive inputs; a unit with z < 0 gets z + gamma z+ as denominator,
    which can cross 0 (``warn_below``: the stabiliser diagnostic)."""

    gamma: float = 0.25
    bias: bool = True
    stabilizer: float = 0.0
    warn_below: float = WARN_BELOW

    def groups(self) -> Sequence[Group]:
        return (Group((Term(param=GammaParam(self.gamma), bias=self.bias),)),)


@dataclass(frozen=True)
class GeneralizedGamma(LinearRule):
    """LRP-gamma, generalized (Andeol et al. 2021; Zennit's ``Gamma``): units with z > 0 use the
    positive contributions amplified, units with z < 0 the negative ones, so |z_mod| >= |z|::

        z > 0:  z_mod = x+ (W + gamma W+) + x- (W + gamma W-) [+ b + gamma b+]
        z < 0:  z_mod = x+ (W + gamma W-) + x- (W + gamma W+) [+ b + gamma b-]

    R_i = sum over both terms x_i * (modified weights) * R_j / z_mod_j; units with z = 0 pass nothing.
    Equals the classic gamma where every input is >= 0 and every z > 0."""

    gamma: float = 0.25
    bias: bool = True
    stabilizer: float = 0.0
    warn_below: float = WARN_BELOW

    def groups(self) -> Sequence[Group]:
        up, down = GammaParam(self.gamma), GammaParam(self.gamma, negative=True)
        pos = (Term(positive_input, up, bias=self.bias), Term(negative_input, down, bias=False))
        neg = (Term(positive_input, down, bias=self.bias), Term(negative_input, up, bias=False))
        return (Group(pos, units="positive"), Group(neg, units="negative"))


@dataclass(frozen=True)
class AlphaBeta(LinearRule):
    """LRP-alpha-beta: alpha (positive shares) - beta (negative shares); sums scale by alpha - beta.

    Positive shares: x+ W+ and x- W- (and b+ if ``bias``); negative: x+ W- and x- W+ (and b-).
    """

    alpha: float = 2.0
    beta: float = 1.0
    bias: bool = False
    stabilizer: float = 0.0

    def groups(self) -> Sequence[Group]:
        pos = (Term(positive_input, positive_param, bias=self.bias), Term(negative_input, negative_param, bias=False))
        neg = (Term(positive_input, negative_param, bias=self.bias), Term(negative_input, positive_param, bias=False))
        out = [Group(pos, self.alpha)]
        if self.beta:
            out.append(Group(neg, -self.beta))
        return tuple(out)


@dataclass(frozen=True)
class ZPlus(LinearRule):
    """DTD's z+ rule: R_i = sum_j x_i w+_ij / sum_i' x_i' w+_i'j R_j (for x >= 0; bias b+ if ``bias``).

    Zennit's ``ZPlus`` is alpha=1/beta=0 with negative inputs paired with W- and b+ included:
    ``ZPlus(signed_inputs=True, bias=True)``.
    """

    bias: bool = False
    signed_inputs: bool = False
    stabilizer: float = 0.0

    def groups(self) -> Sequence[Group]:
        if self.signed_inputs:
            return (Group((Term(positive_input, positive_param, bias=self.bias), Term(negative_input, negative_param, bias=False))),)
        return (Group((Term(identity_input, positive_param, bias=self.bias),)),)


@dataclass(frozen=True)
class ZBox(LinearRule):
    """zB for a box low <= x <= high (Montavon et al. 2017): (x W - low W+ - high W-) normalized.

    ``low`` / ``high``: numbers, one number per channel (e.g. the ImageNet-normalized pixel range,
    ``box_bounds``), tensors broadcastable to the input, or None (the default): [-B, B] with
    B = max(3, max |x|) per sample -- [-3, 3] for standardized data, widened for a sample that
    leaves it. Pass the data's valid range for a box that never depends on the sample.
    """

    low: Any = None
    high: Any = None
    stabilizer: float = 0.0

    def groups(self) -> Sequence[Group]:
        return (
            Group(
                (
                    Term(identity_input, identity_param, 1.0, bias=False),
                    Term(ConstantInput(self.low, "low"), positive_param, -1.0, bias=False),
                    Term(ConstantInput(self.high, "high"), negative_param, -1.0, bias=False),
                )
            ),
        )


def box_bounds(mean: Sequence[float], std: Sequence[float], *, low: float = 0.0, high: float = 1.0) -> tuple[tuple, tuple]:
    """Per-channel zB bounds of normalized images: ((low - mean) / std, (high - mean) / std)."""
    if len(mean) != len(std) or any(s <= 0 for s in std):
        from workbench.core.errors import InputError

        raise InputError(f"box_bounds needs one positive std per mean, got mean={mean}, std={std}")
    return tuple((low - m) / s for m, s in zip(mean, std)), tuple((high - m) / s for m, s in zip(mean, std))


@dataclass(frozen=True)
class Flat(LinearRule):
    """Flat: every input of a unit's receptive field gets an equal share (no weights, no bias)."""

    stabilizer: float = 0.0

    def groups(self) -> Sequence[Group]:
        return (Group((Term(ones_input, ones_param, bias=False),)),)


@dataclass(frozen=True)
class WSquare(LinearRule):
    """w-square: shares w_ij^2 / sum_i' w_i'j^2 (no bias)."""

    stabilizer: float = 0.0

    def groups(self) -> Sequence[Group]:
        return (Group((Term(ones_input, square_param, bias=False),)),)


# -- DeepLift ------------------------------------------------------------------------------


#: LRP rule kind -> the rule built from a composite's options (``composites.DEFAULTS``). The one
#: name -> factory table: composites name kinds from it, and every kind must have its independent
#: reference in ``workbench.testing.references.RULES`` (tests/properties/test_rule_kinds.py).
KINDS: dict[str, Callable[[dict], LinearRule]] = {
    "zero": lambda o: LRPZero(bias=o["bias"], stabilizer=o["stabilizer"]),
    "epsilon": lambda o: Epsilon(epsilon=o["epsilon"], bias=o["bias"]),
    "gamma": lambda o: (GeneralizedGamma if o["generalized_gamma"] else Gamma)(gamma=o["gamma"], bias=o["bias"], stabilizer=o["stabilizer"]),
    "zplus": lambda o: ZPlus(bias=o["zplus_bias"], stabilizer=o["stabilizer"]),
    "zplus-signed": lambda o: ZPlus(bias=o["zplus_bias"], signed_inputs=True, stabilizer=o["stabilizer"]),
    "alpha-beta": lambda o: AlphaBeta(alpha=o["alpha"], beta=o["beta"], stabilizer=o["stabilizer"]),
    "alpha2-beta1": lambda o: AlphaBeta(alpha=2.0, beta=1.0, stabilizer=o["stabilizer"]),
    "flat": lambda o: Flat(stabilizer=o["stabilizer"]),
    "w-square": lambda o: WSquare(stabilizer=o["stabilizer"]),
    "zb": lambda o: ZBox(low=o["low"], high=o["high"], stabilizer=o["stabilizer"]),
}


class _ReferenceStore:
    """Per-module FIFO of (x0, y0) recorded on the reference pass, consumed on the input pass."""

    def __init__(self) -> None:
        self.recording = True
        self.calls: dict = {}

    def take(self, module: nn.Module, x: Tensor, y: Tensor) -> Any:
        q = self.calls.setdefault(id(module), [])
        if self.recording:
            q.append((x, y))
            return None
        if not q:
            from workbench.core.errors import ModelError

            raise ModelError(f"DeepLift: the input pass called {type(module).__name__} more often than the reference pass")
        return q.pop(0)


@dataclass(eq=False, repr=False)
class Rescale(Rule):
    """DeepLift's Rescale rule at an elementwise nonlinearity: m = (y - y0) / (x - x0), and the
    module's own derivative at x where x == x0 exactly. Exact: m * (x - x0) = y - y0, for every
    elementwise module (``ELEMENTWISE``)."""

    store: _ReferenceStore
    models = ELEMENTWISE

    def forward_state(self, module: nn.Module, x: Tensor, y: Tensor) -> Any:
        return self.store.take(module, x, y)

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        x0, y0 = state
        dx, dy = x - x0, y - y0
        same = dx == 0
        xi = x.detach().requires_grad_(True)
        (deriv,) = torch.autograd.grad(module(xi.clone()), xi, torch.ones_like(xi))  # clone: in-place modules
        m = torch.where(same, deriv, dy / torch.where(same, torch.ones_like(dx), dx))
        return grad * m


@dataclass(eq=False, repr=False)
class RescaleMaxPool(Rule):
    """Exact DeepLift multipliers through every max pool torch ships (``pooling.rescale_multipliers``):
    the output change of each window is split over the convention's winners at x and at the
    reference x0 in proportion to their input changes, m_i = dy dx_i / sum_S dx_j^2, so
    sum_i m_i dx_i = dy exactly. (Reconstructed: DeepLift's paper gives the gradient for max
    pooling, which is not exact; this is the least-norm exact multiplier on the winners.)"""

    store: _ReferenceStore
    ties: str = "first"
    models = MAX_POOLS

    def __post_init__(self) -> None:
        check_ties(self.ties)

    def forward_state(self, module: nn.Module, x: Tensor, y: Tensor) -> Any:
        return self.store.take(module, x, y)

    def backward(self, module: nn.Module, x: Tensor, y: Tensor, grad: Tensor, state: Any) -> Tensor:
        x0, y0 = state
        return rescale_multipliers(module, x, x0, y, y0, grad, self.ties)
