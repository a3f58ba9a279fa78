"""Experiments across torchrun processes: one results shard per rank, rank 0 merges.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment),
``workbench experiment NAME`` joins a ``torch.distributed`` process group (nccl when the
device is cuda, gloo otherwise; ``--backend`` overrides; control messages always go over a
gloo group, on the CPU) and ``experiment.run(..., dist=group)`` runs in five steps:

1. rank 0 takes the folder's lock (the one a 1-process run takes, so a 1-process run and a
   job never write one folder at once) and the lock of every shard of an earlier job (a rank of
   an interrupted job that still writes is named, not raced); each rank locks its own shard
   ``rank<r>-of-<w>.jsonl`` and cuts a torn tail off it;
2. rank 0 reads every shard of the folder (``items.jsonl`` and all ``rank*-of-*.jsonl``, whatever
   world size wrote them), checks the manifest against each rank's provenance and broadcasts the
   keys not yet done, in the experiment's item order;
3. rank r runs ``remaining[r::w]`` (deterministic and balanced, whatever world sizes ran
   before) and appends each item durably to its own shard;
4. a gather of every rank's outcome (the barrier); a failure on any rank fails every rank,
   after the others recorded their items;
5. rank 0 merges all shards -- by key; a key recorded in two shards with identical records
   counts once, with different records it is refused -- and summarizes the records in item
   order, so the summary is the 1-process run's.

A key can be recorded in two shards only when ranks of an interrupted job outlive its rank 0
(which held the folder lock) and finish an item that a restarted job, on a stale view of a
shared file system, has also given out; step 1 refuses while such a rank still holds its shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from workbench.core.errors import InputError, WorkbenchError
from workbench.runner.store import FolderLock, ItemStore, ResultsCorruptError, ResultsLockedError, item_rows, write_json_atomic

__all__ = ["DistributedError", "Group", "ShardConflictError", "finished_keys", "from_environment", "lock_shards", "merge_shards", "run_job", "run_sharded", "shard_name", "shard_paths"]

#: the shard (and lock) of a 1-process run; its lock is the folder's lock, also held by a job's rank 0
FOLDER_SHARD = "items"
_RANK_SHARD = re.compile(r"rank(\d+)-of-(\d+)")


class DistributedError(WorkbenchError):
    """Another rank of the job failed; its message is included."""


class ShardConflictError(ResultsCorruptError):
    """One item recorded with two different records in the shards of a results folder."""


def shard_name(rank: int, world: int) -> str:
    """The shard a rank writes: ``rank<r>-of-<w>``."""
    return f"rank{rank}-of-{world}"


def shard_paths(folder: Path) -> list[Path]:
    """The item files of a results folder: ``items.jsonl``, then ``rank<r>-of-<w>.jsonl`` by (w, r)."""
    def order(p: Path) -> tuple:
        m = _RANK_SHARD.fullmatch(p.stem)
        return (0, 0, 0) if m is None else (1, int(m.group(2)), int(m.group(1)))
    return sorted((p for p in Path(folder).glob("*.jsonl") if p.stem == FOLDER_SHARD or _RANK_SHARD.fullmatch(p.stem)), key=order)


def _read_shard(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) of a shard, read only: a torn last line (its writer was killed) is
    skipped, never repaired here (the shard's owner does that under its lock)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ResultsCorruptError(f"cannot read {path}: {e.strerror or e}") from None
    return item_rows(data.split(b"\n")[:-1], path)


def finished_keys(folder: Path) -> set[str]:
    """The keys recorded in any shard of `folder` (read only; a shard that cannot be read counts
    nothing): what an interrupted run kept, whatever number of processes wrote it."""
    keys: set[str] = set()
    for path in shard_paths(Path(folder)):
        try:
            keys.update(row["key"] for _, row in _read_shard(path))
        except ResultsCorruptError:
            continue
    return keys


def run_job(run: Callable[[], Any], group: Optional["Group"], out_dir: Optional[Path], total: Optional[int], unit: str) -> tuple[Any, Optional[int]]:
    """Run a results-folder job (one process, or this rank of a torchrun job) the CLI way.

    Returns ``(result, None)`` where this process prints the result (rank 0, or no job), else
    ``(None, status)``: 0 on a rank other than 0 (rank 0 prints the whole job), 130 after Ctrl-C,
    with one line on stderr saying how many ``unit`` (of ``total``, when given) every shard of
    ``out_dir`` kept and how to resume. Without a folder (``out_dir`` None) Ctrl-C propagates. The process group
    is closed in every case.
    """
    try:
        result = run()
    except KeyboardInterrupt:
        if out_dir is None:
            raise
        done = len(finished_keys(out_dir))  # over every shard (items.jsonl and those of torchrun ranks)
        of = f" of {total}" if total is not None else ""
        print(f"interrupted: {done}{of} {unit} saved in {out_dir}; run the same command again to resume", file=sys.stderr)
        return None, 130
    finally:
        if group is not None:
            group.close()
    if group is not None and group.rank != 0:
        return None, 0
    return result, None


def merge_shards(folder: Path, log: Callable[[str], None] = lambda m: None) -> dict[str, dict]:
    """key -> row over all shards of `folder`. A key in two shards counts once when both records
    are equal; two different records of one key raise ``ShardConflictError`` naming both lines."""
    rows: dict[str, dict] = {}
    where: dict[str, tuple[Path, int]] = {}
    twice = 0
    for path in shard_paths(folder):
        for n, row in _read_shard(path):
            key = row["key"]
            if key not in rows:
                rows[key], where[key] = row, (path, n)
                continue
            first, line = where[key]
            if rows[key]["record"] != row["record"]:
                raise ShardConflictError(
                    f"item {key!r} is recorded twice with different records, in {first.name} line {line} and in {path.name} "
                    f"line {n} (folder {folder}): two runs computed it differently (other code, a nondeterministic item, or "
                    "an edited file), so the result cannot be trusted as one. Delete the wrong line (the item then counts "
                    "once) or move the folder away to start afresh"
                )
            twice += 1
    if twice:
        log(f"{folder}: {twice} item(s) recorded in two shards with identical records (ranks of an interrupted job "
            "finished them after a restart began); each counted once")
    return rows


def lock_shards(folder: Path, exclude: set[str], wait: float = 0.0, log: Callable[[str], None] = lambda m: None) -> list[FolderLock]:
    """Lock every shard of `folder` not in `exclude` (held until released) and cut a torn tail
    off it: a process that still writes one (a rank of an interrupted job) makes this raise
    ``ResultsLockedError`` naming it."""
    held: list[FolderLock] = []
    # a rank holds its lock a moment before its shard file exists: lock files count too
    names = {p.stem for p in shard_paths(folder)} | {p.stem for p in Path(folder).glob("rank*-of-*.lock") if _RANK_SHARD.fullmatch(p.stem)}
    try:
        for name in sorted(names - set(exclude)):
            held.append(FolderLock(folder, name, wait=wait).acquire())
            ItemStore(folder, name, log=log).load()
    except BaseException:
        for lock in held:
            lock.release()
        raise
    return held


@dataclass
class Group:
    """This process's place in a torchrun job, and collectives on plain Python objects."""

    rank: int
    world: int
    local_rank: int
    backend: str
    _ctrl: Any = None  # the gloo process group control objects travel over

    @property
    def shard(self) -> str:
        return shard_name(self.rank, self.world)

    def gather(self, obj: Any) -> list:
        """Every rank's `obj`, in rank order, on every rank (a barrier)."""
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj, group=self._ctrl)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self._ctrl)
        return box[0]

    def device(self, name: str) -> str:
        """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK``; an explicit index is
        refused when several ranks would share it."""
        dev = torch.device(name)
        if dev.type != "cuda":
            return name
        if dev.index is not None:
            if self.world > 1:
                raise InputError(f"--device {name} under torchrun with {self.world} processes would put every rank on one GPU; "
                                 "pass --device cuda (each rank takes cuda:LOCAL_RANK)")
            return name
        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise InputError(f"rank {self.rank} has LOCAL_RANK {self.local_rank} but this node has {count} GPU(s); "
                             "start at most that many processes per node (--nproc-per-node)")
        return f"cuda:{self.local_rank}"

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def from_environment(device: str, *, backend: Optional[str] = None, timeout: float = 7 * 24 * 3600.0) -> Optional[Group]:
    """The torchrun job this process belongs to (None when not started by torchrun): joins the
    process group with `backend` (default: nccl for a cuda device, gloo otherwise).

    ``timeout``: seconds a collective waits for the other ranks. The final gather waits for the
    slowest rank's items, so the default is long; torchrun ends a job whose worker died."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        raise WorkbenchError("started by torchrun, but this torch build has no torch.distributed; run one process, or install a torch with distributed support")
    try:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"]))
    except ValueError:
        raise WorkbenchError(f"RANK/WORLD_SIZE/LOCAL_RANK are not integers ({env.get('RANK')!r}, {env.get('WORLD_SIZE')!r}, {env.get('LOCAL_RANK')!r}); start the job with torchrun") from None
    try:
        kind = torch.device(device).type
    except RuntimeError as e:
        raise InputError(f"unknown device {device!r}: {e}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available on this machine")
    backend = backend or ("nccl" if kind == "cuda" else "gloo")
    if backend == "nccl" and kind != "cuda":
        raise InputError(f"backend nccl needs --device cuda (got {device!r}); use --backend gloo on CPUs")
    if not dist.is_backend_available(backend):
        raise InputError(f"torch.distributed backend {backend!r} is not available in this torch build; use --backend gloo")
    group = Group(rank, world, local, backend)
    if kind == "cuda":
        torch.cuda.set_device(torch.device(group.device(device)))
    wait = timedelta(seconds=timeout)
    dist.init_process_group(backend, timeout=wait)
    group._ctrl = dist.group.WORLD if backend == "gloo" else dist.new_group(backend="gloo", timeout=wait)
    return group


def _agree(group: Group, error: Optional[BaseException], what: str, payload: Any = None, hint: str = "") -> list:
    """Gather every rank's outcome of a step (and `payload`); raise on every rank when one
    failed, else return the payloads in rank order."""
    outcomes = group.gather((None if error is None else f"{type(error).__name__}: {error}", payload))
    if error is not None:
        raise error
    failed = [(r, m) for r, (m, _) in enumerate(outcomes) if m is not None]
    if failed:
        r, m = failed[0]
        raise DistributedError(f"rank {r} of {group.world} failed while {what}: {m}" + (f"; {hint}" if hint else ""))
    return [p for _, p in outcomes]


def _from_rank0(group: Group, error: Optional[BaseException], what: str, payload: Any = None) -> Any:
    """Rank 0's `payload` on every rank, or its failure raised on every rank."""
    message, payload = group.broadcast((None if error is None else f"{type(error).__name__}: {error}", payload))
    if error is not None:
        raise error
    if message is not None:
        raise DistributedError(f"rank 0 of {group.world} failed while {what}: {message}")
    return payload


def run_sharded(exp: Any, group: Group, *, results: Union[str, Path], log: Optional[Callable[[str], None]], limit: Optional[int], wait: float, allow_mixed: bool) -> Any:
    """``experiment.run`` for one rank of a torchrun job (see the module docstring)."""
    from workbench.runner import experiment as X

    base = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    say = lambda msg: base(f"[rank {group.rank}/{group.world}] {msg}")
    device = X.resolve_device(group.device(exp.device))
    keys = [str(k) for k in exp.items()]
    if len(set(keys)) != len(keys):
        raise InputError(f"{exp.name_prefix}: items() returned duplicate keys")
    out = Path(results) / exp.name
    locks: list[FolderLock] = []
    store = ItemStore(out, group.shard, log=say)
    created: list[Path] = []
    folder_locked = False
    ctx = X.Context(out, device, exp.seed, say)
    try:
        # 1. rank 0: the folder and its lock, and the shards of earlier jobs; then every rank its shard
        error: Optional[BaseException] = None
        if group.rank == 0:
            try:
                created = X._make_folder(out)
                locks.append(FolderLock(out, FOLDER_SHARD, wait=wait).acquire())
                folder_locked = True
                ItemStore(out, FOLDER_SHARD, log=say).load()  # cuts a torn tail of a 1-process run's shard
                locks += lock_shards(out, {FOLDER_SHARD} | {shard_name(r, group.world) for r in range(group.world)}, wait, say)
            except Exception as e:
                error = e
        _agree(group, error, f"taking the results folder {out}")
        prov = None
        try:
            if not out.is_dir():
                raise WorkbenchError(f"the results folder {out}, created by rank 0, is not visible on host {platform.node()}: --results "
                                     "must be a folder every node sees (a shared file system)")
            locks.append(FolderLock(out, group.shard, wait=wait).acquire())
            store.load()  # cuts a torn tail of this rank's shard
            prov = X.provenance()
        except Exception as e:
            error = e
        mine_keys = hashlib.sha256(json.dumps(keys).encode()).hexdigest()
        provs, key_lists = zip(*_agree(group, error, f"locking its shard of {out}", (prov, mine_keys)))
        if len(set(key_lists)) > 1:
            other = next(r for r, h in enumerate(key_lists) if h != key_lists[0])
            raise DistributedError(f"{exp.name_prefix}: items() differ between rank 0 and rank {other} (a different data folder, "
                                   "random or time-dependent keys); every rank must list the same items in the same order")
        # 2. rank 0 reads every shard, checks the manifest, gives out the remaining keys
        plan: Any = None
        if group.rank == 0:
            try:
                rows = merge_shards(out, say)
                with FolderLock(out, "manifest", wait=60.0):
                    for p in {json.dumps(p, sort_keys=True): p for p in provs}.values():
                        X._check_manifest(out, exp, device, p, rows, allow_mixed, say)
                stray = sorted(set(rows) - set(keys))
                if stray:
                    say(f"{exp.name}: {len(stray)} recorded items are not items of this experiment ({', '.join(stray[:3])}); ignored")
                remaining = [k for k in keys if k not in rows]
                plan = {"remaining": remaining[: max(0, limit)] if limit is not None else remaining, "skipped": len(keys) - len(remaining)}
            except Exception as e:
                error = e
        plan = _from_rank0(group, error, f"reading the shards of {out}", plan)
        # 3. this rank's share, appended to its own shard
        mine = plan["remaining"][group.rank :: group.world]
        if plan["skipped"] and group.rank == 0:
            say(f"{exp.name}: {plan['skipped']} of {len(keys)} items already done, resuming")
        try:
            store.open()
            for i, key in enumerate(X.with_images(exp, mine, ctx), 1):
                t0 = time.monotonic()
                record = exp.run_item(key, ctx)
                seconds = time.monotonic() - t0
                store.append({"key": key, "seconds": round(seconds, 4), "record": X._plain(record), "provenance": prov})
                say(f"{exp.name_prefix}: item {key} done in {seconds:.1f}s ({i}/{len(mine)})")
        except Exception as e:
            error = e
        finally:
            store.close()
        # 4. the barrier, carrying each rank's outcome
        _agree(group, error, "running its items", hint="the items every rank finished are recorded; run again to resume")
        # 5. rank 0 merges and summarizes in item order
        summary: Any = None
        if group.rank == 0:
            try:
                rows = merge_shards(out, say)
                if all(k in rows for k in keys):
                    summary = X._plain(exp.summarize([rows[k]["record"] for k in keys], ctx))
                    write_json_atomic(out / "summary.json", summary)
                else:
                    say(f"{exp.name}: {sum(k in rows for k in keys)} of {len(keys)} items done; run again to finish")
                    summary = {}
            except Exception as e:
                error = e
        summary = _from_rank0(group, error, f"merging and summarizing {out}", summary)
    except BaseException as e:
        for lock in reversed(locks):
            lock.release()
        if created and (folder_locked or not isinstance(e, ResultsLockedError)) and not any(p.stat().st_size for p in shard_paths(out)):
            X._remove_new_folder(created, out / f"{FOLDER_SHARD}.jsonl")
        raise
    for lock in reversed(locks):
        lock.release()
    return X.RunResult(out, len(mine), plan["skipped"], summary)
