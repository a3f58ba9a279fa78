"""Remove and retrain: the removal, the claim on a constructed task, and a smoke run."""

import json

import torch
from torch import nn

from workbench.experiments.roar import RemoveAndRetrain, remove_most_salient
from workbench.runner import experiment as X
from workbench.metrics.ranking import salience_ranks
from workbench.data.training import TrainingConfig, accuracy, train_classifier


def test_removal_replaces_exactly_the_top_k_percent_in_every_channel():
    x = torch.randn(3, 2, 4, 5, generator=torch.Generator().manual_seed(0))
    scores = torch.randn(3, 20, generator=torch.Generator().manual_seed(1))
    ranks = salience_ranks(scores)
    fill = torch.tensor([7.0, -7.0]).view(1, 2, 1, 1)
    out = remove_most_salient(x, ranks, 25.0, fill)
    changed = (out != x).view(3, 2, 20)
    assert changed.sum(2).tolist() == [[5, 5]] * 3  # 25% of 20 pixels, both channels
    top = scores.argsort(1, descending=True)[:, :5]
    for i in range(3):
        assert set(changed[i, 0].nonzero().flatten().tolist()) == set(top[i].tolist())
        assert (out[i, 0].flatten()[top[i]] == 7.0).all() and (out[i, 1].flatten()[top[i]] == -7.0).all()


def test_an_oracle_map_drops_retrained_accuracy_to_chance_and_random_removal_does_not():
    # labels depend only on a 2x2 patch: removing it (the oracle's top pixels) leaves nothing to learn
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 1, 6, 6, generator=g)
    y = (x[:, 0, :2, :2].sum((1, 2)) > 0).long()
    oracle = torch.zeros(600, 36)
    oracle.view(600, 6, 6)[:, :2, :2] = 1.0
    fill = torch.zeros(1, 1, 1, 1)

    def retrained_accuracy(scores):
        xr = remove_most_salient(x, salience_ranks(scores), 100 * 4 / 36, fill)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, 2))
        train_classifier(model, xr[:400], y[:400], TrainingConfig(epochs=20, batch_size=64, lr=1e-2))
        return accuracy(model, xr[400:], y[400:])

    assert retrained_accuracy(oracle) < 0.65
    assert retrained_accuracy(torch.rand(600, 36, generator=g)) > 0.8


def test_smoke_run_on_digits_resumes_from_saved_ranks(tmp_path):
    exp = RemoveAndRetrain(methods=("random", "gradient"), percentages=(50,), repeats=1, epochs=1)
    r = X.run(exp, results=tmp_path, log=lambda m: None, limit=2)
    assert (r.out_dir / "ranks-random.pt").exists() and not (r.out_dir / "ranks-gradient.pt").exists()
    done = X.run(exp, results=tmp_path, log=lambda m: None)
    assert done.skipped == 2 and done.done == 1
    assert (r.out_dir / "ranks-gradient.pt").exists() and (r.out_dir / "base_model.pt").exists()
    rows = [json.loads(line)["record"] for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert [row["method"] for row in rows] == ["clean", "random", "gradient"]
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)
    assert set(done.summary["area"]) == {"random", "gradient"} and (r.out_dir / "roar.png").exists()
