"""The default small model: a CNN the bench trains on scikit-learn's 8x8 digits.

Trained in a few seconds on a CPU on first use and cached under ``$WORKBENCH_CACHE`` (default
``~/.cache/workbench``) in a file named by a hash of its training configuration, so every
explain call, experiment and test shares one set of weights. ``load_digits`` returns the data
(grey levels in [0, 1]); the 80/20 split is ``DigitsConfig.split``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class DigitsConfig:
    """Everything that determines the trained weights; its hash names the cache file."""

    channels: tuple = (16, 32)
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    train_fraction: float = 0.8

    def key(self) -> str:
        text = json.dumps({**asdict(self), "arch": digits_cnn_description(), "trainer": "workbench.data.training v1"}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def digits_cnn_description() -> str:
    return "conv3(c0)-bn-relu-conv3(c1)-bn-relu-maxpool2-flatten-linear(10) on 1x8x8 grey in [0, 1]"


def digits_cnn(cfg: DigitsConfig = DigitsConfig()) -> nn.Sequential:
    c0, c1 = cfg.channels
    return nn.Sequential(
        nn.Conv2d(1, c0, 3, padding=1), nn.BatchNorm2d(c0), nn.ReLU(),
        nn.Conv2d(c0, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c1 * 16, 10),
    )


def cache_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "workbench"))


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images (1797, 8, 8) in [0, 1] (float32) and labels (int64)."""
    from sklearn import datasets

    d = datasets.load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def digits_split(cfg: DigitsConfig = DigitsConfig()) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test, y_test, test_indices): the seeded split the CNN is trained on;
    images (N, 1, 8, 8) float32, labels long, test_indices into ``load_digits()``."""
    images, labels = load_digits()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.seed))
    n_train = int(cfg.train_fraction * len(labels))
    x = torch.from_numpy(images).unsqueeze(1)[perm]
    y = torch.from_numpy(labels)[perm]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], perm[n_train:]


def train_digits(cfg: DigitsConfig = DigitsConfig(), *, verbose: bool = False) -> tuple[nn.Module, dict]:
    """Train the digits CNN (or load it from the cache); returns (model in eval mode, info)."""
    path = cache_dir() / f"digits-cnn-{cfg.key()}.pt"
    model = digits_cnn(cfg)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state"])
        return model.eval(), {**saved["info"], "cached": str(path)}
    from workbench.data.training import TrainingConfig, accuracy, train_classifier

    x_train, y_train, x_test, y_test, _ = digits_split(cfg)
    torch.manual_seed(cfg.seed)  # initialization
    model = digits_cnn(cfg)
    start = time.monotonic()
    train_classifier(model, x_train, y_train, TrainingConfig(cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed))
    acc = accuracy(model, x_test, y_test)
    info = {"test_accuracy": acc, "train_seconds": time.monotonic() - start, "config": asdict(cfg)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # parallel test workers may train at once
    torch.save({"state": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    if verbose:
        print(f"trained digits CNN: test accuracy {acc:.3f} in {info['train_seconds']:.1f}s -> {path}")
    return model, {**info, "cached": str(path)}
