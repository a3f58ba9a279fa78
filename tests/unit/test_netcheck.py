"""The network check as a user meets it: a random resnet18 checkpoint and a tiny ImageFolder,
``workbench check METHOD --model --weights --source`` prints a verdict matrix, a method that
reads the model's parameters fails implementation invariance, and every network axiom is shown
to catch a known-bad method and to pass a good one."""

import json

import pytest
import torch

import workbench
from workbench.cli import main
from workbench.core.errors import InputError
from workbench.check.network import check_network, load_network, replay_network
from workbench.nets.randomize import randomize_affine
from workbench.testing.folders import image_folder, random_checkpoint

FIXED_IG = "integrated-gradients[tolerance=None,steps=4]"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("netcheck")
    return random_checkpoint(root / "resnet18.pt", num_classes=6, seed=0), image_folder(root / "images", seed=0)


@pytest.fixture(scope="module")
def net(files):
    return load_network("resnet18", files[0], files[1], images=2, size=16)


def ig(model, x, target, baseline):
    return workbench.method("integrated-gradients", tolerance=None, steps=4).attribute(model, x, target=target, baseline=baseline)


def reads_parameters(model, x, target, baseline):
    """Broken on purpose: the map is scaled by the first conv's weight norm."""
    return ig(model, x, target, baseline) * model.conv1.weight.norm().detach()


reads_parameters.claims = {"implementation-invariance": None}


def test_cli_prints_verdict_matrix_and_broken_method_fails(files, tmp_path, capsys):
    weights, images = map(str, files)
    args = ["--model", "resnet18", "--weights", weights, "--source", images, "--images", "2", "--size", "16", "--quiet", "--out", str(tmp_path), "--shrink-seconds", "4"]
    code = main(["check", FIXED_IG, *args, "--examples", "2"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("method: integrated-gradients[") and "verdict" in out  # the verdict table
    code = main(["check", FIXED_IG, *args, "--examples", "2", "--json"])
    cells = {v["axiom"]: (v["claimed"], v["holds"]) for v in json.loads(capsys.readouterr().out)[0]["verdicts"]}
    assert code == 0
    assert {"completeness", "dummy", "implementation-invariance", "linearity", "symmetry"} <= set(cells)
    assert cells["implementation-invariance"] == (True, True)
    code = main(["check", "tests.unit.test_netcheck:reads_parameters", *args, "--axioms", "implementation-invariance", "--examples", "4", "--json"])
    verdict = json.loads(capsys.readouterr().out)[0]["verdicts"][0]
    assert code == 1 and verdict["holds"] is False and "conv1" in verdict["note"]
    record = json.loads(open(verdict["counterexample"]).read())
    assert record["network"]["arch"] == "resnet18" and len(record["network"]["weights_sha256"]) == 64
    assert "state" not in json.dumps(record) and record["choice"]["transform"] == "fold"
    code = main(["replay", verdict["counterexample"], "--weights", weights])  # the file names a callable: not imported
    assert code == 2 and "tests.unit.test_netcheck:reads_parameters" in capsys.readouterr().err
    code = main(["replay", verdict["counterexample"], "--weights", weights, "--method", "tests.unit.test_netcheck:reads_parameters"])
    assert code == 1 and "VIOLATED" in capsys.readouterr().out
    code = main(["replay", verdict["counterexample"], "--weights", weights, "--method", FIXED_IG])
    assert code == 0 and "holds" in capsys.readouterr().out


def test_replay_refuses_another_checkpoint_and_pickles(files, net, tmp_path):
    report = check_network(reads_parameters, net, axioms=["implementation-invariance"], examples=4, save_dir=tmp_path, shrink_evaluations=3)
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in torch.load(files[0], weights_only=True).items()}, other)
    with pytest.raises(InputError, match="sha256"):
        replay_network(report.verdicts[0].counterexample, weights=other)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    with pytest.raises(InputError, match="refused to load"):
        load_network("resnet18", pickled, files[1])


def _leaky_channels(model, x, target, baseline):
    a = ig(model, x, target, baseline)
    return a.mean(1, keepdim=True).expand_as(a).clone()  # every channel gets the channel mean


def _channel_weighted(model, x, target, baseline):
    a = ig(model, x, target, baseline)
    return a * torch.arange(1, a.shape[1] + 1, dtype=a.dtype).view(1, -1, 1, 1)


def _squared(model, x, target, baseline):
    a = ig(model, x, target, baseline)
    return a * a.abs()


def _complete_by_construction(model, x, target, baseline):
    with torch.no_grad():
        d = model(x).gather(1, target.view(-1, 1)) - model(baseline).gather(1, target.view(-1, 1))
    return (d / x[0].numel()).view(-1, 1, 1, 1).expand_as(x).clone()


@pytest.mark.parametrize("axiom, bad, good", [
    ("dummy", _leaky_channels, ig),
    ("symmetry", _channel_weighted, ig),
    ("linearity", _squared, ig),
    ("completeness", ig, _complete_by_construction),
])
def test_each_axiom_both_ways(net, tmp_path, axiom, bad, good):
    bad_v = check_network(bad, net, axioms=[axiom], examples=3, save_dir=tmp_path, shrink_evaluations=2).verdicts[0]
    good_v = check_network(good, net, axioms=[axiom], examples=3, save_dir=None).verdicts[0]
    assert bad_v.holds is False and bad_v.counterexample, bad_v
    assert good_v.holds is True, good_v


class _OffByOne:
    """A full-gradient 'method' whose reconstruction misses F(x) by one."""

    def __init__(self):
        self.inner = workbench.method("full-gradients")
        self.claims = {"full-gradient-completeness": None}

    def __call__(self, model, x, target, baseline):
        return self.inner.attribute(model, x, target=target)

    def reconstruct(self, model, x, *, target):
        return self.inner.reconstruct(model, x, target=target) + 1.0


def test_full_gradient_completeness_both_ways(net):
    good = check_network("full-gradients", net, axioms=["full-gradient-completeness"], examples=2, save_dir=None).verdicts[0]
    assert good.holds is True and good.claimed, good
    bad = _OffByOne()
    from workbench.methods.base import CallableMethod

    adapted = CallableMethod(bad, name="off-by-one", claims=bad.claims)
    adapted.reconstruct = bad.reconstruct
    verdict = check_network(adapted, net, axioms=["full-gradient-completeness"], examples=2, save_dir=None).verdicts[0]
    assert verdict.holds is False and verdict.unexpected, verdict


def test_python_api_on_a_plain_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    model = randomize_affine(model, torch.Generator().manual_seed(0), scale=0.3).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    report = workbench.check_network(FIXED_IG, model, x, axioms=["implementation-invariance", "dummy", "symmetry", "linearity"], examples=4, save_dir=None)
    assert isinstance(report, workbench.Report) and report.ok and all(v.holds for v in report.verdicts), report
    from workbench.data.pipeline import memory_in_use

    budget = memory_in_use("cpu") + 10**8
    chunked = workbench.check_network(FIXED_IG, model, x, axioms=["implementation-invariance"], examples=2, save_dir=None, memory_budget=budget)
    assert "chunk_size=" in chunked.method and chunked.ok
    with pytest.raises(InputError, match="training mode"):
        workbench.check_network(FIXED_IG, model.train(), x, save_dir=None)


def _raises(model, x, target, baseline):
    raise RuntimeError("CUDA out of memory (simulated)")


def test_a_raising_method_is_an_error_not_a_violation(net, tmp_path):
    v = check_network(_raises, net, axioms=["completeness"], examples=3, save_dir=tmp_path).verdicts[0]
    assert v.status == "error" and "out of memory" in v.note and v.counterexample is None
    assert not list(tmp_path.iterdir())  # no "counterexample" of a crash
