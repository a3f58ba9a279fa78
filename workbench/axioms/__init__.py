"""Axioms: one module per property; each returns an Outcome per case and never raises."""

from .base import Axiom, Case, Outcome, axioms, get_axiom, register_axiom
from . import completeness, sensitivity, dummy, implementation_invariance, linearity, symmetry  # noqa: F401

#: the order axioms appear in reports
DEFAULT_AXIOMS = ("completeness", "sensitivity-a", "dummy", "implementation-invariance", "linearity", "symmetry")

__all__ = ["Axiom", "Case", "Outcome", "axioms", "get_axiom", "register_axiom", "DEFAULT_AXIOMS"]
