"""The fixed network under check: a torchvision architecture, the user's checkpoint (named by its
sha256, never copied), and real images from an ImageFolder directory.

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file from someone else never
runs code. A state dict (optionally under ``"state_dict"``, with DataParallel's ``module.``
prefix) is expected; a head of another width than 1000 sets ``num_classes``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError, ModelError
from workbench.check.network import sites as S


def sha256_file(path: Union[str, Path]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(arch: str, weights: Union[str, Path]) -> nn.Module:
    """`arch` (a torchvision classification architecture) with the state dict in `weights`, eval mode."""
    import torchvision

    p = Path(weights)
    if not p.is_file():
        raise InputError(f"weights file {str(weights)!r} does not exist")
    from workbench.data.sources import read_checkpoint

    obj = read_checkpoint(p)  # tensors only (torch.load weights_only=True, or .safetensors): runs no code
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise InputError(f"{weights} does not hold a state dict of tensors; save model.state_dict()")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # built on the meta device and given the checkpoint's tensors (assign=True): no random
    # initialisation and no second copy of the weights (vgg16: 0.5 GB less at peak)
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(arch, weights=None)
    except ValueError:
        raise InputError(f"unknown torchvision architecture {arch!r}") from None
    heads = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1:]
    for name, lin in heads:
        w = state.get(f"{name}.weight")
        if w is not None and w.dim() == 2 and w.shape[0] != lin.out_features:
            with torch.device("meta"):
                model = torchvision.models.get_model(arch, weights=None, num_classes=int(w.shape[0]))
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as e:
        raise ModelError(f"{weights} does not fit {arch}: {str(e)[:300]}") from None
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise ModelError(f"{weights} leaves {', '.join(left[:5])} of {arch} without values")
    return model.eval()


@dataclass
class Network:
    """A model in eval mode and dtype, the images it is checked on, and how to name both.

    ``images``: (N, C, H, W) on the model's device; ``keys`` name them in ``source``.
    """

    model: nn.Module
    images: Tensor
    arch: str = "model"
    weights_sha256: Optional[str] = None
    source: Optional[str] = None
    keys: list = field(default_factory=list)
    size: Optional[int] = None
    image_sha256: list = field(default_factory=list)
    _graph: Optional[S.Graph] = None
    _parent: Optional["Network"] = None  # the network an ``image()`` view was cut from (shares its traced graph)

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ModelError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        if not isinstance(self.images, Tensor) or self.images.dim() != 4 or self.images.shape[0] < 1:
            raise InputError("images must be a non-empty (N, C, H, W) tensor")
        p = next(self.model.parameters(), None)
        if p is not None and (p.dtype != self.images.dtype or p.device != self.images.device):
            raise InputError(f"images ({self.images.dtype}, {self.images.device}) and model ({p.dtype}, {p.device}) differ; convert one")
        if not self.keys:
            self.keys = [f"image-{i}" for i in range(self.images.shape[0])]

    @property
    def graph(self) -> S.Graph:
        if self._graph is None:
            self._graph = self._parent.graph if self._parent is not None else S.trace(self.model)
        return self._graph

    def image(self, i: int) -> "Network":
        """The same network with its image `i` only (a view: the model and traced graph are shared)."""
        if not 0 <= i < self.images.shape[0]:
            raise InputError(f"image {i} is outside the {self.images.shape[0]} images of the network check")
        return Network(self.model, self.images[i : i + 1], self.arch, self.weights_sha256, self.source, [self.keys[i]], self.size,
                       self.image_sha256[i : i + 1], self._graph, self)

    def record(self) -> dict:
        """How a replay file names the network: architecture and checkpoint hash, no weights."""
        return {"arch": self.arch, "weights_sha256": self.weights_sha256, "source": self.source, "size": self.size}


def load_network(
    arch: str,
    weights: Optional[Union[str, Path]],
    source: Union[str, Path],
    *,
    images: int = 4,
    size: int = 224,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> Network:
    """`arch` with the checkpoint `weights` (None: refused, a random network is no user's network)
    and `images` images of the ImageFolder `source` (a fixed random subset for `seed`)."""
    from workbench.data.sources import image_source

    if weights is None:
        raise InputError("--weights is needed: the network check runs on your trained checkpoint")
    model = load_checkpoint(arch, weights).to(device=device, dtype=dtype)
    if not Path(source).is_dir():
        raise InputError(f"--source must be an ImageFolder directory, got {str(source)!r}")
    src = image_source(str(source), count=images, size=size, seed=seed)
    keys = src.keys()
    x = torch.stack([src[k].image for k in keys]).to(device=device, dtype=dtype)
    root = Path(source)
    return Network(model, x, arch, sha256_file(weights), str(source), keys, size, [sha256_file(root / k) for k in keys])
