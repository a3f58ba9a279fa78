"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): the full-gradient representation and its saliency maps.

* ``full-gradients`` — the representation itself: ``attribute`` returns its input-sized part, the
  input gradient dF/dx; ``representation`` adds every bias term grad_b F * b, and
  ``reconstruct`` gives phi(S(x), x) = x . dF/dx + sum of bias terms, which equals F(x) exactly
  on ReLU networks. It is weakly dependent on the input and complete (as a representation);
  see "The decomposition" below.
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

Coverage (``workbench.methods.fullgrad.COVERAGE``): the decomposition is exact on piecewise-linear
networks (kink biases of ReLU6 / Hardtanh / Threshold collected); any other nonlinearity, also one
hidden in a ``forward``, raises ``UnsupportedModelError`` unless ``unsupported="gradient"`` names
the convention of leaving its implicit bias out (recorded in ``last_conventions``).

The decomposition
-----------------

For a network built from affine layers with biases and positively homogeneous nonlinearities
(ReLU, LeakyReLU, max and average pooling, residual additions, zero padding), the output is
exactly

    F(x) = grad_x F . x + sum over layers l and output positions p of (grad_b F * b)_{l,p},

Euler's theorem for a function that is positively homogeneous of degree 1 jointly in the input
and every bias. ``full_gradients`` returns every term with the layer it came from, and the
residual F(x) - (sum of all terms) per sample, which is round-off for such networks.

How bias gradients are collected (no deprecated hooks, no reliance on hook order): a forward
hook on every module with an affine bias returns ``output + z``, z a zero tensor of the output's
shape that requires grad; one ``autograd.grad`` call returns dF/dx and every dF/dz. dF/dz is the
gradient at the bias position of each output element, and the bias term of that layer is
``dF/dz * b`` with b broadcast over the non-channel dimensions (kept per position, not summed).
Each call of a module gets its own z, so modules used twice contribute twice. Hooks are removed
in ``finally`` (through ``workbench.core.modelguard.preserved``).

Biases collected: Linear (last dimension), Conv1d/2d/3d and ConvTranspose (channel dimension),
BatchNorm in eval mode with running statistics, whose implicit bias is
``beta - gamma * running_mean / sqrt(running_var + eps)``, and the kinks of every piecewise-linear
activation torch ships that is not positively homogeneous (Hardtanh, ReLU6, Threshold): on its
current linear piece f(z) = f'(z) z + c(z), and c(z) = f(z) - f'(z) z (6 for a saturated ReLU6
unit, ``value`` below a Threshold, 0 on the identity piece) is an implicit bias at the module's
output, collected per unit like a layer bias (term dF/dy * c). ReLU, LeakyReLU, PReLU and max
pools are positively homogeneous (c = 0).

Layers that break the decomposition:

* a leaf whose bias cannot be collected (LayerNorm, GroupNorm, InstanceNorm, BatchNorm without
  running statistics, an unknown module with a ``bias`` parameter, ...) always raises
  ``UnsupportedModelError`` naming it: it is never skipped silently;
* a nonlinearity that is not piecewise linear (Softplus, GELU, SiLU, Tanh, Sigmoid, ELU, ...)
  adds an implicit bias that is not constant on any piece. The forward pass is traced
  (``workbench.core.coverage``), so one hidden in a ``forward`` (``F.gelu``, a custom autograd
  Function, an LSTM) is found too. With ``strict=True`` (the default) it raises
  ``UnsupportedModelError`` naming the layer; with ``strict=False`` the decomposition is
  computed, the layers are listed in ``FullGradients.implicit_bias_layers`` and the residual is
  non-zero.
* an affine operation hidden in a ``forward`` (``x + 1``, ``F.linear`` with a bias) adds a bias
  no hook collects; the residual shows it: ``strict=True`` also raises when the residual exceeds
  the dtype's round-off tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core import coverage as cov
from workbench.core.autograd import target_outputs
from workbench.core.coverage import check_unsupported
from workbench.core.errors import InputError, UnsupportedModelError
from workbench.core.modelguard import preserved
from workbench.core.tolerance import rtol_for
from workbench.core.validation import Target, check_input, check_model, resolve_target
from workbench.methods.base import Method
from workbench.methods.registry import register

__all__ = [
    "BiasTerm", "CompletenessCheck", "FullGrad", "FullGradients", "FullGradientsMethod", "SimpleFullGrad", "SmoothFullGrad",
    "check_completeness", "full_gradients", "inspect_model",
]

#: leaves with a bias added along the channel dimension (dim 1)
_CHANNEL_BIAS: tuple[type, ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)
_BATCHNORMS: tuple[type, ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: parameter-free (or bias-free) leaves that are positively homogeneous of degree 1
_HOMOGENEOUS: tuple[type, ...] = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.RReLU,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d,
    nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle,
)
#: piecewise-linear activations with kinks off the origin: each piece's implicit bias is collected
KINKS: tuple[type, ...] = (nn.Hardtanh, nn.Threshold)  # ReLU6 is a Hardtanh
#: activations that are not piecewise linear: each adds an implicit bias no term collects
_IMPLICIT_BIAS: tuple[type, ...] = (
    nn.Softplus, nn.GELU, nn.SiLU, nn.Mish, nn.ELU, nn.CELU, nn.SELU, nn.Tanh, nn.Sigmoid,
    nn.Hardswish, nn.Hardsigmoid, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink,
    nn.Softshrink, nn.Hardshrink, nn.Softmax, nn.LogSoftmax, nn.Softmin,
)
#: what the decomposition models exactly (``workbench.core.coverage``): the nonlinear modules above,
#: and every affine / structural operation (an uncollected constant shows in the residual)
COVERAGE = cov.Coverage(
    "full-gradients",
    (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.RReLU) + tuple(t for t in _HOMOGENEOUS if "MaxPool" in t.__name__) + KINKS,
    cov.LINEAR_KINDS,
    "replace the layer by a piecewise-linear one, or pass unsupported='gradient' (strict=False for full_gradients) to get "
    "the decomposition without its implicit bias (the layer is then listed in implicit_bias_layers) and a residual",
    ops=frozenset({"Relu", "LeakyRelu", "PreluKernel", "MaxPool2DWithIndices", "MaxPool3DWithIndices", "AdaptiveMaxPool2D", "AdaptiveMaxPool3D"}),
)
#: leaves whose bias (or normalization) cannot be written as an additive, input-independent bias
_UNCOLLECTABLE: tuple[type, ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LocalResponseNorm, nn.Bilinear, nn.Embedding, nn.EmbeddingBag, nn.MultiheadAttention,
    nn.RNNBase, nn.RMSNorm,
)


class BiasTerm(NamedTuple):
    """One layer call's bias term: grad_b F * b per output position, shape of the layer's output."""

    layer: str  # module name (``name#k`` for the k-th call of a module used several times)
    kind: str  # module type, e.g. "Conv2d", "BatchNorm2d"
    term: Tensor  # (N, C, ...) like the layer's output


@dataclass(frozen=True)
class FullGradients:
    """The full-gradient decomposition of F_target at x, per sample.

    ``output = input_term.sum + sum of every bias term + residual`` (all per sample).
    """

    input_gradient: Tensor  # (N, ...) dF/dx
    input_term: Tensor  # (N, ...) x * dF/dx
    bias_terms: tuple  # of BiasTerm, in forward order
    bias_gradients: tuple  # of BiasTerm whose ``term`` is dF/dz (the bias-position gradient, unscaled)
    output: Tensor  # (N,) F_target(x)
    residual: Tensor  # (N,) output - (input_term + bias terms)
    implicit_bias_layers: tuple = ()  # (name, type) of layers that are not piecewise linear (strict=False only)

    @property
    def bias_total(self) -> Tensor:
        """Sum of all bias terms, per sample (N,)."""
        total = torch.zeros_like(self.output)
        for t in self.bias_terms:
            total = total + t.term.reshape(t.term.shape[0], -1).sum(1)
        return total

    @property
    def scale(self) -> Tensor:
        """|F| + sum |input term| + sum |bias terms| per sample: what the residual is relative to."""
        n = self.output.shape[0]
        s = self.output.abs() + self.input_term.reshape(n, -1).abs().sum(1)
        for t in self.bias_terms:
            s = s + t.term.reshape(n, -1).abs().sum(1)
        return s

    @property
    def relative_residual(self) -> Tensor:
        """|residual| / (1 + scale), per sample."""
        return self.residual.abs() / (1.0 + self.scale)


@dataclass(frozen=True)
class CompletenessCheck:
    """Verdict of ``check_completeness``: does F(x) equal the sum of its full-gradient terms?"""

    holds: bool
    residual: float  # worst relative residual over the batch
    tolerance: float
    note: str


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]


def _where(name: str) -> str:
    return f"layer {name!r}" if name else "the model"


def inspect_model(model: nn.Module) -> tuple[list, list]:
    """(biased modules and kink activations, non-piecewise-linear activations) of `model`, each as (name, module).

    Raises UnsupportedModelError naming the first module whose bias cannot be collected.
    """
    biased, implicit = [], []
    for name, m in model.named_modules():
        leaf = not any(True for _ in m.children())
        own = dict(m.named_parameters(recurse=False))
        if isinstance(m, _BATCHNORMS):
            if m.running_mean is None or m.running_var is None:
                raise UnsupportedModelError(
                    f"full-gradients need BatchNorm with running statistics (an affine map per sample); "
                    f"{_where(name)} is {m!r} with track_running_stats=False"
                )
            biased.append((name, m))
        elif isinstance(m, nn.Linear) or isinstance(m, _CHANNEL_BIAS):
            if m.bias is not None:
                biased.append((name, m))
        elif isinstance(m, _UNCOLLECTABLE):
            raise UnsupportedModelError(
                f"full-gradients cannot collect the bias of {_where(name)} ({type(m).__name__}): it is "
                "not an input-independent additive bias (normalization by input statistics, or not affine)"
            )
        elif isinstance(m, KINKS):
            biased.append((name, m))
        elif isinstance(m, _IMPLICIT_BIAS):
            implicit.append((name, m))
        elif isinstance(m, _HOMOGENEOUS):
            pass
        elif any("bias" in k for k in own):
            raise UnsupportedModelError(
                f"full-gradients cannot collect the bias of {_where(name)} ({type(m).__name__}): an unknown "
                "module with a bias parameter; known biased layers are Linear, Conv*, ConvTranspose* and BatchNorm*"
            )
        elif leaf and own:
            pass  # an unknown parametrized leaf without bias (e.g. a scale): the residual will tell
    return biased, implicit


def _channel_bias(m: nn.Module) -> Tensor:
    if isinstance(m, _BATCHNORMS):
        std = torch.sqrt(m.running_var + m.eps)
        gamma = m.weight if m.weight is not None else torch.ones_like(std)
        beta = m.bias if m.bias is not None else torch.zeros_like(std)
        return (beta - gamma * m.running_mean / std).detach()
    return m.bias.detach()


def _bias_view(m: nn.Module, b: Tensor, out: Tensor) -> Tensor:
    """b shaped to broadcast against the module's output: last dim for Linear, dim 1 otherwise."""
    if isinstance(m, nn.Linear):
        return b.view(*([1] * (out.dim() - 1)), -1)
    if out.dim() == 1:  # unbatched BatchNorm1d input is refused by check_input already
        return b
    return b.view(1, -1, *([1] * (out.dim() - 2)))


def _kink_bias(module: nn.Module, z: Tensor, y: Tensor) -> Tensor:
    """c(z) = f(z) - f'(z) z per unit, f' torch's derivative (the piece the backward uses)."""
    zi = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (d,) = torch.autograd.grad(module.forward(zi.clone()), zi, torch.ones_like(zi))  # .forward: no hooks
    return (y.detach() - d * z.detach())


class _Collector:
    """Forward hooks adding a zero leaf z to each biased output; records (name, module, z, bias).

    A kink activation's input is kept by a pre-hook (cloned: an in-place ReLU6 overwrites it)."""

    def __init__(self, names: dict) -> None:
        self.names = names
        self.calls: list[tuple[str, nn.Module, Tensor, Optional[Tensor]]] = []
        self.count: dict[int, int] = {}
        self.inputs: dict[int, list] = {}

    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        self.inputs.setdefault(id(module), []).append(args[0].detach().clone())

    def hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if not isinstance(output, Tensor):
            raise UnsupportedModelError(
                f"full-gradients need {_where(self.names[id(module)])} to return one tensor, got {type(output).__name__}"
            )
        k = self.count.get(id(module), 0)
        self.count[id(module)] = k + 1
        name = self.names[id(module)] + (f"#{k + 1}" if k else "")
        z = torch.zeros_like(output, requires_grad=True)
        bias = _kink_bias(module, self.inputs[id(module)].pop(), output) if isinstance(module, KINKS) else None
        self.calls.append((name, module, z, bias))
        return output + z


def full_gradients(model: nn.Module, x: Tensor, target: Target, *, strict: bool = True, unsupported: Optional[str] = None) -> FullGradients:
    """The full-gradient decomposition of F_target at x: dF/dx, x * dF/dx, every grad_b F * b.

    One forward and one backward pass. ``strict`` raises UnsupportedModelError on nonlinear
    operations that are not piecewise linear (traced: hidden ones too; they add implicit biases)
    and when the residual exceeds the dtype's round-off tolerance; with ``strict=False`` both are
    reported instead. ``unsupported`` ("refuse" / "gradient") decides the first of the two
    separately (default: "refuse" when strict). Layers whose bias cannot be collected always
    raise. The model is left unchanged.
    """
    refuse = cov.check_unsupported(unsupported if unsupported is not None else ("refuse" if strict else "gradient")) == "refuse"
    check_model(model)
    check_input(x, model)
    t = resolve_target(target, x.shape[0], outputs=2**62)
    biased, implicit_modules = inspect_model(model)
    implicit = implicit_modules
    if refuse and implicit:
        names = ", ".join(f"{_where(n)} ({type(m).__name__})" for n, m in implicit[:3])
        raise UnsupportedModelError(
            f"the full-gradient decomposition is exact only for piecewise-linear activations (ReLU, LeakyReLU, PReLU, "
            f"Hardtanh, ReLU6, Threshold, max pools); "
            f"{names} add implicit biases; pass strict=False to get the decomposition with its residual"
        )
    names = {id(m): n for n, m in model.named_modules()}
    collector = _Collector(names)
    with preserved(model, freeze_parameters=True):
        handles = []
        try:
            for _, m in biased:
                if isinstance(m, KINKS):
                    handles.append(m.register_forward_pre_hook(collector.pre_hook))
                handles.append(m.register_forward_hook(collector.hook))
            xs = x.detach().requires_grad_(True)
            with torch.enable_grad(), cov.traced(model) as tracer:
                f = target_outputs(model, xs.clone(), t)  # clone: an in-place first layer is allowed
                found = tracer.unsupported(f, COVERAGE)
                if refuse and found:
                    raise cov.refusal(found, COVERAGE)
                zs = [z for _, _, z, _ in collector.calls]
                grads = torch.autograd.grad(f.sum(), [xs] + zs, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
    gx = grads[0] if grads[0] is not None else torch.zeros_like(x)
    terms, bias_grads = [], []
    for (name, m, z, kink), g in zip(collector.calls, grads[1:]):
        g = torch.zeros_like(z) if g is None else g
        b = kink.to(g.dtype) if kink is not None else _bias_view(m, _channel_bias(m).to(g.dtype), g)
        terms.append(BiasTerm(name, type(m).__name__, g * b))
        bias_grads.append(BiasTerm(name, type(m).__name__, g))
    out = f.detach()
    input_term = gx * x.detach()
    n = x.shape[0]
    total = input_term.reshape(n, -1).sum(1)
    for term in terms:
        total = total + term.term.reshape(n, -1).sum(1)
    order = {n: i for i, n in enumerate(names.values())}
    layers = sorted({(u.path, u.kind) for u in found}, key=lambda item: order.get(item[0], -1))
    result = FullGradients(gx, input_term, tuple(terms), tuple(bias_grads), out, out - total, tuple(layers))
    if strict:
        rel = float(result.relative_residual.max())
        tol = rtol_for(x.dtype)
        if not rel <= tol:
            suspects = [f"{n!r} ({type(m).__name__})" for n, m in _leaves(model)
                        if not isinstance(m, _HOMOGENEOUS + KINKS + _BATCHNORMS + _CHANNEL_BIAS + (nn.Linear,))]
            hint = f"; modules of unknown type: {', '.join(suspects[:3])}" if suspects else (
                "; no module is to blame, so an operation inside a forward() is (e.g. torch.tanh or adding a constant)"
            )
            raise UnsupportedModelError(
                f"full-gradient decomposition residual {rel:.3g} (relative) exceeds the {x.dtype} tolerance {tol:g}{hint}; "
                "pass strict=False to get the decomposition with its residual"
            )
    return result


def check_completeness(model: nn.Module, x: Tensor, target: Target, *, rtol: Optional[float] = None) -> CompletenessCheck:
    """Method-independent check: F(x) = x . dF/dx + sum of grad_b F * b, up to round-off.

    Never raises on a violation: the verdict says how large the residual is and why it is
    expected to be non-zero (activations that are not positively homogeneous).
    """
    tol = rtol_for(x.dtype) if rtol is None else rtol
    fg = full_gradients(model, x, target, strict=False)
    rel = float(fg.relative_residual.max())
    holds = rel <= tol
    worst = int(fg.relative_residual.argmax())
    note = (
        f"F(x) = {float(fg.output[worst]):.6g}, input term {float(fg.input_term[worst].sum()):.6g}, "
        f"bias terms {float(fg.bias_total[worst]):.6g} over {len(fg.bias_terms)} layer calls, "
        f"residual {float(fg.residual[worst]):.3g}"
    )
    if fg.implicit_bias_layers:
        shown = ", ".join(f"{n!r} ({k})" for n, k in fg.implicit_bias_layers[:3])
        note += (
            f"; expected to be inexact: {shown} are not positively homogeneous, so they add implicit "
            "input-dependent biases the decomposition does not collect (the theorem needs f(c x, c b) = c f(x, b))"
        )
    elif not holds:
        note += "; the network has a non-homogeneous operation not visible as a module"
    return CompletenessCheck(holds, rel, tol, note)


# -- the methods -------------------------------------------------------------------------------
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

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """Not in the ``check --all`` matrix: the same aggregation as fullgrad, which the matrix keeps."""
        return ()

    def maps(self, model: nn.Module, x: Tensor, target: Tensor) -> tuple[Tensor, list]:
        fg = self._decompose(model, x, target)
        return fg.input_term, [t.term for t in _spatial_terms(fg.bias_gradients, x)]


@register
class SmoothFullGrad(FullGrad):
    """FullGrad with the signed input and bias maps averaged over noisy inputs before psi."""

    name = "smooth-fullgrad"
    description = "smooth FullGrad: FullGrad maps averaged over Gaussian-perturbed inputs, repeated over channels"

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """Not in the ``check --all`` matrix: fullgrad averaged over noise; the matrix keeps fullgrad."""
        return ()

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
