"""Fixtures for experiment smoke runs: a tiny ImageFolder and a random-weight checkpoint."""

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.nets.randomize import randomize_affine


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """Two class folders of three 40x48 RGB PNGs each (smooth random blobs, not noise)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48]
    for c, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir()
        for i in range(3):
            cy, cx = rng.uniform(8, 32), rng.uniform(8, 40)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)
            img = np.stack([blob * (0.3 + 0.7 * c), blob * rng.uniform(0.2, 1), 1 - blob], 2)
            Image.fromarray((255 * img).astype(np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def resnet18_checkpoint(tmp_path_factory) -> Path:
    """A resnet18 state dict with random weights, random biases and BatchNorm statistics."""
    import torchvision

    torch.manual_seed(0)
    model = randomize_affine(torchvision.models.resnet18(weights=None, num_classes=2))
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pt"
    torch.save(model.state_dict(), path)
    return path
