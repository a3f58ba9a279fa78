"""The full-gradient decomposition (Srinivas & Fleuret, NeurIPS 2019).

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
in ``finally`` (through ``workbench.modelguard.preserved``).

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
  (``workbench.coverage``), so one hidden in a ``forward`` (``F.gelu``, a custom autograd
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
from torch import Tensor, nn

from . import coverage as cov
from .autograd import target_outputs
from .errors import UnsupportedModelError
from .modelguard import preserved
from .tolerance import rtol_for
from .validation import Target, check_input, check_model, resolve_target

__all__ = [
    "BiasTerm",
    "FullGradients",
    "CompletenessCheck",
    "full_gradients",
    "check_completeness",
    "inspect_model",
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
#: what the decomposition models exactly (``workbench.coverage``): the nonlinear modules above,
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
