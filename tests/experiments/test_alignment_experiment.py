"""Smoke run of the input-alignment experiment: random (isotropic, orthogonal) and trained networks."""

import torch

from workbench.experiments.input_alignment import InputAlignment
from workbench.runner import experiment as X


def test_alignment_items_statistics_and_figure(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny float64 networks: the thread pool costs more than it gives
    try:
        exp = InputAlignment(networks=2, photos=1, size=16, images=4, methods=("gradient", "guided-backprop", "lrp[composite='zplus']"))
        r = X.run(exp, results=tmp_path, log=lambda m: None)
    finally:
        torch.set_num_threads(n)
    assert exp.items() == ["isotropic-0", "isotropic-1", "orthogonal-0", "orthogonal-1", "trained"]
    kinds = r.summary["kinds"]
    assert set(kinds) == {"isotropic", "orthogonal", "trained"}
    assert kinds["isotropic"]["n"] == 2 and kinds["trained"]["n"] == 4
    for entry in kinds.values():
        assert entry["signal"]["guided-backprop"]["wilcoxon_p"] is not None
        assert entry["signal"]["gradient"]["wilcoxon_p"] is None  # the reference
        assert len(entry["layers"]["gradient"]) == len(entry["layer_names"])
    assert (r.out_dir / "layerwise_alignment.png").read_bytes()[:4] == b"\x89PNG"
    assert "cos(x^2, x)" in r.summary["text"]
