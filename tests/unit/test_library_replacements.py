"""The blur, the percentile and the key=value parser are library functions now
(torchvision's gaussian_blur, torch.quantile, one parser in ``workbench.core.options``); on the
cases the hand-written versions served they give the same results, to round-off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench.core.errors import InputError
from workbench.core.options import assignments, literal, split_top
from workbench.paths.baselines import gaussian_blur
from workbench.rules.rules import percentile


def separable_blur(x: torch.Tensor, sigma: float, kernel_size=None) -> torch.Tensor:
    """The formula the hand-written blur implemented: a separable, normalized Gaussian, reflect padding."""
    kernel_size = kernel_size or 2 * math.ceil(3 * sigma) + 1
    out, c = x, x.shape[1]
    for axis, length in ((2, x.shape[2]), (3, x.shape[3])):
        k = min(kernel_size, 2 * length - 1)
        if k == 1:
            continue
        i = torch.arange(k, dtype=torch.float64) - k // 2
        g = torch.exp(-(i**2) / (2 * sigma**2))
        g = (g / g.sum()).to(x.dtype)
        shape = (c, 1, k, 1) if axis == 2 else (c, 1, 1, k)
        pad = (0, 0, k // 2, k // 2) if axis == 2 else (k // 2, k // 2, 0, 0)
        out = F.conv2d(F.pad(out, pad, mode="reflect"), g.reshape(shape[2:]).expand(shape), groups=c)
    return out


@pytest.mark.parametrize("sigma,kernel_size,shape", [
    (1.0, None, (2, 3, 8, 8)), (2.0, None, (1, 1, 5, 9)), (5.0, None, (1, 3, 32, 32)), (50.0, 51, (1, 1, 4, 4)),
    (0.5, 3, (1, 2, 1, 7)), (4.0, None, (1, 3, 64, 48)),
])
def test_blur_is_the_separable_gaussian(sigma, kernel_size, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = gaussian_blur(x, sigma, kernel_size), separable_blur(x, sigma, kernel_size)
    assert a.shape == x.shape and float((a - b).abs().max()) <= 4e-15 * float(x.abs().max())


def test_percentile_is_numpys_linear_percentile():
    g = torch.Generator().manual_seed(1)
    for d in (1, 2, 7, 100):
        v = torch.randn(3, d, generator=g, dtype=torch.float64)
        for q in (0.0, 12.5, 50.0, 98.0, 100.0):
            assert np.allclose(percentile(v, q).numpy(), np.percentile(v.numpy(), q, axis=1), rtol=4e-16, atol=0), (d, q)


def test_one_parser_for_methods_options_and_settings():
    assert split_top("a,m[x=1,y=(2,3)],b") == ["a", "m[x=1,y=(2,3)]", "b"]
    assert literal(" (1, 2) ") == (1, 2) and literal("gauss-legendre") == "gauss-legendre"
    assert assignments(["k=v=w", "n=1"]) == {"k": "v=w", "n": "1"}
    with pytest.raises(InputError, match="--option takes key=value"):
        assignments(["oops"], what="--option")
    m = workbench.method("integrated-gradients[rule='exact']")
    assert m.label == "integrated-gradients[rule=exact]"
    # a tuple inside a method string (the old method parser split inside parentheses)
    lrp = workbench.method("lrp[composite='dtd-zb',low=(-2.0,-2.5),high=(2.0,3.0)]")
    assert lrp.composite_options["low"] == (-2.0, -2.5)
