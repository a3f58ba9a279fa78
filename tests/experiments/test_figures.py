"""Pictures worth keeping, checked by rendering: colour bars, axis labels, legends off the curves,
plain tick labels; and summaries with the claim's verdict and real Markdown tables."""

import numpy as np
import pytest

from workbench.runner import experiment as X
from workbench.explain import picture_figure


@pytest.fixture
def saved(monkeypatch):
    """Every matplotlib figure saved while the test runs (drawn, so that extents are known)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figures = []
    real = Figure.savefig

    def keep(self, *args, **kwargs):
        real(self, *args, **kwargs)
        figures.append(self)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def colourbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def check_readable(fig):
    """Image panels come with a colour bar; plot panels have both axis labels, plain tick labels
    and a legend outside the plotting area (not over the curves)."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if ax.images:
            if ax.get_title() not in ("input", ""):
                assert colourbars(fig), f"image panel {ax.get_title()!r} without a colour bar"
            continue
        if not ax.lines:
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        for label in ax.get_xticklabels():
            assert "times" not in label.get_text() and "^" not in label.get_text(), label.get_text()
        legend = ax.get_legend()
        if legend is not None:
            inside = legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
            assert not inside, f"legend covers the axes of {ax.get_title()!r}"


def test_explain_figure_has_colour_bars_and_a_diverging_map_for_signed_maps():
    rng = np.random.default_rng(0)
    image = rng.random((8, 8))
    maps = {"integrated-gradients": rng.normal(size=(8, 8)), "gradient": np.abs(rng.normal(size=(8, 8)))}
    fig = picture_figure(image, maps, "head", random_weights=True)
    bars = colourbars(fig)
    assert len(bars) == 2
    signed, unsigned = fig.axes[1].images[0], fig.axes[2].images[0]
    assert signed.get_cmap().name == "RdBu_r" and signed.get_clim()[0] == -signed.get_clim()[1]
    assert unsigned.get_cmap().name != "RdBu_r" and unsigned.get_clim()[0] == 0
    assert any("RANDOM WEIGHTS" in t.get_text() for t in fig.texts)
    assert not any("RANDOM" in t.get_text() for t in picture_figure(image, maps, "head").texts)


def _experiments():
    from workbench.experiments.ig_baselines import IGBaselines
    from workbench.experiments.ig_convergence import IGConvergence
    from workbench.experiments.pixel_perturbation import PixelPerturbation

    return [
        PixelPerturbation(images=6, batch_size=6, methods=("random", "fullgrad", "gradient"), percentages=(10, 50), memory_budget="64GB"),
        IGConvergence(images=1, rules=("midpoint", "trapezoid"), steps=(2, 64), tolerances=(1e-2,)),
        IGBaselines(images=2, baselines=("zero", "blurred"), steps=8, figure_images=1),
    ]


@pytest.mark.parametrize("index", range(3))
def test_experiment_figures_and_summaries(index, saved, tmp_path):
    exp = _experiments()[index]
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    assert saved, "no figure was written"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in saved:
        FigureCanvasAgg(fig).draw()  # a closed figure lost its canvas
        check_readable(fig)
    md = (r.out_dir / "summary.md").read_text()
    assert md.startswith("# ") and "**Claim.**" in md and "**Result: " in md and "|---|" in md and "```" not in md
    claim = r.summary["claim"]
    assert claim["reproduced"] in (True, False, None) and claim["statistic"]
    assert all(len(line) <= 100 for line in r.summary["text"].splitlines())
