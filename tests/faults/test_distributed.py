"""torchrun runs of an experiment (gloo, CPU, 2 real processes): the summary equals the
1-process run's and every item is recorded exactly once across the shards, also after a kill -9
of the job and a restart with another number of processes; shards that disagree are refused."""

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from unittest import mock
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
import torch

from workbench.runner import experiment as X
from workbench.runner.distributed import DistributedError, Group, ShardConflictError, from_environment, merge_shards, shard_paths
from workbench.core.errors import InputError
from workbench.runner.store import FolderLock, ResultsLockedError

from tests.faults.distributed_items import DistItems  # noqa: E402 (the test folders are not packages)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
QUIET = dict(log=lambda m: None)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The 1-process run: records by key and summary."""
    r = X.run(DistItems(), results=tmp_path_factory.mktemp("clean"), **QUIET)
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    return {row["key"]: row["record"] for row in rows}, r.summary


def _env(tmp_path: Path, pause: float) -> dict:
    """The subprocesses import the test experiment through a sitecustomize on their path."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import distributed_items  # registers dist-test\n")
    path = os.pathsep.join([str(site), str(HERE), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path, "WORKBENCH_TEST_ITEM_PAUSE": str(pause), "OMP_NUM_THREADS": "1"}


def _command(nproc: int, results: Path) -> list[str]:
    args = ["-m", "workbench", "experiment", "dist-test", "--results", str(results), "--quiet"]
    if nproc == 1:
        return [sys.executable, *args]  # a plain 1-process run
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone", *args, "--dist-timeout", "60"]


def _run(nproc: int, results: Path, tmp_path: Path, pause: float = 0.0) -> subprocess.CompletedProcess:
    done = subprocess.run(_command(nproc, results), env=_env(tmp_path, pause), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 30
    while any(_running(p) for p in pids):
        assert time.monotonic() < deadline, "a killed rank is still running"
        time.sleep(0.02)


def _assert_exactly_once(out: Path, clean) -> collections.Counter:
    """Every item in exactly one shard with the clean record, whole lines only; summary as clean."""
    records, summary = clean
    seen: collections.Counter = collections.Counter()
    per_shard = {}
    for path in shard_paths(out):
        data = path.read_text()
        assert data == "" or data.endswith("\n"), f"{path.name} has a torn tail"
        rows = [json.loads(line) for line in data.splitlines()]
        per_shard[path.stem] = len(rows)
        for row in rows:
            seen[row["key"]] += 1
            assert row["record"] == records[row["key"]]
    assert seen == collections.Counter(list(records)), f"not exactly once: {seen}"
    assert json.loads((out / "summary.json").read_text()) == summary
    return collections.Counter(per_shard)


def test_two_processes_give_the_one_process_summary_and_each_item_once(tmp_path, clean):
    _run(2, tmp_path / "r", tmp_path)
    per_shard = _assert_exactly_once(tmp_path / "r" / DistItems().name, clean)
    assert per_shard == {"rank0-of-2": 6, "rank1-of-2": 6}  # shared out evenly, both ranks worked


def _kill_midway(nproc: int, results: Path, tmp_path: Path, out: Path) -> int:
    """Start a run, kill -9 it (agent and ranks) once 3 items are recorded; the items recorded."""
    job = subprocess.Popen(_command(nproc, results), env=_env(tmp_path, 0.5), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while sum(p.read_bytes().count(b"\n") for p in shard_paths(out)) < 3 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        ranks = _children(job.pid)  # torchrun starts each rank in a session of its own
        for pid in [job.pid, *ranks]:  # the whole job, agent and ranks: a node lost
            os.kill(pid, signal.SIGKILL)
        job.wait()
        _wait_gone(ranks)
    lines = sum(p.read_bytes().count(b"\n") for p in shard_paths(out))
    assert 3 <= lines < 12, f"the kill did not land mid-run ({lines} items recorded)"
    assert not (out / "summary.json").exists()
    return lines


def test_killed_two_process_run_completes_with_one_process(tmp_path, clean):
    out = tmp_path / "r" / DistItems().name
    lines = _kill_midway(2, tmp_path / "r", tmp_path, out)
    _run(1, tmp_path / "r", tmp_path)
    per_shard = _assert_exactly_once(out, clean)
    assert per_shard["items"] == 12 - lines


def test_killed_one_process_run_completes_with_two_processes(tmp_path, clean):
    out = tmp_path / "r" / DistItems().name
    lines = _kill_midway(1, tmp_path / "r", tmp_path, out)
    with (out / "items.jsonl").open("a") as fh:
        fh.write('{"key": "item-11", "record": {"val')  # as if the kill had landed mid-write
    _run(2, tmp_path / "r", tmp_path)
    per_shard = _assert_exactly_once(out, clean)
    rest = 12 - lines
    assert per_shard == {"items": lines, "rank0-of-2": (rest + 1) // 2, "rank1-of-2": rest // 2}


def _shards(tmp_path: Path, clean, split: int = 7) -> Path:
    """A folder as a 2-process job leaves it (manifest, two shards), without the summary."""
    r = X.run(DistItems(), results=tmp_path, limit=0, **QUIET)  # the manifest
    rows = [{"key": k, "seconds": 0.0, "record": rec, "provenance": X.provenance()} for k, rec in clean[0].items()]
    for name, part in (("rank0-of-2", rows[:split]), ("rank1-of-2", rows[split:])):
        (r.out_dir / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in part))
    return r.out_dir


def test_a_key_in_two_shards_with_different_records_is_refused(tmp_path, clean):
    out = _shards(tmp_path, clean)
    row = json.loads((out / "rank0-of-2.jsonl").read_text().splitlines()[2])
    row["record"]["value"] += 1
    with (out / "rank1-of-2.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    match = r"'item-02' is recorded twice with different records, in rank0-of-2.jsonl line 3 and in rank1-of-2.jsonl line 6"
    with pytest.raises(ShardConflictError, match=match):
        merge_shards(out)
    with pytest.raises(ShardConflictError, match=match):
        X.run(DistItems(), results=tmp_path, **QUIET)
    assert not (out / "summary.json").exists()


def test_a_key_in_two_shards_with_equal_records_counts_once(tmp_path, clean):
    out = _shards(tmp_path, clean)
    with (out / "rank1-of-2.jsonl").open("a") as fh:
        fh.write((out / "rank0-of-2.jsonl").read_text().splitlines()[2] + "\n")
    said = []
    assert len(merge_shards(out, said.append)) == 12 and "1 item(s) recorded in two shards" in said[0]
    r = X.run(DistItems(), results=tmp_path, **QUIET)
    assert r.done == 0 and r.skipped == 12 and r.summary == clean[1]


def test_a_rank_still_writing_its_shard_is_named(tmp_path, clean):
    out = _shards(tmp_path, clean, split=12)
    (out / "rank1-of-2.jsonl").unlink()
    (out / "rank0-of-2.jsonl").write_text("".join(line + "\n" for line in (out / "rank0-of-2.jsonl").read_text().splitlines()[:4]))
    lock = FolderLock(out, "rank0-of-2").acquire()  # a rank of an interrupted job, still running
    try:
        with pytest.raises(ResultsLockedError, match=f"pid {os.getpid()}"):
            X.run(DistItems(), results=tmp_path, **QUIET)
    finally:
        lock.release()
    r = X.run(DistItems(), results=tmp_path, **QUIET)
    assert r.skipped == 4 and r.done == 8 and r.summary == clean[1]


def test_ctrl_c_counts_the_items_of_every_shard(tmp_path, clean, capsys, monkeypatch):
    from workbench.cli import main

    out = _shards(tmp_path, clean, split=7)
    rank1 = out / "rank1-of-2.jsonl"
    rank1.write_text("".join(line + "\n" for line in rank1.read_text().splitlines()[:2]))  # 7 + 2 items recorded by a job
    calls, real = [], DistItems.run_item

    def one_then_ctrl_c(self, key, ctx):
        if calls:
            raise KeyboardInterrupt
        calls.append(key)
        return real(self, key, ctx)

    monkeypatch.setattr(DistItems, "run_item", one_then_ctrl_c)
    assert main(["experiment", "dist-test", "--results", str(tmp_path), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 10 item(s) saved" in err, err  # 7 + 2 in the job's shards, 1 in items.jsonl
    assert len((out / "items.jsonl").read_text().splitlines()) == 1


# -- the coordination on ranks as threads (cheap: no processes) ---------------------------------
@dataclass
class ThreadGroup(Group):
    """A Group whose ranks are threads of this process, exchanging objects through `board`."""

    board: Any = None

    def gather(self, obj):
        self.board["slots"][self.rank] = obj
        self.board["barrier"].wait()
        out = list(self.board["slots"])
        self.board["barrier"].wait()
        return out

    def broadcast(self, obj):
        if self.rank == 0:
            self.board["value"] = obj
        self.board["barrier"].wait()
        out = self.board["value"]
        self.board["barrier"].wait()
        return out


def _run_threads(exps, results, limit=None) -> list:
    """Run exps[r] as rank r of len(exps); each rank's RunResult or exception."""
    board = {"slots": [None] * len(exps), "barrier": threading.Barrier(len(exps), timeout=60), "value": None}
    outcomes: list = [None] * len(exps)

    def rank(r):
        try:
            outcomes[r] = X.run(exps[r], results=results, limit=limit, dist=ThreadGroup(r, len(exps), r, "gloo", board=board), **QUIET)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            outcomes[r] = e

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(len(exps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return outcomes


@dataclass(frozen=True)
class FailsOnItem03(DistItems):
    """The same experiment (same results folder) whose item-03 raises: on rank 1 of 2."""

    def run_item(self, key, ctx):
        if key == "item-03":
            raise RuntimeError("item-03 broke")
        return super().run_item(key, ctx)


@dataclass(frozen=True)
class OtherOrder(DistItems):
    def items(self):
        return super().items()[::-1]


def test_a_failing_rank_fails_every_rank_and_the_rest_is_recorded(tmp_path, clean):
    r0, r1 = _run_threads([FailsOnItem03()] * 2, tmp_path)
    assert isinstance(r1, RuntimeError) and "item-03 broke" in str(r1)
    assert isinstance(r0, DistributedError) and "rank 1 of 2 failed while running its items: RuntimeError: item-03 broke" in str(r0)
    out = tmp_path / DistItems().name
    assert len((out / "rank0-of-2.jsonl").read_text().splitlines()) == 6  # rank 0 finished its share
    assert len((out / "rank1-of-2.jsonl").read_text().splitlines()) == 1  # item-01, then item-03 failed
    r0, r1 = _run_threads([DistItems()] * 2, tmp_path)
    assert (r0.done, r1.done, r0.skipped) == (3, 2, 7) and r0.summary == r1.summary == clean[1]
    _assert_exactly_once(out, clean)


def test_ranks_listing_other_items_are_refused(tmp_path):
    outcomes = _run_threads([DistItems(), OtherOrder()], tmp_path)
    for o in outcomes:
        assert isinstance(o, DistributedError) and "items() differ between rank 0 and rank 1" in str(o)
    assert not (tmp_path / DistItems().name).exists()  # the folder the job created is not left behind


def test_a_job_and_a_one_process_run_never_share_a_folder(tmp_path, clean):
    out = _shards(tmp_path, clean, split=3)
    lock = FolderLock(out, "items").acquire()  # a running job's rank 0 (or a 1-process run)
    try:
        for o in _run_threads([DistItems()] * 2, tmp_path):
            assert isinstance(o, (ResultsLockedError, DistributedError)) and "in use by another run" in str(o)
    finally:
        lock.release()


@given(steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), min_size=1, max_size=4), final=st.integers(0, 3))
def test_any_sequence_of_interrupted_runs_records_each_item_once(steps, final, clean):
    """Runs of 1 to 3 ranks (0: a plain 1-process run), each stopped after `limit` items, then a
    run to the end: every item once across the shards, the 1-process summary."""
    prov = X.provenance()
    with tempfile.TemporaryDirectory() as d, mock.patch.object(X, "provenance", lambda: prov):
        for world, limit in [*steps, (final, None)]:
            if world == 0:
                outcomes = [X.run(DistItems(), results=d, limit=limit, **QUIET)]
            else:
                outcomes = _run_threads([DistItems()] * world, d, limit=limit)
            assert all(isinstance(o, X.RunResult) for o in outcomes), outcomes
        _assert_exactly_once(Path(d) / DistItems().name, clean)
        assert outcomes[0].summary == clean[1]


def test_a_shard_name_is_not_chosen_under_torchrun(tmp_path):
    with pytest.raises(InputError, match="each rank writes the shard of its rank"):
        X.run(DistItems(), results=tmp_path, shard="mine", dist=Group(0, 1, 0, "gloo"), **QUIET)
    assert not any(tmp_path.iterdir())


# -- joining a job ---------------------------------------------------------------------------
def test_outside_torchrun_there_is_no_group(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_environment("cpu") is None


def test_backend_and_device_are_checked_before_joining(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(InputError, match="backend nccl needs --device cuda"):
        from_environment("cpu", backend="nccl")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA is not available"):
        from_environment("cuda")


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert Group(5, 8, 1, "nccl").device("cuda") == "cuda:1" and Group(5, 8, 1, "gloo").device("cpu") == "cpu"
    with pytest.raises(InputError, match="LOCAL_RANK 4 but this node has 4 GPU"):
        Group(4, 8, 4, "nccl").device("cuda")
    with pytest.raises(InputError, match="every rank on one GPU; pass --device cuda"):
        Group(1, 2, 1, "nccl").device("cuda:0")
    assert Group(0, 1, 0, "nccl").device("cuda:2") == "cuda:2"
