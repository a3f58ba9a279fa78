"""Smoke runs of the FullGrad completeness experiment: random torchvision nets and a user checkpoint."""

from workbench.experiments.fullgrad_completeness import FullGradCompleteness
from workbench.runner import experiment as X


def test_relu_networks_reconstruct_to_round_off_and_gelu_does_not(tmp_path):
    r = X.run(FullGradCompleteness(architectures=("resnet18",), images=1, size=32), results=tmp_path, log=lambda m: None)
    rec = r.summary["per_architecture"]["resnet18"]
    assert rec["float64"]["relative_residual"] < 1e-10 and rec["float32"]["relative_residual"] < 1e-4
    assert rec["float64"]["batchnorm_terms"] == 20 and rec["float64"]["bias_share"] > 1e-3  # the biases matter
    assert rec["gelu_float64"]["relative_residual"] > 1e-6 and rec["gelu_float64"]["implicit_bias_layers"] > 0
    assert "resnet18" in r.out_dir.name


def test_user_checkpoint_on_an_imagefolder(tmp_path, image_folder, resnet18_checkpoint):
    exp = FullGradCompleteness(architectures=("resnet18",), weights=str(resnet18_checkpoint), source=str(image_folder), images=2, size=32, smooth=False)
    r = X.run(exp, results=tmp_path, log=lambda m: None)
    rec = r.summary["per_architecture"]["resnet18"]
    assert rec["random_weights"] is False and rec["float64"]["relative_residual"] < 1e-10
