"""Image experiments take their images through the pipeline's DataLoader (decoded ahead in a
worker process), and ``--batch-size`` changes how many images each pass of the methods takes,
never the results: the per-image values at batch size 1 and 8 are the same; an experiment whose
methods run one image per item refuses ``--batch-size`` by name."""

import os

import numpy as np
import pytest

from workbench.experiments.pixel_perturbation import PixelPerturbation
from workbench.experiments.sanity_checks import SanityChecks
from workbench.runner import experiment as X
from workbench.data import pipeline as P
from workbench.cli import main

QUIET = dict(log=lambda m: None)


def _per_image(out_dir, field):
    """image key -> that image's values, from every item record (whatever batch it was in)."""
    import json

    per = {}
    for line in (out_dir / "items.jsonl").read_text().splitlines():
        rec = json.loads(line)["record"]
        for j, key in enumerate(rec["images"]):
            per[key] = {m: np.asarray(v)[j] for m, v in rec[field].items()} if field == "changes" else \
                {m: {k: np.asarray(s)[..., j] for k, s in by.items()} for m, by in rec[field].items()}
    return per


def test_pixel_perturbation_is_the_same_at_batch_size_1_and_8(tmp_path, monkeypatch):
    real = P._Groups.__getitem__
    log = tmp_path / "pids"

    def recording(self, i):
        with open(log, "a") as fh:  # written by the worker process
            fh.write(f"{os.getpid()}\n")
        return real(self, i)

    monkeypatch.setattr(P._Groups, "__getitem__", recording)
    monkeypatch.setattr(P, "default_workers", lambda: 1)
    methods = ("random", "fullgrad", "gradient", "integrated-gradients[tolerance=None,steps=8]")
    # float64: a batched pass differs from single-image passes only by round-off (float32: a few ulp of the output)
    runs = {b: X.run(PixelPerturbation(images=8, batch_size=b, methods=methods, percentages=(10, 50), memory_budget="64GB", dtype="float64"),
                     results=tmp_path / str(b), **QUIET) for b in (1, 8)}
    pids = set(log.read_text().split())
    assert pids and str(os.getpid()) not in pids  # decoded in a DataLoader worker, not in the main process
    one, eight = (_per_image(runs[b].out_dir, "changes") for b in (1, 8))
    assert one.keys() == eight.keys() and len(one) == 8
    for key in one:
        for m in methods:
            np.testing.assert_allclose(one[key][m], eight[key][m], rtol=1e-9, atol=1e-13, err_msg=f"{key} {m}")
    for m in methods:
        np.testing.assert_allclose(runs[1].summary["mean_change"][m], runs[8].summary["mean_change"][m], rtol=1e-9, atol=1e-13)


def test_sanity_checks_are_the_same_at_batch_size_1_and_8(tmp_path):
    runs = {b: X.run(SanityChecks(images=8, batch_size=b, seeds=1, modes=("cascading",), methods=("gradient", "guided-backprop")),
                     results=tmp_path / str(b), **QUIET) for b in (1, 8)}
    for mode, entry in runs[1].summary["modes"].items():
        for measure, by_method in entry["medians"].items():
            for m, medians in by_method.items():
                np.testing.assert_allclose(medians, runs[8].summary["modes"][mode]["medians"][measure][m], rtol=1e-9, atol=1e-12)


def test_batch_size_on_the_command_line(tmp_path, capsys):
    args = ["experiment", "pixel-perturbation", "--set", "images=2", "--set", "methods=random,gradient", "--set", "memory_budget=64GB",
            "--results", str(tmp_path), "--quiet", "--json"]
    assert main(args + ["--batch-size", "2"]) == 0
    assert "batch_size=2" in capsys.readouterr().out
    assert main(["experiment", "ig-convergence", "--batch-size", "8", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--batch-size does not apply to ig-convergence" in err and "pixel-perturbation, sanity-checks" in err
    assert main(args + ["--batch-size", "2", "--set", "batch_size=4"]) == 2
    assert "both given" in capsys.readouterr().err
    with pytest.raises(Exception, match="batch_size must be a positive integer"):
        PixelPerturbation(batch_size=0).items()
