"""Checking several methods at once: one ``check`` per method, spread over worker processes.

Each method's check is seeded on its own (``check(..., seed=)``), so a report does not depend on
which process computed it or in which order: the reports equal those of one process, in the
order the methods were given. Workers are started with ``spawn`` (no fork of a process whose
torch thread pool is running) and share the cores (``torch.set_num_threads``).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from workbench.check.search import Report, check
from workbench.core.errors import InputError


class ChecksInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``check_methods``: ``reports`` holds the finished reports, in method order."""

    def __init__(self, reports: list) -> None:
        super().__init__(f"interrupted after {len(reports)} finished methods")
        self.reports = reports


def default_jobs(methods: int) -> int:
    """One worker per core, at most one per method."""
    return max(1, min(os.cpu_count() or 1, methods))


def _start_worker(threads: int) -> None:
    import warnings

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the pool
    torch.set_num_threads(threads)
    # raised inside torch on the first forward-mode AD pass, not by the method checked
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)


def _check_label(label: str, options: dict) -> Report:
    return check(label, **options)


def check_methods(
    labels: Sequence[str],
    *,
    jobs: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
    **options: Any,
) -> Iterator[Report]:
    """Yield ``check(label, **options)`` for each registry label, in order, computed by ``jobs``
    processes (default: one per core). Ctrl-C raises ``ChecksInterrupted`` with the finished ones."""
    jobs = default_jobs(len(labels)) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs must be a positive integer, got {jobs!r}")
    if jobs == 1:
        done: list = []
        for label in labels:
            try:
                report = check(label, progress=progress, **options)
            except KeyboardInterrupt as stop:
                partial = getattr(stop, "report", None)
                raise ChecksInterrupted(done + ([partial] if partial is not None else [])) from stop
            done.append(report)
            yield report
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_start_worker, initargs=(threads,))
    start = time.monotonic()
    finished: dict[int, Report] = {}
    pending: list = []
    try:
        pending = [pool.apply_async(_check_label, (label, options)) for label in labels]
        for i, job in enumerate(pending):
            finished[i] = job.get()
            if progress:
                progress(f"{labels[i]}: done ({i + 1}/{len(labels)}, {time.monotonic() - start:.0f} s, {jobs} processes)")
            yield finished[i]
        pool.close()
    except KeyboardInterrupt as stop:
        pool.terminate()
        raise ChecksInterrupted([job.get() for job in pending if job.ready() and job.successful()]) from stop
    finally:
        pool.terminate()
        pool.join()
