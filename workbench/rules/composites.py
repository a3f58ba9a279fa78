"""Named composites: which rule on which layer. ``composite(name, **options)`` builds one.

Layer classes: DENSE (Linear), CONV (Conv1d/2d/3d), POOL_LINEAR (average pools, the canonizer's
Sum, a BatchNorm the canonizer could not fold: modules linear in their input, given the LRP-0 /
epsilon rule -- Zennit's "Norm"), ReLU (relevance passes). Max pools (every one torch ships) send
the relevance to the window's winner under the named tie convention ``max_pool_ties``
(``pooling.MAX_POOL_TIES``: "first" or "split"; conservative). Every LRP composite canonizes with
``MergeBatchNorm`` and ``ResidualSum``. Other elementwise activations are not modelled
(``workbench.core.coverage`` refuses them) unless ``monotone_pass=True`` names the convention that
relevance passes unchanged through every monotone elementwise activation (``rules.MONOTONE``).

    name                 dense        conv          first layer   (DTD / Zennit name)
    zero                 LRP-0        LRP-0         -
    epsilon              epsilon      epsilon       -
    gamma                gamma        gamma         -
    zplus                z+           z+            -             DTD z+ everywhere
    alpha-beta           alpha-beta   alpha-beta    -
    epsilon-plus         epsilon      z+ (signed)   -             EpsilonPlus
    epsilon-plus-flat    epsilon      z+ (signed)   flat          EpsilonPlusFlat
    epsilon-alpha2-beta1 epsilon      alpha2beta1   -             EpsilonAlpha2Beta1
    epsilon-gamma-box    epsilon      gamma         zB            EpsilonGammaBox
    dtd-zb               z+           z+            zB            DTD for box-bounded pixels
    dtd-w2               z+           z+            w-square      DTD for unbounded inputs
    flat / w-square      flat / w2    flat / w2     -             (rule tests; they do not conserve in general)

Options (all composites accept all, unused ones are ignored): epsilon (1e-6), gamma (0.25),
alpha (2), beta (1), low / high (zB box: numbers, one per channel, or None -- the default --
for [-B, B], B = max(3, max |x|) per sample), stabilizer (0: exact division with
0/0 := 0; Zennit uses 1e-6), bias (whether LRP-0/epsilon/gamma denominators include the bias,
default True), zplus_bias (z+ denominators include b+, default False; Zennit: True), generalized_gamma (default
False: the classic gamma; True: Zennit's generalized gamma, ``rules.GeneralizedGamma``),
max_pool_ties ("first"), monotone_pass (False).

Conventions that differ from Zennit 0.5 (measured on resnet18): alpha-beta here leaves biases out
of both shares (Zennit puts b+ / b- in them); gamma is by default the classic w + gamma w+ of
Montavon et al. 2019 on every unit; ``generalized_gamma=True`` is Zennit's generalized gamma (Andeol
et al. 2021, ``rules.GeneralizedGamma``: units with z < 0 use the negative parts), equal to Zennit's
to round-off on resnet18/50 (tests/unit/test_rules_engine.py). Both gamma rules warn
(``rules.StabilizerWarning``) where a denominator falls below 1% of |z|: on a randomized resnet50
the classic one does, and its input relevance sums to ~ -6e4 F(x). EpsilonPlusFlat agrees with Zennit's to round-off
(benchmarks/bench_modified_backprop.py, tests/unit/test_rules_engine.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from torch import nn

from workbench.core.errors import InputError
from workbench.rules import rules as R
from workbench.rules.canonizers import MergeBatchNorm, ResidualSum, Sum
from workbench.rules.engine import Composite
from workbench.rules.pooling import MAX_POOLS, MaxPoolRule, check_ties

DENSE = (nn.Linear,)
CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
POOL_LINEAR = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, Sum, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: the elementwise activations DeepLift's Rescale rule models (all of torch's)
ACTIVATIONS = R.ELEMENTWISE

DEFAULTS = dict(
    epsilon=1e-6, gamma=0.25, alpha=2.0, beta=1.0, low=None, high=None, stabilizer=0.0, bias=True, zplus_bias=False,
    generalized_gamma=False, max_pool_ties="first", monotone_pass=False,
)


def _lrp(dense: R.Rule, conv: R.Rule, first: Any, o: dict, name: str) -> Composite:
    pool = R.LRPZero(bias=True, stabilizer=o["stabilizer"]) if o["stabilizer"] else R.LRPZero()
    activations = R.MONOTONE if o["monotone_pass"] else R.Pass.models
    mapping = [(activations, R.Pass()), (DENSE, dense), (CONV, conv), (POOL_LINEAR, pool), (MAX_POOLS, MaxPoolRule(o["max_pool_ties"]))]
    return Composite(mapping, first=first, canonizers=[MergeBatchNorm(), ResidualSum()], name=name)


def _rule(kind: str, o: dict) -> R.Rule:
    try:
        return R.KINDS[kind](o)
    except KeyError:
        raise InputError(f"unknown rule kind {kind!r}; known: {', '.join(sorted(R.KINDS))}") from None


class CompositeSpec(NamedTuple):
    """Which rule kind (``rules.KINDS``) on dense layers, on conv layers and on the first layer
    (None: the layer's own rule); ``conserves``: every rule conserves relevance on bias-free ReLU
    networks with F_t(x) > 0 and signed inputs, so the composite claims conservation."""

    dense: str
    conv: str
    first: Optional[str] = None
    conserves: bool = False


#: composite name -> its rule kinds (the one table: names, rules, and the conservation claim).
#: Conserving: LRP-0 and the DTD presets. Not z+ or gamma at the input layer (a zero denominator
#: with signed x), nor "flat" and "w-square" at every layer: they send relevance to units whatever
#: their activation, and a unit with all-zero incoming weights (w-square) or a residual sum /
#: average pool whose inputs are all zero (flat, whose LRP-0 there has 0/0 := 0) then drops it --
#: the checker found both (tests/properties/test_proof_twins_claims.py keeps the shrunk cases).
TABLE: dict[str, CompositeSpec] = {
    "zero": CompositeSpec("zero", "zero", conserves=True),
    "epsilon": CompositeSpec("epsilon", "epsilon"),
    "gamma": CompositeSpec("gamma", "gamma"),
    "zplus": CompositeSpec("zplus", "zplus"),
    "alpha-beta": CompositeSpec("alpha-beta", "alpha-beta"),
    "flat": CompositeSpec("flat", "flat"),
    "w-square": CompositeSpec("w-square", "w-square"),
    "epsilon-plus": CompositeSpec("epsilon", "zplus-signed"),
    "epsilon-plus-flat": CompositeSpec("epsilon", "zplus-signed", "flat"),
    "epsilon-alpha2-beta1": CompositeSpec("epsilon", "alpha2-beta1"),
    "epsilon-gamma-box": CompositeSpec("epsilon", "gamma", "zb"),
    "dtd-zb": CompositeSpec("zplus", "zplus", "zb", conserves=True),
    "dtd-w2": CompositeSpec("zplus", "zplus", "w-square", conserves=True),
}

#: the composites that claim conservation (generated from TABLE)
CONSERVATIVE = frozenset(name for name, spec in TABLE.items() if spec.conserves)


def composite_names() -> list[str]:
    return sorted(TABLE)


def composite(name: str, **options: Any) -> Composite:
    """Build the named LRP composite (see the module docstring for names and options)."""
    if name not in TABLE:
        raise InputError(f"unknown composite {name!r}; known: {', '.join(composite_names())}")
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise InputError(f"unknown composite options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    check_ties(o["max_pool_ties"])
    dense, conv, first, _ = TABLE[name]
    return _lrp(_rule(dense, o), _rule(conv, o), _rule(first, o) if first else None, o, name)


def elementwise(rule: R.Rule, name: str = "", *, max_pool_ties: str = "first") -> Composite:
    """A composite putting `rule` on the modules it models (every ReLU for GBP, DeconvNet, RectGrad,
    gradient) and the max-pool gradient under the named tie convention on every max pool."""
    return Composite([(rule.models, rule), (MAX_POOLS, MaxPoolRule(check_ties(max_pool_ties)))], name=name)


def deeplift(store: Any, *, max_pool_ties: str = "first") -> Composite:
    """DeepLift Rescale: Rescale at every elementwise activation, exact multipliers at every max
    pool; affine layers (Linear, Conv, BatchNorm, average pools, sums) keep their gradient (exact)."""
    rescale, pool = R.Rescale(store), R.RescaleMaxPool(store, max_pool_ties)
    return Composite([(rescale.models, rescale), (pool.models, pool)], name="deeplift")
