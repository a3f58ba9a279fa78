"""Interrupted and concurrent runs never lose, duplicate, corrupt or mix an item.

A small test-only experiment (pure Python items with per-item seeds) is run clean once; then
every fault -- kill -9 at random moments, a kill in the middle of a write, a torn tail, two runs
at once, a full disk, a read-only folder, broken manifests, another commit -- is followed by a
resume, and the items file must hold every item exactly once with the clean run's records and
the summary must equal the clean run's."""

import collections
import errno
import json
import os
import random
import signal
import time
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.runner import experiment as X
from workbench.core.errors import InputError
from workbench.runner.store import ResultsCorruptError, ResultsLockedError, ResultsMismatchError, ResultsWriteError, export_items

QUIET = dict(log=lambda m: None)


@dataclass(frozen=True)
class Items(X.Experiment):
    """Deterministic items; ``pause`` seconds (on average) per item gives a window to kill in."""

    name_prefix = "store-fault-test"
    n: int = 10
    pause: float = 0.0

    def items(self):
        return [f"item-{k:02d}" for k in range(self.n)]

    def run_item(self, key, ctx):
        if self.pause:
            time.sleep(self.pause * (ctx.seed_for(key) % 100) / 50)
        v = ctx.seed_for(key) % 1000
        return {"value": v, "noise": float(torch.rand(1, generator=ctx.generator(key))), "nested": {"sq": [v, v * v]}}

    def summarize(self, records, ctx):
        return {"n": len(records), "total": sum(r["value"] for r in records), "noise": sum(r["noise"] for r in records)}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The clean run's records by key and its summary."""
    r = X.run(Items(), results=tmp_path_factory.mktemp("clean"), **QUIET)
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    return {row["key"]: row["record"] for row in rows}, r.summary


def assert_exactly_once(out_dir, clean, summary=None):
    """Every item exactly once, with the clean record, whole lines only; the summary as clean."""
    records, clean_summary = clean
    data = (out_dir / "items.jsonl").read_bytes()
    assert data.endswith(b"\n")
    rows = [json.loads(line) for line in data.decode().splitlines()]
    counts = collections.Counter(r["key"] for r in rows)
    lost = set(records) - set(counts)
    duplicated = {k for k, c in counts.items() if c > 1}
    corrupted = {r["key"] for r in rows if r["record"] != records.get(r["key"])}
    assert (lost, duplicated, corrupted) == (set(), set(), set())
    assert all(r["provenance"]["versions"]["torch"] == torch.__version__ for r in rows)
    if summary is not None:
        assert summary == clean_summary
    assert json.loads((out_dir / "summary.json").read_text()) == clean_summary


def _fork_run(exp, results, status_file=None, **kw):
    """Run `exp` in a forked child; its exit status 3 means refused (message in status_file)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            X.run(exp, results=results, **QUIET, **kw)
        except ResultsLockedError as e:
            code = 3
            if status_file:
                open(status_file, "w").write(str(e))
        except BaseException:
            code = 4
        os._exit(code)
    return pid


def _exit_code(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_kill_9_at_random_moments_then_resume(tmp_path, clean):
    exp = Items(pause=0.01)
    seed = int(os.environ.get("WORKBENCH_FAULT_SEED") or int.from_bytes(os.urandom(4), "little"))
    rng = random.Random(seed)
    print(f"kill moments drawn with WORKBENCH_FAULT_SEED={seed}")  # shown when the test fails
    out = tmp_path / exp.name
    kills = 0
    for _ in range(5):
        pid = _fork_run(exp, tmp_path)
        time.sleep(rng.uniform(0.0, 0.12))
        os.kill(pid, signal.SIGKILL)
        code = _exit_code(pid)
        kills += code == -signal.SIGKILL
        if (out / "items.jsonl").exists():  # between runs: whole lines, no key twice
            lines = (out / "items.jsonl").read_text().splitlines()
            assert len({json.loads(line)["key"] for line in lines}) == len(lines)
    assert kills >= 1
    r = X.run(exp, results=tmp_path, **QUIET)
    assert r.skipped + r.done == exp.n
    assert_exactly_once(r.out_dir, clean, r.summary)


def test_kill_9_in_the_middle_of_a_write(tmp_path, clean):
    exp = Items()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child writes half of its third item, then dies
        real, calls = os.write, []

        def half_then_die(fd, data):
            if bytes(data[:8]) == b'{"key":"':
                calls.append(1)
                if len(calls) == 3:
                    real(fd, bytes(data[: len(data) // 2]))
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(fd, data)

        os.write = half_then_die
        try:
            X.run(exp, results=tmp_path, **QUIET)
        finally:
            os._exit(0)
    assert _exit_code(pid) == -signal.SIGKILL
    items = tmp_path / exp.name / "items.jsonl"
    assert not items.read_bytes().endswith(b"\n")  # the torn tail is there
    messages = []
    r = X.run(exp, results=tmp_path, log=messages.append)
    assert r.skipped == 2 and any("torn last line" in m for m in messages)
    assert_exactly_once(r.out_dir, clean, r.summary)


def test_a_torn_tail_is_cut_off_and_rerun(tmp_path, clean):
    exp = Items()
    X.run(exp, results=tmp_path, limit=3, **QUIET)
    items = tmp_path / exp.name / "items.jsonl"
    with items.open("a") as fh:
        fh.write('{"key":"item-03","record":{"val')
    r = X.run(exp, results=tmp_path, **QUIET)
    assert r.skipped == 3
    assert_exactly_once(r.out_dir, clean, r.summary)


def test_a_bad_line_inside_the_file_or_a_key_twice_is_an_error(tmp_path):
    exp = Items()
    X.run(exp, results=tmp_path, limit=3, **QUIET)
    items = tmp_path / exp.name / "items.jsonl"
    lines = items.read_text().splitlines(keepends=True)
    items.write_text(lines[0] + '{"key": "item-01", "rec\n' + "".join(lines[1:]))
    with pytest.raises(ResultsCorruptError, match="line 2"):
        X.run(exp, results=tmp_path, **QUIET)
    items.write_text("".join(lines) + lines[0])
    with pytest.raises(ResultsCorruptError, match="recorded twice"):
        X.run(exp, results=tmp_path, **QUIET)


def test_two_runs_at_once_one_refuses_naming_the_holder(tmp_path, clean):
    exp = Items(pause=0.05)
    first = _fork_run(exp, tmp_path)
    lock = tmp_path / exp.name / "items.lock"
    for _ in range(400):  # until the first run holds the folder (its pid in the lock file)
        if lock.exists() and f'"pid": {first}' in lock.read_text():
            break
        time.sleep(0.025)
    msg = tmp_path / "refused.txt"
    second = _fork_run(exp, tmp_path, status_file=msg)
    codes = sorted([_exit_code(first), _exit_code(second)])
    assert codes == [0, 3], codes
    assert f"pid {first}" in msg.read_text() and "--wait" in msg.read_text()
    assert_exactly_once(tmp_path / exp.name, clean)


def test_two_runs_at_once_the_second_waits_and_skips_everything(tmp_path, clean):
    exp = Items(pause=0.01)
    a = _fork_run(exp, tmp_path, wait=60)
    b = _fork_run(exp, tmp_path, wait=60)
    assert (_exit_code(a), _exit_code(b)) == (0, 0)
    assert_exactly_once(tmp_path / exp.name, clean)


@pytest.mark.parametrize("partial", [False, True], ids=["write-refused", "half-written"])
def test_a_full_disk_keeps_whole_lines_and_resumes(tmp_path, clean, monkeypatch, partial):
    exp = Items()
    real, calls = os.write, []

    def full(fd, data):
        if bytes(data[:8]) == b'{"key":"':
            calls.append(1)
            if len(calls) == 3:
                if partial:
                    return real(fd, bytes(data[:10]))  # a short write, then the next call fails
                raise OSError(errno.ENOSPC, "No space left on device")
            if len(calls) > 3 and partial and len(calls) == 4:
                raise OSError(errno.ENOSPC, "No space left on device")
        elif partial and len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(ResultsWriteError, match="disk is full"):
        X.run(exp, results=tmp_path, **QUIET)
    monkeypatch.setattr(os, "write", real)
    lines = (tmp_path / exp.name / "items.jsonl").read_bytes()
    assert lines.endswith(b"\n") and lines.count(b"\n") == 2
    r = X.run(exp, results=tmp_path, **QUIET)
    assert r.skipped == 2
    assert_exactly_once(r.out_dir, clean, r.summary)


def test_a_read_only_folder_is_a_clear_error(tmp_path, clean, monkeypatch):
    exp = Items()
    X.run(exp, results=tmp_path, limit=2, **QUIET)
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if str(path).startswith(str(tmp_path)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(ResultsWriteError, match="not writable"):
        X.run(exp, results=tmp_path, **QUIET)
    monkeypatch.setattr(os, "open", real_open)
    if os.geteuid() != 0:  # the real thing, where permissions bind (not as root)
        (tmp_path / exp.name).chmod(0o555)
        try:
            with pytest.raises(ResultsWriteError, match="not writable"):
                X.run(exp, results=tmp_path, **QUIET)
        finally:
            (tmp_path / exp.name).chmod(0o755)
    r = X.run(exp, results=tmp_path, **QUIET)
    assert_exactly_once(r.out_dir, clean, r.summary)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"config": 3}'], ids=["empty", "truncated", "list", "no-config"])
def test_broken_manifests(tmp_path, clean, text):
    exp = Items()
    X.run(exp, results=tmp_path, limit=2, **QUIET)
    manifest = tmp_path / exp.name / "manifest.json"
    manifest.write_text(text)
    with pytest.raises(ResultsCorruptError, match="2 items are recorded"):
        X.run(exp, results=tmp_path, **QUIET)
    (tmp_path / exp.name / "items.jsonl").unlink()  # nothing recorded: the manifest is written anew
    r = X.run(exp, results=tmp_path, **QUIET)
    assert json.loads(manifest.read_text())["config"] == exp.config()
    assert_exactly_once(r.out_dir, clean, r.summary)


def test_resuming_under_another_commit_refuses_unless_allowed(tmp_path, clean, monkeypatch):
    exp = Items()
    X.run(exp, results=tmp_path, limit=4, **QUIET)
    real = X.provenance()
    other = {**real, "commit": "f" * 40, "dirty": False}
    monkeypatch.setattr(X, "provenance", lambda: other)
    with pytest.raises(ResultsMismatchError, match="fffffffffff"):
        X.run(exp, results=tmp_path, **QUIET)
    changed = {**real, "versions": {**real["versions"], "torch": "0.0.1"}}
    monkeypatch.setattr(X, "provenance", lambda: changed)
    with pytest.raises(ResultsMismatchError, match="torch"):
        X.run(exp, results=tmp_path, **QUIET)
    monkeypatch.setattr(X, "provenance", lambda: other)
    r = X.run(exp, results=tmp_path, allow_mixed=True, **QUIET)
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert {row["provenance"]["commit"] for row in rows} == {real["commit"], "f" * 40}
    assert json.loads((r.out_dir / "manifest.json").read_text())["resumed_under"][0]["commit"] == "f" * 40
    monkeypatch.setattr(X, "provenance", lambda: real)
    assert X.run(exp, results=tmp_path, allow_mixed=True, **QUIET).summary == clean[1]


@dataclass(frozen=True)
class Failing(Items):
    fail_at: int = 0

    def run_item(self, key, ctx):
        if key == f"item-{self.fail_at:02d}":
            raise RuntimeError("boom")
        return super().run_item(key, ctx)


def test_no_orphan_folder_after_a_failed_setting_or_first_item(tmp_path):
    cls = X.get_experiment("ig-baselines")
    with pytest.raises(InputError):
        X.run(X.configure(cls, ["images=-1"]), results=tmp_path / "r", **QUIET)
    with pytest.raises(RuntimeError):
        X.run(Failing(), results=tmp_path / "r", **QUIET)
    assert not (tmp_path / "r").exists()
    with pytest.raises(RuntimeError):  # items were recorded: the folder stays, to resume
        X.run(Failing(fail_at=2), results=tmp_path / "r", **QUIET)
    assert len((tmp_path / "r" / Failing(fail_at=2).name / "items.jsonl").read_text().splitlines()) == 2


def test_export_as_jsonl_and_csv(tmp_path, clean):
    r = X.run(Items(), results=tmp_path, **QUIET)
    assert export_items(r.out_dir, tmp_path / "out.jsonl") == 10
    assert [json.loads(line)["record"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == list(clean[0].values())
    assert export_items(r.out_dir, tmp_path / "out.csv", format="csv") == 10
    header, first = (tmp_path / "out.csv").read_text().splitlines()[:2]
    assert header == "key,seconds,commit,dirty,nested,noise,value" and first.startswith("item-00,")


def test_a_folder_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if str(path).startswith(str(tmp_path / "new")) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(ResultsWriteError, match="not writable"):
        X.run(Items(), results=tmp_path / "new" / "deeper", **QUIET)
    assert not (tmp_path / "new").exists()


def test_shards_of_one_folder_lock_separately(tmp_path, clean):
    """Runs writing different shards (issue 14: one per rank) share the folder and its manifest."""
    exp = Items(pause=0.01)
    a = _fork_run(exp, tmp_path, shard="rank0")
    b = _fork_run(exp, tmp_path, shard="rank1")
    assert (_exit_code(a), _exit_code(b)) == (0, 0)
    for shard in ("rank0", "rank1"):
        keys = [json.loads(line)["key"] for line in (tmp_path / exp.name / f"{shard}.jsonl").read_text().splitlines()]
        assert sorted(keys) == sorted(clean[0])
    with pytest.raises(InputError, match="shard"):
        X.run(exp, results=tmp_path, shard="manifest", **QUIET)


FAULTS = ("crash", "torn", "enospc", "limit")


@given(schedule=st.lists(st.tuples(st.sampled_from(FAULTS), st.integers(0, 11), st.integers(1, 60)), min_size=1, max_size=4))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
def test_any_schedule_of_in_process_faults_then_resume(schedule, tmp_path_factory, clean, monkeypatch):
    """Item crashes, torn tails of any length, a full disk at any item and partial runs, in any
    order: one resume then holds every item exactly once and the clean summary."""
    fixed = X.provenance()
    monkeypatch.setattr(X, "provenance", lambda: fixed)  # git once, not per run
    results = tmp_path_factory.mktemp("schedule")
    real_write = os.write
    for fault, k, size in schedule:
        exp = Items()
        items = results / exp.name / "items.jsonl"
        if fault == "crash":
            crash_key = f"item-{k % 10:02d}"

            class Crashing(Items):
                def run_item(self, key, ctx):
                    if key == crash_key:
                        raise KeyboardInterrupt  # an interrupt mid-item: nothing of it is written
                    return Items.run_item(self, key, ctx)

            try:
                X.run(_as(Crashing, exp), results=results, **QUIET)
            except KeyboardInterrupt:
                pass  # (not raised when that item was done before)
        elif fault == "torn" and items.exists():
            row = json.dumps({"key": f"item-{k:02d}", "seconds": 0.1, "record": {"value": 1}})
            with items.open("a") as fh:
                fh.write(row[: min(size, len(row) - 1)])
        elif fault == "enospc":
            calls = []

            def full(fd, data, calls=calls, k=k, size=size):
                if bytes(data[:8]) == b'{"key":"':
                    calls.append(1)
                    if len(calls) > k % 4:
                        real_write(fd, bytes(data[: size % len(data)]))  # part of the line, maybe none
                        raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(fd, data)

            monkeypatch.setattr(os, "write", full)
            try:
                X.run(exp, results=results, **QUIET)
            except ResultsWriteError:
                pass
            finally:
                monkeypatch.setattr(os, "write", real_write)
        elif fault == "limit":
            X.run(exp, results=results, limit=k % 5, **QUIET)
    r = X.run(Items(), results=results, **QUIET)
    assert_exactly_once(r.out_dir, clean, r.summary)


def _as(cls, exp):
    """`exp`'s fields in a subclass instance with the same name (same results folder)."""
    obj = cls(**{f: getattr(exp, f) for f in ("seed", "device", "n", "pause")})
    assert obj.name == exp.name
    return obj


def test_cli_refuses_a_held_folder_and_exports(tmp_path, capsys, monkeypatch):
    from workbench.cli import main
    from workbench.runner.store import FolderLock

    monkeypatch.setitem(X._REGISTRY, Items.name_prefix, Items)  # for this test only
    args = ["experiment", Items.name_prefix, "--set", "n=3", "--results", str(tmp_path), "--quiet"]
    exp = Items(n=3)
    (tmp_path / exp.name).mkdir(parents=True)
    with FolderLock(tmp_path / exp.name, "items"):
        assert main(args) == 2
        assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert main(args + ["--export", str(tmp_path / "items.csv")]) == 0
    assert "exported 3 items" in capsys.readouterr().out
    assert (tmp_path / "items.csv").read_text().startswith("key,seconds,commit,dirty")


def test_a_failed_run_keeps_a_folder_holding_another_shards_items(tmp_path):
    from workbench.runner.experiment import _remove_new_folder

    root, folder = tmp_path / "runs", tmp_path / "runs" / "exp"
    folder.mkdir(parents=True)
    (folder / "b.jsonl").write_text('{"key": "1", "record": {}}\n')  # another run's shard
    _remove_new_folder([root, folder], folder / "a.jsonl")
    assert (folder / "b.jsonl").exists()
    (folder / "b.jsonl").unlink()
    _remove_new_folder([root, folder], folder / "a.jsonl")
    assert not root.exists()


def test_export_reads_each_shard_under_its_lock(tmp_path, clean):
    from workbench.runner.store import FolderLock

    r = X.run(Items(), results=tmp_path, **QUIET)
    items = r.out_dir / "items.jsonl"
    with items.open("a") as fh:
        fh.write('{"key": "item-99", "rec')  # a run still writing (or killed mid-write)
    torn = items.read_bytes()
    with FolderLock(r.out_dir, "items"):  # that run holds its shard: export neither reads a half state nor repairs it
        with pytest.raises(ResultsLockedError, match=f"pid {os.getpid()}"):
            export_items(r.out_dir, tmp_path / "out.jsonl")
        assert items.read_bytes() == torn and not (tmp_path / "out.jsonl").exists()
    assert export_items(r.out_dir, tmp_path / "out.jsonl") == 10  # then the torn tail is cut under the lock
    assert items.read_bytes() == torn[: torn.rindex(b"\n") + 1]
