"""Captum and Zennit attribution *classes* as checkable methods.

``adapt_class(cls)`` turns a class handed to ``workbench.check`` (or ``workbench check
captum.attr:IntegratedGradients``) into an attribution function ``f(model, x, target, baseline)``:

* a class ``workbench.peers`` wraps (Captum's IntegratedGradients, Saliency, InputXGradient,
  GuidedBackprop, DeepLift; Zennit's EpsilonPlusFlat and GuidedBackprop composites) becomes that
  wrapper, with the claims its library documents;
* any other Captum ``Attribution`` whose constructor takes only the model becomes
  ``cls(model).attribute(x, target=target[, baselines=baseline])``; any other Zennit composite
  is used with ``zennit.attribution.Gradient``; a Zennit ``Attributor`` is called with the
  one-hot output gradient. These declare no claims, so they are held to every axiom asked;
* anything else (a Captum layer method that needs a layer, an unrelated class) is refused with a
  message saying what to pass instead.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError

#: (library, class name) -> the ``workbench.peers`` function with the library's documented claims
PEER_FUNCTIONS = {
    ("captum", "IntegratedGradients"): "captum_integrated_gradients",
    ("captum", "Saliency"): "captum_saliency",
    ("captum", "InputXGradient"): "captum_input_x_gradient",
    ("captum", "GuidedBackprop"): "captum_guided_backprop",
    ("captum", "DeepLift"): "captum_deeplift",
    ("zennit", "EpsilonPlusFlat"): "zennit_epsilon_plus_flat",
    ("zennit", "GuidedBackprop"): "zennit_guided_backprop",
}


def adapt_class(cls: type) -> Callable[..., Tensor]:
    """An attribution function for a Captum or Zennit class (see the module docstring)."""
    library = (getattr(cls, "__module__", "") or "").split(".")[0]
    if library not in ("captum", "zennit"):
        raise InputError(
            f"{cls.__module__}.{cls.__qualname__} is a class; check takes a workbench Method, a Captum or Zennit "
            "attribution class, or a function f(model, x, target, baseline) -> Tensor"
        )
    known = PEER_FUNCTIONS.get((library, cls.__name__))
    if known is not None:
        from workbench import peers

        return getattr(peers, known)
    return _captum(cls) if library == "captum" else _zennit(cls)


def _named(fn: Callable, cls: type) -> Callable:
    # ``module:qualname`` of the class, so that a replay file re-imports and re-adapts it
    fn.__module__ = cls.__module__.split("._")[0]
    fn.__qualname__ = fn.__name__ = cls.__name__
    fn.__doc__ = f"{cls.__module__}.{cls.__name__} adapted by workbench.methods.adapters (no claims declared)"
    return fn


def _captum(cls: type) -> Callable[..., Tensor]:
    from captum.attr import Attribution

    if not issubclass(cls, Attribution):
        raise InputError(f"captum class {cls.__name__} is not an attribution method (captum.attr.Attribution)")
    required = [p.name for p in list(inspect.signature(cls.__init__).parameters.values())[2:]
                if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise InputError(
            f"captum.attr.{cls.__name__} needs {', '.join(required)} besides the model; wrap it in a function, e.g. "
            f"lambda model, x, target, baseline: {cls.__name__}(model, ...).attribute(x, target=target)"
        )
    params = inspect.signature(cls.attribute).parameters
    needs = [n for n, p in list(params.items())[2:] if p.default is inspect.Parameter.empty
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in ("baselines", "target")]
    if needs:
        raise InputError(
            f"captum.attr.{cls.__name__}.attribute needs {', '.join(needs)}; wrap it in a function, e.g. "
            f"lambda model, x, target, baseline: {cls.__name__}(model).attribute(x, target=target, {needs[0]}=...)"
        )
    takes_baselines = "baselines" in params

    def attribute(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        import warnings

        # Captum's own default baseline is zero, as the checker's is
        extra: dict[str, Any] = {"baselines": torch.zeros_like(x) if baseline is None else baseline} if takes_baselines else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return cls(model).attribute(x, target=target, **extra)

    return _named(attribute, cls)


def _zennit(cls: type) -> Callable[..., Tensor]:
    from zennit.attribution import Attributor, Gradient
    from zennit.core import Composite

    if not (issubclass(cls, Composite) or issubclass(cls, Attributor)):
        raise InputError(f"zennit class {cls.__name__} is neither a Composite nor an Attributor")

    def attribute(model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        with torch.no_grad():
            width = model(x).shape[1]
        one_hot = torch.nn.functional.one_hot(target.to(x.device), width).to(x.dtype)
        attributor = Gradient(model, cls()) if issubclass(cls, Composite) else cls(model)
        with attributor:
            _, relevance = attributor(x, one_hot)
        return relevance

    return _named(attribute, cls)
