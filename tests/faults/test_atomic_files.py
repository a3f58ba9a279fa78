"""Counterexample files (fixture and network) are written atomically: a temporary file in the same
folder, fsync-ed, renamed over the target. A failed write (full disk) leaves no file, no partial
file and no temporary file; the old content of a rewritten file stays whole."""

import errno
import os

import pytest
import torch

from workbench.axioms.base import Outcome
from workbench.core.errors import WorkbenchError
from workbench.check.network import Network
from workbench.check.network.check import save_network_counterexample
from workbench.runner.store import ResultsWriteError, write_text_atomic
from workbench.methods import method


def _full_disk(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)


def test_write_text_atomic_keeps_the_old_file_whole_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    write_text_atomic(path, "old")
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and len(synced) == 2  # the file, then the folder
    _full_disk(monkeypatch)
    with pytest.raises(ResultsWriteError, match="disk is full"):
        write_text_atomic(path, "newer")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_a_network_counterexample_is_never_left_partial(tmp_path, monkeypatch):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).double().eval()
    net = Network(model, torch.randn(1, 3, 2, 2, dtype=torch.float64), arch="tiny", keys=["a.png"], size=2)
    m = method("gradient")
    saved = save_network_counterexample(tmp_path / "ok", m, net, "completeness", {"image": 0, "baseline": {"kind": "zero"}}, Outcome(1.0, 0.1))
    assert saved.is_file() and [p.name for p in saved.parent.iterdir()] == [saved.name]
    _full_disk(monkeypatch)
    with pytest.raises(WorkbenchError, match="disk is full"):
        save_network_counterexample(tmp_path / "full", m, net, "completeness", {"image": 0, "baseline": {"kind": "zero"}}, Outcome(1.0, 0.1))
    assert list((tmp_path / "full").iterdir()) == []
