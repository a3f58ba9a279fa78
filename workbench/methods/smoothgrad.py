"""SmoothGrad (Smilkov et al. 2017), wrapping any method.

A(x) = 1/n sum_k base(x + eps_k), eps_k ~ N(0, sigma^2), sigma = noise_level * (max x - min x)
per sample. The noise directions eps_k / sigma come from a seeded generator and are shared by
every sample, so a sample's map does not depend on the batch it is in, and two calls agree.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.methods.base import Method
from workbench.methods.registry import method as build_method
from workbench.methods.registry import register

#: axioms that survive averaging over input noise (when the base method has them)
_KEPT = ("dummy", "implementation-invariance", "linearity")


@register
class SmoothGrad(Method):
    """Average of a base method over Gaussian-perturbed copies of the input."""

    name = "smoothgrad"
    description = "SmoothGrad: base method averaged over noisy inputs"

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """SmoothGrad of the gradient (default) and of Integrated Gradients."""
        return ({}, {"base": "integrated-gradients"})

    def __init__(
        self,
        *,
        base: Union[str, Method] = "gradient",
        samples: int = 16,
        noise_level: float = 0.15,
        seed: int = 0,
    ) -> None:
        super().__init__(base=base, samples=samples, noise_level=noise_level, seed=seed)
        self.base = build_method(base) if isinstance(base, str) else base
        if not isinstance(self.base, Method):
            raise InputError(f"smoothgrad base must be a method name or Method, got {base!r}")
        if samples < 1:
            raise InputError(f"samples must be >= 1, got {samples}")
        if noise_level < 0:
            raise InputError(f"noise_level must be >= 0, got {noise_level}")
        self.samples, self.noise_level, self.seed = samples, noise_level, seed
        self.freeze_parameters = self.base.freeze_parameters

    @property
    def uses_baseline(self) -> bool:  # type: ignore[override]
        return self.base.uses_baseline

    @property
    def claims(self) -> dict[str, Optional[float]]:
        return {k: v for k, v in self.base.claims.items() if k in _KEPT}

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        n, k = x.shape[0], self.samples
        g = torch.Generator().manual_seed(self.seed)
        flat = x.reshape(n, -1)
        sigma = self.noise_level * (flat.max(1).values - flat.min(1).values)
        noise = torch.randn((k, 1, *x.shape[1:]), generator=g, dtype=x.dtype).to(x.device)
        noisy = (x.unsqueeze(0) + noise * sigma.view(1, n, *([1] * (x.dim() - 1)))).reshape(k * n, *x.shape[1:])
        b = None if baseline is None else baseline.repeat(k, *([1] * (x.dim() - 1)))
        a = self.base._attribute(model, noisy, target.repeat(k), b)
        return a.reshape(k, *x.shape).mean(0)
