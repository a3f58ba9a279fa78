"""Checking methods side by side in worker processes gives the reports of one process."""

import pytest

from workbench.check.pool import ChecksInterrupted, check_methods, default_jobs
from workbench.core.errors import InputError

LABELS = ["gradient", "integrated-gradients[tolerance=None,steps=4]", "deeplift"]
OPTIONS = dict(axioms=["dummy", "completeness"], examples=3, seed=1, save_dir=None)


def test_two_processes_give_the_one_process_reports_in_order():
    one = [r.to_json() for r in check_methods(LABELS, jobs=1, **OPTIONS)]
    two = [r.to_json() for r in check_methods(LABELS, jobs=2, **OPTIONS)]
    assert one == two and len(one) == len(LABELS)
    assert [r.method for r in check_methods(LABELS[:1], jobs=2, **OPTIONS)] == ["gradient"]


def test_interrupt_keeps_finished_reports(monkeypatch):
    import workbench.check.pool as P

    calls = []

    def stop_on_second(label, progress=None, **kw):
        calls.append(label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return P.Report(label)

    monkeypatch.setattr(P, "check", stop_on_second)
    with pytest.raises(ChecksInterrupted) as info:
        list(check_methods(LABELS, jobs=1, **OPTIONS))
    assert [r.method for r in info.value.reports] == ["gradient"]


def test_jobs_are_checked():
    assert 1 <= default_jobs(16) <= 16 and default_jobs(1) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="jobs"):
            list(check_methods(LABELS, jobs=bad, **OPTIONS))
