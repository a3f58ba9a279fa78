"""Symbolic proofs (sympy) of the claims the workbench's axioms rest on.

One module per claim; each exposes ``CLAIM`` (a ``workbench.proofs.base.Claim``) and ``prove()`` returning
a ``workbench.proofs.base.ProofResult``. ``workbench.proofs.registry`` lists them with their property-test twins and
the axioms that rest on them; ``workbench.proofs.report`` writes the Markdown/JSON report and implements
``workbench prove``.
"""

from workbench.proofs.base import Claim, Proof, ProofResult, is_zero

__all__ = ["Claim", "Proof", "ProofResult", "is_zero"]
