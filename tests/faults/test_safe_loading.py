"""Checkpoints from someone else run no code: every entry point that takes ``--weights`` reads it
with ``weights_only=True`` (or safetensors); a pickled module needs an explicit, named opt-in.

A crafted pickle writes a marker file when unpickled; the marker proves whether code ran."""

import pathlib

import pytest
import torch
import torchvision
from torch import nn

from workbench.runner import experiment as X
from workbench.cli import main
from workbench.data.sources import load_model, read_checkpoint, torchvision_model
from workbench.core.errors import InputError, UnsafeCheckpointError


class _Evil:
    """Unpickling calls Path.touch(marker): arbitrary code the file's author chose."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "payload": _Evil(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_malicious_pickle_is_refused_at_every_entry_point_and_runs_nothing(evil, tmp_path, capsys):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError, match="runs any code"):
        read_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        load_model("resnet18", weights=str(path))
    assert main(["explain", "skimage:camera", "--model", "resnet18", "--weights", str(path), "--out", str(tmp_path / "x.png")]) == 2
    assert "refused to load" in capsys.readouterr().err
    cls = X.get_experiment("ig-baselines")
    exp = X.configure(cls, [f"weights={path}", "model=resnet18", "source=skimage", "images=1", "size=32"])
    with pytest.raises(UnsafeCheckpointError):
        X.run(exp, results=tmp_path / "results", log=lambda m: None)
    assert not marker.exists()
    assert not (tmp_path / "results").exists()  # the failed run left no folder behind
    # the opt-in is what runs it: proof that the marker would have caught a load
    assert main(["explain", "skimage:camera", "--model", "resnet18", "--weights", str(path), "--trust-pickle", "--out", str(tmp_path / "x.png")]) == 2
    assert marker.exists() and "does not fit resnet18" in capsys.readouterr().err


def test_a_pickled_module_needs_the_opt_in(tmp_path):
    net = torchvision.models.get_model("resnet18", weights=None, num_classes=3)
    path = tmp_path / "module.pt"
    torch.save(net, path)
    with pytest.raises(UnsafeCheckpointError, match="trust-pickle"):
        torchvision_model("resnet18", str(path))
    model, random_weights = torchvision_model("resnet18", str(path), allow_pickle=True)
    assert isinstance(model, nn.Module) and not random_weights and not model.training


def test_state_dicts_load_safely_from_torch_save_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    net = torchvision.models.get_model("resnet18", weights=None, num_classes=5)
    with torch.no_grad():
        net.fc.bias.normal_()
    state = net.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    for name in ("ddp.pt", "w.safetensors"):
        model, random_weights = torchvision_model("resnet18", str(tmp_path / name))
        assert not random_weights and model.fc.out_features == 5
        assert torch.equal(model.fc.bias, net.fc.bias)


def test_unreadable_checkpoints_give_clear_errors(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 16)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    for name, match in (("bad.pt", "cannot read"), ("bad.safetensors", "cannot read safetensors"), ("list.pt", "no state dict"), ("missing.pt", "does not exist")):
        with pytest.raises(InputError, match=match):
            torchvision_model("resnet18", str(tmp_path / name))


def test_no_torch_load_without_weights_only_true_in_the_project():
    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = []
    for path in list(root.glob("workbench/**/*.py")) + list(root.glob("experiments/**/*.py")) + list(root.glob("benchmarks/**/*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(root)}:{n}")
    # the one deliberate exception: read_checkpoint's explicit allow_pickle branch
    assert offenders == ["workbench/data/sources.py:" + str(_allow_pickle_line(root))], offenders


def _allow_pickle_line(root: pathlib.Path) -> int:
    lines = (root / "workbench/data/sources.py").read_text().splitlines()
    return next(i for i, l in enumerate(lines, 1) if "weights_only=False" in l)
