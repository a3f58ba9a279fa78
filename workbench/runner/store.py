"""The results store of an experiment run: a folder that never loses, duplicates or mixes items.

* ``FolderLock``: an exclusive ``fcntl.flock`` on ``<folder>/<name>.lock`` held for the run; the
  file names the holder (pid, host, start), so a second run into the same folder waits or
  refuses with that name. The kernel drops the lock when the holder dies, even by ``kill -9``.
* ``ItemStore``: ``<folder>/<shard>.jsonl``, one JSON line per finished item, appended with a
  single ``write`` and ``fsync``-ed before the next item starts. On open, a torn last line (a
  crash, a full disk or a power cut mid-write) is cut off and that item is recomputed; a bad line
  anywhere else, or a key recorded twice, is an error (something other than the bench changed
  the file). A failed write (full disk, read-only folder) truncates back to the last whole line.
  Several shards (e.g. one per torchrun rank) can live in one folder, each under its own lock.
* ``write_json_atomic``: manifest and summary are written to a temporary file and renamed.

JSONL was kept over SQLite (WAL) after measuring both (``benchmarks/bench_store.py``): the same
crash behaviour under ``kill -9`` (nothing lost, duplicated or corrupt), 1.1-1.2x (fsync per
item) to 4-6x (no fsync) the append throughput, the same resume read time (parsing each row),
readable with any tool, shards that merge by
concatenation, and no dependence on shared memory, which SQLite's WAL mode needs and network
file systems (the shared clusters experiments run on) do not provide.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from workbench.core.errors import InputError, WorkbenchError

__all__ = ["FolderLock", "ItemStore", "ResultsCorruptError", "ResultsLockedError", "ResultsMismatchError", "ResultsWriteError", "export_items", "write_json_atomic", "write_text_atomic"]


class ResultsLockedError(WorkbenchError):
    """Another run holds the results folder."""


class ResultsCorruptError(WorkbenchError):
    """A results file that the bench did not write as it is (edited, truncated in the middle, mixed)."""


class ResultsMismatchError(InputError):
    """Resuming would mix results of another configuration, commit or package versions."""


class ResultsWriteError(WorkbenchError):
    """The results folder cannot be written (full disk, read-only, permissions)."""


def write_error(e: OSError, what: str, path: Path) -> ResultsWriteError:
    """A clear message for an OSError met while writing results."""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        why = "the disk is full (or the quota is exhausted)"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = f"the folder is not writable ({os.strerror(e.errno)})"
    else:
        why = f"{type(e).__name__}: {e.strerror or e}"
    return ResultsWriteError(f"cannot {what} {path}: {why}. Nothing partial was kept; free space or choose a writable --results folder, then run again to resume")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Union[str, Path], text: str) -> Path:
    """Write `text` to a temporary file in the same folder, fsync it, rename it over `path` (and
    fsync the folder): a reader sees the old file or the whole new one, never a torn one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise write_error(e, "write", path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(e, "write", path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON atomically (``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False))


class FolderLock:
    """Exclusive lock of a results folder (``fcntl.flock``), naming its holder.

    ``wait``: seconds to wait for another holder to finish (0: refuse at once).
    """

    #: seconds to wait beyond ``wait`` while the recorded holder is dead or unknown
    GRACE = 5.0

    def __init__(self, folder: Path, name: str = "run", *, wait: float = 0.0, poll: float = 0.05) -> None:
        self.path = Path(folder) / f"{name}.lock"
        self.wait = wait
        self.poll = poll
        self._fd: Optional[int] = None

    def _info(self) -> dict:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def holder(self) -> str:
        info = self._info()
        if not info:
            return "another process (no holder recorded yet)"
        return f"pid {info.get('pid')} on host {info.get('host')}, since {info.get('started')}"

    def _holder_gone(self) -> bool:
        """The recorded holder is unknown or a dead process of this host: the lock is on its way
        out (a child it forked keeps the lock until that child execs or exits)."""
        info = self._info()
        if not info:
            return True
        if info.get("host") != platform.node() or not isinstance(info.get("pid"), int):
            return False
        try:
            os.kill(info["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def acquire(self) -> "FolderLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_error(e, "lock", self.path.parent) from None
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= self.wait and not (waited < self.GRACE and self._holder_gone()):
                    os.close(fd)
                    hint = f"waited {self.wait:g} s; " if self.wait else ""
                    raise ResultsLockedError(
                        f"{self.path.parent} is in use by another run ({self.holder()}); {hint}wait for it to finish "
                        "(--wait SECONDS, run(..., wait=SECONDS)) or write to another --results folder"
                    ) from None
                time.sleep(self.poll)
        info = {"pid": os.getpid(), "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass  # the lock holds; only the holder's name is missing
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def item_rows(lines: list[bytes], path: Path) -> list[tuple[int, dict]]:
    """(line number, row) of the whole lines of an items file; a line that is not an item record,
    or a key recorded twice, is a ResultsCorruptError naming the line and what to do."""
    out: list[tuple[int, dict]] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not (isinstance(row, dict) and isinstance(row.get("key"), str) and "record" in row):
            raise ResultsCorruptError(
                f"{path} line {n} is not an item record ({line[:80]!r}); the file was changed by something other "
                "than the bench. Remove that line (its item then reruns) or move the folder away to start afresh"
            )
        key = row["key"]
        if key in seen:
            raise ResultsCorruptError(
                f"{path}: item {key!r} is recorded twice (lines {seen[key]} and {n}): results of two runs were mixed "
                "in this folder. Keep one of the lines, or move the folder away to start afresh"
            )
        seen[key] = n
        out.append((n, row))
    return out


class ItemStore:
    """Append-only JSONL of finished items (``<folder>/<shard>.jsonl``); open it under a FolderLock.

    Each line: ``{"key", "seconds", "record", "provenance"}``. ``load()`` repairs a torn tail
    and returns the rows by key; ``append`` writes one row durably or raises ``ResultsWriteError``
    with the file as it was.
    """

    def __init__(self, folder: Path, shard: str = "items", *, fsync: bool = True, log: Callable[[str], None] = lambda m: None) -> None:
        self.path = Path(folder) / f"{shard}.jsonl"
        self.fsync = fsync
        self.log = log
        self._fd: Optional[int] = None

    def load(self) -> dict[str, dict]:
        """key -> row of the recorded items; a torn last line is cut off (that item reruns)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ResultsWriteError(f"cannot read {self.path}: {e.strerror or e}") from None
        *complete, tail = data.split(b"\n")
        rows = {row["key"]: row for _, row in item_rows(complete, self.path)}
        if tail:
            self.log(f"{self.path}: cut off a torn last line ({len(tail)} bytes of an item interrupted mid-write); that item reruns")
            try:
                os.truncate(self.path, len(data) - len(tail))
            except OSError as e:
                raise write_error(e, "repair", self.path) from None
        return rows

    def open(self) -> "ItemStore":
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_error(e, "write", self.path) from None
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, row: dict) -> None:
        """Write one row as a single line, durably; on failure the file is left as it was."""
        if self._fd is None:
            self.open()
        assert self._fd is not None
        line = (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode()
        before = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(line):
                written += os.write(self._fd, line[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError as e:
            try:
                os.ftruncate(self._fd, before)
            except OSError:
                pass  # the next load cuts the torn tail
            raise write_error(e, f"record item {row.get('key')!r} in", self.path) from None


def export_items(folder: Union[str, Path], out: Union[str, Path, io.TextIOBase], *, format: str = "jsonl", shards: Iterable[str] = ("items",), wait: float = 0.0) -> int:
    """Write the items of a results folder as JSONL (the rows) or CSV (one column per top-level
    record field, nested values as JSON, plus key, seconds, commit, dirty); returns the count.

    Each shard is read under its lock (``wait`` seconds for a run writing it, else
    ``ResultsLockedError`` naming that run), so a torn tail is cut off only by its lock's holder."""
    if format not in ("jsonl", "csv"):
        raise WorkbenchError(f"export format must be 'jsonl' or 'csv', got {format!r}")
    by_key: dict[str, dict] = {}  # an item recorded in two shards (a resumed torchrun job) is exported once
    for shard in shards:
        if not (Path(folder) / f"{shard}.jsonl").exists():
            continue
        with FolderLock(Path(folder), shard, wait=wait):
            loaded = ItemStore(Path(folder), shard).load()
        for row in loaded.values():
            seen = by_key.setdefault(str(row["key"]), row)
            if seen is not row and seen["record"] != row["record"]:
                raise ResultsCorruptError(f"{folder}: item {row['key']!r} is recorded twice with different results (shard {shard!r})")
    rows = list(by_key.values())
    fh = open(out, "w", newline="") if isinstance(out, (str, Path)) else out
    try:
        if format == "jsonl":
            for r in rows:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
        else:
            fields = sorted({k for r in rows if isinstance(r["record"], dict) for k in r["record"]})
            writer = csv.writer(fh)
            writer.writerow(["key", "seconds", "commit", "dirty"] + fields)
            for r in rows:
                rec = r["record"] if isinstance(r["record"], dict) else {"record": r["record"]}
                prov = r.get("provenance") or {}
                cells = [rec.get(f) for f in fields]
                writer.writerow([r["key"], r.get("seconds"), prov.get("commit"), prov.get("dirty")] + [c if isinstance(c, (str, int, float)) or c is None else json.dumps(c) for c in cells])
    finally:
        if isinstance(out, (str, Path)):
            fh.close()
    return len(rows)
