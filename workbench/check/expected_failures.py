"""Why a built-in method fails an axiom it does not claim: one line each, shown in every report.

``REASONS[method][axiom]`` explains an expected (unclaimed) failure of the built-in ``method``;
``REASONS[method]["*"]`` covers the axioms not listed. ``reason(label, axiom)`` looks a method
label (``name[options]``) up, falling back to a sentence generated from the method's claims.
The test suite checks that every name here is a registered method and axiom, and that no reason
is given for an axiom the method's default configuration claims.
"""

from __future__ import annotations

from typing import Optional

#: method name -> axiom (or "*": any other unclaimed axiom) -> one-line reason
REASONS: dict[str, dict[str, str]] = {
    "gradient": {
        "completeness": "the gradient is a local slope: it sums to F(x) - F(x') only for a linear F",
        "sensitivity-a": "a feature that changes F between x' and x can have zero slope at x (a switched-off ReLU)",
        "full-gradient-completeness": "the input gradient alone omits the bias terms that FullGrad adds",
    },
    "input-x-gradient": {
        "completeness": "x * dF/dx sums to F(x) only on bias-free ReLU networks with a zero baseline (Euler's theorem)",
        "sensitivity-a": "x * dF/dx is zero where the slope at x is zero, even if the feature moved the output",
        "weak-dependence": "multiplying by x makes the map depend on x, not only on the region's (w, b)",
    },
    "integrated-gradients": {
        "linearity": "error-controlled steps are placed per network, so A(f1 + f2) != A(f1) + A(f2) up to the tolerance; "
                     "tolerance=None or rule='exact' is linear",
        "weak-dependence": "IG integrates the gradient along the path from the baseline, leaving x's linear region",
        "*": "path attribution against a baseline: not a conservation or identity rule",
    },
    "expected-gradients": {
        "linearity": "its IG integrator places error-controlled steps per network (see integrated-gradients)",
        "weak-dependence": "integrates along paths from sampled baselines, leaving x's linear region",
        "*": "an average of path attributions against sampled baselines: not a conservation or identity rule",
    },
    "smoothgrad": {
        "*": "noise-averaged maps: completeness and sensitivity of the base method do not survive the averaging",
    },
    "full-gradients": {
        "*": "claims only the full-gradient decomposition (input gradient + bias gradients), not input-level axioms",
    },
    "fullgrad": {
        "*": "a post-processed saliency map (|.|, rescaled, summed over channels): it claims no axiom",
    },
    "simple-fullgrad": {"*": "a post-processed saliency map (|.|, summed over channels): it claims no axiom"},
    "smooth-fullgrad": {"*": "a post-processed, noise-averaged saliency map: it claims no axiom"},
    "gradcam": {
        "*": "a coarse map of the last conv layer, upsampled: it claims no axiom",
    },
    "guided-backprop": {
        "*": "a modified backward pass (positive signal of active units), not a gradient: only dummy is claimed",
    },
    "deconvnet": {
        "*": "a modified backward pass that ignores the forward ReLU pattern: only dummy is claimed",
    },
    "rectgrad": {
        "*": "a thresholded backward pass (percentile per layer): only dummy is claimed",
    },
    "lrp": {
        "implementation-invariance": "LRP rules act on the layers, so two parametrizations of one function get different maps",
        "*": "the composite's stabilizing rules (epsilon, gamma, box) do not conserve relevance exactly",
    },
    "deeplift": {
        "implementation-invariance": "Rescale multipliers depend on the layer structure, not only on the function "
                                     "(Sundararajan et al. 2017, Sec. 2.2)",
        "*": "multipliers against one reference: summation-to-delta is claimed, the gradient axioms are not",
    },
    "igos": {"*": "an optimized deletion mask: it claims no axiom"},
}


def reason(label: str, axiom: str) -> Optional[str]:
    """The reason the built-in in `label` fails unclaimed `axiom`, or None for other methods."""
    from workbench.methods.registry import _REGISTRY

    name = label.split("[", 1)[0]
    if name not in _REGISTRY:
        return None
    table = REASONS.get(name, {})
    if axiom in table:
        return table[axiom]
    if "*" in table:
        return table["*"]
    return f"{name} does not claim {axiom}"
