"""Model randomizers, one module: every way the bench fills a network with random values.

* ``randomize`` -- a fixture network's every parameter and BatchNorm statistic (weights
  N(0, scale^2 / fan_in), BatchNorm gamma and running_var in [0.5, 1.5), running_mean
  N(0, 0.25)): the checker's drawn networks;
* ``randomize_affine`` -- biases and BatchNorm statistics of a (torchvision) model: fresh
  torchvision models have zero biases and BatchNorm (0, 1), positively homogeneous, so
  zero-baseline IG is exact at any step count and every FullGrad bias term vanishes; honest tests
  and benchmarks randomize them;
* ``random_weights``, ``isotropic_network``, ``orthogonal_network`` -- i.i.d. N(0, gain^2 / fan_in)
  or orthogonal equal-norm weights (``orthogonal_weight``): the input-alignment studies (Zheng,
  Sang & Xu, arXiv 2503.11160);
* ``randomized_models`` -- cascading or independent layer randomization of the model-randomization
  sanity check (Adebayo et al., NeurIPS 2018), ``randomize_layer`` one layer.
"""

from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.errors import InputError

#: the affine layers whose weights the alignment randomizers fill
AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def randomize(net: nn.Module, *, generator: Optional[torch.Generator] = None, scale: float = 1.0) -> nn.Module:
    """Fill every parameter and BatchNorm statistic with random values (running_var > 0)."""
    g = generator
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g, dtype=t.dtype))
            elif name.endswith("running_mean"):
                t.copy_(0.5 * torch.randn(t.shape, generator=g, dtype=t.dtype))
            elif name.endswith("weight") and t.dim() == 1:  # BatchNorm gamma
                t.copy_(0.5 + torch.rand(t.shape, generator=g, dtype=t.dtype))
            else:
                fan_in = math.prod(t.shape[1:]) if t.dim() > 1 else 1
                t.copy_(scale * torch.randn(t.shape, generator=g, dtype=t.dtype) / math.sqrt(fan_in))
    return net


def randomize_affine(model: nn.Module, generator: Optional[torch.Generator] = None, *, scale: float = 0.1) -> nn.Module:
    """Random biases (Conv/Linear: scale * N(0, 1)) and BatchNorm statistics and shifts
    (running_mean scale * N(0, 1), running_var in [0.5, 1.5), beta scale * N(0, 1)), in place.

    Fresh torchvision models have zero biases and BatchNorm statistics (0, 1): positively
    homogeneous, so zero-baseline IG is exact at any step count and every bias term vanishes.
    Tests and benchmarks on them would prove little.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(scale * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(scale * torch.randn(m.running_mean.shape, generator=g, dtype=m.running_mean.dtype))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g, dtype=m.running_var.dtype))
                if m.bias is not None:
                    m.bias.copy_(scale * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))
    return model


WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
MODES = ("cascading", "independent")
SCALES = ("matched", "fan-in")


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the Linear/Conv leaf modules, in module (forward) order."""
    return [n for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS) and not any(True for _ in m.children())]


def randomize_layer(module: nn.Module, generator: torch.Generator, *, scale: str = "matched") -> None:
    """Re-draw `module`'s weight in place: Gaussian with its own std (``matched``) or 1/sqrt(fan_in)."""
    if scale not in SCALES:
        raise InputError(f"unknown randomization scale {scale!r}; valid: {', '.join(SCALES)}")
    with torch.no_grad():
        w = module.weight
        std = float(w.std()) if scale == "matched" and w.numel() > 1 else 1.0 / math.sqrt(math.prod(w.shape[1:]))
        w.copy_(torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device) * std)


def randomized_models(model: nn.Module, mode: str, *, seed: int = 0, scale: str = "matched", layers: Optional[Sequence[str]] = None) -> list[tuple[str, nn.Module]]:
    """(layer name, randomized copy) for each step, top layer first; the model itself is untouched."""
    if mode not in MODES:
        raise InputError(f"unknown randomization mode {mode!r}; valid: {', '.join(MODES)}")
    names = list(layers) if layers is not None else weight_layers(model)
    known = set(weight_layers(model))
    bad = [n for n in names if n not in known]
    if bad:
        raise InputError(f"not Linear/Conv layers of the model: {bad}; layers: {sorted(known)}")
    if not names:
        raise InputError("the model has no Linear/Conv layer to randomize")
    order = sorted(names, key=list(weight_layers(model)).index, reverse=True)
    g = torch.Generator().manual_seed(seed)
    out = []
    current = copy.deepcopy(model)
    for name in order:
        net = current if mode == "cascading" else copy.deepcopy(model)
        randomize_layer(dict(net.named_modules())[name], g, scale=scale)
        out.append((name, copy.deepcopy(net) if mode == "cascading" else net))
    return out


def orthogonal_weight(shape: Sequence[int], generator: torch.Generator, *, gain: float = 1.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """A weight of `shape` (out, *fan_in_dims) whose flattened rows are orthogonal with equal norm
    `gain`: W W^T = gain^2 I (Haar-random, sign-corrected QR). An expanding layer (out > fan_in)
    cannot have orthogonal rows: it gets orthogonal columns, W^T W = gain^2 (out / fan_in) I, so the
    mean squared row norm is still gain^2."""
    out, fan_in = int(shape[0]), int(math.prod(shape[1:]))
    m = torch.randn(max(out, fan_in), min(out, fan_in), generator=generator, dtype=dtype)
    qn, rn = np.linalg.qr(m.numpy())  # numpy: torch's multi-threaded CPU QR is slow on small matrices here
    q = torch.from_numpy(qn * np.sign(np.diagonal(rn))[None, :]).to(dtype)  # sign fix: Haar measure
    if out <= fan_in:
        w = gain * q.T  # (out, fan_in), orthonormal rows times gain
    else:
        w = gain * math.sqrt(out / fan_in) * q  # (out, fan_in), orthogonal columns
    return w.reshape(tuple(shape))


def orthogonality_defect(weight: Tensor, gain: float = 1.0) -> float:
    """max |W W^T / gain^2 - I| (rows) or max |W^T W / (gain^2 out / fan_in) - I| (expanding)."""
    w = weight.detach().reshape(weight.shape[0], -1).double()
    out, fan_in = w.shape
    if out <= fan_in:
        gram, scale = w @ w.T, gain**2
    else:
        gram, scale = w.T @ w, gain**2 * out / fan_in
    return float((gram / scale - torch.eye(gram.shape[0], dtype=gram.dtype)).abs().max())


def random_weights(model: nn.Module, seed: int, *, orthogonal: bool = False, gain: float = 1.0, bias: float = 0.0) -> nn.Module:
    """A copy of `model` (any architecture: a fixture net, a torchvision VGG or ResNet) with random
    weights: isotropic N(0, gain^2 / fan_in) or orthogonal equal-norm (``orthogonal_weight``) in every
    Linear/Conv, biases N(0, bias^2), BatchNorm reset to the identity (up to its eps); eval mode."""
    net = copy.deepcopy(model)
    _fill(net, torch.Generator().manual_seed(seed), orthogonal=orthogonal, gain=gain, bias=bias)
    return net.eval()


def _random_network(spec, seed: int, *, orthogonal: bool, gain: float, bias: float, dtype: torch.dtype) -> nn.Module:
    from workbench.nets.spec import build  # spec.build fills fixtures with ``randomize`` from here

    g = torch.Generator().manual_seed(seed)
    net = build(spec, dtype=dtype, generator=g)
    _fill(net, g, orthogonal=orthogonal, gain=gain, bias=bias)
    return net.eval()


def _fill(net: nn.Module, g: torch.Generator, *, orthogonal: bool, gain: float, bias: float) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, AFFINE):
                fan_in = math.prod(m.weight.shape[1:])
                dtype = m.weight.dtype
                if orthogonal:
                    w = orthogonal_weight(m.weight.shape, g, gain=gain, dtype=dtype)
                else:
                    w = torch.randn(m.weight.shape, generator=g, dtype=dtype) * (gain / math.sqrt(fan_in))
                m.weight.copy_(w.to(m.weight.device))
                if m.bias is not None:
                    m.bias.copy_((torch.randn(m.bias.shape, generator=g, dtype=dtype) * bias).to(m.bias.device))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                if m.running_mean is not None:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)


def isotropic_network(spec, seed: int, *, dtype: torch.dtype = torch.float64, gain: float = 1.0, bias: float = 0.0) -> nn.Module:
    """A network of `spec` with i.i.d. N(0, gain^2 / fan_in) weights (rows of norm ~ gain), biases
    N(0, bias^2) (zero by default), BatchNorm as the identity (up to its eps)."""
    return _random_network(spec, seed, orthogonal=False, gain=gain, bias=bias, dtype=dtype)


def orthogonal_network(spec, seed: int, *, dtype: torch.dtype = torch.float64, gain: float = 1.0, bias: float = 0.0) -> nn.Module:
    """A network of `spec` with orthogonal equal-norm weights (``orthogonal_weight``), biases
    N(0, bias^2) (zero by default), BatchNorm as the identity (up to its eps)."""
    return _random_network(spec, seed, orthogonal=True, gain=gain, bias=bias, dtype=dtype)
