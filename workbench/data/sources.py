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
without one, reported by ``LoadedModel.random_weights``). Checkpoints are read without running
code from them (``read_checkpoint``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.errors import InputError, ModelError, UnsafeCheckpointError

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
    from workbench.data.digits import digits_split, load_digits

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


#: what loading a pickled checkpoint means, in every error and option help that mentions it
PICKLE_WARNING = "unpickling runs any code the file's author put in it"


def read_checkpoint(path: Union[str, Path], *, allow_pickle: bool = False) -> Any:
    """The contents of a checkpoint without running code from it.

    ``*.safetensors`` files are read with ``safetensors`` (a tensor table, no code). Other files go
    through ``torch.load(weights_only=True)``, which unpickles only tensors and plain containers
    and refuses anything else (a whole pickled ``nn.Module``, arbitrary objects) *before* building
    it. ``allow_pickle=True`` lifts that refusal: the file is unpickled in full, which executes
    code the file names -- only for files you made or trust.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights file {str(path)!r} does not exist")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"cannot read safetensors checkpoint {str(path)!r}: {e}") from None
    if allow_pickle:
        try:
            return torch.load(p, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            raise InputError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from None
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = str(e).strip().splitlines()
        why = next((line.strip() for line in lines if "global" in line.lower()), None)
        if why is None:  # not an object the safe unpickler refused: a damaged or foreign file
            raise InputError(f"cannot read checkpoint {str(path)!r}: not a torch.save or .safetensors file ({(lines or [''])[0][:200]})") from None
        raise UnsafeCheckpointError(
            f"refused to load {str(path)!r}: it holds Python objects beyond tensors ({why[:200]}), "
            f"and {PICKLE_WARNING}. Save a state dict instead (torch.save(model.state_dict(), FILE) or "
            "safetensors.torch.save_file), or, only if you trust the file, allow pickled checkpoints "
            "(--trust-pickle on the command line, --set trust_pickle=True for an image experiment, allow_pickle=True in Python)"
        ) from None
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file is the user's input error
        raise InputError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {str(e)[:300]}") from None


def torchvision_model(arch: str, weights: Optional[str] = None, *, allow_pickle: bool = False) -> tuple[nn.Module, bool]:
    """A torchvision architecture in eval mode with the user's checkpoint; (model, random_weights).

    The checkpoint (``read_checkpoint``) is a state dict (optionally under ``"state_dict"``, with a
    ``module.`` prefix from DataParallel) in a ``torch.save`` or ``.safetensors`` file; a pickled
    whole module only with ``allow_pickle=True`` (it executes code from the file). A classifier
    head of another width (a fine-tuned model) sets ``num_classes``. Without a checkpoint the
    weights are random.
    """
    import torchvision

    try:
        model = torchvision.models.get_model(arch, weights=None)
    except ValueError:
        raise InputError(f"unknown torchvision architecture {arch!r}") from None
    if weights is None:
        return model.eval(), True
    obj = read_checkpoint(weights, allow_pickle=allow_pickle)
    if isinstance(obj, nn.Module):
        return obj.eval(), False
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"{weights} holds no state dict (a mapping of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    head = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1:]
    if head:
        key = f"{head[0][0]}.weight"
        if key in state and state[key].dim() == 2 and state[key].shape[0] != head[0][1].out_features:
            model = torchvision.models.get_model(arch, weights=None, num_classes=int(state[key].shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{weights} does not fit {arch}: {str(e)[:300]}") from None
    return model.eval(), False


def load_model(name: str, *, weights: Optional[str] = None, device: torch.device | str = "cpu", allow_pickle: bool = False) -> LoadedModel:
    """``digits-cnn`` (trained and cached on first use) or a torchvision architecture (+ checkpoint;
    ``allow_pickle=True`` also loads a pickled module, which executes code from the file)."""
    from workbench.data.digits import train_digits

    if name == "digits-cnn":
        if weights is not None:
            raise InputError("digits-cnn is trained by the bench; --weights applies to torchvision architectures")
        model, info = train_digits()
        return LoadedModel(model.to(device).eval(), name, False, info)
    model, random_weights = torchvision_model(name, weights, allow_pickle=allow_pickle)
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
        from workbench.data.digits import digits_split

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
        from workbench.data.digits import digits_cnn

        if classes != 10:
            raise InputError(f"digits-cnn has 10 classes, the data set {classes}")
        return digits_cnn()
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, num_classes=classes)
    except ValueError:
        raise InputError(f"unknown architecture {name!r}: use digits-cnn or a torchvision classification model") from None


def natural_image(size: int = 32, *, name: str = "chelsea", dtype: torch.dtype = torch.float64) -> Tensor:
    """A scikit-image sample photograph resized to size x size, standardized per channel, (1, 3, s, s)."""
    import skimage.data
    from skimage import transform

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise InputError(f"scikit-image has no sample image {name!r}")
    im = np.asarray(loader(), dtype=np.float64)
    if im.ndim == 2:
        im = np.stack([im] * 3, 2)
    im = transform.resize(im[..., :3], (size, size), anti_aliasing=True)
    t = torch.tensor(im, dtype=dtype).permute(2, 0, 1).unsqueeze(0)
    return (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), keepdim=True).clamp(min=1e-12)
