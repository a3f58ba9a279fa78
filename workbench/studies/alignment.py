"""Input alignment of modified-backprop signals (Zheng, Sang & Xu, arXiv 2503.11160, 2025).

What the paper states (abstract and summaries; its body was not available to us): GBP, RectGrad,
LRP and DTD all discard negative backward signal (the *negative filtering rule*, NFR) and so
"combine the weights of activated neurons" into a map aligned with the input; two theorems --
alignment under isotropic random weights, and its cascade through layers with orthogonal,
equal-norm weights. Everything below that goes further is our *reconstruction*, derived here
and tested in ``tests/properties/test_alignment_theory.py``:

**The signal.** Through a bias-free linear layer z = W a, every method here sends back
s = W^T c, where c is its coefficient vector at the layer's output: the backward signal itself
for gradient-type methods, c_j = R_j / z_j for relevance (LRP/DTD). Under NFR, c >= 0 and c is
supported on activated units, so s is a non-negative combination of activated units' weight
vectors. The quantity that is aligned with the input is therefore the *signal* s at the input
(``input_signal``), not necessarily the published map: RectGrad's map is s * x and LRP's
relevance is x * s (first layer LRP-0) or a box-corrected form (zB). For such maps the signed
cosine with x is not an alignment measure -- even a perfectly aligned s = x gives
cos(x * x, x) = sum x^3 / (|x^2| |x|), a skewness statistic of the input (``map_measure_bias``).
This is why the previous "map" measurement found RectGrad / LRP z+ no more aligned than the
gradient while their signals are (the study table quotes both measures).

**Theorem 1, isotropic weights (reconstructed).** Rows w_j ~ N(0, sigma^2 I_d), no bias. Given
unit j active (w_j . x > 0), w_j = A_j x^ + P_j with A_j half-normal (mean sigma sqrt(2/pi),
variance sigma^2 (1 - 2/pi)) and P_j isotropic in the d - 1 directions orthogonal to x. For
coefficients c that depend on the rows only through the activation pattern (one hidden layer:
c_j = v_j 1[active] for the gradient, v_j^+ 1[active] for GBP, v the output weights),
s = W^T c = A x^ + P with E A = sigma sqrt(2/pi) S1, E A^2 = sigma^2 ((2/pi) S1^2 + (1 - 2/pi) S2)
and E|P|^2 = sigma^2 (d - 1) S2 (S1 = sum c_j, S2 = sum c_j^2); so

    cos(s, x) ~ sqrt(2/pi) S1 / sqrt((2/pi) S1^2 + (d - 2/pi) S2)      (``isotropic_prediction``)

With c >= 0 (NFR), S1^2 / S2 = k_eff is the effective number of combined units and the cosine
grows to 1 as k_eff / d grows; with signed c (gradient) S1 ~ sqrt(S2) and the cosine is
O(1 / sqrt(d)). RectGrad's percentile threshold keeps few units (small k_eff): weaker alignment.

**Theorem 2, orthogonal equal-norm weights (reconstructed).** If W W^T = g^2 I (rows orthogonal,
all of norm g), no bias, and c is supported on active units (z_j > 0), then <W^T c, a> = <c, z> =
<c, relu(z)> and |W^T c| = g |c|, hence exactly

    cos(W^T c, a) = cos(c, relu(z)) * |relu(z)| / (g |a|)                (``LayerAlignment``)

For square layers |z| = g |a|, so the factor is |relu(z)| / |z| (about 0.7): the alignment at a
layer's input is its alignment at the ReLU output times that factor. NFR makes c >= 0, so
cos(c, relu(z)) > 0 at every layer (two non-negative vectors) -- alignment cascades down to the
input; the gradient's signed c has cos(c, relu(z)) ~ 0 at every layer. DeconvNet filters
negative signal but ignores the forward mask (c not supported on active units): the identity
does not hold for it. (Convolutions with orthonormal flattened filters are not orthogonal
operators: for CNNs the cascade is a statistical statement.)

Measures: ``cosine``, ``input_signal``, ``layerwise_alignment``. Networks:
``workbench.nets.randomize.isotropic_network`` and ``orthogonal_network``. Studies with paired statistics: ``alignment_study``,
``layerwise_study``. Randomization sanity checks live in ``workbench.studies.sanity``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.methods.base import Method
from workbench.core.modelguard import preserved
from workbench.core.validation import Target, check_input, check_model, resolve_target

# -- measures ----------------------------------------------------------------------------------


def cosine(a: Tensor, x: Tensor, *, absolute: bool = False) -> Tensor:
    """Per-sample cosine similarity of flattened a and x, shape (N,); 0 where either is 0.

    ``absolute=True`` compares |a| with |x|, which hides the effect (Zheng, Sang & Xu 2025, arXiv 2503.11160).
    """
    a2, x2 = a.detach().reshape(a.shape[0], -1), x.detach().reshape(x.shape[0], -1).to(a.dtype)
    if absolute:
        a2, x2 = a2.abs(), x2.abs()
    den = a2.norm(dim=1) * x2.norm(dim=1)
    num = (a2 * x2).sum(1)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


def map_measure_bias(x: Tensor) -> Tensor:
    """cos(x * x, x) per sample: what the signed map cosine reports for a perfectly aligned signal
    s = x when the map is s * x (RectGrad, input x gradient, LRP) -- a skewness statistic of x."""
    return cosine(x * x, x)


def _engine_method(method: Method):
    """(signal composite, seed) of a method the rule engine computes; the plain gradient too."""
    from workbench.methods.modified_backprop import RuleMethod
    from workbench.rules import rules as R
    from workbench.rules.composites import elementwise

    if isinstance(method, RuleMethod):
        return method.signal_composite(), method.seed
    if method.name == "gradient":
        return elementwise(R.Gradient(), "gradient"), "gradient"
    raise InputError(f"{method.label} is not computed by the rule engine; input alignment needs gradient, guided-backprop, deconvnet, rectgrad or lrp")


def input_signal(method: Method, model: nn.Module, x: Tensor, *, target: Target) -> Tensor:
    """The gradient-like signal s at the input (see the module docstring): the map itself for the
    gradient, GBP and DeconvNet; RectGrad's map before the multiplication by x; for LRP the first
    layer's weights combined with the coefficients R_j / z_j its rules deliver."""
    from workbench.methods.modified_backprop import RuleMethod

    if isinstance(method, RuleMethod):
        return method.signal(model, x, target=target)
    _engine_method(method)  # raises for methods without a defined signal
    return method.attribute(model, x, target=target)


AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerAlignment:
    """Alignment at one linear layer (per sample arrays, shape (N,)).

    input_cosine:  cos(s, a), s = W^T c the signal sent to the layer's input, a that input
    output_cosine: cos(c, relu(z)), c the coefficients at the layer's output, z its output
    input_norm / output_norm: |a| and |relu(z)|; signal_norm / coefficient_norm: |s| and |c|
    inner: <s, a>;  support: whether c vanishes wherever z <= 0 (Theorem 2's hypothesis)
    prediction: Theorem 1's predicted input cosine from c and the layer's input dimension, for
    Linear layers (isotropic weights); NaN for convolutions (shared weights: not isotropic rows)
    """

    name: str
    input_cosine: np.ndarray
    output_cosine: np.ndarray
    input_norm: np.ndarray
    output_norm: np.ndarray
    signal_norm: np.ndarray
    coefficient_norm: np.ndarray
    inner: np.ndarray
    support: np.ndarray
    prediction: np.ndarray


def layerwise_alignment(method: Method, model: nn.Module, x: Tensor, *, target: Target) -> list[LayerAlignment]:
    """For every Linear/Conv call in the backward (output layer first): the method's coefficients
    c at the layer's output (the signal, or R / z for relevance methods) and the signal W^T c at its
    input, each compared with the activation there. Layers the method leaves unmodified are traced
    with their plain gradient; the model is left untouched."""
    from workbench.methods.modified_backprop import backward_through
    from workbench.rules import rules as R
    from workbench.rules.engine import Composite

    check_model(model)
    check_input(x, model)
    t = resolve_target(target, x.shape[0], outputs=2**62)
    comp, seed = _engine_method(method)
    traced = Composite(list(comp.mapping) + [(AFFINE, R.LocalGradient())], first=comp.first, canonizers=comp.canonizers, name=comp.name)
    with preserved(model, freeze_parameters=True):
        _, trace = backward_through(traced, model, x.detach(), t, seed=seed, trace=True)
        out = []
        for e in trace:
            if not isinstance(e.module, AFFINE):
                continue
            c = e.grad_out if seed == "gradient" else R.safe_divide(e.grad_out, e.y, 0.0)
            with torch.enable_grad():
                s = R.module_vjp(e.module, e.x, c, e.params)  # the parameters of the call (BatchNorm folded)
            h = e.y.clamp(min=0)
            n = x.shape[0]
            flat = lambda v: v.reshape(n, -1)
            out.append(
                LayerAlignment(
                    e.name,
                    cosine(s, e.x).numpy(),
                    cosine(c, h).numpy(),
                    flat(e.x).norm(dim=1).numpy(),
                    flat(h).norm(dim=1).numpy(),
                    flat(s).norm(dim=1).numpy(),
                    flat(c).norm(dim=1).numpy(),
                    (flat(s) * flat(e.x)).sum(1).numpy(),
                    (flat(c) * (flat(e.y) <= 0)).abs().amax(dim=1).eq(0).numpy(),
                    isotropic_prediction(c, flat(e.x).shape[1]).numpy() if isinstance(e.module, nn.Linear) else np.full(n, np.nan),
                )
            )
    return out


def isotropic_prediction(c: Tensor, d: int) -> Tensor:
    """Theorem 1 (reconstructed): the predicted cos(W^T c, x) for isotropic Gaussian rows, per row
    of c (N, units): sqrt(2/pi) S1 / sqrt((2/pi) S1^2 + (d - 2/pi) S2), S1 = sum c, S2 = sum c^2."""
    c = c.reshape(c.shape[0], -1)
    s1, s2 = c.sum(1), (c * c).sum(1)
    k = 2.0 / math.pi
    den = torch.sqrt(k * s1 * s1 + (d - k) * s2)
    return torch.where(den > 0, math.sqrt(k) * s1 / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


# -- networks ------------------------------------------------------------------------------------


# -- studies ----------------------------------------------------------------------------------


def paired_tests(values: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """One-sided p-values that `values` exceed `reference` (paired): Wilcoxon signed-rank, sign test."""
    from scipy import stats

    d = np.asarray(values) - np.asarray(reference)
    if not np.any(d != 0):
        return 1.0, 1.0
    wil = float(stats.wilcoxon(values, reference, alternative="greater").pvalue)
    wins, n = int((d > 0).sum()), int((d != 0).sum())
    return wil, float(stats.binomtest(wins, n, 0.5, alternative="greater").pvalue)


@dataclass(frozen=True)
class AlignmentResult:
    """Per-method cosine samples (one per network), medians, one-sided paired tests vs the reference."""

    cosines: dict  # method label -> np.ndarray
    medians: dict
    wilcoxon_p: dict  # method label -> one-sided p (method > reference)
    sign_p: dict
    reference: str
    measure: str

    @property
    def n(self) -> int:
        return len(next(iter(self.cosines.values())))

    def table(self) -> str:
        from workbench.check.search import format_table

        rows = [("method", f"median cos ({self.measure})", "IQR", f"wilcoxon p (> {self.reference})", "sign p", "n")]
        for k, v in self.cosines.items():
            q1, q3 = np.percentile(v, [25, 75])
            wp, sp = self.wilcoxon_p.get(k), self.sign_p.get(k)
            rows.append((k, f"{self.medians[k]:.3f}", f"{q1:.3f}..{q3:.3f}", "" if wp is None else f"{wp:.2e}", "" if sp is None else f"{sp:.2e}", str(len(v))))
        return format_table(rows)


def _targets(net: nn.Module, x: Tensor, target: Optional[int]) -> Tensor:
    if target is not None:
        return torch.full((x.shape[0],), int(target), dtype=torch.long)
    with torch.no_grad():
        return net(x).argmax(1)


def alignment_study(
    methods: Sequence[Method],
    make_network: Callable[[int], nn.Module],
    x: Union[Tensor, Callable[[int], Tensor]],
    *,
    networks: int = 20,
    target: Optional[int] = None,
    reference: str = "gradient",
    measure: str = "signal",
    absolute: bool = False,
) -> AlignmentResult:
    """cos(signal or map, input) of each method over `networks` networks (``make_network(i)``), with
    one-sided paired Wilcoxon and sign tests of each method against `reference` (a method label).

    ``measure``: "signal" (``input_signal``: what the theory is about) or "map" (the attribution as
    published). `x` is one input or a function of the network index; the target is each network's
    top class unless given.
    """
    if measure not in ("signal", "map"):
        raise InputError(f"measure must be 'signal' or 'map', got {measure!r}")
    if networks < 1:
        raise InputError(f"networks must be positive, got {networks}")
    cos: dict = {m.label: [] for m in methods}
    for i in range(networks):
        net = make_network(i)
        xi = x(i) if callable(x) else x
        t = _targets(net, xi, target)
        for m in methods:
            a = input_signal(m, net, xi, target=t) if measure == "signal" else m.attribute(net, xi, target=t)
            cos[m.label].extend(cosine(a, xi, absolute=absolute).tolist())
    arrays = {k: np.asarray(v) for k, v in cos.items()}
    med = {k: float(np.median(v)) for k, v in arrays.items()}
    wil, sign = {}, {}
    if reference in arrays:
        for k, v in arrays.items():
            if k != reference:
                wil[k], sign[k] = paired_tests(v, arrays[reference])
    return AlignmentResult(arrays, med, wil, sign, reference, measure)


@dataclass(frozen=True)
class LayerwiseResult:
    """Per method, per layer (output layer first) input cosines over networks; per-layer tests."""

    layers: list
    cosines: dict  # method label -> np.ndarray (networks, layers)
    wilcoxon_p: dict  # method label -> np.ndarray (layers,), one-sided vs reference
    reference: str

    def medians(self, label: str) -> np.ndarray:
        return np.median(self.cosines[label], axis=0)

    def table(self) -> str:
        from workbench.check.search import format_table

        rows = [("method", *[f"{l} median" for l in self.layers], "max wilcoxon p")]
        for k, v in self.cosines.items():
            p = self.wilcoxon_p.get(k)
            rows.append((k, *[f"{m:.3f}" for m in np.median(v, axis=0)], "" if p is None else f"{p.max():.1e}"))
        return format_table(rows)


def layerwise_study(
    methods: Sequence[Method],
    make_network: Callable[[int], nn.Module],
    x: Union[Tensor, Callable[[int], Tensor]],
    *,
    networks: int = 20,
    target: Optional[int] = None,
    reference: str = "gradient",
) -> LayerwiseResult:
    """``layerwise_alignment`` input cosines of each method over many networks, with a one-sided
    paired Wilcoxon test per layer of each method against `reference`."""
    cos: dict = {m.label: [] for m in methods}
    names: list = []
    for i in range(networks):
        net = make_network(i)
        xi = x(i) if callable(x) else x
        t = _targets(net, xi, target)
        for m in methods:
            layers = layerwise_alignment(m, net, xi, target=t)
            names = [l.name for l in layers]
            cos[m.label].append(np.stack([l.input_cosine for l in layers], axis=1))
    arrays = {k: np.concatenate(v, axis=0) for k, v in cos.items()}
    wil = {}
    if reference in arrays:
        r = arrays[reference]
        for k, v in arrays.items():
            if k != reference:
                wil[k] = np.array([paired_tests(v[:, j], r[:, j])[0] for j in range(v.shape[1])])
    return LayerwiseResult(names, arrays, wil, reference)


