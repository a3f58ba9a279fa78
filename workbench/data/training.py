"""Training a classifier from in-memory tensors: what remove-and-retrain and the fixtures need.

``train_classifier`` runs Adam on cross-entropy over shuffled mini-batches, seeded, on any
device, and returns the model in eval mode; ``accuracy`` evaluates it in batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError


@dataclass(frozen=True)
class TrainingConfig:
    """Everything besides the data that determines the trained weights."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise InputError(f"epochs and batch_size must be positive and lr > 0, got {self}")


def _check_data(x: Tensor, y: Tensor) -> None:
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise InputError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
    if y.dtype != torch.long:
        raise InputError(f"labels must be torch.long, got {y.dtype}")
    if not torch.isfinite(x).all():
        raise InputError("training inputs contain NaN or inf")


def train_classifier(model: nn.Module, x: Tensor, y: Tensor, config: TrainingConfig = TrainingConfig()) -> nn.Module:
    """Train `model` in place on (x, y) with Adam and cross-entropy; returns it in eval mode.

    Shuffling and initialization noise come from ``config.seed`` only; batches move to the
    model's device one at a time, so x may stay on the CPU.
    """
    _check_data(x, y)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
                continue  # BatchNorm cannot train on a batch of one
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> float:
    """Share of (x, y) the model classifies correctly."""
    _check_data(x, y)
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct / x.shape[0]
