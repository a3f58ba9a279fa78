"""Habits from Captum and Zennit: python -m, --version, module:callable from the current directory,
Captum's argument names, Captum/Zennit classes, per-call string baselines, training-mode models."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import workbench
from workbench.cli import main
from workbench.methods.base import as_method

ROOT = Path(__file__).resolve().parents[2]


def _net(*extra: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), *extra, nn.Linear(6, 3)).double().eval()


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"workbench {workbench.__version__}"


def test_python_dash_m_imports_from_the_current_directory(tmp_path):
    (tmp_path / "myattr.py").write_text(textwrap.dedent('''
        def f(model, x, target, baseline):
            return x * 0
        f.claims = {"dummy": None}
    '''))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "workbench", "check", "myattr:f", "--axioms", "dummy", "--examples", "2", "--quiet",
                          "--out", str(tmp_path / "cx")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "method: f" in run.stdout and "holds" in run.stdout


def test_captum_argument_names():
    net, x = _net(), torch.randn(2, 4, dtype=torch.float64)
    ig = workbench.method("integrated-gradients", tolerance=None, steps=16)
    b = torch.full_like(x, 0.25)
    ours = ig.attribute(net, x, target=1, baseline=b)
    assert torch.equal(ig.attribute(net, x, 1, baselines=b), ours)
    assert torch.equal(ig.attribute(net, x, 1, baselines=(b,)), ours)
    assert torch.equal(workbench.method("gradient").attribute(net, x, 2), workbench.method("gradient").attribute(net, x, target=2))
    with pytest.raises(workbench.InputError, match="n_steps= is Captum's keyword.*steps=N"):
        ig.attribute(net, x, 1, n_steps=50)
    with pytest.raises(workbench.InputError, match="return_residual=True"):
        ig.attribute(net, x, 1, return_convergence_delta=True)
    with pytest.raises(workbench.InputError, match="not both"):
        ig.attribute(net, x, 1, baseline=b, baselines=b)
    with pytest.raises(workbench.InputError, match="target is required"):
        ig.attribute(net, x)


def test_per_call_string_baselines_match_the_constructor():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 3)).double().eval()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    per_call = workbench.method("integrated-gradients").attribute(net, x, target=0, baseline="blurred")
    built = workbench.method("integrated-gradients", baseline="blurred").attribute(net, x, target=0)
    assert torch.allclose(per_call, built)
    assert not torch.allclose(per_call, workbench.method("integrated-gradients").attribute(net, x, target=0))
    with pytest.raises(workbench.InputError, match="unknown baseline 'blury'"):
        workbench.method("integrated-gradients").attribute(net, x, target=0, baseline="blury")


def test_captum_and_zennit_classes_are_adapted_or_refused_by_name():
    captum = pytest.importorskip("captum.attr")
    zennit = pytest.importorskip("zennit.composites")
    net, x = _net(), torch.randn(2, 4, dtype=torch.float64)
    ig = as_method(captum.IntegratedGradients)
    assert ig.claims["completeness"] == 0.05  # the claims workbench.peers documents
    assert ig.attribute(net, x, target=1).shape == x.shape
    other = as_method(captum.FeatureAblation)  # no claims declared: held to every axiom asked
    assert other.label == "FeatureAblation" and not other.declared and other.reference == "captum.attr:FeatureAblation"
    assert as_method(zennit.EpsilonAlpha2Beta1).attribute(net, x, target=0).shape == x.shape
    with pytest.raises(workbench.InputError, match="LayerGradCam needs layer"):
        as_method(captum.LayerGradCam)
    with pytest.raises(workbench.InputError, match="Occlusion.attribute needs sliding_window_shapes"):
        as_method(captum.Occlusion)
    with pytest.raises(workbench.InputError, match="is a class"):
        as_method(dict)
    report = workbench.check(captum.Saliency, axioms=["dummy", "completeness"], examples=3, seed=0, save_dir=None)
    assert report.verdict("dummy").cell() == "holds" and report.verdict("completeness").cell() == "fails"


class _Noisy(nn.Module):
    def forward(self, x):
        return x + 0.1 if self.training else x


class _Plain(nn.Module):
    def forward(self, x):
        return x * 2


def test_training_mode_accepted_unless_a_module_behaves_differently():
    x = torch.randn(2, 4, dtype=torch.float64)
    for plain in (_net().train(), _net(_Plain()).train()):
        a = workbench.method("gradient").attribute(plain, x, target=0)
        assert plain.training and torch.equal(a, workbench.method("gradient").attribute(plain.eval(), x, target=0))
    for module, name in ((nn.Dropout(0.5), "Dropout"), (nn.BatchNorm1d(6), "BatchNorm1d"), (_Noisy(), "_Noisy")):
        net = _net(module).train()
        with pytest.raises(workbench.ModelError, match=f"training mode.*2 \\({name}\\)"):
            workbench.method("gradient").attribute(net, x, target=0)
        assert net.training
    # a module whose mode-dependent behaviour is switched off
    assert workbench.method("gradient").attribute(_net(nn.Dropout(0.0)).train(), x, target=0).shape == x.shape
