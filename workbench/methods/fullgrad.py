"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): the full-gradient representation and its saliency maps.

* ``full-gradients`` — the representation itself: ``attribute`` returns its input-sized part, the
  input gradient dF/dx; ``representation`` adds every bias term grad_b F * b, and
  ``reconstruct`` gives phi(S(x), x) = x . dF/dx + sum of bias terms, which equals F(x) exactly
  on ReLU networks. It is weakly dependent on the input and complete (as a representation);
  see ``workbench.fullgrad`` for the decomposition.
* ``fullgrad`` — the saliency map S = psi(x * dF/dx) + sum over conv layers of psi(grad_b F * b),
  summed over channels, psi = |.| followed by a per-sample min-max rescale to [0, 1], each layer's
  map upsampled bilinearly (align_corners=True) to the input size. Layer maps are summed over
  channels *before* upsampling (upsampling is linear, so the map is the same and costs one
  interpolation per layer instead of one per channel).
* ``simple-fullgrad`` — the same aggregation of the bias-position gradients dF/dz (no bias factor).
* ``smooth-fullgrad`` — signed input and bias-gradient maps averaged over Gaussian-perturbed inputs
  (sigma = noise_level * (max x - min x) per sample, seeded), then psi, upsampled and summed.

Saliency maps are single-channel; to keep the Method contract (a tensor of x's shape) the map is
repeated over the input channels: ``attribute(...)[:, c]`` is the same map for every c. On flat
inputs (N, D) there is no spatial layer: the map is psi(x * dF/dx) alone. The maps are not
complete by design (only the decomposition is) and claim no axiom.

Coverage (``workbench.fullgrad.COVERAGE``): the decomposition is exact on piecewise-linear
networks (kink biases of ReLU6 / Hardtanh / Threshold collected); any other nonlinearity, also one
hidden in a ``forward``, raises ``UnsupportedModelError`` unless ``unsupported="gradient"`` names
the convention of leaving its implicit bias out (recorded in ``last_conventions``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..coverage import check_unsupported
from ..errors import InputError
from ..fullgrad import COVERAGE, FullGradients, full_gradients
from ..modelguard import preserved
from ..validation import check_input, check_model, resolve_target
from .base import Method
from .registry import register

_MODES = {3: "linear", 4: "bilinear", 5: "trilinear"}


def postprocess(t: Tensor, eps: float = 1e-6) -> Tensor:
    """psi: absolute value, then per-sample min-max rescale to [0, 1] over all non-batch entries."""
    a = t.abs()
    flat = a.reshape(a.shape[0], -1)
    view = (-1,) + (1,) * (a.dim() - 1)
    a = a - flat.amin(1).view(view)
    return a / (a.reshape(a.shape[0], -1).amax(1).view(view) + eps)


def _spatial_terms(terms: tuple, x: Tensor) -> list:
    """Conv-like terms (N, C, *spatial) of the input's rank; Linear terms never count."""
    if x.dim() < 3:
        return []
    return [t for t in terms if t.term.dim() == x.dim() and t.kind != "Linear"]


def _upsample(m: Tensor, size: tuple) -> Tensor:
    if tuple(m.shape[2:]) == tuple(size):
        return m
    return F.interpolate(m, size=size, mode=_MODES[m.dim()], align_corners=True)


def postprocess_channel_sum(t: Tensor, eps: float = 1e-6) -> Tensor:
    """``postprocess(t).sum(1, keepdim=True)`` in fewer passes over t: with a = |t| and its
    per-sample min lo and max hi, sum_c (a - lo) / (hi - lo + eps) = (sum_c a - C lo) / (hi - lo + eps)."""
    a = t.abs()
    flat = a.reshape(a.shape[0], -1)
    lo, hi = flat.amin(1), flat.amax(1)  # (Tensor.aminmax along a dim is ~30x slower on CPU)
    view = (-1,) + (1,) * (a.dim() - 1)
    return (a.sum(1, keepdim=True) - a.shape[1] * lo.view(view)) / (hi - lo + eps).view(view)


def aggregate(input_map: Tensor, layer_maps: list, x: Tensor, eps: float = 1e-6) -> Tensor:
    """psi(input map) summed over channels + for each layer psi(map) summed over channels, upsampled.

    Returns (N, 1, *spatial) for image inputs, (N, D) for flat ones.
    """
    if x.dim() < 3:
        return postprocess(input_map, eps)
    cam = postprocess_channel_sum(input_map, eps)
    for m in layer_maps:
        cam = cam + _upsample(postprocess_channel_sum(m, eps), tuple(x.shape[2:]))
    return cam


def conventions_of(fg: FullGradients) -> tuple:
    """The record of ``unsupported="gradient"``: layers whose implicit bias was not collected."""
    return tuple(f"layer {n!r} ({k}): implicit bias not collected (unsupported='gradient')" for n, k in fg.implicit_bias_layers)


def _as_input_shape(cam: Tensor, x: Tensor) -> Tensor:
    return cam.expand_as(x).contiguous() if cam.shape != x.shape else cam


@register
class FullGradientsMethod(Method):
    """The full-gradient representation: attribute = dF/dx; representation adds grad_b F * b."""

    name = "full-gradients"
    description = "full-gradient representation (input gradient + bias gradients); attribute is its dF/dx part"
    base_claims = {"weak-dependence": None, "full-gradient-completeness": None}
    #: both claims need linear regions and positive homogeneity (Srinivas & Fleuret 2019)
    domain = "piecewise-linear"
    last_conventions: tuple = ()
    coverage = COVERAGE

    def __init__(self, *, strict: bool = False, unsupported: str = "refuse") -> None:
        super().__init__(strict=strict, unsupported=unsupported)
        self.strict = strict
        self.unsupported = check_unsupported(unsupported)

    def decompose(self, model: nn.Module, x: Tensor, target) -> FullGradients:
        fg = full_gradients(model, x, target, strict=self.strict, unsupported=self.unsupported)
        self.last_conventions = conventions_of(fg)
        return fg

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        return self.decompose(model, x, target).input_gradient

    def representation(self, model: nn.Module, x: Tensor, *, target) -> dict:
        """Every part of the representation: ``input-gradient`` and ``bias:<layer>`` = grad_b F * b."""
        fg = self.decompose(model, x, target)
        rep = {"input-gradient": fg.input_gradient}
        for t in fg.bias_terms:
            rep[f"bias:{t.layer}"] = t.term
        return rep

    def reconstruct(self, model: nn.Module, x: Tensor, *, target) -> Tensor:
        """phi(S(x), x) = x . dF/dx + sum of grad_b F * b, per sample (N,)."""
        fg = self.decompose(model, x, target)
        return fg.input_term.reshape(x.shape[0], -1).sum(1) + fg.bias_total


@register
class FullGrad(Method):
    """FullGrad saliency: psi(x * dF/dx) + sum over conv layers of psi(grad_b F * b), channel-summed."""

    name = "fullgrad"
    description = "FullGrad saliency map (input term + conv bias-gradient maps), repeated over channels"

    last_conventions: tuple = ()
    coverage = COVERAGE

    def __init__(self, *, eps: float = 1e-6, unsupported: str = "refuse") -> None:
        super().__init__(eps=eps, unsupported=unsupported)
        self.eps = eps
        self.unsupported = check_unsupported(unsupported)

    def _decompose(self, model: nn.Module, x: Tensor, target: Tensor) -> FullGradients:
        """full_gradients without the residual check (the maps claim no completeness), nonlinear
        layers outside the decomposition refused unless ``unsupported="gradient"`` (recorded)."""
        fg = full_gradients(model, x, target, strict=False, unsupported=self.unsupported)
        self.last_conventions = conventions_of(fg)
        return fg

    def maps(self, model: nn.Module, x: Tensor, target: Tensor) -> tuple[Tensor, list]:
        fg = self._decompose(model, x, target)
        return fg.input_term, [t.term for t in _spatial_terms(fg.bias_terms, x)]

    def saliency(self, model: nn.Module, x: Tensor, *, target) -> Tensor:
        """The single-channel map (N, 1, *spatial) (flat inputs: (N, D)), validated like attribute."""
        check_model(model)
        check_input(x, model)
        t = resolve_target(target, x.shape[0], outputs=2**62)
        with preserved(model, freeze_parameters=True):
            return self._cam(model, x.detach(), t)

    def _cam(self, model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        input_map, layer_maps = self.maps(model, x, target)
        return aggregate(input_map, layer_maps, x, self.eps)

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        return _as_input_shape(self._cam(model, x, target), x)


@register
class SimpleFullGrad(FullGrad):
    """FullGrad's aggregation applied to the bias-position gradients dF/dz (no bias factor)."""

    name = "simple-fullgrad"
    description = "simple FullGrad: input term + conv bias-position gradient maps, repeated over channels"

    def maps(self, model: nn.Module, x: Tensor, target: Tensor) -> tuple[Tensor, list]:
        fg = self._decompose(model, x, target)
        return fg.input_term, [t.term for t in _spatial_terms(fg.bias_gradients, x)]


@register
class SmoothFullGrad(FullGrad):
    """FullGrad with the signed input and bias maps averaged over noisy inputs before psi."""

    name = "smooth-fullgrad"
    description = "smooth FullGrad: FullGrad maps averaged over Gaussian-perturbed inputs, repeated over channels"

    def __init__(self, *, samples: int = 25, noise_level: float = 0.15, seed: int = 0, chunk_size: int = 16, eps: float = 1e-6, unsupported: str = "refuse") -> None:
        if samples < 1:
            raise InputError(f"samples must be >= 1, got {samples}")
        if noise_level < 0:
            raise InputError(f"noise_level must be >= 0, got {noise_level}")
        if chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
        Method.__init__(self, samples=samples, noise_level=noise_level, seed=seed, chunk_size=chunk_size, eps=eps, unsupported=unsupported)
        self.samples, self.noise_level, self.seed, self.chunk_size, self.eps = samples, noise_level, seed, chunk_size, eps
        self.unsupported = check_unsupported(unsupported)

    def maps(self, model: nn.Module, x: Tensor, target: Tensor) -> tuple[Tensor, list]:
        n, k = x.shape[0], self.samples
        g = torch.Generator().manual_seed(self.seed)
        flat = x.reshape(n, -1)
        sigma = self.noise_level * (flat.max(1).values - flat.min(1).values)
        noise = torch.randn((k, 1, *x.shape[1:]), generator=g, dtype=x.dtype).to(x.device)
        view = (1, n) + (1,) * (x.dim() - 1)
        noisy = (x.unsqueeze(0) + noise * sigma.view(view)).reshape(k * n, *x.shape[1:])
        targets = target.repeat(k)
        rows = max(n, (self.chunk_size // n) * n)  # whole noise draws per chunk
        input_sum: Optional[Tensor] = None
        layer_sums: list = []
        for start in range(0, k * n, rows):
            fg = self._decompose(model, noisy[start:start + rows], targets[start:start + rows])
            draws = fg.input_term.shape[0] // n
            part = fg.input_term.reshape(draws, n, *x.shape[1:]).sum(0)
            input_sum = part if input_sum is None else input_sum + part
            terms = [t.term for t in _spatial_terms(fg.bias_terms, x)]
            parts = [t.reshape(draws, n, *t.shape[1:]).sum(0) for t in terms]
            layer_sums = parts if not layer_sums else [a + b for a, b in zip(layer_sums, parts)]
        input_map = input_sum / k  # type: ignore[operator]  (k >= 1: the loop ran)
        if x.dim() >= 3:  # the reference sums the signed input term over channels before psi
            input_map = input_map.sum(1, keepdim=True)
        return input_map, [s / k for s in layer_sums]
