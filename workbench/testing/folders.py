"""Tiny ImageNet-style inputs for tests of the scale paths: an ImageFolder of random pictures and
a random-weight torchvision checkpoint with randomized biases and BatchNorm statistics (a fresh
torchvision model has zero biases and identity BatchNorm, which hides errors). No downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torchvision
from PIL import Image

from workbench.nets.randomize import randomize_affine


def image_folder(root: Union[str, Path], *, classes: Sequence[str] = ("cat", "dog"), per_class: int = 2, size: int = 20, seed: int = 0) -> Path:
    """`root`/class/i.png: `per_class` random RGB pictures of size x size per class; returns `root`."""
    root, rng = Path(root), np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def random_checkpoint(path: Union[str, Path], *, arch: str = "resnet18", num_classes: int = 5, seed: int = 0, scale: float = 0.3) -> Path:
    """A state dict of torchvision's `arch` with seeded random weights (torchvision initialises from
    the global RNG, forked here) and randomized biases and BatchNorm statistics, saved to `path`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(torchvision.models, arch)(num_classes=num_classes)
    randomize_affine(model, torch.Generator().manual_seed(seed), scale=scale)
    torch.save(model.state_dict(), path)
    return Path(path)
