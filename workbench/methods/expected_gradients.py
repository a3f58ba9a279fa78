"""Expected gradients (Erion et al. 2021; Sturmfels et al., Distill 2020): IG averaged over baselines.

EG(x) = 1/K sum_k IG(x; x'_k), x'_k drawn from a baseline distribution, so
sum_i EG_i = F(x) - 1/K sum_k F(x'_k). Each IG is a deterministic path integral (not the
one-random-point-per-sample estimator), so the sum holds to the IG's tolerance.
Given an explicit ``baseline`` tensor, the distribution is the point mass at it (EG = IG).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn

from workbench.paths import baselines as baselines_mod
from workbench.core.errors import InputError
from workbench.methods.base import Method
from workbench.methods.integrated_gradients import IntegratedGradients
from workbench.methods.registry import register


@register
class ExpectedGradients(Method):
    """IG averaged over `samples` baselines drawn from a named distribution."""

    name = "expected-gradients"
    description = "Integrated Gradients averaged over a baseline distribution"
    uses_baseline = True

    def __init__(
        self,
        *,
        distribution: str = "uniform",
        samples: int = 8,
        seed: int = 0,
        integrator: Union[IntegratedGradients, None] = None,
    ) -> None:
        super().__init__(distribution=distribution, samples=samples, seed=seed, integrator=integrator)
        if samples < 1:
            raise InputError(f"samples must be >= 1, got {samples}")
        self.distribution = baselines_mod.baseline(distribution)
        self.samples, self.seed = samples, seed
        self.integrator = integrator or IntegratedGradients()

    @property
    def claims(self) -> dict[str, Optional[float]]:
        return self.integrator.claims

    def references(self, x: Tensor) -> Tensor:
        """The K baselines per sample, shape (K, N, ...), from the seeded distribution.

        Each sample's draws restart the generator, so they do not depend on the rest of the batch.
        """
        per_sample = []
        host = x.detach().cpu()  # one copy: the seeded CPU generator draws the same on every device
        for i in range(x.shape[0]):
            g = torch.Generator().manual_seed(self.seed)
            xi = host[i : i + 1]
            per_sample.append(torch.cat([self.distribution(xi, generator=g) for _ in range(self.samples)]))
        return torch.stack(per_sample, 1).to(x.device)

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        if baseline is not None:
            return self.integrator._attribute(model, x, target, baseline)
        refs = self.references(x)
        k, n = refs.shape[0], x.shape[0]
        xs = x.unsqueeze(0).expand_as(refs).reshape(k * n, *x.shape[1:])
        a = self.integrator._attribute(model, xs, target.repeat(k), refs.reshape(k * n, *x.shape[1:]))
        return a.reshape(k, *x.shape).mean(0)
