"""IG memory bound: the chunk follows from a measured activation size and the budget; the
error-controlled mode keeps its stored path points within the budget or says it stopped there."""

import pytest
import torch
from torch import nn

import workbench
from workbench.core.memory import ACTIVATION_FACTOR, check_budget, rows_per_chunk, saved_bytes

F64 = torch.float64


class BatchRecorder(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.batches = net, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.net(x)


def _cnn() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 3)).to(F64)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)
    return net.eval()


def _pass(net, x):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(net(x)[:, 0].sum(), x)


def test_saved_bytes_scale_with_the_activations_not_the_weights():
    net = _cnn()
    _, one = saved_bytes(net, lambda: _pass(net, torch.randn(1, 3, 8, 8, dtype=F64)))
    _, four = saved_bytes(net, lambda: _pass(net, torch.randn(4, 3, 8, 8, dtype=F64)))
    assert one > 8 * 8 * 8 * 8  # at least the conv output of one row, in float64
    assert four == pytest.approx(4 * one, rel=0.05)  # per row; the weights are not counted
    assert rows_per_chunk(one, int(10 * ACTIVATION_FACTOR * one)) == 10 and rows_per_chunk(one, 1) == 1


@pytest.mark.parametrize("options, budget", [(dict(tolerance=None, steps=24), 60_000), (dict(tolerance=1e-4), 3_000_000)])
def test_the_budget_sets_the_chunk(options, budget):
    x = torch.randn(2, 3, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    b = torch.randn(2, 3, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(2))
    roomy, tight = BatchRecorder(_cnn()).eval(), BatchRecorder(_cnn()).eval()
    a = workbench.method("integrated-gradients", **options).integrate(roomy, x, target=0, baseline=b)
    c = workbench.method("integrated-gradients", memory_budget=budget, **options).integrate(tight, x, target=0, baseline=b)
    assert max(roomy.batches) > 8  # the default budget: path points of both samples in one batch
    assert max(tight.batches) < min(max(roomy.batches), budget // 20_000)  # a small budget: fewer rows per pass
    # rows are independent: chunking moves only the last bits
    assert torch.allclose(a.attribution, c.attribution, rtol=0, atol=1e-12 * (1 + a.attribution.abs().max().item()))


def test_stored_path_points_stay_within_the_budget():
    x = torch.randn(1, 3, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    b = torch.randn(1, 3, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(2))
    row = x[0].numel() * 8
    budget = 30 * row  # two thirds of it hold stored path points: 20 rows
    with pytest.warns(workbench.ConvergenceWarning, match="memory budget"):
        r = workbench.method("integrated-gradients", tolerance=1e-8, memory_budget=budget).integrate(_cnn(), x, target=0, baseline=b)
    assert int(r.gradient_evaluations[0]) <= 20 and not bool(r.converged[0])
    with pytest.raises(workbench.ConvergenceError, match="memory budget"):
        workbench.method("integrated-gradients", tolerance=1e-8, memory_budget=budget, strict=True).integrate(_cnn(), x, target=0, baseline=b)
    r = workbench.method("integrated-gradients", tolerance=1e-8, strict=True).integrate(_cnn(), x, target=0, baseline=b)
    assert bool(r.converged[0]) and int(r.gradient_evaluations[0]) > 20


def test_bad_budgets_and_chunks_are_named():
    for bad in (0, -1, 1.5, True, "1GB"):
        with pytest.raises(workbench.InputError, match="memory_budget"):
            check_budget(bad)
        with pytest.raises(workbench.InputError, match="memory_budget"):
            workbench.method("integrated-gradients", memory_budget=bad)
    with pytest.raises(workbench.InputError, match="chunk_size"):
        workbench.method("integrated-gradients", chunk_size=0)
