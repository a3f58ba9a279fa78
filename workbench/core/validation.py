"""Input validation shared by every method: one place, clear messages."""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError, ModelError

Target = Union[int, Sequence[int], Tensor]
BaselineLike = Union[None, float, int, str, Tensor]

SUPPORTED_DTYPES = (torch.float32, torch.float64)


#: torch modules whose forward depends on ``module.training`` (Dropout and the normalizations
#: that use batch statistics in training); a model in training mode holding one is refused
TRAINING_DEPENDENT: tuple = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                             nn.RNNBase)


def _behaves_differently_in_training(m: nn.Module) -> bool:
    """Whether m's own forward may read ``self.training``: torch's train-dependent modules
    (Dropout and RNNs only with p > 0, instance norms only with running statistics), and any module defined
    outside torch whose forward mentions ``training`` or whose source cannot be read."""
    if isinstance(m, nn.RNNBase):
        return m.dropout > 0
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return m.p > 0
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return m.track_running_stats
    if isinstance(m, TRAINING_DEPENDENT):
        return True
    forward = getattr(type(m), "forward", None)
    module = getattr(forward, "__module__", "") or ""
    if module.startswith("torch.") or forward is nn.Module.forward:
        return False
    try:
        import inspect

        return "training" in inspect.getsource(forward)
    except (OSError, TypeError):
        return True


def check_model(model: nn.Module) -> None:
    """Raise unless `model` is a module whose forward is the same as in eval mode.

    A model in training mode is accepted when no module in training mode behaves differently in
    training (no Dropout, BatchNorm, ...); otherwise the error names those modules.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    training = [f"{name or type(model).__name__} ({type(m).__name__})" for name, m in model.named_modules()
                if m.training and _behaves_differently_in_training(m)]
    if training:
        shown = ", ".join(training[:3]) + (f" and {len(training) - 3} more" if len(training) > 3 else "")
        raise ModelError(
            f"model is in training mode and these modules behave differently in training: {shown}; "
            "call model.eval() first: attributions of a training-mode model depend on the batch and on dropout noise"
        )


def check_image_batch(x: Tensor, what: str, *, why: str = "", error: type = InputError) -> None:
    """Raise unless `x` is a floating-point image batch (N, C, H, W); `what` names the caller,
    `why` says what it does with the image, `error` is the class raised for a non-image shape."""
    if not isinstance(x, Tensor):
        raise InputError(f"{what} needs the input as a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise error(f"{what} needs an image batch of shape (N, C, H, W), got shape {tuple(x.shape)}" + (f"; {why}" if why else ""))
    if not x.is_floating_point():
        raise InputError(f"{what} needs a floating-point image batch, got dtype {x.dtype}")


def check_input(x: Tensor, model: nn.Module | None = None) -> None:
    """Raise unless `x` is a finite, batched float32/float64 tensor matching the model."""
    if not isinstance(x, Tensor):
        raise InputError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise InputError(f"input dtype {x.dtype} is not supported; use torch.float32 or torch.float64")
    if x.dim() < 2:
        raise InputError(
            f"input must be batched with shape (N, ...), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if x.shape[0] == 0:
        raise InputError("input batch is empty")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise InputError(f"input contains NaN or inf (first at index {tuple(bad)})")
    if model is not None:
        expected = getattr(getattr(model, "spec", None), "input_shape", None)  # spec networks know theirs
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            raise InputError(
                f"input of shape {tuple(x.shape)} does not fit the network, which takes (N, {', '.join(map(str, expected))}); "
                "is the input batched? add a batch dimension with x.unsqueeze(0)"
            )
        first = next(((n, p) for n, p in model.named_parameters() if p.is_floating_point()), None)
        for name, p in [first] if first is not None else []:
            if p.dtype != x.dtype:
                raise InputError(
                    f"input dtype {x.dtype} does not match the model's parameter {name!r} dtype {p.dtype}; "
                    f"convert one of them (model.to({x.dtype}) or x.to({p.dtype}))"
                )
            if p.device != x.device:
                raise InputError(
                    f"input is on {x.device} but the model's parameter {name!r} is on {p.device}"
                )


def resolve_baseline(baseline: BaselineLike, x: Tensor) -> Tensor:
    """Return the baseline as a tensor of x's shape: None -> zeros, scalar -> constant, a name
    (``"blurred"``, see ``workbench.paths.baselines.BASELINES``) or a baseline callable -> built from x."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, str) or (callable(baseline) and not isinstance(baseline, Tensor)):
        from workbench.paths.baselines import resolve

        return resolve(baseline, x)
    if isinstance(baseline, bool):
        raise InputError(f"baseline must be None, a number, a name or a tensor, got {baseline!r}")
    if isinstance(baseline, (int, float)):
        b = torch.full_like(x, float(baseline))
    elif isinstance(baseline, Tensor):
        if baseline.dtype != x.dtype:
            raise InputError(f"baseline dtype {baseline.dtype} does not match input dtype {x.dtype}")
        if baseline.device != x.device:
            raise InputError(f"baseline is on {baseline.device} but the input is on {x.device}")
        try:
            b = baseline.expand_as(x)
        except RuntimeError:
            raise InputError(
                f"baseline shape {tuple(baseline.shape)} does not broadcast to the input shape {tuple(x.shape)}"
            ) from None
    else:
        raise InputError(f"baseline must be None, a number, a name, a callable or a tensor, got {type(baseline).__name__}")
    if not torch.isfinite(b).all():
        raise InputError("baseline contains NaN or inf")
    return b


#: Captum keyword names this bench does not take per call, and what to use instead
CAPTUM_REFUSED = {
    "n_steps": "the number of steps is a method option: workbench.method('integrated-gradients', steps=N, tolerance=None)",
    "method": "the quadrature rule is a method option: workbench.method('integrated-gradients', rule='gauss-legendre')",
    "internal_batch_size": "batching is a method option: workbench.method('integrated-gradients', chunk_size=N)",
    "return_convergence_delta": "IG returns its completeness residual with attribute(..., return_residual=True)",
    "additional_forward_args": "wrap the model so that its forward takes the input alone",
    "abs": "take .abs() of the returned map (workbench's gradient is signed)",
}


def captum_names(attribute):
    """Decorator of ``attribute(model, x, *, target, baseline)`` that also takes Captum's spelling:
    the target as third positional argument and ``baselines=`` (a tensor or a 1-tuple); Captum
    keywords with no per-call meaning here (``n_steps``, ``method``, ...) are refused with a message
    naming the workbench equivalent."""
    import functools

    @functools.wraps(attribute)
    def wrapper(self, model, x, *args, **kwargs):
        if len(args) > 1:
            raise InputError("attribute takes (model, x, target) positionally; pass the rest by keyword (baseline=...)")
        if args:
            if "target" in kwargs:
                raise InputError("target given both positionally and as target=")
            kwargs["target"] = args[0]
        if "baselines" in kwargs:
            if "baseline" in kwargs:
                raise InputError("give baseline= (workbench) or baselines= (Captum), not both")
            b = kwargs.pop("baselines")
            if isinstance(b, tuple):
                if len(b) != 1:
                    raise InputError(f"baselines= holds {len(b)} tensors; workbench methods take one input and one baseline")
                b = b[0]
            kwargs["baseline"] = b
        for name, ours in CAPTUM_REFUSED.items():
            if name in kwargs:
                raise InputError(f"{name}= is Captum's keyword; in workbench, {ours}")
        if "target" not in kwargs:
            raise InputError("target is required: attribute(model, x, target=CLASS) (an int or one index per sample)")
        return attribute(self, model, x, **kwargs)

    return wrapper


def resolve_target(target: Target, batch: int, outputs: int) -> Tensor:
    """Return per-sample class indices (N,) as a long tensor, checked against the output width."""
    if isinstance(target, bool) or target is None:
        raise InputError(f"target must be a class index or one index per sample, got {target!r}")
    if isinstance(target, int):
        t = torch.full((batch,), target, dtype=torch.long)
    else:
        t = torch.as_tensor(target)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise InputError(f"target must hold integer class indices, got dtype {t.dtype}")
        t = t.to(torch.long).reshape(-1).cpu()
        if t.numel() == 1:
            t = t.expand(batch).clone()
        elif t.numel() != batch:
            raise InputError(f"target has {t.numel()} entries but the batch has {batch} samples")
    if (t < 0).any() or (t >= outputs).any():
        bad = t[(t < 0) | (t >= outputs)][0].item()
        raise InputError(f"target {bad} is out of range for a model with {outputs} outputs (valid: 0..{outputs - 1})")
    return t


def check_output(out: Tensor, batch: int) -> int:
    """Raise unless the model output is (N, C); return C."""
    if not isinstance(out, Tensor):
        raise ModelError(f"model must return a tensor, got {type(out).__name__}")
    if out.dim() != 2 or out.shape[0] != batch:
        raise ModelError(
            f"model output must have shape (N, classes) = ({batch}, C), got {tuple(out.shape)}"
        )
    return out.shape[1]
