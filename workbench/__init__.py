"""workbench: a theory-checking research bench for attribution methods.

    import workbench
    workbench.methods()                                  # built-ins and their claimed axioms
    ig = workbench.method("integrated-gradients")        # build one
    report = workbench.check(ig, examples=50, seed=0)   # search for axiom violations
    print(report)                                        # table; report.to_json() for machines
"""

from .errors import (
    ConvergenceError,
    ConvergenceWarning,
    InputError,
    ModelError,
    ModelModifiedError,
    ToleranceWarning,
    UnsupportedModelError,
    WorkbenchError,
)
from .methods import Method, method, methods

__version__ = "0.1.0"

from .check import Report, Verdict, check, replay  # noqa: E402
from .fullgrad import FullGradients, full_gradients  # noqa: E402



def check_network(*args, **kwargs):
    """Axioms of a method on a given trained network (``workbench.netcheck.check_network``)."""
    from .netcheck import check_network as _check_network

    return _check_network(*args, **kwargs)


__all__ = [
    "ConvergenceError", "ConvergenceWarning", "FullGradients", "InputError", "Method", "ModelError", "ModelModifiedError", "Report",
    "ToleranceWarning", "UnsupportedModelError", "Verdict", "WorkbenchError", "check", "check_network", "full_gradients", "method",
    "methods", "replay",
]
