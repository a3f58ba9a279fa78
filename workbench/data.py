"""Images and models for experiments: the same names at CPU scale and at ImageNet scale.

Image sources (``image_source(name, ...)``):

* ``digits``: scikit-learn's 8x8 digits, the held-out part of the split the digits CNN was not
  trained on, as (1, 8, 8) grey levels in [0, 1] with their labels;
* ``skimage``: scikit-image's sample photographs, resized to ``size`` and ImageNet-normalized,
  with no label (experiments then explain the model's top class);
* a directory path: a torchvision ``ImageFolder`` (class folders of images), resized to
  ``size * 8 / 7``, centre-cropped to ``size`` and ImageNet-normalized -- the ImageNet protocol.

Models (``load_model(name, weights=None)``): ``digits-cnn`` (trained on first use, then cached),
or any torchvision classification architecture, with the user's checkpoint (random weights
without one, reported by ``LoadedModel.random_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .errors import InputError, ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: scikit-image samples that are natural photographs (grey ones are repeated to 3 channels)
SKIMAGE_PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "immunohistochemistry", "motorcycle_left", "coins", "moon")


@dataclass(frozen=True)
class LabeledImage:
    """One image, (C, H, W) float32, with its label (None when the source has none)."""

    key: str
    image: Tensor
    label: Optional[int]


class ImageSource:
    """An indexable set of images with stable string keys."""

    def __init__(self, name: str, keys: Sequence[str], loader, channels: int, size: int, value_range: tuple[float, float]) -> None:
        self.name = name
        self._keys = list(keys)
        self._loader = loader
        self.channels = channels
        self.size = size
        #: the range of valid (normalized) pixel values, for baselines and perturbations
        self.value_range = value_range

    def keys(self) -> list[str]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, key: str) -> LabeledImage:
        if key not in self._keys:
            raise InputError(f"{self.name} has no image {key!r}")
        image, label = self._loader(key)
        return LabeledImage(key, image, label)


def _normalize(img: np.ndarray) -> np.ndarray:
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    return (img - mean) / std


def _imagenet_range() -> tuple[float, float]:
    lo = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    hi = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    return float(lo), float(hi)


def _digits_source(count: Optional[int]) -> ImageSource:
    from .digits import digits_split, load_digits

    images, labels = load_digits()
    keys = [f"digit-{int(i)}" for i in digits_split()[4]][: count or None]

    def load(key: str):
        i = int(key.split("-")[1])
        return torch.from_numpy(images[i]).float().unsqueeze(0), int(labels[i])

    return ImageSource("digits", keys, load, 1, 8, (0.0, 1.0))


def _skimage_source(count: Optional[int], size: int) -> ImageSource:
    import skimage.data
    from skimage.transform import resize

    names = [n for n in SKIMAGE_PHOTOGRAPHS if callable(getattr(skimage.data, n, None))][: count or None]

    def load(key: str):
        arr = np.asarray(getattr(skimage.data, key)(), dtype=np.float64)
        arr = arr / 255.0 if arr.max() > 1.0 else arr
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, 2)
        arr = resize(arr[..., :3], (size, size, 3), anti_aliasing=True)
        return torch.tensor(_normalize(arr).transpose(2, 0, 1), dtype=torch.float32), None

    return ImageSource("skimage", names, load, 3, size, _imagenet_range())


def _folder_source(path: Path, count: Optional[int], size: int, seed: int) -> ImageSource:
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.Resize(int(round(size * 8 / 7))),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    try:
        folder = datasets.ImageFolder(str(path), transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise InputError(f"{path} is not an ImageFolder directory (class folders of images): {e}") from None
    order = list(range(len(folder)))
    if count is not None and count < len(order):
        # a fixed random subset, the same for every method and every run with this seed
        order = sorted(torch.randperm(len(order), generator=torch.Generator().manual_seed(seed))[:count].tolist())
    root = Path(folder.root)
    keys = [str(Path(folder.samples[i][0]).relative_to(root)) for i in order]
    index = {k: i for k, i in zip(keys, order)}

    def load(key: str):
        img, label = folder[index[key]]
        return img.float(), int(label)

    return ImageSource(str(path), keys, load, 3, size, _imagenet_range())


def image_source(name: str, *, count: Optional[int] = None, size: int = 224, seed: int = 0) -> ImageSource:
    """``digits``, ``skimage`` or an ImageFolder directory; the first `count` images (all if None)."""
    if count is not None and count < 1:
        raise InputError(f"count must be positive, got {count}")
    if name == "digits":
        return _digits_source(count)
    if name == "skimage":
        return _skimage_source(count, size)
    path = Path(name)
    if path.is_dir():
        return _folder_source(path, count, size, seed)
    raise InputError(f"unknown image source {name!r}: use 'digits', 'skimage' or an ImageFolder directory")


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode, what it was built from, and whether its weights are random."""

    model: nn.Module
    name: str
    random_weights: bool
    info: dict


def torchvision_model(arch: str, weights: Optional[str] = None) -> tuple[nn.Module, bool]:
    """A torchvision architecture in eval mode with the user's checkpoint; (model, random_weights).

    The checkpoint is a state dict (optionally under ``"state_dict"``, with a ``module.`` prefix
    from DataParallel) or a pickled module. A classifier head of another width (a fine-tuned
    model) sets ``num_classes``. Without a checkpoint the weights are random.
    """
    import torchvision

    try:
        model = torchvision.models.get_model(arch, weights=None)
    except ValueError:
        raise InputError(f"unknown torchvision architecture {arch!r}") from None
    if weights is None:
        return model.eval(), True
    p = Path(weights)
    if not p.is_file():
        raise InputError(f"weights file {weights!r} does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        raise InputError(f"cannot read checkpoint {weights!r}: {e}") from None
    if isinstance(obj, nn.Module):
        return obj.eval(), False
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise InputError(f"{weights} holds neither a state dict nor a module")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    head = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1:]
    if head:
        key = f"{head[0][0]}.weight"
        if key in state and state[key].shape[0] != head[0][1].out_features:
            model = torchvision.models.get_model(arch, weights=None, num_classes=int(state[key].shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{weights} does not fit {arch}: {str(e)[:300]}") from None
    return model.eval(), False


def load_model(name: str, *, weights: Optional[str] = None, device: torch.device | str = "cpu") -> LoadedModel:
    """``digits-cnn`` (trained and cached on first use) or a torchvision architecture (+ checkpoint)."""
    from .digits import train_digits

    if name == "digits-cnn":
        if weights is not None:
            raise InputError("digits-cnn is trained by the bench; --weights applies to torchvision architectures")
        model, info = train_digits()
        return LoadedModel(model.to(device).eval(), name, False, info)
    model, random_weights = torchvision_model(name, weights)
    return LoadedModel(model.to(device).eval(), name, random_weights, {"weights": weights})


@dataclass(frozen=True)
class LabeledSplit:
    """A training and a test set as in-memory tensors, (N, C, H, W) float32 and (N,) long labels."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: int


def _stack(source: ImageSource) -> tuple[Tensor, Tensor]:
    items = [source[k] for k in source.keys()]
    if any(i.label is None for i in items):
        raise InputError(f"{source.name} has unlabeled images; a labeled data set is needed here")
    return torch.stack([i.image for i in items]), torch.tensor([i.label for i in items], dtype=torch.long)


def labeled_split(name: str, *, size: int = 224) -> LabeledSplit:
    """``digits`` (the digits CNN's own 80/20 split) or a directory holding ``train/`` and ``val/``
    (or ``test/``) ImageFolders (e.g. CIFAR-100 exported as PNGs), loaded into memory."""
    if name == "digits":
        from .digits import digits_split

        x_train, y_train, x_test, y_test, _ = digits_split()
        return LabeledSplit(x_train, y_train, x_test, y_test, 10)
    root = Path(name)
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise InputError(f"{name}: expected 'digits' or a directory with train/ and val/ (or test/) ImageFolders")
    train, test = _folder_source(root / "train", None, size, 0), _folder_source(test_dir, None, size, 0)
    x_train, y_train = _stack(train)
    x_test, y_test = _stack(test)
    return LabeledSplit(x_train, y_train, x_test, y_test, int(max(y_train.max(), y_test.max())) + 1)


def fresh_model(name: str, classes: int) -> nn.Module:
    """An untrained ``digits-cnn`` or torchvision architecture with `classes` outputs (for retraining)."""
    if name == "digits-cnn":
        from .digits import digits_cnn

        if classes != 10:
            raise InputError(f"digits-cnn has 10 classes, the data set {classes}")
        return digits_cnn()
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, num_classes=classes)
    except ValueError:
        raise InputError(f"unknown architecture {name!r}: use digits-cnn or a torchvision classification model") from None
