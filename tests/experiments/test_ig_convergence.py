"""Smoke runs of the IG convergence experiment: digits (default source) and an ImageFolder at scale."""

import json

from workbench.experiments.ig_convergence import IGConvergence
from workbench.runner import experiment as X


def test_digits_run_converges_and_exact_ig_bounds_the_map_error(tmp_path):
    exp = IGConvergence(images=1, rules=("midpoint", "trapezoid"), steps=(2, 64), tolerances=(1e-2,))
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    s = r.summary
    for rule in ("midpoint", "trapezoid"):
        # more steps, smaller map error (checked against the exact integral, not the sum)
        assert s["median_map_error"][rule]["64"] < s["median_map_error"][rule]["2"]
    assert s["adaptive"]["0.01"]["max_residual"] <= 0.05
    assert (r.out_dir / "convergence.png").stat().st_size > 0
    assert "fraction of images within 5%" in (r.out_dir / "summary.md").read_text()


def test_imagefolder_and_checkpoint_at_scale(tmp_path, image_folder, resnet18_checkpoint):
    exp = IGConvergence(source=str(image_folder), model="resnet18", weights=str(resnet18_checkpoint), images=2, size=32,
                        rules=("gauss-legendre",), steps=(2, 8), tolerances=(), exact=False, dtype="float32")
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row["key"].endswith(".png") for row in rows)
    assert all(row["record"]["random_weights"] is False for row in rows)
    man = json.loads((r.out_dir / "manifest.json").read_text())
    assert man["config"]["model"] == "resnet18" and man["config"]["weights"] == str(resnet18_checkpoint)
