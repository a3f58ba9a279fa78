"""I-GOS: a deletion mask optimized with integrated-gradient descent (Qi, Khorram & Li, AAAI 2020).

A mask M in [0, 1]^(h x w) (1 keeps a pixel) at any resolution up to the image's is upsampled
bilinearly (corners aligned) to U(M) of the image size and perturbs the image towards a blurred copy
x~ (the canvas):

    phi(M) = x~ + U(M) (x - x~),
    L(M)   = f_t(phi(M)) + lambda1 mean|1 - M| + lambda2 TV_beta(M),
    TV_beta(M) = mean_{i,j} |M_{i,j} - M_{i+1,j}|^beta + mean_{i,j} |M_{i,j} - M_{i,j+1}|^beta,

f_t the class probability (``score="logit"`` for the logit). Starting from M = 1, each iteration

1. computes a descent direction d. ``direction="integrated-gradients"`` (I-GOS):
       d = sum_k w_k grad_M f_t(x~ + s_k U(M) (x - x~) + eps_k) + grad_M (regularizers),
   the path from the all-deleted mask (s = 0) to the current one, quadrature nodes s_k and weights
   w_k (default: the right Riemann sum s_k = k / n, w_k = 1 / n, as the authors' code), eps_k ~
   N(0, noise^2) added to every path image (against adversarial masks). Reading of the authors'
   code: it differentiates the score of the *scaled* mask s_k M with respect to M, so each node
   carries the chain-rule factor s_k; the paper writes the direction as integrated gradients of the
   score along that path. ``direction="gradient"``: d = grad_M L(M), the exact gradient of the
   (noise-free) objective -- the meaningful-perturbation style baseline of the comparison;
2. backtracking line search: from a = initial_step, shrink a by ``shrink`` until the projected
   step M' = clip(M - a d, 0, 1) satisfies the authors' (revised) Armijo condition
       L(M') <= L(M) - c a ||d||^2,          c = ``armijo``,
   on the noise-free objective. If a falls below ``min_step`` the iteration takes no step (the
   reference code then takes the tiny step anyway; here every accepted step meets the condition).

Cost per iteration and image: n gradient passes (one batch) plus one forward per line-search
trial; L(M) for the next condition is the accepted trial's value, so no extra forward is spent on it
(the reference spends one forward whose graph is never used, and one more for a plotted curve; a
variant that re-evaluates the noisy path at every trial is 2.8x slower). With a deterministic
direction (``"gradient"``, or ``noise=0``) a sample whose line search fails stops: it would only
repeat the same direction.

``mode="deletion+insertion"`` is the iGOS++ formulation (Khorram, Lawson & Li, ACM CHIL 2021,
arXiv 2012.15783): a deletion mask M_d and an insertion mask M_i, combined C = U(M_d) U(M_i);
insertion images show the deleted region on the canvas, psi(m) = x + m (x~ - x), and

    L = 1/2 [f(phi(C)) - f(psi(C)) + f(phi(U(M_d))) - f(psi(U(M_i)))] + lambda1 mean|1 - M_d M_i|
        + lambda2 TV_beta(M_d M_i),

each score term along its own scaled path (4 n gradient passes per iteration). The reference uses
a bilateral (image-aware) TV and, in its line search, objectives without the 1/2 and with noise;
here the line search and the direction use the same objective. The map returned by ``attribute``
is 1 - U(M) (1 - C for iGOS++), repeated over channels: high where deleting matters.

Inputs that cannot carry a mask of the configured resolution (non-image inputs, images smaller
than the mask) raise ``UnsupportedModelError`` (as Grad-CAM does: the axiom checker reports such
cases as not applicable); impossible configurations raise ``InputError`` at construction.

Defaults (the reference): 28 x 28 mask, 15 iterations x 20 path steps, lambda1 = 1, lambda2 = 20,
beta = 2, blur kernel 51 sigma 50, noise sigma 0.2, step from 200 shrinking by 0.2, Armijo constant
1e-4, smallest step 1e-5. The reference's mid-run division of lambda1 (when the score has barely
moved) is left out: it changes the objective under the line search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.paths import baselines
from workbench.core.errors import InputError, UnsupportedModelError
from workbench.metrics.scores import SCORE_KINDS, class_scores
from workbench.core.modelguard import preserved
from workbench.paths.quadrature import RULES, quadrature
from workbench.core.validation import Target, check_image_batch, check_input, check_model, resolve_baseline
from workbench.methods.base import Method, _normalize_target
from workbench.methods.registry import register

#: an integer (square mask), a pair (h, w), a string 'HxW', or 'full' (the image's own size)
Resolution = Union[int, tuple[int, int], str]
Direction = Literal["integrated-gradients", "gradient"]
Mode = Literal["deletion", "deletion+insertion"]

DIRECTIONS: tuple[str, ...] = ("integrated-gradients", "gradient")
MODES: tuple[str, ...] = ("deletion", "deletion+insertion")

# reference defaults (Qi et al. 2020 and the authors' code)
RESOLUTION = 28
ITERATIONS = 15
PATH_STEPS = 20
PATH_RULE = "right"
L1_WEIGHT = 1.0
TV_WEIGHT = 20.0
TV_BETA = 2.0
BLUR_SIGMA = 50.0
BLUR_KERNEL = 51
NOISE = 0.2
INITIAL_STEP = 200.0
SHRINK = 0.2
ARMIJO = 1e-4
MIN_STEP = 1e-5
#: smallest mask side: total variation needs neighbours
MIN_RESOLUTION = 2


@dataclass(frozen=True)
class LineSearchStep:
    """One iteration of one sample: the step taken (0.0 if none met the condition) and the numbers behind it."""

    iteration: int
    step: float
    objective_before: float
    objective_after: float
    direction_norm_sq: float
    trials: int
    accepted: bool


@dataclass(frozen=True)
class MaskOptimization:
    """The optimized masks with the optimizer's record.

    ``masks`` (N, K, h, w), K = 1 (deletion) or 2 (deletion, insertion), 1 keeps a pixel;
    ``saliency`` (N, 1, H, W) = 1 - U(M) (1 - U(M_d) U(M_i));
    ``objective`` and ``score`` (N, iterations + 1): L and its score part after each iteration
    (entry 0: M = 1; a stopped sample keeps its last value); ``mask_history`` (N, iterations + 1, K, h, w);
    ``steps[i]``: sample i's line searches; ``gradient_passes`` / ``forward_passes`` (N,): images
    sent through the network with / without a backward pass; ``network_calls``: every network call
    in order as (``"gradient"`` or ``"forward"``, images in the batch).
    """

    masks: Tensor
    saliency: Tensor
    objective: Tensor
    score: Tensor
    mask_history: Tensor
    steps: tuple[tuple[LineSearchStep, ...], ...]
    gradient_passes: Tensor
    forward_passes: Tensor
    network_calls: tuple[tuple[str, int], ...]

    @property
    def final_objective(self) -> Tensor:
        return self.objective[:, -1]


def total_variation(mask: Tensor, beta: float) -> Tensor:
    """TV_beta of (N, h, w) masks: mean |vertical differences|^beta + mean |horizontal differences|^beta, shape (N,)."""
    dv = (mask[:, 1:, :] - mask[:, :-1, :]).abs().pow(beta).flatten(1).mean(1)
    dh = (mask[:, :, 1:] - mask[:, :, :-1]).abs().pow(beta).flatten(1).mean(1)
    return dv + dh


def upsample(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling with aligned corners (the reference's UpsamplingBilinear2d); identity at full size."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=True)


@register
class IGOS(Method):
    """I-GOS mask optimization (integrated-gradient or plain-gradient direction; iGOS++ option)."""

    name = "igos"
    description = "I-GOS: mask optimized by integrated-gradient descent with Armijo line search (blurred canvas)"
    uses_baseline = True

    @classmethod
    def matrix_variants(cls) -> tuple[dict[str, Any], ...]:
        """Not in the ``check --all`` matrix: an optimisation per call, minutes per axiom: checked on its own (workbench check igos)."""
        return ()

    def __init__(
        self,
        *,
        resolution: Resolution = RESOLUTION,
        iterations: int = ITERATIONS,
        steps: int = PATH_STEPS,
        rule: str = PATH_RULE,
        direction: str = "integrated-gradients",
        mode: str = "deletion",
        l1: float = L1_WEIGHT,
        tv: float = TV_WEIGHT,
        tv_beta: float = TV_BETA,
        blur_sigma: float = BLUR_SIGMA,
        blur_kernel: int = BLUR_KERNEL,
        noise: float = NOISE,
        initial_step: float = INITIAL_STEP,
        shrink: float = SHRINK,
        armijo: float = ARMIJO,
        min_step: float = MIN_STEP,
        score: str = "probability",
        seed: int = 0,
        chunk_size: Optional[int] = None,
    ) -> None:
        self.resolution = _check_resolution(resolution)
        super().__init__(
            resolution=_resolution_option(self.resolution, resolution), iterations=iterations, steps=steps, rule=rule, direction=direction, mode=mode,
            l1=l1, tv=tv, tv_beta=tv_beta, blur_sigma=blur_sigma, blur_kernel=blur_kernel, noise=noise,
            initial_step=initial_step, shrink=shrink, armijo=armijo, min_step=min_step, score=score, seed=seed,
            chunk_size=chunk_size,
        )
        _check_int("iterations", iterations, 1)
        _check_int("steps", steps, 1)
        if rule not in RULES:
            raise InputError(f"unknown quadrature rule {rule!r}; valid rules: {', '.join(RULES)}")
        quadrature(rule, steps)  # raises for too few steps of the rule
        if direction not in DIRECTIONS:
            raise InputError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if score not in SCORE_KINDS:
            raise InputError(f"unknown score {score!r}; valid scores: {', '.join(SCORE_KINDS)}")
        for label, v in (("l1", l1), ("tv", tv), ("noise", noise), ("blur_sigma", blur_sigma)):
            _check_real(label, v, low=0.0)
        _check_real("tv_beta", tv_beta, low=1.0)
        _check_real("initial_step", initial_step, low=0.0, strict=True)
        _check_real("min_step", min_step, low=0.0, strict=True)
        if not min_step < initial_step:
            raise InputError(f"min_step must be below initial_step, got {min_step} >= {initial_step}")
        _check_real("shrink", shrink, low=0.0, strict=True)
        if not shrink < 1:
            raise InputError(f"shrink must be in (0, 1), got {shrink}")
        _check_real("armijo", armijo, low=0.0, strict=True)
        if not armijo < 1:
            raise InputError(f"armijo must be in (0, 1), got {armijo}")
        if isinstance(blur_kernel, bool) or not isinstance(blur_kernel, int) or blur_kernel < 1 or blur_kernel % 2 == 0:
            raise InputError(f"blur_kernel must be a positive odd integer, got {blur_kernel!r}")
        if chunk_size is not None:
            _check_int("chunk_size", chunk_size, 1)
        self.iterations, self.steps, self.rule = iterations, steps, rule
        self.direction, self.mode, self.score = direction, mode, score
        self.l1, self.tv, self.tv_beta = float(l1), float(tv), float(tv_beta)
        self.blur_sigma, self.blur_kernel, self.noise = float(blur_sigma), blur_kernel, float(noise)
        self.initial_step, self.shrink, self.armijo, self.min_step = float(initial_step), float(shrink), float(armijo), float(min_step)
        self.seed, self.chunk_size = int(seed), chunk_size

    # -- public ---------------------------------------------------------------------------------
    def optimize(self, model: nn.Module, x: Tensor, *, target: Target, baseline: Optional[Union[float, Tensor]] = None) -> MaskOptimization:
        """Optimize the masks of every image of x; `baseline` is the canvas (default: the blurred image)."""
        check_model(model)
        check_input(x, model)
        t = _normalize_target(target, x.shape[0])
        canvas = None if baseline is None else resolve_baseline(baseline, x)
        with preserved(model, freeze_parameters=True):
            return self._optimize(model, x.detach(), t, canvas)

    def _attribute(self, model: nn.Module, x: Tensor, target: Tensor, baseline: Optional[Tensor]) -> Tensor:
        r = self._optimize(model, x, target, baseline)
        return r.saliency.expand_as(x).clone()

    @property
    def deterministic_direction(self) -> bool:
        return self.direction == "gradient" or self.noise == 0.0

    # -- the optimizer -----------------------------------------------------------------------------
    def _optimize(self, model: nn.Module, x: Tensor, target: Tensor, canvas: Optional[Tensor]) -> MaskOptimization:
        check_image_batch(x, "igos", why="it optimizes a spatial mask over the image", error=UnsupportedModelError)
        n, _, height, width = x.shape
        rh, rw = self._mask_size(height, width)
        canvas = baselines.gaussian_blur(x, self.blur_sigma, self.blur_kernel) if canvas is None else canvas.detach()
        k = 1 if self.mode == "deletion" else 2
        masks = torch.ones((n, k, rh, rw), dtype=x.dtype, device=x.device)
        book = _Bookkeeping(n, x.device)
        objective, score = self._objective(model, x, canvas, target, masks, book, torch.arange(n, device=x.device))
        obj_hist, score_hist, mask_hist = [objective], [score], [masks]
        records: list[list[LineSearchStep]] = [[] for _ in range(n)]
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        generator = torch.Generator().manual_seed(self.seed)
        for it in range(self.iterations):
            noise = self._draw_noise(x, generator)  # drawn every iteration: a sample's noise never depends on the batch
            idx = active.nonzero().flatten()
            if len(idx):
                d = self._direction(model, x[idx], canvas[idx], target[idx], masks[idx], noise, book, idx)
                new_masks, new_obj, new_score, steps = self._line_search(
                    model, x[idx], canvas[idx], target[idx], masks[idx], d, objective[idx], score[idx], book, idx, it
                )
                masks, objective, score = masks.clone(), objective.clone(), score.clone()
                masks[idx], objective[idx], score[idx] = new_masks, new_obj, new_score
                for j, s in zip(idx.tolist(), steps):
                    records[j].append(s)
                    if self.deterministic_direction and not s.accepted:
                        active[j] = False
            obj_hist.append(objective)
            score_hist.append(score)
            mask_hist.append(masks)
        up = upsample(masks, (height, width)).prod(1, keepdim=True)
        return MaskOptimization(
            masks=masks,
            saliency=1.0 - up,
            objective=torch.stack(obj_hist, 1),
            score=torch.stack(score_hist, 1),
            mask_history=torch.stack(mask_hist, 1),
            steps=tuple(tuple(r) for r in records),
            gradient_passes=book.gradient_rows,
            forward_passes=book.forward_rows,
            network_calls=tuple(book.calls),
        )

    def _mask_size(self, height: int, width: int) -> tuple[int, int]:
        if self.resolution == "full":
            rh, rw = height, width
        else:
            rh, rw = self.resolution  # type: ignore[misc]
        if height < MIN_RESOLUTION or width < MIN_RESOLUTION:
            raise UnsupportedModelError(f"igos needs images of at least {MIN_RESOLUTION}x{MIN_RESOLUTION} pixels, got {height}x{width}")
        if rh > height or rw > width:
            raise UnsupportedModelError(
                f"mask resolution {rh}x{rw} is finer than the image ({height}x{width}); "
                f"choose a resolution between {MIN_RESOLUTION} and the image size, or resolution='full'"
            )
        return rh, rw

    # -- terms of the objective ---------------------------------------------------------------------
    def _terms(self, up: Tensor) -> list[tuple[str, Tensor, float]]:
        """(kind, upsampled mask (N, 1, H, W), coefficient) of each score term of the objective."""
        if self.mode == "deletion":
            return [("deletion", up[:, :1], 1.0)]
        both = up[:, :1] * up[:, 1:2]
        return [("deletion", both, 0.5), ("insertion", both, -0.5), ("deletion", up[:, :1], 0.5), ("insertion", up[:, 1:2], -0.5)]

    def _images(self, x: Tensor, canvas: Tensor, masks: Tensor, scales: Tensor) -> tuple[Tensor, Tensor]:
        """Images (N, T, S, C, H, W) of every term at every path scale s, and the term coefficients (T,)."""
        up = upsample(masks, tuple(x.shape[-2:]))
        imgs, coefs = [], []
        s = scales.view(1, -1, 1, 1, 1)
        for kind, m, coef in self._terms(up):
            m = m.unsqueeze(1) * s  # (N, S, 1, H, W)
            if kind == "deletion":
                img = canvas.unsqueeze(1) + m * (x - canvas).unsqueeze(1)
            else:
                img = x.unsqueeze(1) + m * (canvas - x).unsqueeze(1)
            imgs.append(img)
            coefs.append(coef)
        return torch.stack(imgs, 1), torch.tensor(coefs, dtype=x.dtype, device=x.device)

    def _regularizer(self, masks: Tensor) -> Tensor:
        m = masks.prod(1)
        return self.l1 * (1.0 - m).abs().flatten(1).mean(1) + self.tv * total_variation(m, self.tv_beta)

    def _objective(
        self, model: nn.Module, x: Tensor, canvas: Tensor, target: Tensor, masks: Tensor, book: "_Bookkeeping", rows: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Noise-free L(M) and its score part, shape (N,) each; one forward per term image."""
        one = torch.ones(1, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            imgs, coefs = self._images(x, canvas, masks, one)
            n, t = imgs.shape[:2]
            flat = imgs.reshape(n * t, *x.shape[1:])
            f = self._scores_forward(model, flat, target.repeat_interleave(t), book, rows, per_sample=t)
            score = (f.view(n, t) * coefs).sum(1)
            return score + self._regularizer(masks), score

    def _direction(
        self, model: nn.Module, x: Tensor, canvas: Tensor, target: Tensor, masks: Tensor, noise: Optional[Tensor],
        book: "_Bookkeeping", rows: Tensor,
    ) -> Tensor:
        """d (N, K, h, w): the path-integrated (or plain) gradient of the score terms plus the regularizers' gradient."""
        if self.direction == "integrated-gradients":
            q = quadrature(self.rule, self.steps)
            scales = q.nodes.to(dtype=x.dtype, device=x.device)
            weights = q.weights.to(dtype=x.dtype, device=x.device)
        else:
            scales = weights = torch.ones(1, dtype=x.dtype, device=x.device)
            noise = None
        with torch.enable_grad():
            m = masks.detach().requires_grad_(True)
            imgs, coefs = self._images(x, canvas, m, scales)
            n, t, s = imgs.shape[:3]
            flat_graph = imgs.reshape(n * t * s, *x.shape[1:])
            flat = flat_graph.detach()
            if noise is not None:
                flat = (flat.view(n, t, s, *x.shape[1:]) + noise.unsqueeze(0)).reshape(n * t * s, *x.shape[1:])
            # d/dimage of sum_k w_k coef_t f(image), batched through the network, then back to the mask
            row_weight = (coefs.view(1, t, 1) * weights.view(1, 1, s)).expand(n, t, s).reshape(-1)
            g = self._scores_gradient(model, flat, target.repeat_interleave(t * s), row_weight, book, rows, per_sample=t * s)
            (d_score,) = torch.autograd.grad(flat_graph, m, grad_outputs=g)
            (d_reg,) = torch.autograd.grad(self._regularizer(m).sum(), m)
        return (d_score + d_reg).detach()

    def _line_search(
        self, model: nn.Module, x: Tensor, canvas: Tensor, target: Tensor, masks: Tensor, d: Tensor,
        objective: Tensor, score: Tensor, book: "_Bookkeeping", rows: Tensor, iteration: int,
    ) -> tuple[Tensor, Tensor, Tensor, list[LineSearchStep]]:
        """Backtracking from initial_step until L(clip(M - a d)) <= L(M) - armijo a ||d||^2, per sample."""
        n = x.shape[0]
        norm_sq = d.flatten(1).pow(2).sum(1)
        step = torch.full((n,), self.initial_step, dtype=x.dtype, device=x.device)
        searching = norm_sq > 0  # d = 0: stationary, nothing to search
        accepted = torch.zeros(n, dtype=torch.bool, device=x.device)
        trials = torch.zeros(n, dtype=torch.long, device=x.device)
        new_masks, new_obj, new_score = masks.clone(), objective.clone(), score.clone()
        while bool(searching.any()):
            i = searching.nonzero().flatten()
            trial = (masks[i] - step[i].view(-1, 1, 1, 1) * d[i]).clamp(0.0, 1.0)
            obj, sc = self._objective(model, x[i], canvas[i], target[i], trial, book, rows[i])
            trials[i] += 1
            ok = obj <= objective[i] - self.armijo * step[i] * norm_sq[i]
            good = i[ok]
            new_masks[good], new_obj[good], new_score[good] = trial[ok], obj[ok], sc[ok]
            accepted[good] = True
            searching[good] = False
            bad = i[~ok]
            step[bad] = step[bad] * self.shrink
            searching[bad] = step[bad] >= self.min_step
        # one device-to-host copy for the whole batch, not five per sample
        taken = torch.where(accepted, step, torch.zeros_like(step))
        cols = torch.stack([taken.double(), objective.double(), new_obj.double(), norm_sq.double()]).cpu().tolist()
        tried, acc = trials.tolist(), accepted.tolist()
        out = [
            LineSearchStep(
                iteration=iteration,
                step=cols[0][j],
                objective_before=cols[1][j],
                objective_after=cols[2][j],
                direction_norm_sq=cols[3][j],
                trials=tried[j],
                accepted=acc[j],
            )
            for j in range(n)
        ]
        return new_masks, new_obj, new_score, out

    # -- network calls ------------------------------------------------------------------------------
    def _draw_noise(self, x: Tensor, generator: torch.Generator) -> Optional[Tensor]:
        if self.direction != "integrated-gradients" or self.noise == 0.0:
            return None
        terms = 1 if self.mode == "deletion" else 4
        e = torch.randn((terms, self.steps, *x.shape[1:]), generator=generator, dtype=x.dtype)
        return (self.noise * e).to(x.device)

    def _chunks(self, total: int) -> list[slice]:
        size = total if self.chunk_size is None else self.chunk_size
        return [slice(start, start + size) for start in range(0, total, size)]

    def _scores_forward(self, model: nn.Module, images: Tensor, target: Tensor, book: "_Bookkeeping", rows: Tensor, per_sample: int) -> Tensor:
        out = []
        for rows_ in self._chunks(images.shape[0]):
            part = images[rows_]
            out.append(class_scores(model, part, target[rows_], self.score))
            book.calls.append(("forward", part.shape[0]))
        book.forward_rows[rows] += per_sample
        return torch.cat(out)

    def _scores_gradient(
        self, model: nn.Module, images: Tensor, target: Tensor, weight: Tensor, book: "_Bookkeeping", rows: Tensor, per_sample: int
    ) -> Tensor:
        grads = torch.empty_like(images)
        for rows_ in self._chunks(images.shape[0]):
            part = images[rows_].detach().requires_grad_(True)
            f = class_scores(model, part, target[rows_], self.score)
            (g,) = torch.autograd.grad((f * weight[rows_]).sum(), part)
            grads[rows_] = g
            book.calls.append(("gradient", part.shape[0]))
        book.gradient_rows[rows] += per_sample
        return grads


class _Bookkeeping:
    """Counts the images each sample sends through the network, and logs every call."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.gradient_rows = torch.zeros(n, dtype=torch.long, device=device)
        self.forward_rows = torch.zeros(n, dtype=torch.long, device=device)
        self.calls: list[tuple[str, int]] = []


def _check_resolution(resolution: Resolution) -> Union[tuple[int, int], str]:
    """(h, w) or 'full' from an integer, a pair, 'full' or an 'HxW' string."""
    if resolution == "full":
        return "full"
    if isinstance(resolution, str) and "x" in resolution:
        try:
            pair: tuple = tuple(int(v) for v in resolution.split("x"))
        except ValueError:
            pair = ()
    elif isinstance(resolution, int) and not isinstance(resolution, bool):
        pair = (resolution, resolution)
    elif isinstance(resolution, (tuple, list)):
        pair = tuple(resolution)
    else:
        pair = ()
    if len(pair) != 2:
        raise InputError(f"mask resolution must be an integer, a pair (h, w), 'HxW' or 'full', got {resolution!r}")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError(f"mask resolution must hold integers, got {resolution!r}")
        if v < MIN_RESOLUTION:
            raise InputError(
                f"mask resolution {resolution!r} is too coarse: each side needs at least {MIN_RESOLUTION} cells "
                "(the total-variation term compares neighbours)"
            )
    return (int(pair[0]), int(pair[1]))


def _resolution_option(checked: Union[tuple[int, int], str], given: Resolution) -> Resolution:
    """The option as the label shows it: 'full', an integer for a square mask, else 'HxW' (parses back)."""
    if checked == "full" or given == RESOLUTION:
        return given
    h, w = checked  # type: ignore[misc]
    return h if h == w else f"{h}x{w}"


def _check_int(label: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{label} must be an integer >= {low}, got {value!r}")


def _check_real(label: str, value: object, *, low: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):  # type: ignore[operator]
        raise InputError(f"{label} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")
