"""The axioms on a given network: Hypothesis draws a *choice* (transform, layer, image, baseline),
``build`` turns it into a Case of rewritten copies of the user's model, and the evaluation is
the fixture checker's own (``workbench.axioms``) wherever it is not tied to drawn networks.

A choice is a small JSON dict of integers and names, so Hypothesis shrinks it to the smallest
failing choice (first site, first channel, zero baseline) and a replay file holds it verbatim.

* implementation-invariance: f vs a rewrite (``fold``, ``permute``, ``rescale``, ``split``) of it;
* dummy: an extra input channel the first conv ignores; its attribution must be 0;
* symmetry: an extra input channel twinning channel i (same first-layer weights, same values);
  A_i = A_twin;
* completeness, sensitivity-a: the model itself on a real image and a drawn baseline;
* linearity: h = a f + b f2 with f2 the model with its classes rotated, one network;
* full-gradient-completeness: phi(S(x), x) = F(x) for methods exposing ``reconstruct``.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

from workbench.paths import baselines as B
from workbench.axioms import get_axiom
from workbench.axioms.base import Axiom, Case, Outcome, attribute, relative
from workbench.axioms.weak_dependence import reconstruction_outcome
from workbench.core.errors import InputError, UnsupportedModelError
from workbench.check.network import rewrites as R
from workbench.check.network.network import Network

_SCALES = (2.0, 0.5, 4.0, 0.25, 3.0)
_FRACTIONS = (0.5, 0.25, 2.0, -1.0)
_COEFFICIENTS = (1.0, 2.0, -1.0, 0.5, -0.5, 3.0)
_CONSTANTS = (0.5, -0.5, 1.0, -1.0)
_VALUES = (0.0, 1.0, -1.0, 2.0, -2.0)


# -- shared draws: image, baseline, target -------------------------------------------------------
def _baselines() -> st.SearchStrategy[dict]:
    return st.one_of(
        st.just({"kind": "zero"}),
        st.builds(lambda c: {"kind": "constant", "value": c}, st.sampled_from(_CONSTANTS)),
        st.just({"kind": "blurred"}),
        st.builds(lambda s: {"kind": "uniform", "seed": s}, st.integers(0, 2**16)),
    )


def _common(net: Network) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"image": st.integers(0, net.images.shape[0] - 1), "baseline": _baselines()})


def _baseline(spec: dict, x: Tensor) -> Tensor:
    kind = spec["kind"]
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "constant":
        return torch.full_like(x, float(spec["value"]))
    if kind == "blurred":
        return B.blurred(sigma=max(1.0, x.shape[-1] / 16))(x)
    if kind == "uniform":
        g = torch.Generator().manual_seed(int(spec["seed"]))
        lo, hi = float(x.min()), float(x.max())
        return (lo + (hi - lo) * torch.rand(x.shape, generator=g, dtype=torch.float64)).to(x.device, x.dtype)
    raise InputError(f"unknown baseline choice {spec!r}")


def _image(net: Network, choice: dict) -> tuple[Tensor, Tensor, int]:
    i = int(choice["image"])
    if not 0 <= i < net.images.shape[0]:
        raise InputError(f"image {i} is outside the {net.images.shape[0]} images of the network check")
    x = net.images[i : i + 1]
    with torch.no_grad():
        target = int(net.model(x).argmax(1)[0])
    return x, _baseline(choice["baseline"], x), target


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# -- the network axioms --------------------------------------------------------------------------
class NetworkAxiom(Axiom):
    """A name, a strategy of choices on a network, ``build``, and ``evaluate`` (by default the
    fixture axiom's own); ``run`` (inherited) turns a method's failures into outcomes."""

    name = "axiom"

    def applicable(self, net: Network) -> str:
        """Empty when the axiom can be drawn on `net`, else the reason (a verdict's n/a note)."""
        return ""

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        raise NotImplementedError

    def build(self, net: Network, choice: dict) -> Case:
        raise NotImplementedError

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        return get_axiom(self.name).evaluate(method, case, rtol)


class ImplementationInvariance(NetworkAxiom):
    name = "implementation-invariance"

    def applicable(self, net: Network) -> str:
        from workbench.check.network import sites as S

        if not S.sites(net.graph) and not S.batchnorm_folds(net.graph):
            return "no site: no conv/linear pair joined by channelwise layers and no foldable BatchNorm"
        return ""

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        from workbench.check.network import sites as S

        sites, folds = S.sites(net.graph), S.batchnorm_folds(net.graph)
        options = []
        if folds:
            options.append(st.fixed_dictionaries({"transform": st.just("fold"), "at": st.integers(0, len(folds) - 1)}))
        if sites:
            at = st.integers(0, len(sites) - 1)
            options.append(st.fixed_dictionaries({"transform": st.just("permute"), "at": at, "seed": st.integers(0, 2**16), "swap_only": st.booleans()}))
            options.append(st.fixed_dictionaries({"transform": st.just("split"), "at": at, "unit": st.integers(0, 2**16), "fraction": st.sampled_from(_FRACTIONS)}))
            if any(s.rescale_at for s in sites):
                ok = [i for i, s in enumerate(sites) if s.rescale_at]
                options.append(st.fixed_dictionaries({"transform": st.just("rescale"), "at": st.sampled_from(ok), "seed": st.integers(0, 2**16), "scale": st.sampled_from(_SCALES)}))
        return st.tuples(_common(net), st.one_of(*options)).map(lambda t: {**t[0], **t[1]})

    def build(self, net: Network, choice: dict) -> Case:
        from workbench.check.network import sites as S

        x, b, target = _image(net, choice)
        g, how = net.graph, choice["transform"]
        if how == "fold":
            conv, bn = S.batchnorm_folds(g)[int(choice["at"])]
            h = R.fold_batchnorm(g, conv, bn)
            where = f"{conv}+{bn}"
        else:
            site = S.sites(g)[int(choice["at"])]
            where = site.describe()
            gen = _seeded(choice.get("seed", 0))
            if how == "permute":
                if choice["swap_only"]:
                    i, j = torch.randperm(site.width, generator=gen)[:2].tolist()
                    perm = list(range(site.width))
                    perm[i], perm[j] = j, i
                else:
                    perm = torch.randperm(site.width, generator=gen).tolist()
                h = R.permute(g, site, perm)
            elif how == "rescale":
                if site.rescale_at is None:
                    raise UnsupportedModelError(f"site {where} cannot be rescaled")
                pick = torch.rand(site.width, generator=gen) < 0.5
                h = R.rescale(g, site, [float(choice["scale"]) if p else 1.0 for p in pick.tolist()])
            elif how == "split":
                h = R.split(g, site, int(choice["unit"]) % site.width, float(choice["fraction"]))
            else:
                raise InputError(f"unknown transform {how!r}")
        return Case({"f": net.model, "g": h}, x, b, target, {**choice, "transform": how, "where": where})


def _extra(choice: dict, t: Tensor) -> Tensor:
    """The extra input channel's values: a copy of channel c, or a constant."""
    e = choice["extra"]
    if e["kind"] == "copy":
        c = int(e["channel"]) % t.shape[1]
        return t[:, c : c + 1].clone()
    return torch.full_like(t[:, :1], float(e["value"]))


def _extras() -> st.SearchStrategy[dict]:
    return st.one_of(
        st.builds(lambda c: {"kind": "copy", "channel": c}, st.integers(0, 2)),
        st.builds(lambda v: {"kind": "constant", "value": v}, st.sampled_from(_VALUES)),
    )


class Dummy(NetworkAxiom):
    name = "dummy"

    def applicable(self, net: Network) -> str:
        from workbench.check.network import sites as S

        try:
            S.first_conv(net.graph)
        except UnsupportedModelError as e:
            return str(e)
        return ""

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        return st.tuples(_common(net), _extras()).map(lambda t: {**t[0], "extra": t[1]})

    def build(self, net: Network, choice: dict) -> Case:
        from workbench.check.network import sites as S

        x, b, target = _image(net, choice)
        g = R.dummy_channel(net.graph, S.first_conv(net.graph))
        xx, bb = torch.cat([x, _extra(choice, x)], 1), torch.cat([b, _extra(choice, b)], 1)
        return Case({"f": g}, xx, bb, target, {**choice, "feature": x.shape[1]})

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        k = int(case.params["feature"])
        a = attribute(method, case.nets["f"], case.x, case.target, case.baseline)
        worst = float(a[:, k].abs().max())
        return Outcome(relative(worst, float(a.abs().max())), rtol, True, f"max |A| on the ignored input channel {k}: {worst:.6g}")


class Symmetry(NetworkAxiom):
    name = "symmetry"
    applicable = Dummy.applicable

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        return st.tuples(_common(net), st.integers(0, net.images.shape[1] - 1)).map(lambda t: {**t[0], "channel": t[1]})

    def build(self, net: Network, choice: dict) -> Case:
        from workbench.check.network import sites as S

        x, b, target = _image(net, choice)
        i = int(choice["channel"])
        g = R.twin_channel(net.graph, S.first_conv(net.graph), i)
        xx, bb = torch.cat([x, x[:, i : i + 1]], 1), torch.cat([b, b[:, i : i + 1]], 1)
        return Case({"f": g}, xx, bb, target, {**choice, "i": i, "j": x.shape[1]})

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        i, j = int(case.params["i"]), int(case.params["j"])
        a = attribute(method, case.nets["f"], case.x, case.target, case.baseline)
        diff = float((a[:, i] - a[:, j]).abs().max())
        return Outcome(relative(diff, float(a.abs().max())), rtol, True, f"max |A_{i} - A_twin| = {diff:.6g} (channel {j} twins channel {i})")


class Completeness(NetworkAxiom):
    name = "completeness"

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        return _common(net)

    def build(self, net: Network, choice: dict) -> Case:
        x, b, target = _image(net, choice)
        return Case({"f": net.model}, x, b, target, dict(choice))


class SensitivityA(NetworkAxiom):
    name = "sensitivity-a"

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        n = net.images[0].numel()
        return st.fixed_dictionaries({"image": st.integers(0, net.images.shape[0] - 1), "feature": st.integers(0, n - 1), "value": st.sampled_from(_VALUES)})

    def build(self, net: Network, choice: dict) -> Case:
        x, _, target = _image(net, {**choice, "baseline": {"kind": "zero"}})
        b = x.clone()
        b.view(-1)[int(choice["feature"])] = float(choice["value"])
        return Case({"f": net.model}, x, b, target, dict(choice))


class Linearity(NetworkAxiom):
    name = "linearity"

    def applicable(self, net: Network) -> str:
        from workbench.check.network import sites as S

        try:
            h = net.graph.module(S.head(net.graph))
        except UnsupportedModelError as e:
            return str(e)
        return "" if h.out_features > 1 else "the head has one output; the second head rotates classes"

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        from workbench.check.network import sites as S

        k = net.graph.module(S.head(net.graph)).out_features
        extra = st.fixed_dictionaries({"a": st.sampled_from(_COEFFICIENTS), "b": st.sampled_from(_COEFFICIENTS), "shift": st.integers(1, k - 1)})
        return st.tuples(_common(net), extra).map(lambda t: {**t[0], **t[1]})

    def build(self, net: Network, choice: dict) -> Case:
        from workbench.check.network import sites as S

        x, b, target = _image(net, choice)
        f2, h = R.sum_of_heads(net.graph, S.head(net.graph), float(choice["a"]), float(choice["b"]), int(choice["shift"]))
        return Case({"f1": net.model, "f2": f2, "h": h}, x, b, target, dict(choice))


class FullGradientCompleteness(NetworkAxiom):
    name = "full-gradient-completeness"

    def choices(self, net: Network) -> st.SearchStrategy[dict]:
        return st.fixed_dictionaries({"image": st.integers(0, net.images.shape[0] - 1), "baseline": st.just({"kind": "zero"})})

    def build(self, net: Network, choice: dict) -> Case:
        x, b, target = _image(net, choice)
        return Case({"f": net.model}, x, b, target, dict(choice))

    def evaluate(self, method, case: Case, rtol: float) -> Outcome:
        return reconstruction_outcome(method, case.nets["f"], case.x, case.target, rtol)


#: the axioms of a network check, in report order (weak dependence needs the region construction
#: of drawn piecewise-linear fixtures and is not offered here)
NETWORK_AXIOMS: dict[str, NetworkAxiom] = {
    a.name: a
    for a in (Completeness(), SensitivityA(), Dummy(), ImplementationInvariance(), Linearity(), Symmetry(), FullGradientCompleteness())
}


def get_network_axiom(name: str) -> NetworkAxiom:
    try:
        return NETWORK_AXIOMS[name]
    except KeyError:
        raise InputError(f"axiom {name!r} is not checked on a given network; these are: {', '.join(NETWORK_AXIOMS)}") from None

