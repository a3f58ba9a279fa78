"""Smoke run of the IG baselines experiment on digits: the black baseline is blind to black pixels."""

import json

from workbench.experiments.ig_baselines import IGBaselines
from workbench.runner import experiment as X
from workbench.data.sources import image_source


def test_black_baseline_is_blind_exactly_where_the_digit_is_black(tmp_path):
    exp = IGBaselines(images=2, baselines=("zero", "blurred", "expected-uniform"), steps=16, expected_samples=2, figure_images=1)
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    src = image_source("digits", count=2)
    for row in rows:
        black = float((src[row["key"]].image == 0).double().mean())
        per = row["record"]["baselines"]
        assert black > 0.2 and abs(per["zero"]["blind_fraction"] - black) < 1e-12
        assert per["blurred"]["blind_fraction"] < black
        for name in per:  # completeness against each baseline, to the quadrature's accuracy
            assert per[name]["residual"] < 0.05, (name, per[name])
    assert set(rows[0]["record"]["spearman"]) == {"zero|blurred", "zero|expected-uniform", "blurred|expected-uniform"}
    assert "maps" in rows[0]["record"] and "maps" not in rows[1]["record"]
    assert (r.out_dir / "baselines.png").stat().st_size > 0 and "blind" in r.summary["text"]
