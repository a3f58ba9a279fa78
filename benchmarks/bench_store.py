"""Results store: JSONL (append + fsync, torn-tail repair) against SQLite (WAL), side by side.

Measures, for the experiment runner's access pattern (one small record appended per finished
item, durable before the next item starts):

* append throughput, items/s, durable per item (JSONL: write + fsync; SQLite WAL: commit with
  synchronous=FULL) and process-crash-safe only (JSONL: write; SQLite WAL: synchronous=NORMAL);
* resume read: reading back and parsing every recorded item;
* crash behaviour: a child appends in a loop and is killed with SIGKILL at a random moment;
  then the store is reopened: items acknowledged by the child but missing (lost), keys twice
  (duplicated), unreadable rows (corrupt), torn tails repaired.

    python benchmarks/bench_store.py [--items 2000] [--kills 20]

Ratios, not absolute times, are meaningful on a shared machine (the runs are interleaved).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

RECORD = {"key": "", "seconds": 0.1234, "record": {"residual": 1.2345e-7, "steps": 64, "curve": [0.1 * i for i in range(20)]}, "provenance": {"commit": "0" * 40, "dirty": False}}


class Jsonl:
    def __init__(self, path: Path, fsync: bool) -> None:
        self.path, self.fsync = path / "items.jsonl", fsync
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, key: str) -> None:
        line = (json.dumps(dict(RECORD, key=key), separators=(",", ":")) + "\n").encode()
        os.write(self.fd, line)
        if self.fsync:
            os.fsync(self.fd)

    @staticmethod
    def read(path: Path) -> tuple[list[str], int, int]:
        """(keys, corrupt lines, torn tail bytes) as the store's resume reads them."""
        data = (path / "items.jsonl").read_bytes() if (path / "items.jsonl").exists() else b""
        *complete, tail = data.split(b"\n")
        keys, corrupt = [], 0
        for line in complete:
            try:
                keys.append(json.loads(line)["key"])
            except (ValueError, KeyError):
                corrupt += 1
        return keys, corrupt, len(tail)


class Sqlite:
    def __init__(self, path: Path, fsync: bool) -> None:
        self.db = sqlite3.connect(path / "items.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.db.execute("CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, row TEXT NOT NULL)")

    def append(self, key: str) -> None:
        self.db.execute("INSERT INTO items VALUES (?, ?)", (key, json.dumps(dict(RECORD, key=key), separators=(",", ":"))))

    @staticmethod
    def read(path: Path) -> tuple[list[str], int, int]:
        db = sqlite3.connect(path / "items.sqlite")
        ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if not db.execute("SELECT name FROM sqlite_master WHERE name = 'items'").fetchone():
            return [], 0 if ok else 1, 0  # killed before the table was made
        keys = [json.loads(row)["key"] for (row,) in db.execute("SELECT row FROM items")]  # rows parsed, as a resume does
        return keys, 0 if ok else 1, 0


def throughput(kind, fsync: bool, n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = kind(Path(d), fsync)
        t0 = time.perf_counter()
        for i in range(n):
            store.append(f"item-{i}")
        return n / (time.perf_counter() - t0)


def resume_read(kind, n: int) -> float:
    """Seconds to read back n recorded items (what a resume does first)."""
    with tempfile.TemporaryDirectory() as d:
        store = kind(Path(d), False)
        for i in range(n):
            store.append(f"item-{i}")
        t0 = time.perf_counter()
        keys, _, _ = kind.read(Path(d))
        assert len(keys) == n
        return time.perf_counter() - t0


def crash(kind, fsync: bool, rng: random.Random) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child appends until killed, acknowledging each durable item
            os.close(r)
            store = kind(path, fsync)
            for i in range(10**6):
                store.append(f"item-{i}")
                os.write(w, b"x")
            os._exit(0)
        os.close(w)
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        acked = 0
        while chunk := os.read(r, 65536):
            acked += len(chunk)
        os.close(r)
        keys, corrupt, torn = kind.read(path)
        wanted = {f"item-{i}" for i in range(acked)}
        return {"acked": acked, "lost": len(wanted - set(keys)), "duplicated": len(keys) - len(set(keys)), "corrupt": corrupt, "torn": int(torn > 0)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    kinds = {"jsonl": Jsonl, "sqlite-wal": Sqlite}
    rates: dict = {(k, f): [] for k in kinds for f in (True, False)}
    for _ in range(args.rounds):  # interleaved: load on the machine hits every variant alike
        for (k, f) in rates:
            rates[(k, f)].append(throughput(kinds[k], f, args.items))
    print(f"append throughput, items/s (median of {args.rounds} interleaved rounds of {args.items}):")
    for (k, f), v in rates.items():
        print(f"  {k:10s} {'durable (fsync per item)' if f else 'crash-safe (no fsync)':26s} {sorted(v)[len(v) // 2]:10.0f}")
    for f in (True, False):
        j, s = sorted(rates[("jsonl", f)])[args.rounds // 2], sorted(rates[("sqlite-wal", f)])[args.rounds // 2]
        print(f"  jsonl / sqlite ratio ({'fsync' if f else 'no fsync'}): {j / s:.2f}")
    reads = {k: sorted(resume_read(kind, 20 * args.items) for _ in range(args.rounds))[args.rounds // 2] for k, kind in kinds.items()}
    print(f"\nresume read of {20 * args.items} items, ms: " + "  ".join(f"{k} {1000 * v:.1f}" for k, v in reads.items()))
    rng = random.Random(0)
    print(f"\nkill -9 at random moments ({args.kills} kills each, durable mode):")
    for k, kind in kinds.items():
        total = {"acked": 0, "lost": 0, "duplicated": 0, "corrupt": 0, "torn": 0}
        for _ in range(args.kills):
            for key, v in crash(kind, True, rng).items():
                total[key] += v
        print(f"  {k:10s} " + "  ".join(f"{key} {v}" for key, v in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
