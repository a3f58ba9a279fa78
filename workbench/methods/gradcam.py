"""Grad-CAM (Selvaraju et al., ICCV 2017), the comparison baseline of the FullGrad paper.

For the activations A (N, K, h, w) of one convolutional layer: alpha_k = mean over positions of
dF/dA_k, cam = ReLU(sum_k alpha_k A_k), upsampled bilinearly to the input size.

``layer`` names the module whose output is used (``dict(model.named_modules())`` names); by
default the last ``nn.Conv2d`` the forward pass runs (its output, before any BatchNorm or ReLU
that follows). A module called several times contributes its last call. A forward hook replaces
the layer output by a copy of a fresh leaf tensor, and the gradient is taken w.r.t. that leaf, so
an in-place ReLU after the layer changes nothing. The single-channel map is repeated over the input channels to
keep the Method contract (a tensor of x's shape). Needs image inputs (N, C, H, W).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.autograd import target_outputs
from workbench.core.errors import InputError, UnsupportedModelError
from workbench.methods.base import Method
from workbench.methods.registry import register


class _LastCall:
    def __init__(self, names: dict) -> None:
        self.names = names
        self.name: Optional[str] = None
        self.out: Optional[Tensor] = None
        self.z: Optional[Tensor] = None

    def hook(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            return output
        self.name = self.names[id(module)]
        self.out = output.detach()
        # a fresh leaf: the graph below this layer is cut (only the last hooked call's part is
        # ever differentiated, and no later hooked layer lies on its paths to the output); the
        # copy keeps an in-place ReLU after the layer off both the leaf and self.out
        self.z = self.out.clone().requires_grad_(True)
        return self.z.clone()


@register
class GradCAM(Method):
    """Grad-CAM on one conv layer (default: the last Conv2d run), upsampled, repeated over channels."""

    name = "gradcam"
    description = "Grad-CAM on the last conv layer (or layer=NAME), upsampled, repeated over channels"

    def __init__(self, *, layer: Optional[str] = None, relu: bool = True) -> None:
        super().__init__(layer=layer, relu=relu)
        self.layer, self.relu = layer, relu

    def _modules(self, model: nn.Module) -> list:
        if self.layer is None:
            convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise UnsupportedModelError("gradcam needs a Conv2d layer (none found); name a layer with layer=NAME")
            return list(dict.fromkeys(convs))
        mods = dict(model.named_modules())
        if self.layer not in mods:
            known = ", ".join(n for n in list(mods)[1:8] if n)
            raise InputError(f"gradcam: the model has no layer {self.layer!r} (some layers: {known}, ...)")
        return [mods[self.layer]]

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        if x.dim() != 4:
            with torch.no_grad():
                target_outputs(model, x, target)  # a bad target is reported as such first
            raise UnsupportedModelError(f"gradcam needs image inputs (N, C, H, W), got shape {tuple(x.shape)}")
        names = {id(m): n for n, m in model.named_modules()}
        last = _LastCall(names)
        handles = [m.register_forward_hook(last.hook) for m in self._modules(model)]
        try:
            with torch.enable_grad():
                f = target_outputs(model, x.clone(), target)
                if last.z is None:
                    raise UnsupportedModelError(f"gradcam: layer {self.layer!r} was not run by the forward pass")
                (g,) = torch.autograd.grad(f.sum(), last.z, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
        a = last.out
        if a is None or a.dim() != 4:
            raise UnsupportedModelError(f"gradcam needs a layer with (N, K, h, w) output; {last.name!r} gives {None if a is None else tuple(a.shape)}")
        g = torch.zeros_like(a) if g is None else g
        alpha = g.mean((2, 3), keepdim=True)
        cam = (alpha * a).sum(1, keepdim=True)
        if self.relu:
            cam = cam.clamp_min(0)
        if cam.shape[2:] != x.shape[2:]:
            cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
        return cam.expand_as(x).contiguous()
