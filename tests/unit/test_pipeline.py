"""The batched image pipeline: memory sizes, measured activations, chunks that keep values,
DataLoader batches, progress lines, and the pixel-perturbation experiment under a small budget."""

import numpy as np
import pytest
import torch
from torch import nn

import workbench
from workbench.data import pipeline as P
from workbench.core.errors import InputError
from workbench.core.modelguard import ModelSnapshot


def test_parse_memory():
    assert P.parse_memory("2GB") == 2 * 10**9 and P.parse_memory("512MiB") == 512 * 2**20
    assert P.parse_memory("1.5g") == 1_500_000_000 and P.parse_memory(4096) == 4096
    for bad in ("two GB", "2XB", "0", -1):
        with pytest.raises(InputError):
            P.parse_memory(bad)


def test_activation_bytes_are_measured_and_the_model_left_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).eval()
    before = ModelSnapshot.take(model)
    # input 1x4x4, conv 2x4x4, relu 2x4x4, flatten 32, linear 3 -- float32, per row
    assert P.activation_bytes(model, torch.zeros(5, 1, 4, 4)) == 4 * (16 + 32 + 32 + 32 + 3)
    assert ModelSnapshot.take(model) == before
    per_row = 2 * 4 * (16 + 32 + 32 + 32 + 3)
    used = P.memory_in_use("cpu")
    assert used > P.parameter_bytes(model)  # the interpreter's resident set
    rows = P.chunk_rows(model, torch.zeros(1, 1, 4, 4), used + 1000 * per_row, share=1.0)
    assert 900 <= rows <= 1000  # resident memory may grow a little between the two reads
    assert P.chunk_rows(model, torch.zeros(1, 1, 4, 4), used + 1000 * per_row) <= rows // 2 + 1
    with pytest.raises(InputError, match="does not hold what is in use"):
        P.chunk_rows(model, torch.zeros(1, 1, 4, 4), P.parameter_bytes(model))


def test_chunked_methods_give_the_same_maps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).double().eval()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    for label in ("integrated-gradients[tolerance=None,steps=8]", "gradient", "smoothgrad[samples=4]"):
        m = workbench.method(label)
        c = P.with_chunk(m, 2)
        assert c is not m and "chunk_size=2" in c.label
        assert torch.allclose(m.attribute(model, x, target=1), c.attribute(model, x, target=1), rtol=0, atol=1e-12)
    gradcam = workbench.method("gradcam")
    assert P.with_chunk(gradcam, 2) is gradcam


def test_image_batches_in_order_with_a_worker(tmp_path):
    from PIL import Image

    from workbench.data.sources import image_source

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    src = image_source(str(tmp_path), size=8)
    got = list(P.image_batches(src, batch_size=4, workers=1, dtype=torch.float64))
    assert [k for keys, _ in got for k in keys] == src.keys() and [b.shape[0] for _, b in got] == [4, 2]
    assert got[0][1].dtype == torch.float64 and torch.equal(got[1][1][1].float(), src[src.keys()[5]].image)
    with pytest.raises(InputError, match="batch_size"):
        next(P.image_batches(src, batch_size=0))
    every = P.load_images(src, dtype=torch.float64, batch_size=4)
    assert torch.equal(every.float(), torch.stack([src[k].image for k in src.keys()]))
    groups = [src.keys()[4:], src.keys()[:1], src.keys()[1:4]]  # one tensor per item, whatever the others are
    for group, x in zip(groups, P.item_batches(src, groups, workers=1)):
        assert torch.equal(x, torch.stack([src[k].image for k in group]))


def test_progress_reports_rate_and_eta():
    lines = []
    p = P.Progress(4, "run", lines.append, every=0)
    p.start -= 2.0  # two seconds ago
    p.update(2)
    assert lines[-1].startswith("run: 2/4 items,") and "items/s, ETA" in lines[-1]
    assert P._duration(75) == "1m15s" and P._duration(7300) == "2h01m"


def test_pixel_perturbation_same_result_one_row_per_pass(tmp_path, monkeypatch):
    import workbench.experiments.pixel_perturbation as PP
    from workbench.runner import experiment as X

    methods = ("random", "gradient", "integrated-gradients[tolerance=None,steps=4]")
    # a budget far above this worker's resident set (which other tests grow): one pass per batch
    exp = PP.PixelPerturbation(images=3, batch_size=3, methods=methods, percentages=(10, 50), memory_budget="64GB")
    a = X.run(exp, results=tmp_path / "a", log=lambda m: None).summary["mean_change"]
    rows = []
    monkeypatch.setattr(PP, "chunk_rows", lambda *args, **kw: rows.append(kw) or 1)
    b = X.run(exp, results=tmp_path / "b", log=lambda m: None).summary["mean_change"]
    assert rows and a.keys() == b.keys() and all(np.allclose(a[m], b[m], rtol=1e-5, atol=1e-7) for m in a)
    monkeypatch.undo()
    with pytest.raises(InputError, match="memory budget"):
        X.run(PP.PixelPerturbation(images=3, batch_size=3, methods=methods, memory_budget="1MB"), results=tmp_path / "c", log=lambda m: None)
