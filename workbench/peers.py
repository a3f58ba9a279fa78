"""Peer libraries' methods as plain attribution callables, so the checker can judge them too.

Each function has the checker's signature ``f(model, x, target, baseline) -> Tensor`` and a
``claims`` attribute (axiom -> relative tolerance or None), the claims its library's
documentation makes or implies; ``workbench check workbench.peers:captum_integrated_gradients``
then tells an expected failure from a defect. Captum and Zennit are imported on first use
(``pip install captum zennit``); they are never needed by the rest of the bench.

Captum's IG and DeepLift claim completeness against the baseline (Captum reports it as the
"convergence delta"); IG at its default 50 steps to the 5% the IG paper gives as its practical
criterion. Zennit's composites claim nothing the checker tests except where a rule conserves.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError

__all__ = [
    "captum_integrated_gradients", "captum_ig_trapezoid", "captum_saliency", "captum_input_x_gradient",
    "captum_guided_backprop", "captum_deeplift", "zennit_epsilon_plus_flat", "zennit_guided_backprop",
]

#: the IG paper's practical completeness criterion: within 5% after 20-300 steps
IG_PAPER_RTOL = 0.05
_FIXED_PATH = {"dummy": None, "symmetry": None, "implementation-invariance": None, "linearity": None}


def _import(name: str):
    try:
        return __import__(name)
    except ImportError:
        raise InputError(f"{name} is not installed; `pip install {name}` to check its methods") from None


def _quiet(fn: Callable) -> Callable:
    """Run a peer call without its UserWarnings (Captum warns on every call about hooks and grads)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args, **kwargs)

    return wrapper


def _baseline(x: Tensor, baseline: Optional[Tensor]) -> Tensor:
    return torch.zeros_like(x) if baseline is None else baseline


def _captum_ig(method: str, n_steps: int) -> Callable:
    def attribute(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        _import("captum")
        from captum.attr import IntegratedGradients

        return IntegratedGradients(model).attribute(x, baselines=_baseline(x, baseline), target=target, n_steps=n_steps, method=method)

    return attribute


@_quiet
def captum_integrated_gradients(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Captum's IntegratedGradients at its defaults (Gauss-Legendre, 50 steps)."""
    return _captum_ig("gausslegendre", 50)(model, x, target, baseline)


captum_integrated_gradients.claims = {**_FIXED_PATH, "completeness": IG_PAPER_RTOL}  # type: ignore[attr-defined]


@_quiet
def captum_ig_trapezoid(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Captum's IntegratedGradients with ``method="riemann_trapezoid"``, 8 steps.

    Its weights sum to (n - 1) / n (the proof ``workbench.proofs.false_trapezoid_weights``), so completeness fails by 1/n even on a
    linear network; at 8 steps that is 12.5%, beyond the paper's 5%.
    """
    return _captum_ig("riemann_trapezoid", 8)(model, x, target, baseline)


captum_ig_trapezoid.claims = {**_FIXED_PATH, "completeness": IG_PAPER_RTOL}  # type: ignore[attr-defined]


@_quiet
def captum_saliency(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Captum's Saliency with ``abs=False`` (the signed input gradient)."""
    _import("captum")
    from captum.attr import Saliency

    return Saliency(model).attribute(x, target=target, abs=False)


captum_saliency.claims = {"dummy": None, "implementation-invariance": None, "linearity": None, "symmetry": None, "weak-dependence": None}  # type: ignore[attr-defined]


@_quiet
def captum_input_x_gradient(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Captum's InputXGradient."""
    _import("captum")
    from captum.attr import InputXGradient

    # Captum returns x * grad still attached to the graph of an input that requires grad: a
    # contract breach the checker reports; the adapter detaches so the axioms can be judged
    return InputXGradient(model).attribute(x, target=target).detach()


captum_input_x_gradient.claims = {"dummy": None, "implementation-invariance": None, "linearity": None, "symmetry": None}  # type: ignore[attr-defined]


@_quiet
def captum_guided_backprop(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Captum's GuidedBackprop."""
    _import("captum")
    from captum.attr import GuidedBackprop

    return GuidedBackprop(model).attribute(x, target=target)


captum_guided_backprop.claims = {"dummy": None}  # type: ignore[attr-defined]


@_quiet
def captum_deeplift(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Captum's DeepLift (Rescale rule), which documents summation-to-delta against the baseline."""
    _import("captum")
    from captum.attr import DeepLift

    # attached to the graph like InputXGradient's output (see there); detached by the adapter
    return DeepLift(model).attribute(x, baselines=_baseline(x, baseline), target=target).detach()


captum_deeplift.claims = {"completeness": None, "dummy": None}  # type: ignore[attr-defined]


def _zennit(composite_name: str) -> Callable:
    def attribute(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        _import("zennit")
        from zennit import composites
        from zennit.attribution import Gradient

        composite = getattr(composites, composite_name)()
        with torch.no_grad():
            width = model(x).shape[1]
        one_hot = torch.nn.functional.one_hot(target.to(x.device), width).to(x.dtype)
        with Gradient(model, composite) as attributor:
            _, relevance = attributor(x, one_hot)
        return relevance

    return attribute


@_quiet
def zennit_epsilon_plus_flat(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Zennit's EpsilonPlusFlat composite (epsilon for dense, z+ for convolutions, flat first layer)."""
    return _zennit("EpsilonPlusFlat")(model, x, target, baseline)


zennit_epsilon_plus_flat.claims = {}  # type: ignore[attr-defined]


@_quiet
def zennit_guided_backprop(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
    """Zennit's GuidedBackprop composite."""
    return _zennit("GuidedBackprop")(model, x, target, baseline)


zennit_guided_backprop.claims = {"dummy": None}  # type: ignore[attr-defined]
