"""Input alignment and randomization sanity checks for modified-backprop maps.

Measures
- ``cosine(a, x)``: per-sample cosine similarity between an attribution and the input
  (signed; ``absolute=True`` compares |a| with |x|, which hides the effect -- REFERENCES.md).
- ``layerwise_cosine``: for every module a composite hooks, the cosine between the backward
  signal leaving it (toward the input) and that layer's activation: the module's output for
  activations (ReLU: a = relu(z)), its input for affine layers. *Reconstructed* reading of Zheng,
  Sang & Xu (arXiv 2503.11160): "alignment between the backward signal and the activations,
  layer by layer"; check the paper before relying on the exact definition.

Studies
- ``alignment_study``: many networks with isotropic random weights (``isotropic_network``:
  i.i.d. Gaussian weights scaled by 1/sqrt(fan-in), zero biases), one input; per network the
  cosine of each method's map with the input; medians, and for each method against the gradient
  a one-sided Wilcoxon signed-rank test and a sign test (paired by network).
- ``cascading_randomization`` / ``independent_randomization`` (Adebayo et al. 2018): re-draw
  the weights of layers top-down cumulatively / one at a time and compare each map with the
  original by Spearman rank correlation of |map| and of the signed map (and SSIM of |map| for
  images when scikit-image is present).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .methods.base import Method
from .nets import spec as S


def cosine(a: Tensor, x: Tensor, *, absolute: bool = False) -> Tensor:
    """Per-sample cosine similarity of flattened a and x, shape (N,); 0 where either is 0."""
    a2, x2 = a.detach().reshape(a.shape[0], -1), x.detach().reshape(x.shape[0], -1)
    if absolute:
        a2, x2 = a2.abs(), x2.abs()
    den = a2.norm(dim=1) * x2.norm(dim=1)
    num = (a2 * x2).sum(1)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


def layerwise_cosine(composite, model: nn.Module, x: Tensor, target: int, *, seed: str = "gradient") -> list[tuple[str, float]]:
    """(module name, cosine(backward signal at its input, its activation)) for every hooked call,
    output layer first. The activation is the module's output for elementwise modules and its
    input for the others."""
    from .methods.modified_backprop import backward_through
    from .rules.composites import ACTIVATIONS

    t = torch.full((x.shape[0],), int(target), dtype=torch.long)
    _, trace = backward_through(composite, model, x, t, seed=seed, trace=True)
    out = []
    for e in trace:
        act = e.y if isinstance(e.module, ACTIVATIONS) else e.x
        out.append((e.name, float(cosine(e.grad_in, act).mean())))
    return out


def isotropic_network(spec: S.NetSpec, seed: int, *, dtype: torch.dtype = torch.float64, bias: bool = False, orthogonal: bool = False) -> S.SpecNet:
    """A network of `spec` with i.i.d. Gaussian weights / sqrt(fan-in) (or, with ``orthogonal``,
    orthogonal rows of equal norm); biases zero unless ``bias``; BatchNorm left as identity."""
    g = torch.Generator().manual_seed(seed)
    net = S.build(spec, dtype=dtype, generator=g)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() > 1:
                fan_in = math.prod(p.shape[1:])
                w = torch.randn(p.shape, generator=g, dtype=dtype) / math.sqrt(fan_in)
                if orthogonal:
                    m = w.reshape(p.shape[0], -1)
                    q, r = torch.linalg.qr(m.T if m.shape[0] <= m.shape[1] else m)
                    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
                    w = (q.T if m.shape[0] <= m.shape[1] else q).reshape(p.shape) / math.sqrt(max(1, p.shape[0] if m.shape[0] > m.shape[1] else 1))
                p.copy_(w)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.1 if bias else torch.zeros_like(p))
            elif name.endswith("weight"):
                p.fill_(1.0)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.zero_()
            elif name.endswith("running_var"):
                b.fill_(1.0)
    return net.eval()


@dataclass(frozen=True)
class AlignmentResult:
    """Per-method cosine samples (one per network), medians, and tests against the reference."""

    cosines: dict  # method label -> np.ndarray
    medians: dict
    wilcoxon_p: dict  # method -> one-sided p (method > reference)
    sign_p: dict
    reference: str

    def table(self) -> str:
        rows = [f"{'method':28s} {'median cos':>10s} {'wilcoxon p':>11s} {'sign p':>9s}"]
        for k in self.cosines:
            wp, sp = self.wilcoxon_p.get(k), self.sign_p.get(k)
            rows.append(f"{k:28s} {self.medians[k]:10.3f} {'' if wp is None else f'{wp:11.2e}'} {'' if sp is None else f'{sp:9.2e}'}")
        return "\n".join(rows)


def alignment_study(
    methods: Sequence[Method],
    make_network: Callable[[int], nn.Module],
    x: Tensor,
    *,
    networks: int = 20,
    target: Optional[int] = None,
    reference: str = "gradient",
    absolute: bool = False,
) -> AlignmentResult:
    """Cosine(map, input) of each method over `networks` random networks; paired tests vs `reference`.

    The target is each network's top class at x unless given.
    """
    from scipy import stats

    cos: dict = {m.label: [] for m in methods}
    for i in range(networks):
        net = make_network(i)
        with torch.no_grad():
            t = int(net(x).argmax(1)[0]) if target is None else target
        for m in methods:
            a = m.attribute(net, x, target=t)
            cos[m.label].append(float(cosine(a, x, absolute=absolute)[0]))
    arrays = {k: np.asarray(v) for k, v in cos.items()}
    med = {k: float(np.median(v)) for k, v in arrays.items()}
    wil, sign = {}, {}
    if reference in arrays:
        r = arrays[reference]
        for k, v in arrays.items():
            if k == reference:
                continue
            d = v - r
            wil[k] = float(stats.wilcoxon(v, r, alternative="greater").pvalue) if np.any(d != 0) else 1.0
            wins, n = int((d > 0).sum()), int((d != 0).sum())
            sign[k] = float(stats.binomtest(wins, n, 0.5, alternative="greater").pvalue) if n else 1.0
    return AlignmentResult(arrays, med, wil, sign, reference)


# -- randomization sanity checks -------------------------------------------------------------
def _layers_with_weights(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and not any(True for _ in m.children())]


def _redraw(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        w = module.weight
        fan_in = math.prod(w.shape[1:])
        w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) / math.sqrt(fan_in))
        if module.bias is not None:
            module.bias.zero_()


def similarity(a: Tensor, b: Tensor) -> dict:
    """Spearman rank correlation of |a| vs |b| and of a vs b (flattened, first sample), and SSIM of
    the channel-summed |maps| for images (scikit-image)."""
    from scipy import stats

    a0, b0 = a[0].detach().double(), b[0].detach().double()
    out = {
        "spearman_abs": float(stats.spearmanr(a0.abs().flatten().numpy(), b0.abs().flatten().numpy()).statistic),
        "spearman": float(stats.spearmanr(a0.flatten().numpy(), b0.flatten().numpy()).statistic),
    }
    if a0.dim() == 3:
        try:
            from skimage.metrics import structural_similarity

            ma, mb = a0.abs().sum(0).numpy(), b0.abs().sum(0).numpy()
            ma, mb = ma / (ma.max() or 1.0), mb / (mb.max() or 1.0)
            out["ssim"] = float(structural_similarity(ma, mb, data_range=1.0, win_size=min(7, (min(ma.shape) // 2) * 2 - 1)))
        except ImportError:  # pragma: no cover
            pass
    return {k: (0.0 if v != v else v) for k, v in out.items()}


def cascading_randomization(method: Method, model: nn.Module, x: Tensor, target: int, *, seed: int = 0) -> list[tuple[str, dict]]:
    """Randomize layers from the top down, cumulatively, on a copy; similarity to the original map after each."""
    import copy

    base = method.attribute(model, x, target=target)
    net = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    mods = dict(net.named_modules())
    out = []
    for name in reversed(_layers_with_weights(net)):
        _redraw(mods[name], g)
        out.append((name, similarity(base, method.attribute(net, x, target=target))))
    return out


def independent_randomization(method: Method, model: nn.Module, x: Tensor, target: int, *, seed: int = 0) -> list[tuple[str, dict]]:
    """Randomize one layer at a time (others original); similarity to the original map for each."""
    import copy

    base = method.attribute(model, x, target=target)
    out = []
    for name in reversed(_layers_with_weights(model)):
        net = copy.deepcopy(model)
        _redraw(dict(net.named_modules())[name], torch.Generator().manual_seed(seed))
        out.append((name, similarity(base, method.attribute(net, x, target=target))))
    return out


def natural_image(size: int = 32, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """scikit-image's 'chelsea' photograph, resized to size x size, standardized per channel, (1, 3, s, s)."""
    from skimage import data, transform

    im = transform.resize(data.chelsea(), (size, size), anti_aliasing=True)
    t = torch.tensor(im, dtype=dtype).permute(2, 0, 1).unsqueeze(0)
    return (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), keepdim=True)
