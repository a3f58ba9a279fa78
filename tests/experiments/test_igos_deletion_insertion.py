"""Smoke runs of the I-GOS deletion/insertion experiment: digits (default) and an ImageFolder at scale."""

import json


from workbench.experiments.igos_deletion_insertion import IGOSDeletionInsertion
from workbench.runner import experiment as X




def test_digits_run_records_areas_directions_and_a_figure(tmp_path):
    exp = IGOSDeletionInsertion(images=2, igos="igos[resolution='full',tv=0.5,iterations=4,steps=5]")
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    s = r.summary
    assert set(s["table"]) == {"igos", "gradient", "integrated-gradients[baseline='blurred',tolerance=None,steps=32]", "fullgrad", "igos-gradient-direction"}
    for row in s["table"].values():
        assert 0 <= row["deletion_median"] <= 1 and 0 <= row["insertion_median"] <= 1
    d = s["directions"]
    assert d["n"] == 2 and 0 <= d["p_value"] <= 1 and all(c["gradient_passes_a"] == 4 * 5 for c in d["cases"])
    assert (r.out_dir / "curves.png").stat().st_size > 0 and "Descent direction" in (r.out_dir / "summary.md").read_text()


def test_imagefolder_and_checkpoint_at_scale(tmp_path, image_folder, resnet18_checkpoint):
    exp = IGOSDeletionInsertion(source=str(image_folder), model="resnet18", weights=str(resnet18_checkpoint), images=1, size=32,
                                igos="igos[resolution=7,iterations=2,steps=3]", others=("gradient",), compare_directions=False)
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["key"].endswith(".png") and "directions" not in rows[0]["record"]
    assert set(rows[0]["record"]["methods"]) == {"igos", "gradient"}
