"""Smoke run of the sanity-checks experiment (model randomization) on digits."""

import json

import torch

from workbench.experiments.sanity_checks import SanityChecks
from workbench.runner import experiment as X


def test_randomization_items_summary_and_figures(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny float64 networks: the thread pool costs more than it gives
    try:
        exp = SanityChecks(images=6, batch_size=3, seeds=1, methods=("gradient", "guided-backprop"))
        r = X.run(exp, results=tmp_path, log=lambda m: None)
        again = X.run(exp, results=tmp_path, log=lambda m: None)
    finally:
        torch.set_num_threads(n)
    assert exp.items() == ["cascading-seed0-batch0", "cascading-seed0-batch1", "independent-seed0-batch0", "independent-seed0-batch1"]
    assert again.done == 0 and again.skipped == 4  # resumed: nothing recomputed
    rows = [json.loads(line)["record"] for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert all(len(row["images"]) == 3 and row["layers"] == ["8", "3", "0"] for row in rows)
    for mode in ("cascading", "independent"):
        entry = r.summary["modes"][mode]
        assert (r.out_dir / entry["figure"]).read_bytes()[:4] == b"\x89PNG"
        assert set(entry["medians"]) == {"spearman_abs", "spearman", "ssim", "hog"}
        c = entry["contrasts"]["guided-backprop"]["top layer"]
        assert c["n"] == 6 and 0.0 <= c["wilcoxon_p"] <= 1.0
    assert "Wilcoxon" in r.summary["text"]
