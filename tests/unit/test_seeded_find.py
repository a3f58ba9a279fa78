"""One seed draws one sequence of cases, whatever modules the process has imported.

Hypothesis mixes constants read from loaded modules' source into its draws; the bench's searches
turn that pool off (``workbench.check.seeded_find``). Measured before the fix: after importing one
unrelated module, 52 of the 60 cases an implementation-invariance search drew with seed 0 changed.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from workbench.check.seeded_find import seeded_find

STRATEGY = st.lists(st.floats(-100, 100), min_size=8, max_size=8)


def _draws(search) -> list:
    seen: list = []

    def record(value) -> bool:
        seen.append(tuple(value))
        return False

    with pytest.raises(NoSuchExample):
        search(record)
    return seen


def _seeded(record) -> None:
    seeded_find(STRATEGY, record, examples=40, seed=3)


def _plain(record) -> None:
    find(STRATEGY, record, settings=settings(max_examples=40, database=None, deadline=None, suppress_health_check=list(HealthCheck)), random=random.Random(3))


def _import_module_with_constants(folder: Path, name: str) -> None:
    values = ", ".join(f"{i * 0.37 + 0.011:.3f}" for i in range(-250, 250))
    (folder / f"{name}.py").write_text(f"VALUES = [{values}]\n")
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def test_an_unrelated_import_does_not_change_what_a_seed_draws(tmp_path: Path) -> None:
    from hypothesis.internal.conjecture import providers

    pools_local_constants = hasattr(providers, "_get_local_constants")
    before_seeded, before_plain = _draws(_seeded), _draws(_plain)
    _import_module_with_constants(tmp_path, f"workbench_constants_{tmp_path.name.replace('-', '_')}")
    after_seeded, after_plain = _draws(_seeded), _draws(_plain)
    assert after_seeded == before_seeded
    if pools_local_constants:  # the control: plain `find` draws the new module's literals
        assert after_plain != before_plain
        drawn = {v for case in after_plain for v in case}
        assert any(abs(v - (i * 0.37 + 0.011)) < 1e-9 for v in drawn for i in range(-250, 250))


def test_the_local_pool_is_restored_after_a_search() -> None:
    from hypothesis.internal.conjecture import providers

    original = getattr(providers, "_get_local_constants", None)
    with pytest.raises(NoSuchExample):
        seeded_find(STRATEGY, lambda _: False, examples=2, seed=0)
    assert getattr(providers, "_get_local_constants", None) is original
