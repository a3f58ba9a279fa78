"""Backward rules for modified backprop and the engine that attaches them (see engine.py)."""

from workbench.rules.engine import Attachment, Composite, Rule, TraceEntry, bypass, matches
from workbench.rules.rules import (
    AlphaBeta,
    DeconvNet,
    ElementwiseRule,
    Epsilon,
    Flat,
    Gamma,
    Gradient,
    Group,
    GuidedBackprop,
    GeneralizedGamma,
    LinearRule,
    LRPZero,
    Pass,
    StabilizerWarning,
    RectGrad,
    Rescale,
    RescaleMaxPool,
    Term,
    WSquare,
    ZBox,
    ZPlus,
)
from workbench.rules.canonizers import MergeBatchNorm, ResidualSum, Sum
from workbench.rules.composites import CONSERVATIVE, composite, composite_names

__all__ = [
    "AlphaBeta", "Attachment", "CONSERVATIVE", "Composite", "DeconvNet", "ElementwiseRule", "Epsilon",
    "Flat", "Gamma", "GeneralizedGamma", "StabilizerWarning", "Gradient", "Group", "GuidedBackprop", "LRPZero", "LinearRule", "MergeBatchNorm",
    "Pass", "RectGrad", "Rescale", "RescaleMaxPool", "ResidualSum", "Rule", "Sum", "Term", "TraceEntry",
    "WSquare", "ZBox", "ZPlus", "bypass", "composite", "composite_names", "matches",
]
