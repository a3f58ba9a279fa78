"""The network check under torchrun (gloo, CPU, 2 real processes): the (axiom, image) units are
shared out over the ranks, each rank appends to its own shard, rank 0 prints the report -- the
1-process report, with a violation found and shrunk the same way; a job resumed with another
number of processes finishes every unit exactly once with the same report."""

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.runner.distributed import shard_paths
from workbench.check.network.job import NetworkCheck
from workbench.testing.folders import image_folder, random_checkpoint

ROOT = Path(__file__).resolve().parents[2]
BROKEN = "tests.unit.test_netcheck:reads_parameters"  # scales IG by the first conv's weight norm
AXIOMS = "implementation-invariance,completeness,dummy"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("netjob")
    return random_checkpoint(root / "resnet18.pt", num_classes=5, seed=1), image_folder(root / "images", seed=1)


def _check(files, tmp_path, nproc: int, results=None) -> tuple[subprocess.CompletedProcess, list]:
    weights, images = files
    args = ["-m", "workbench", "check", BROKEN, "--model", "resnet18", "--weights", str(weights), "--source", str(images),
            "--images", "3", "--size", "16", "--axioms", AXIOMS, "--examples", "4", "--shrink-seconds", "1000",
            "--out", str(tmp_path / "cex"), "--json", "--quiet"]
    args += ["--results", str(results)] if results is not None else []
    cmd = [sys.executable, *args] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone", *args]
    # one thread per process, as torchrun sets it: round-off then does not depend on the thread count
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-4000:]  # the claimed axiom fails
    return done, json.loads(done.stdout)


def _units(out: Path) -> collections.Counter:
    """Units recorded per shard; every unit in exactly one shard, whole lines only."""
    seen: collections.Counter = collections.Counter()
    per_shard = collections.Counter()
    for path in shard_paths(out):
        data = path.read_text()
        assert data == "" or data.endswith("\n"), f"{path.name} has a torn tail"
        for line in data.splitlines():
            seen[json.loads(line)["key"]] += 1
            per_shard[path.stem] += 1
    assert set(seen.values()) == {1}, f"a unit recorded twice: {seen}"
    return per_shard


def test_two_processes_give_the_one_process_report_and_a_restart_with_one_finishes_it(files, tmp_path):
    _, alone = _check(files, tmp_path, 1)  # in memory, one process
    (verdicts,) = [r["verdicts"] for r in alone]
    cells = {v["axiom"]: v["status"] for v in verdicts}
    assert cells["implementation-invariance"] == "fails" and verdicts[0]["counterexample"]
    results = tmp_path / "results"
    done, sharded = _check(files, tmp_path, 2, results)
    assert sharded == alone, (alone, sharded)
    assert done.stdout.count('"verdicts"') == 1  # rank 0 alone prints the report
    exp = NetworkCheck.of(BROKEN, weights=files[0], source=files[1], images=3, size=16, axioms=AXIOMS.split(","), examples=4,
                          shrink_seconds=1000.0, out=str(tmp_path / "cex"))
    out = results / exp.name
    assert out.is_dir(), sorted(p.name for p in results.iterdir())
    assert _units(out) == {"rank0-of-2": 5, "rank1-of-2": 4}  # 3 axioms x 3 images, shared out
    # a job interrupted after rank 1's first unit: a 1-process run finishes it, each unit once
    shard = out / "rank1-of-2.jsonl"
    shard.write_text(shard.read_text().splitlines()[0] + "\n")
    (out / "summary.json").unlink()
    _, resumed = _check(files, tmp_path, 1, results)
    assert resumed == alone
    assert _units(out) == {"rank0-of-2": 5, "rank1-of-2": 1, "items": 3}
