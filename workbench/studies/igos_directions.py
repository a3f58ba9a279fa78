"""Is the integrated-gradient direction better than the plain gradient? (the claim of I-GOS, Qi et al. 2020)

``compare_directions(cases, a=..., b=...)`` runs two configurations of the I-GOS optimizer -- by
default the reference one (integrated-gradient direction) and the same with ``direction="gradient"``
-- for the same number of iterations on each case (one image, one network, one target), records
each one's final objective L(M) (noise-free, the quantity both minimize) and the network passes it
used, and tests the paired differences with a one-sided Wilcoxon signed-rank test
(H1: a's final objective is lower; cases where both end equal are dropped, as the test does).

``patch_cases(n, saturated=...)`` draws the fixture set used by the tests: patch CNNs
(``workbench.metrics.PatchFixture``) at random positions, sizes and channel counts, calibrated so
that the class probability is drawn from ``p_image`` at the image and ``p_canvas`` at the blurred
canvas (default 0.99-0.999 at the image: confident, as trained classifiers mostly are on their top
class -- the regime of the paper's claim). ``saturated=True`` clamps each patch pixel's
contribution at a cap the textured patch partly exceeds (the plain gradient is zero on those
pixels, as for a confident trained network); ``saturated=False`` has no cap (the score is a smooth
function of the patch).

Measured (tests/unit/test_igos_directions.py, experiments/igos_deletion_insertion.py): the
integrated-gradient direction wins where the plain gradient stalls at the all-ones start
(saturation); where the gradient can move, it reaches a slightly lower objective at equal
iterations with a tenth of the passes.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.metrics.deletion import BLURRED_CANVAS
from workbench.metrics.fixtures import Patch, PatchFixture
from workbench.methods.igos import IGOS, MaskOptimization


@dataclass(frozen=True)
class DirectionCase:
    """One optimization problem: a model, one image (1, C, H, W) and the class to explain."""

    name: str
    model: nn.Module
    x: Tensor
    target: int
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CaseResult:
    """Both optimizers on one case: start and final objectives, passes used (images through the network)."""

    name: str
    start: float
    objective_a: float
    objective_b: float
    gradient_passes_a: int
    forward_passes_a: int
    gradient_passes_b: int
    forward_passes_b: int
    iterations_b: int  # iterations b ran (a deterministic direction stops when its line search fails)


@dataclass(frozen=True)
class DirectionComparison:
    """Per-case results and the paired test of a against b."""

    label_a: str
    label_b: str
    results: tuple[CaseResult, ...]
    statistic: float
    p_value: float
    alternative: str

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def wins_a(self) -> int:
        return sum(r.objective_a < r.objective_b for r in self.results)

    @property
    def wins_b(self) -> int:
        return sum(r.objective_b < r.objective_a for r in self.results)

    @property
    def median_a(self) -> float:
        return statistics.median(r.objective_a for r in self.results)

    @property
    def median_b(self) -> float:
        return statistics.median(r.objective_b for r in self.results)

    @property
    def median_difference(self) -> float:
        """Median of objective_a - objective_b (negative: a reaches lower objectives)."""
        return statistics.median(r.objective_a - r.objective_b for r in self.results)

    def to_dict(self) -> dict:
        return {
            "a": self.label_a, "b": self.label_b, "n": self.n, "wins_a": self.wins_a, "wins_b": self.wins_b,
            "median_a": self.median_a, "median_b": self.median_b, "median_difference": self.median_difference,
            "statistic": self.statistic, "p_value": self.p_value, "alternative": self.alternative,
            "cases": [asdict(r) for r in self.results],
        }

    def summary(self) -> str:
        """One paragraph: medians, wins, the test, and the passes each used."""
        ga = statistics.median(r.gradient_passes_a for r in self.results)
        gb = statistics.median(r.gradient_passes_b for r in self.results)
        fa = statistics.median(r.forward_passes_a for r in self.results)
        fb = statistics.median(r.forward_passes_b for r in self.results)
        return (
            f"n = {self.n}: median final objective {self.median_a:.4f} ({self.label_a}) vs {self.median_b:.4f} "
            f"({self.label_b}); a lower in {self.wins_a}, b lower in {self.wins_b}; Wilcoxon signed-rank "
            f"({self.alternative}) W = {self.statistic:g}, p = {self.p_value:.3g}; median passes per image "
            f"{ga:g} gradient + {fa:g} forward (a) vs {gb:g} + {fb:g} (b)"
        )


def compare_directions(
    cases: Sequence[DirectionCase],
    *,
    a: Optional[IGOS] = None,
    b: Optional[IGOS] = None,
    alternative: str = "less",
) -> DirectionComparison:
    """Run optimizers `a` (default: I-GOS) and `b` (default: `a` with the gradient direction) on every case."""
    if not cases:
        raise InputError("compare_directions needs at least one case")
    a = a if a is not None else IGOS()
    b = b if b is not None else IGOS(**{**a.options, "direction": "gradient"})
    if a.iterations != b.iterations:
        raise InputError(f"compare at equal iterations: a runs {a.iterations}, b runs {b.iterations}")
    results = [
        case_result(case.name, a.optimize(case.model, case.x, target=case.target), b.optimize(case.model, case.x, target=case.target))
        for case in cases
    ]
    return paired_comparison(a.label, b.label, results, alternative=alternative)


def case_result(name: str, ra: MaskOptimization, rb: MaskOptimization) -> CaseResult:
    """The numbers the comparison keeps from two single-image optimizations of the same problem."""
    return CaseResult(
        name=name,
        start=float(ra.objective[0, 0]),
        objective_a=float(ra.final_objective[0]),
        objective_b=float(rb.final_objective[0]),
        gradient_passes_a=int(ra.gradient_passes[0]),
        forward_passes_a=int(ra.forward_passes[0]),
        gradient_passes_b=int(rb.gradient_passes[0]),
        forward_passes_b=int(rb.forward_passes[0]),
        iterations_b=len(rb.steps[0]),
    )


def paired_comparison(label_a: str, label_b: str, results: Sequence[CaseResult], *, alternative: str = "less") -> DirectionComparison:
    """One-sided (by default) Wilcoxon signed-rank test of objective_a - objective_b over the cases."""
    from scipy.stats import wilcoxon

    if not results:
        raise InputError("a paired comparison needs at least one case")
    if alternative not in ("less", "greater", "two-sided"):
        raise InputError(f"alternative must be 'less', 'greater' or 'two-sided', got {alternative!r}")
    diffs = [r.objective_a - r.objective_b for r in results]
    if all(d == 0 for d in diffs):
        statistic, p = 0.0, 1.0
    else:
        test = wilcoxon(diffs, alternative=alternative)
        statistic, p = float(test.statistic), float(test.pvalue)
    return DirectionComparison(label_a, label_b, tuple(results), statistic, p, alternative)


def patch_cases(
    n: int,
    *,
    saturated: bool = True,
    size: int = 16,
    seed: int = 0,
    p_image: tuple[float, float] = (0.99, 0.999),
    p_canvas: tuple[float, float] = (0.05, 0.3),
    cap: tuple[float, float] = (0.4, 0.7),
    patch_side: tuple[int, int] = (3, 6),
    dtype: torch.dtype = torch.float64,
) -> list[DirectionCase]:
    """`n` calibrated patch-CNN cases (see the module docstring); everything drawn from `seed`."""
    if n < 1:
        raise InputError(f"n must be positive, got {n}")
    if not 1 <= patch_side[0] <= patch_side[1] <= size:
        raise InputError(f"patch sides {patch_side} do not fit images of side {size}")
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))

    def integer(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (), generator=g))

    cases = []
    for i in range(n):
        ph, pw = integer(*patch_side), integer(*patch_side)
        patch = Patch(integer(0, size - ph), integer(0, size - pw), ph, pw)
        channels = (1, 3)[integer(0, 1)]
        c = uniform(*cap) if saturated else None
        base = PatchFixture((size, size), patch, channels=channels, cap=c)
        x = base.image(g, inside=(0.3, 1.0), dtype=dtype)
        pi, pc = uniform(*p_image), uniform(*p_canvas)
        fx = base.calibrated(x, BLURRED_CANVAS(x), p_image=pi, p_canvas=pc)
        info = {"patch": asdict(patch), "channels": channels, "cap": c, "p_image": pi, "p_canvas": pc}
        cases.append(DirectionCase(f"patch-{i}", fx.model(dtype=dtype), x, 0, info))
    return cases
