"""workbench: a theory-checking research bench for attribution methods.

    import workbench
    workbench.methods()                                  # built-ins and their claimed axioms
    ig = workbench.method("integrated-gradients")        # build one
    report = workbench.check(ig, examples=50, seed=0)   # search for axiom violations
    print(report)                                        # table; report.to_json() for machines

``workbench.check`` and ``workbench.methods`` are the subpackages themselves, made callable
(``workbench.core.callable_module``), so ``import workbench.check`` and
``import workbench.methods.integrated_gradients`` import modules.
"""

__version__ = "0.1.0"  # first: the modules imported below record it in replay files

from workbench import check, methods  # noqa: E402
from workbench.check import Report, Verdict, replay  # noqa: E402
from workbench.core.errors import (  # noqa: E402
    ConvergenceError,
    ConvergenceWarning,
    InputError,
    ModelError,
    ModelModifiedError,
    ToleranceWarning,
    UnsupportedModelError,
    WorkbenchError,
)
from workbench.methods import Method, method  # noqa: E402
from workbench.methods.fullgrad import FullGradients, full_gradients  # noqa: E402


def check_network(*args, **kwargs):
    """Axioms of a method on a given trained network (``workbench.check.network.check_network``)."""
    from workbench.check.network import check_network as _check_network

    return _check_network(*args, **kwargs)


__all__ = [
    "ConvergenceError", "ConvergenceWarning", "FullGradients", "InputError", "Method", "ModelError", "ModelModifiedError",
    "Report", "ToleranceWarning", "UnsupportedModelError", "Verdict", "WorkbenchError", "check", "check_network",
    "full_gradients", "method", "methods", "replay",
]
