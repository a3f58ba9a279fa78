"""Axioms: one module per property; each returns an Outcome per case and never raises."""

from .base import Axiom, Case, Outcome, axioms, get_axiom, register_axiom
from . import completeness, sensitivity, dummy, implementation_invariance, linearity, symmetry  # noqa: F401
from . import conservation, weak_dependence  # noqa: F401,E402  (registers)

#: the axioms of a default report, in their order
DEFAULT_AXIOMS = (
    "completeness", "sensitivity-a", "dummy", "implementation-invariance", "linearity", "symmetry",
    "weak-dependence", "full-gradient-completeness", "conservation", "input-x-gradient-identity",
    "alpha1-beta0-identity",
)

__all__ = ["Axiom", "Case", "Outcome", "axioms", "get_axiom", "register_axiom", "DEFAULT_AXIOMS"]
