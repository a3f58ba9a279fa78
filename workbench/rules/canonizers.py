"""Canonizers: temporary, function-preserving rewrites that make a model fit the rules.

- ``MergeBatchNorm``: an eval-mode BatchNorm right after a Linear/Conv is folded into it
  (W' = W gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta) and replaced by
  ``nn.Identity`` for the duration. Pairs are found in ``nn.Sequential`` containers (adjacent
  children) and by the torchvision naming ``convK`` / ``bnK`` among a module's children. The
  model's own tensors are never written: new Parameter objects are swapped in and the originals
  swapped back on ``remove`` (so ``modelguard`` sees the model untouched).
- ``ResidualSum``: the residual addition of the fixture ``ResidualBlock`` and of torchvision's
  ``BasicBlock`` / ``Bottleneck`` is routed through a ``Sum`` module (over a stacked last axis), so
  a rule can split relevance between the skip and the body explicitly instead of the gradient
  copying it to both. Done by an *instance* ``forward`` (removed again on ``remove``), never by
  patching a class or torch.

Every canonizer has ``apply(model) -> [(name, module), ...]`` (extra modules the composite may
put rules on) and ``remove()``; ``Composite.context`` calls ``remove`` in ``finally``.
"""

from __future__ import annotations

import re
import types
from typing import Any, Optional

import torch
from torch import Tensor, nn

AFFINE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold(affine: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Weight and bias of affine followed by bn (eval mode), as new tensors."""
    with torch.no_grad():
        var = bn.running_var if bn.running_var is not None else torch.ones(bn.num_features, dtype=affine.weight.dtype, device=affine.weight.device)
        mean = bn.running_mean if bn.running_mean is not None else torch.zeros_like(var)
        gamma = bn.weight if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + bn.eps)
        w = affine.weight * scale.view(-1, *([1] * (affine.weight.dim() - 1)))
        b = affine.bias if affine.bias is not None else torch.zeros_like(var)
        return w.detach().clone(), ((b - mean) * scale + beta).detach().clone()


class MergeBatchNorm:
    """Fold each BatchNorm into the Linear/Conv before it, for the duration of a context."""

    def __init__(self) -> None:
        self._undo: list = []

    @staticmethod
    def pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module, str, nn.Module]]:
        """(affine, bn, bn's child name, parent) for every foldable pair."""
        out = []
        for parent in model.modules():
            children = list(parent._modules.items())
            if isinstance(parent, nn.Sequential):
                for (_, a), (bn_name, bn) in zip(children, children[1:]):
                    if isinstance(a, AFFINE_TYPES) and isinstance(bn, BN_TYPES):
                        out.append((a, bn, bn_name, parent))
            else:
                named = dict(children)
                for name, bn in children:
                    m = re.fullmatch(r"bn(\d*)", name)
                    a = named.get(f"conv{m.group(1)}") if m else None
                    if isinstance(bn, BN_TYPES) and isinstance(a, AFFINE_TYPES):
                        out.append((a, bn, name, parent))
        return [p for p in out if p[0].weight.shape[0] == p[1].num_features and not p[1].training]

    def apply(self, model: nn.Module) -> list:
        for affine, bn, bn_name, parent in self.pairs(model):
            w, b = fold(affine, bn)
            old_w, old_b = affine._parameters["weight"], affine._parameters.get("bias")
            self._undo.append((affine, old_w, old_b, parent, bn_name, bn))
            affine._parameters["weight"] = nn.Parameter(w, requires_grad=False)
            affine._parameters["bias"] = nn.Parameter(b, requires_grad=False)
            parent._modules[bn_name] = nn.Identity()
        return []

    def remove(self) -> None:
        while self._undo:
            affine, old_w, old_b, parent, bn_name, bn = self._undo.pop()
            parent._modules[bn_name] = bn
            affine._parameters["weight"] = old_w
            affine._parameters["bias"] = old_b


class Sum(nn.Module):
    """Sum over the last axis: the residual addition as a module a rule can attach to."""

    def forward(self, stacked: Tensor) -> Tensor:
        return stacked.sum(-1)


def _spec_residual_forward(self: nn.Module, x: Tensor) -> Tensor:
    return self._wb_sum(torch.stack([x, self.body(x)], dim=-1))


def _basic_forward(self: nn.Module, x: Tensor) -> Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    identity = self.downsample(x) if self.downsample is not None else x
    return self.relu(self._wb_sum(torch.stack([identity, out], dim=-1)))


def _bottleneck_forward(self: nn.Module, x: Tensor) -> Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    identity = self.downsample(x) if self.downsample is not None else x
    return self.relu(self._wb_sum(torch.stack([identity, out], dim=-1)))


def _residual_forward(module: nn.Module) -> Optional[Any]:
    from workbench.nets.spec import ResidualBlock

    if isinstance(module, ResidualBlock):
        return _spec_residual_forward
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:  # pragma: no cover
        return None
    if type(module) is BasicBlock:
        return _basic_forward
    if type(module) is Bottleneck:
        return _bottleneck_forward
    return None


class ResidualSum:
    """Route residual additions through a ``Sum`` module (fixture ResidualBlock, torchvision blocks)."""

    def __init__(self) -> None:
        self._undo: list = []

    def apply(self, model: nn.Module) -> list:
        extra = []
        for name, m in list(model.named_modules()):
            fwd = _residual_forward(m)
            if fwd is None:
                continue
            s = Sum()
            object.__setattr__(m, "_wb_sum", s)  # not registered: the model's module tree is unchanged
            object.__setattr__(m, "forward", types.MethodType(fwd, m))
            self._undo.append(m)
            extra.append((f"{name}.sum" if name else "sum", s))
        return extra

    def remove(self) -> None:
        while self._undo:
            m = self._undo.pop()
            for attr in ("forward", "_wb_sum"):
                if attr in m.__dict__:
                    object.__delattr__(m, attr)
