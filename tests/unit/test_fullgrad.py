"""The full-gradient decomposition, FullGrad saliency, Grad-CAM and the explain picture."""


import pytest
import torch
from torch import nn

import workbench
from workbench.methods.fullgrad import check_completeness, full_gradients
from workbench.methods.fullgrad import postprocess
from workbench.nets import spec as S
from workbench.nets.randomize import randomize_affine


CNN = S.NetSpec(
    (2, 6, 6),
    (S.Conv2d(3, 3, padding=1), S.BatchNorm(), S.ReLU(inplace=True), S.Residual((S.Conv2d(3, 3, padding=1), S.ReLU())),
     S.MaxPool2d(2), S.Conv2d(2, 1), S.ReLU(), S.AvgPool2d(3), S.Flatten(), S.Linear(3)),
)
MLP = S.NetSpec((3,), (S.Linear(4), S.BatchNorm(), S.ReLU(inplace=True), S.Linear(4), S.ReLU(), S.Linear(2)), shared_relu=True)


def _net(spec, dtype=torch.float64, seed=1):
    return S.build(spec, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _x(spec, n=3, dtype=torch.float64):
    return torch.randn(n, *spec.input_shape, dtype=dtype, generator=torch.Generator().manual_seed(2))


def _fingerprint(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()})


def _same(model, before):
    after = _fingerprint(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]


@pytest.mark.parametrize("spec", [CNN, MLP], ids=["cnn", "mlp"])
def test_decomposition_is_exact_and_terms_have_layer_shapes(spec):
    net = _net(spec)
    x = _x(spec)
    before = _fingerprint(net)
    fg = full_gradients(net, x, [0, 1, 0])
    _same(net, before)
    assert fg.relative_residual.max() < 1e-12
    assert fg.input_term.shape == x.shape and fg.output.shape == (3,)
    kinds = {t.kind for t in fg.bias_terms}
    assert "BatchNorm2d" in kinds or "BatchNorm1d" in kinds
    assert all(t.term.shape[0] == 3 for t in fg.bias_terms)


def test_bias_terms_match_parameter_gradients():
    """Slow reference: per channel, the term summed over positions is b * dF/db from autograd on the
    parameters (BatchNorm: dF/dbeta times the implicit bias beta - gamma mu / sqrt(var + eps))."""
    net = _net(CNN)
    x = _x(CNN, n=1)
    fg = full_gradients(net, x, 2)
    net.zero_grad()
    net(x)[0, 2].backward()
    terms = {t.layer: t.term for t in fg.bias_terms}
    for name, m in net.named_modules():
        if name not in terms:
            continue
        if isinstance(m, nn.BatchNorm2d):
            b = m.bias - m.weight * m.running_mean / torch.sqrt(m.running_var + m.eps)
        else:
            b = m.bias
        dims = [d for d in range(terms[name].dim()) if d != 1]
        assert torch.allclose(terms[name].sum(dims), (m.bias.grad * b).detach(), atol=1e-12), name
    net.zero_grad(set_to_none=True)


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18", "resnet50"])
def test_torchvision_models_with_random_biases_float64(arch):
    import torchvision

    torch.manual_seed(0)
    model = randomize_affine(getattr(torchvision.models, arch)(weights=None)).double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fg = full_gradients(model, x, 7)
    assert float(fg.relative_residual) < 1e-10
    assert float(fg.residual.abs() / fg.output.abs()) < 1e-10
    assert abs(float(fg.bias_total)) > 1e-3 * abs(float(fg.output))  # the biases matter
    assert check_completeness(model, x, 7).holds


def test_shared_module_gets_one_term_per_call_and_float32_works():
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.ReLU(), lin, nn.ReLU(), nn.Linear(3, 2)).eval()
    fg = full_gradients(net, torch.randn(2, 3), 1)
    assert [t.layer for t in fg.bias_terms] == ["0", "0#2", "4"]
    assert float(fg.relative_residual.max()) < 1e-5


def test_inplace_first_layer():
    net = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(3, 2)).double().eval()
    fg = full_gradients(net, torch.randn(2, 3, dtype=torch.float64), 0)
    assert float(fg.relative_residual.max()) < 1e-14


@pytest.mark.parametrize("layer,words", [
    (nn.LayerNorm(4), "LayerNorm"),
    (nn.GroupNorm(2, 4), "GroupNorm"),
    (nn.BatchNorm1d(4, track_running_stats=False), "running statistics"),
])
def test_uncollectable_bias_is_named_and_model_unchanged(layer, words):
    net = nn.Sequential(nn.Linear(3, 4), layer, nn.ReLU(), nn.Linear(4, 2)).double().eval()
    before = _fingerprint(net)
    with pytest.raises(workbench.UnsupportedModelError, match=words) as e:
        full_gradients(net, torch.randn(2, 3, dtype=torch.float64), 0)
    assert "'1'" in str(e.value)
    _same(net, before)


def test_unknown_module_with_bias_is_named():
    class Shift(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.ones(3, dtype=torch.float64))

        def forward(self, x):
            return x + self.bias

    net = nn.Sequential(nn.Linear(3, 3).double(), Shift(), nn.ReLU(), nn.Linear(3, 1).double()).eval()
    with pytest.raises(workbench.UnsupportedModelError, match=r"'1' \(Shift\)"):
        full_gradients(net, torch.randn(1, 3, dtype=torch.float64), 0)


def test_smooth_activation_strict_raises_lenient_reports():
    net = _net(S.NetSpec((3,), (S.Linear(4), S.Softplus(), S.Linear(4), S.GELU(), S.Linear(2))))
    x = _x(net.spec)
    with pytest.raises(workbench.UnsupportedModelError, match=r"'1' \(Softplus\)"):
        full_gradients(net, x, 0)
    fg = full_gradients(net, x, 0, strict=False)
    assert fg.implicit_bias_layers == (("1", "Softplus"), ("3", "GELU"))
    assert float(fg.relative_residual.max()) > 1e-6
    c = check_completeness(net, x, 0)
    assert not c.holds and "positively homogeneous" in c.note and "Softplus" in c.note


def test_operation_hidden_in_forward_is_caught_by_the_residual():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2).double()

        def forward(self, x):
            return torch.tanh(self.lin(x)) + 1.0

    with pytest.raises(workbench.UnsupportedModelError, match="inside a forward"):
        full_gradients(Hidden().eval(), torch.randn(2, 3, dtype=torch.float64), 0)
    assert not check_completeness(Hidden().eval(), torch.randn(2, 3, dtype=torch.float64), 0).holds


def test_training_mode_refused():
    with pytest.raises(workbench.ModelError, match="training mode"):
        full_gradients(_net(MLP).train(), torch.randn(2, 3, dtype=torch.float64), 0)


# -- saliency maps ---------------------------------------------------------------------------
SALIENCY = ["fullgrad", "simple-fullgrad", "smooth-fullgrad[samples=3]", "gradcam", "full-gradients"]


@pytest.mark.parametrize("name", SALIENCY)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saliency_contract_on_cnn(name, dtype):
    net = _net(CNN, dtype)
    x = _x(CNN, dtype=dtype)
    before = _fingerprint(net)
    m = workbench.method(name)
    a = m.attribute(net, x, target=[0, 1, 2])
    _same(net, before)
    assert a.shape == x.shape and a.dtype == dtype and torch.isfinite(a).all()
    if name != "full-gradients":
        assert torch.equal(a[:, 0], a[:, 1])  # one map repeated over channels
    single = torch.cat([m.attribute(net, x[i:i + 1], target=i) for i in range(3)])
    assert torch.allclose(single, a, atol=1e-5 * (1 + float(a.abs().max())))


def test_fullgrad_equals_the_per_channel_upsampling_reference():
    """Summing channels before upsampling gives the reference map (upsample every channel, then sum)."""
    import torch.nn.functional as F

    net = _net(CNN)
    x = _x(CNN, n=2)
    cam = workbench.method("fullgrad").attribute(net, x, target=1)[:, :1]
    fg = full_gradients(net, x, 1)
    ref = postprocess(fg.input_term).sum(1, keepdim=True)
    for t in fg.bias_terms:
        if t.term.dim() == 4:
            ref = ref + F.interpolate(postprocess(t.term), size=(6, 6), mode="bilinear", align_corners=True).sum(1, keepdim=True)
    assert torch.allclose(cam, ref, atol=1e-12)


def test_smooth_fullgrad_without_noise_is_fullgrad_on_one_channel():
    spec = S.NetSpec((1, 6, 6), CNN.layers)
    net, x = _net(spec), _x(spec, n=2)
    a = workbench.method("smooth-fullgrad", samples=2, noise_level=0.0).attribute(net, x, target=0)
    b = workbench.method("fullgrad").attribute(net, x, target=0)
    assert torch.allclose(a, b, atol=1e-12)


def test_gradcam_matches_captum():
    from captum.attr import LayerAttribution, LayerGradCam

    spec = S.NetSpec((3, 8, 8), (S.Conv2d(4, 3, padding=1), S.ReLU(), S.Conv2d(5, 3), S.ReLU(), S.MaxPool2d(2), S.Flatten(), S.Linear(3)))
    net, x = _net(spec), _x(spec, n=2)
    ours = workbench.method("gradcam").attribute(net, x, target=[1, 2])[:, :1]
    cam = LayerGradCam(net, net[2]).attribute(x, target=[1, 2], relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
    assert torch.allclose(ours, theirs.detach(), atol=1e-10)
    named = workbench.method("gradcam", layer="0").attribute(net, x, target=0)
    assert named.shape == x.shape
    with pytest.raises(workbench.InputError, match="no layer"):
        workbench.method("gradcam", layer="nope").attribute(net, x, target=0)
    with pytest.raises(workbench.UnsupportedModelError, match="image"):
        workbench.method("gradcam").attribute(_net(MLP), torch.randn(1, 3, dtype=torch.float64), target=0)


def test_full_gradients_method_reconstructs_the_output():
    net, x = _net(CNN), _x(CNN)
    m = workbench.method("full-gradients")
    rec = m.reconstruct(net, x, target=1)
    with torch.no_grad():
        assert torch.allclose(rec, net(x)[:, 1], atol=1e-12)
    rep = m.representation(net, x, target=1)
    assert "input-gradient" in rep and any(k.startswith("bias:") for k in rep)


# -- the picture -----------------------------------------------------------------------------
def test_explain_writes_a_png_with_a_random_model(tmp_path):
    from workbench.explain import explain

    spec = S.NetSpec((3, 16, 16), (S.Conv2d(4, 3, padding=1), S.BatchNorm(), S.ReLU(), S.MaxPool2d(2), S.Conv2d(4, 3, padding=1), S.ReLU(), S.Flatten(), S.Linear(5)))
    net = _net(spec, torch.float32)
    out = explain("skimage:astronaut", model=net, size=16, out=tmp_path / "a.png")
    assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"


def test_explain_cli_torchvision_random_weights_and_digits(tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.png"
    assert main(["explain", "skimage:camera", "--model", "resnet18", "--size", "32", "--out", str(out)]) == 0
    assert out.exists()
    digits = tmp_path / "d.png"
    assert main(["explain", "digits:5", "--out", str(digits)]) == 0
    assert digits.exists() and list((tmp_path / "cache").glob("digits-cnn-*.pt"))
    from workbench.data.digits import train_digits

    _, info = train_digits()  # from the cache now
    assert info["test_accuracy"] > 0.9
    assert main(["explain", "skimage:no_such_image", "--out", str(out)]) == 2


# -- piecewise-linear activations: each kink's implicit bias -----------------------------------
PIECEWISE_LINEAR = {
    "ReLU": nn.ReLU, "ReLU6": lambda: nn.ReLU6(inplace=True), "Hardtanh": lambda: nn.Hardtanh(-1.0, 2.0),
    "LeakyReLU": lambda: nn.LeakyReLU(0.1), "PReLU": lambda: nn.PReLU(3), "Threshold": lambda: nn.Threshold(0.5, -2.0),
}


@pytest.mark.parametrize("name", list(PIECEWISE_LINEAR))
def test_every_piecewise_linear_activation_is_exact(name):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), PIECEWISE_LINEAR[name](), nn.Linear(3, 3), PIECEWISE_LINEAR[name](), nn.Linear(3, 2)).double().eval()
    x = 20 * torch.randn(8, 4, dtype=torch.float64)  # wide enough to reach every piece
    fg = full_gradients(net, x, 1)
    assert float(fg.relative_residual.max()) <= 1e-14
    kinks = [t for t in fg.bias_terms if t.kind == type(net[1]).__name__]
    if name in ("ReLU6", "Hardtanh", "Threshold"):  # saturated units carry c = f(z) - f'(z) z != 0
        total = torch.stack([t.term.sum(1) for t in kinks]).sum(0)
        assert float(total.abs().max()) > 1e-3
        without = fg.residual + total  # leaving the kink biases out breaks the decomposition
        assert float((without.abs() / (1 + fg.scale)).max()) > 1e-4
    else:
        assert not kinks


def test_mobilenet_v2_exact_with_relu6_kinks():
    torchvision = pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(0)
    model = randomize_affine(torchvision.models.mobilenet_v2(num_classes=10).double().eval(), g, scale=1.0)
    x = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)
    fg = full_gradients(model, x, 3)
    assert float(fg.relative_residual.max()) <= 1e-14
    kinks = torch.stack([t.term.reshape(2, -1).sum(1) for t in fg.bias_terms if t.kind == "ReLU6"]).sum(0)
    assert float(kinks.abs().min()) > 1e-2 * float(fg.output.abs().max())  # the saturated units matter


@pytest.mark.parametrize("layer", [nn.GELU(), nn.SiLU(), nn.Tanh(), nn.Softplus(), nn.Hardswish()])
def test_activations_that_are_not_piecewise_linear_are_refused_by_name(layer):
    net = nn.Sequential(nn.Linear(3, 3), layer, nn.Linear(3, 2)).double().eval()
    with pytest.raises(workbench.UnsupportedModelError, match=rf"layer '1' \({type(layer).__name__}\)"):
        full_gradients(net, torch.ones(1, 3, dtype=torch.float64), 0)
    for name in ("full-gradients", "fullgrad"):
        with pytest.raises(workbench.UnsupportedModelError, match=type(layer).__name__):
            workbench.method(name).attribute(net, torch.ones(1, 3, dtype=torch.float64), target=0)
    m = workbench.method("fullgrad", unsupported="gradient")
    m.attribute(net, torch.ones(1, 3, dtype=torch.float64), target=0)
    assert m.last_conventions and type(layer).__name__ in m.last_conventions[0]
