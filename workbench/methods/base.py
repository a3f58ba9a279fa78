"""The method contract: a name, the axioms it claims, and attribute(model, x, *, target, baseline).

Every method validates its inputs, leaves the model as it found it (see ``modelguard``) and
returns a tensor of x's shape. Claims are declared on the method (as Captum declares
``has_convergence_delta``) so that the checker can tell an expected failure from a bug.
"""

from __future__ import annotations

import abc
import importlib
import inspect
from typing import Any, Callable, ClassVar, Mapping, Optional

from torch import Tensor, nn

from workbench.core.coverage import precheck
from workbench.core.errors import InputError, ModelError
from workbench.core.modelguard import preserved, report_breach
from workbench.core.validation import (
    BaselineLike,
    Target,
    captum_names,
    check_input,
    check_model,
    resolve_baseline,
    resolve_target,
)

#: An axiom name mapped to the relative tolerance the method claims it to (None: round-off).
Claims = Mapping[str, Optional[float]]


def _normalize_target(target: Target, batch: int) -> Tensor:
    # The upper bound is checked after the first forward pass, when the output width is known.
    return resolve_target(target, batch, outputs=2**62)


class Method(abc.ABC):
    """Base class of attribution methods.

    Subclasses set ``name``, ``claims`` and ``uses_baseline`` and implement ``_attribute``,
    which receives a validated input, per-sample long targets and (if used) a baseline of x's
    shape, and runs inside ``preserved(model)``.
    """

    name: ClassVar[str] = "method"
    description: ClassVar[str] = ""
    uses_baseline: ClassVar[bool] = False
    #: parameters stop requiring grad during the call unless a method needs their gradients
    freeze_parameters: ClassVar[bool] = True
    base_claims: ClassVar[Claims] = {}
    #: the networks the claims are made for: "any", or "piecewise-linear" (ReLU/max-pool networks
    #: only; the checker then draws no smooth activations and says so in its report)
    domain: ClassVar[str] = "any"
    #: whether a method call copies the model's values first and restores them after (foreign code)
    guard_by_value: ClassVar[bool] = False

    @classmethod
    def variants(cls) -> tuple[dict[str, Any], ...]:
        """Option sets besides the defaults whose claims the audit covers (each gets its own
        property tests: ``workbench.methods.registry.audited_methods``)."""
        return ()

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """The configurations that get a row in ``workbench check --all`` (default: the default
        configuration alone; () leaves the method out of the matrix)."""
        return ({},)

    def __init__(self, **options: Any) -> None:
        """Record the options that differ from the subclass constructor's defaults."""
        params = inspect.signature(type(self).__init__).parameters
        self._options = {k: v for k, v in options.items() if not _is_default(v, params.get(k))}

    @property
    def options(self) -> dict[str, Any]:
        """The constructor options; ``workbench.method(m.name, **m.options)`` rebuilds the method."""
        return dict(self._options)

    @property
    def claims(self) -> dict[str, Optional[float]]:
        """Axioms this configured method claims, each with its claimed relative tolerance."""
        return dict(self.base_claims)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({opts})"

    @property
    def label(self) -> str:
        """Short text naming the method and its non-default options: ``name[k=v,...]``."""
        if not self._options:
            return self.name
        return self.name + "[" + ",".join(f"{k}={_fmt(v)}" for k, v in self._options.items()) + "]"

    @captum_names  # also Captum's spelling: positional target, baselines=
    def attribute(
        self,
        model: nn.Module,
        x: Tensor,
        *,
        target: Target,
        baseline: BaselineLike = None,
    ) -> Tensor:
        """Attribution of F_target at x (against `baseline` where the method uses one), shape of x."""
        check_model(model)
        check_input(x, model)
        t = _normalize_target(target, x.shape[0])
        # None reaches the method, which then uses its own default baseline
        b = None if baseline is None else resolve_baseline(baseline, x)
        if not self.uses_baseline:
            b = None
        with preserved(model, freeze_parameters=self.freeze_parameters, by_value=self.guard_by_value):
            precheck(self, model, x)  # layer coverage of methods that do not trace their own pass
            a = self._attribute(model, x.detach(), t, b)
        if a.shape != x.shape:
            report_breach(f"output shape {tuple(a.shape)} for input shape {tuple(x.shape)}")
            raise ModelError(f"{self.name} produced shape {tuple(a.shape)} for input {tuple(x.shape)}")
        return a

    @abc.abstractmethod
    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        ...


def _is_default(value: Any, param: Optional[inspect.Parameter]) -> bool:
    if param is None or param.default is inspect.Parameter.empty:
        return False
    try:
        return bool(value == param.default) and type(value) is type(param.default)
    except (RuntimeError, TypeError, ValueError):
        return False


def _fmt(v: Any) -> str:
    if isinstance(v, Method):
        return v.label
    return str(v)


AttributionFunction = Callable[..., Tensor]


class CallableMethod(Method):
    """Adapts a plain ``f(model, x, target, baseline) -> Tensor`` (a user's, Captum's) to the contract.

    The axioms it claims come from ``claims`` or, when that is None, from a ``claims`` attribute
    of the function (``f.claims = {"completeness": 1e-3}``), so a module:callable checked from
    the command line can declare them too.

    Parameters stay trainable during the call (the callable may need their gradients); the
    model's values are copied before the call and written back after it (also when it raises;
    a write raises ModelModifiedError), hooks it left behind are removed, and an output still
    attached to the autograd graph is detached. Inside the checker's contract check each of
    these is reported as a breach instead. ``f.domain = "piecewise-linear"`` limits the claims
    to ReLU/max-pool networks.
    """

    uses_baseline = True
    freeze_parameters = False
    guard_by_value = True

    def __init__(
        self,
        function: AttributionFunction,
        *,
        name: Optional[str] = None,
        claims: Optional[Claims] = None,
    ) -> None:
        super().__init__()
        if not callable(function):
            raise InputError(f"expected a callable f(model, x, target, baseline), got {function!r}")
        self.function = function
        self.name = name or getattr(function, "__qualname__", None) or repr(function)
        declared = claims if claims is not None else getattr(function, "claims", None)
        if declared is not None and not isinstance(declared, Mapping):
            raise InputError(f"claims of {self.name} must map axiom names to tolerances, got {type(declared).__name__}")
        #: whether the claims were declared (argument or the function's ``claims`` attribute)
        self.declared = declared is not None
        self._claims = dict(declared or {})
        domain = getattr(function, "domain", "any")
        if domain not in ("any", "piecewise-linear"):
            raise InputError(f"domain of {self.name} must be 'any' or 'piecewise-linear', got {domain!r}")
        self.domain = domain  # type: ignore[misc]

    @property
    def claims(self) -> dict[str, Optional[float]]:
        return dict(self._claims)

    @property
    def label(self) -> str:
        return self.name

    @property
    def reference(self) -> Optional[str]:
        """``module:qualname`` if the callable can be imported again (for replay files)."""
        mod = getattr(self.function, "__module__", None)
        qual = getattr(self.function, "__qualname__", None)
        if not mod or not qual or "<" in qual or mod == "__main__":
            return None
        return f"{mod}:{qual}"

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        a = self.function(model, x, target, baseline)
        if not isinstance(a, Tensor):
            raise ModelError(f"{self.name} returned {type(a).__name__}, expected a tensor")
        if a.requires_grad or a.grad_fn is not None:
            report_breach("output attached to the autograd graph (requires_grad=True); return a detached tensor")
        return a.detach()


def import_callable(reference: str) -> Any:
    """Import ``package.module:attribute.path`` (the CLI's module:callable form)."""
    if ":" not in reference:
        raise InputError(f"expected module:callable, got {reference!r}")
    mod_name, _, attr = reference.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise InputError(f"cannot import module {mod_name!r}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(f"module {mod_name!r} has no attribute {attr!r}") from None
    return obj


def as_method(obj: Any, *, claims: Optional[Claims] = None) -> Method:
    """A Method from a Method, a Method subclass, or a plain attribution callable."""
    if isinstance(obj, Method):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Method):
        return obj()
    if inspect.isclass(obj):  # a Captum / Zennit attribution class, adapted (or refused by name)
        from workbench.methods.adapters import adapt_class

        return as_method(adapt_class(obj), claims=claims)
    return CallableMethod(obj, claims=claims)
