"""One seed draws one sequence of cases, whatever modules the process has imported.

Hypothesis mixes constants read from loaded modules' source into its draws; the bench's searches
turn that pool off (``workbench.check.seeded_find``). Measured before the fix: after importing one
unrelated module, 52 of the 60 cases an implementation-invariance search drew with seed 0 changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from workbench.check.seeded_find import seeded_find, without_local_constants

#: run in a fresh interpreter: the imported literals stay in Hypothesis's pool for good
_IMPORT_CHANGES_DRAWS = textwrap.dedent(
    """
    import importlib, json, random, sys
    from hypothesis import HealthCheck, find, settings, strategies as st
    from hypothesis.errors import NoSuchExample
    from workbench.check.seeded_find import seeded_find
    try:
        from hypothesis.internal.conjecture import providers
        POOL = hasattr(providers, "_get_local_constants")
    except ImportError:  # a Hypothesis from before the pool
        POOL = False

    STRATEGY = st.lists(st.floats(-100, 100), min_size=8, max_size=8)
    VALUES = [round(i * 0.37 + 0.011, 3) for i in range(-250, 250)]

    def draws(search):
        seen = []
        try:
            search(lambda v: seen.append(list(v)) and False)
        except NoSuchExample:
            pass
        return seen

    seeded = lambda c: seeded_find(STRATEGY, c, examples=40, seed=3)
    plain = lambda c: find(STRATEGY, c, settings=settings(max_examples=40, database=None, deadline=None,
                                                           suppress_health_check=list(HealthCheck)), random=random.Random(3))
    before = draws(seeded), draws(plain)
    folder = sys.argv[1]
    with open(folder + "/many_literals.py", "w") as f:
        f.write("VALUES = [" + ", ".join(f"{v:.3f}" for v in VALUES) + "]\\n")
    sys.path.insert(0, folder)
    importlib.import_module("many_literals")
    after = draws(seeded), draws(plain)
    drawn = {v for case in after[1] for v in case}
    print(json.dumps({"pool": POOL, "seeded_same": before[0] == after[0],
                      "plain_same": before[1] == after[1], "plain_drew_a_literal": bool(drawn & set(VALUES))}))
    """
)


def test_an_unrelated_import_does_not_change_what_a_seed_draws(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", _IMPORT_CHANGES_DRAWS, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["seeded_same"]
    if result["pool"]:  # the control: plain `find` draws the new module's literals
        assert not result["plain_same"] and result["plain_drew_a_literal"]


def test_the_pool_is_off_only_inside_the_block_and_only_in_its_own_thread() -> None:
    providers = pytest.importorskip("hypothesis.internal.conjecture.providers")
    if not hasattr(providers, "_get_local_constants"):
        pytest.skip("this Hypothesis has no local-constants pool")

    def size(pool) -> int:
        return sum(len(v) for v in pool.values()) if isinstance(pool, dict) else sum(len(pool.set_for_type(t)) for t in (int, float, bytes, str))

    full = size(providers._get_local_constants())
    assert full > 0  # this process has loaded the bench's own modules
    inside, elsewhere = threading.Event(), threading.Event()
    seen: dict = {}

    def search_in_a_thread() -> None:
        with without_local_constants():
            with without_local_constants():  # nested: the outer block stays off when it ends
                pass
            seen["thread"] = size(providers._get_local_constants())
            inside.set()
            elsewhere.wait(30)

    worker = threading.Thread(target=search_in_a_thread)
    worker.start()
    assert inside.wait(30)
    seen["main"] = size(providers._get_local_constants())  # while the worker searches
    elsewhere.set()
    worker.join(30)
    assert seen == {"thread": 0, "main": full}
    assert size(providers._get_local_constants()) == full
    with pytest.raises(NoSuchExample):
        seeded_find(st.integers(), lambda _: False, examples=2, seed=0)
    assert size(providers._get_local_constants()) == full
