"""Smoke run of the pixel-perturbation experiment on digits."""

import json

from workbench.experiments.pixel_perturbation import PixelPerturbation
from workbench.runner import experiment as X


def test_batches_are_scored_for_every_method_and_repeat_exactly(tmp_path):
    exp = PixelPerturbation(images=6, batch_size=4, methods=("random", "fullgrad", "gradient"), percentages=(10, 50), memory_budget="64GB")  # the budget counts the whole process: a test worker holds more
    r = X.run(exp, results=tmp_path / "a", log=lambda m: None)
    again = X.run(exp, results=tmp_path / "b", log=lambda m: None)
    assert r.summary["images"] == 6 and set(r.summary["mean_change"]) == {"random", "fullgrad", "gradient"}
    rows = [json.loads(line)["record"] for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert [len(row["images"]) for row in rows] == [4, 2]
    assert all(0 <= c for row in rows for m in row["changes"].values() for per in m for c in per)
    assert r.summary["mean_change"] == again.summary["mean_change"]  # seeded random maps, deterministic methods
    assert (r.out_dir / "pixel_perturbation.png").exists() and "Wilcoxon" in r.summary["text"]
