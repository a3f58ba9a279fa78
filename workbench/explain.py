"""The picture: a saliency map over the image, beside the input gradient and Grad-CAM.

``explain(image, method="fullgrad", model=None, weights=None, out=None)`` writes a PNG (by default
``explain-IMAGE-METHOD.png``, numbered ``-2``, ``-3``, ... rather than overwriting one that exists),
each map with its colour bar (diverging and centred on 0 for signed maps), the class named where
the source names its classes, and "RANDOM WEIGHTS" stamped on a network without a checkpoint:

* default model: a small CNN trained on scikit-learn's 8x8 digits (a few seconds on a CPU),
  cached under ``$WORKBENCH_CACHE`` (default ``~/.cache/workbench``) in a file named by a hash of
  its training configuration; images are converted to 8x8 grey levels in [0, 1] like the digits;
  IMAGE ``digits:K`` is the K-th digit of the data set;
* ``model="resnet18"`` (any torchvision classification architecture) with ``weights=FILE`` (a state
  dict, ``.safetensors``, or -- with ``allow_pickle=True``, which runs code from the file -- a pickled module): a photograph, resized to ``size`` and ImageNet-normalized; without
  weights the network is random and the figure title says so;
* ``model=`` an ``nn.Module`` (eval mode, image input): used as is; ``size`` and ``channels`` say
  what input it takes.

IMAGE is a file path or ``skimage:NAME`` (a scikit-image sample such as ``skimage:astronaut``).

For mask-optimization methods (``igos``, in any configuration) a second PNG, ``<out stem>-curves.png``,
shows the deletion and insertion curves (``workbench.metrics``, blurred canvas, class probability)
of the three maps in the picture, with their areas; ``curves=True/False`` forces it on or off.
I-GOS's reference regularizer weights are tuned for 224 px images and 28x28 masks; on images
smaller than 28 px a plain ``igos`` (no options) runs as ``igos[resolution='full',tv=0.5]``
(``SMALL_IMAGE_IGOS``), and the figure names the configuration used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from workbench.data.sources import IMAGENET_MEAN, IMAGENET_STD, torchvision_model
from workbench.data.digits import load_digits, train_digits
from workbench.core.errors import InputError
from workbench.core.validation import check_model

#: methods whose map is an optimized deletion mask: their figure comes with deletion/insertion curves
MASK_METHODS = ("igos",)
#: I-GOS on images smaller than its reference mask resolution (28): full-resolution mask, lighter TV
SMALL_IMAGE_IGOS = "igos[resolution='full',tv=0.5]"



# -- images ------------------------------------------------------------------------------------
def load_image(image: Union[str, Path, np.ndarray]) -> np.ndarray:
    """An image as a float array in [0, 1], (H, W) or (H, W, 3). ``skimage:NAME``, ``digits:K`` or a path."""
    if isinstance(image, np.ndarray):
        arr = image
    else:
        text = str(image)
        if text.startswith("skimage:"):
            import skimage.data

            name = text.split(":", 1)[1]
            fn = getattr(skimage.data, name, None)
            if fn is None or not callable(fn):
                raise InputError(f"scikit-image has no sample image {name!r} (try astronaut, camera, coffee, chelsea)")
            arr = fn()
        elif text.startswith("digits:"):
            images, _ = load_digits()
            k = int(text.split(":", 1)[1])
            if not 0 <= k < len(images):
                raise InputError(f"digits has {len(images)} images; {k} is out of range")
            return images[k]
        else:
            p = Path(text)
            if not p.exists():
                raise InputError(f"image file {text!r} does not exist")
            import matplotlib.image

            arr = matplotlib.image.imread(str(p))
    arr = np.asarray(arr, dtype=np.float64)
    if arr.max() > 1.0:
        arr = arr / 255.0
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    return arr


def _resize(arr: np.ndarray, size: int, channels: int) -> np.ndarray:
    from skimage.transform import resize

    if channels == 1 and arr.ndim == 3:
        arr = arr.mean(2)
    if channels == 3 and arr.ndim == 2:
        arr = np.stack([arr] * 3, 2)
    shape = (size, size) + ((3,) if channels == 3 else ())
    return resize(arr, shape, anti_aliasing=True)


# -- the figure --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Explained:
    """The files ``explain_figures`` wrote: the picture, and the deletion/insertion curves (or None)."""

    picture: Path
    curves: Optional[Path]

    @property
    def paths(self) -> list[Path]:
        return [self.picture] + ([self.curves] if self.curves is not None else [])


def explain(
    image: Union[str, Path, np.ndarray],
    *,
    method: str = "fullgrad",
    model: Union[None, str, nn.Module] = None,
    weights: Optional[str] = None,
    out: Union[None, str, Path] = None,
    target: Optional[int] = None,
    size: int = 224,
    channels: int = 3,
    title: Optional[str] = None,
    curves: Optional[bool] = None,
    allow_pickle: bool = False,
) -> Path:
    """Write a PNG: the image, the `method` map over it, |input gradient| and Grad-CAM; return its path.

    See ``explain_figures`` for the curves PNG written beside it for mask methods.
    """
    return explain_figures(
        image, method=method, model=model, weights=weights, out=out, target=target, size=size,
        channels=channels, title=title, curves=curves, allow_pickle=allow_pickle,
    ).picture


def explain_figures(
    image: Union[str, Path, np.ndarray],
    *,
    method: str = "fullgrad",
    model: Union[None, str, nn.Module] = None,
    weights: Optional[str] = None,
    out: Union[None, str, Path] = None,
    target: Optional[int] = None,
    size: int = 224,
    channels: int = 3,
    title: Optional[str] = None,
    curves: Optional[bool] = None,
    allow_pickle: bool = False,
) -> Explained:
    """The picture of ``explain`` and, for mask methods (or ``curves=True``), ``<stem>-curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.methods import parse_method

    random_weights, label, classes = False, "", None
    arr = load_image(image)
    if model is None:
        net, info = train_digits()
        pic = _resize(arr, 8, 1) if arr.shape[:2] != (8, 8) or arr.ndim == 3 else arr
        x = torch.tensor(pic, dtype=torch.float32).view(1, 1, 8, 8)
        shown = pic
        label = f"digits CNN (test accuracy {info['test_accuracy']:.2f})"
        classes = [f"digit {k}" for k in range(10)]
    elif isinstance(model, str):
        net, random_weights = torchvision_model(model, weights, allow_pickle=allow_pickle)
        pic = _resize(arr, size, 3)
        mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
        x = torch.tensor(((pic - mean) / std).transpose(2, 0, 1), dtype=torch.float32).unsqueeze(0)
        shown = pic
        label = model + ("" if random_weights else f" ({Path(weights).name})")
        classes = imagenet_categories(model)
    elif isinstance(model, nn.Module):
        net = model
        pic = _resize(arr, size, channels)
        shown = pic
        t = torch.tensor(pic if channels == 1 else pic.transpose(2, 0, 1))
        dtype = next((p.dtype for p in net.parameters()), torch.float32)
        x = t.to(dtype).reshape(1, channels, size, size)
        label = title or type(model).__name__
    else:
        raise InputError(f"model must be None, a torchvision architecture name or an nn.Module, got {type(model).__name__}")
    check_model(net)
    with torch.no_grad():
        logits = net(x)
    tgt = int(logits.argmax(1)[0]) if target is None else int(target)
    main = parse_method(method)
    if main.name == "igos" and not main.options and min(x.shape[-2:]) < 28:
        main = parse_method(SMALL_IMAGE_IGOS)
    maps = {}
    for name, m_ in ((main.label, main), ("gradient", parse_method("gradient")), ("gradcam", parse_method("gradcam"))):
        a = m_.attribute(net, x, target=tgt)
        m = a[0].abs().sum(0) if name == "gradient" else a[0].sum(0) if a.shape[1] > 1 and not _repeated(a[0]) else a[0, 0]
        maps[name] = m.detach().cpu().numpy()
    class_text = class_name(tgt, classes, logits.shape[1])
    prob = float(torch.softmax(logits.double(), 1)[0, tgt])
    head = f"{label}: {class_text} (logit {float(logits[0, tgt]):.3g}, p = {prob:.2f})"
    fig = picture_figure(shown, maps, head, random_weights=random_weights)
    path = Path(out) if out is not None else free_path(Path(f"explain-{_slug(image)}-{_slug(method.split('[')[0])}.png"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    want_curves = main.name in MASK_METHODS if curves is None else bool(curves)
    curves_path = None
    if want_curves:
        curves_path = path.with_name(path.stem + "-curves.png")
        _plot_curves(curves_path, net, x, maps, tgt, head, class_text)
    return Explained(path, curves_path)


def _repeated(a: torch.Tensor) -> bool:
    """Whether every channel of a (C, H, W) map is the same (maps repeated over channels)."""
    return bool((a == a[:1]).all())


def imagenet_categories(arch: str) -> Optional[list[str]]:
    """The ImageNet class names torchvision ships for `arch` (no download), or None."""
    try:
        import torchvision

        return list(torchvision.models.get_model_weights(arch).DEFAULT.meta["categories"])
    except (ValueError, KeyError, AttributeError):
        return None


def class_name(index: int, classes: Optional[list], outputs: int) -> str:
    """``class 3 (digit 3)`` when the source names its classes (and the output width matches)."""
    if classes is not None and len(classes) == outputs and 0 <= index < len(classes):
        return f"class {index} ({classes[index]})"
    return f"class {index}"


def _slug(text: Union[str, Path, np.ndarray]) -> str:
    import re

    raw = "array" if isinstance(text, np.ndarray) else Path(str(text)).stem if not str(text).count(":") else str(text)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_") or "image"


def free_path(path: Path) -> Path:
    """`path`, or ``stem-2.png``, ``stem-3.png``, ... : the first name not taken (nothing is overwritten)."""
    if not path.exists():
        return path
    k = 2
    while path.with_name(f"{path.stem}-{k}{path.suffix}").exists():
        k += 1
    return path.with_name(f"{path.stem}-{k}{path.suffix}")


#: panel titles of the comparison maps
_TITLES = {"gradient": "|input gradient|", "gradcam": "Grad-CAM"}


def picture_figure(shown: np.ndarray, maps: dict, head: str, *, random_weights: bool = False):
    """The explain figure: the input, then each map with its colour bar.

    Signed maps use a diverging map centred on 0 (red positive, blue negative, symmetric limits);
    non-negative maps a sequential one from 0. Small images (under 32 px) show the map alone with
    square pixels; larger ones overlay it on the grey image. An untrained network is stamped.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.6 * (1 + len(maps)), 3.9))
    grey = shown if shown.ndim == 2 else shown.mean(2)
    small = min(grey.shape) < 32
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest" if small else "antialiased")
    axes[0].set_title("input")
    for ax, (name, m) in zip(axes[1:], maps.items()):
        signed = bool((m < 0).any() and (m > 0).any())
        limit = float(np.abs(m).max()) or 1.0
        style = dict(cmap="RdBu_r", vmin=-limit, vmax=limit) if signed else dict(cmap="magma", vmin=0.0, vmax=float(m.max()) or 1.0)
        if small:
            im = ax.imshow(m, interpolation="nearest", **style)
        else:
            ax.imshow(grey, cmap="gray")
            im = ax.imshow(m, alpha=0.6, **style)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("attribution (signed)" if signed else "attribution", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        shown_name = _TITLES.get(name, name)
        ax.set_title(shown_name, fontsize=9 if len(shown_name) > 24 else 11)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(head, fontsize=10)
    if random_weights:
        fig.text(0.5, 0.02, "RANDOM WEIGHTS: no checkpoint given, the maps explain an untrained network",
                 ha="center", va="bottom", fontsize=10, color="white", weight="bold",
                 bbox=dict(facecolor="#c62828", edgecolor="none", pad=4))
    fig.tight_layout(rect=(0, 0.07 if random_weights else 0, 1, 0.95))
    return fig


def _plot_curves(path: Path, net: nn.Module, x: torch.Tensor, maps: dict, target: int, head: str, class_text: str = "") -> None:
    """Deletion and insertion curves of every map (blurred canvas, class probability), areas in the legend."""
    import matplotlib.pyplot as plt

    from workbench.metrics import deletion_insertion

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for name, m in maps.items():
        sal = torch.as_tensor(m, dtype=x.dtype).unsqueeze(0)
        deletion, insertion = deletion_insertion(net, x, sal, target=target)
        shown = {"gradient": "|input gradient|", "gradcam": "Grad-CAM"}.get(name, name)
        for ax, c in zip(axes, (deletion, insertion)):
            ax.plot(c.fractions.cpu().numpy(), c.scores[0].cpu().numpy(), label=f"{shown} (area {float(c.area[0]):.3g})")
    axes[0].set(title="deletion (lower is better)", xlabel="fraction of pixels deleted (most salient first)", ylabel=f"p({class_text or f'class {target}'})")
    axes[1].set(title="insertion onto the blurred image (higher is better)", xlabel="fraction of pixels inserted (most salient first)", ylabel=f"p({class_text or f'class {target}'})")
    for ax in axes:  # y-axis autoscaled: an untrained 1000-class network stays near p = 0.001
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.suptitle(head, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cli(args) -> int:
    """``workbench explain`` (see cli.py): prints the path of every PNG written."""
    written = explain_figures(args.image, method=args.method, model=args.model, weights=args.weights, out=args.out, target=args.target, size=args.size, allow_pickle=getattr(args, "trust_pickle", False))
    for path in written.paths:
        print(path)
    return 0
