"""A Hypothesis search whose drawn cases depend on the strategy and the seed alone.

Recent Hypothesis releases (6.155 and 6.170 here) mix into its draws the constants it reads from the source of every
loaded module outside the standard library and site-packages. For a search run by the bench that
pool is the bench's own code plus whatever the user's process has imported, so the cases one seed
drew changed with unrelated imports (another method's optional dependency, an editable install
against ``PYTHONPATH``) and with any literal edited anywhere in the code: a verdict depended on the
launch. ``seeded_find`` turns the local pool off while it searches (Hypothesis's fixed, built-in
constants stay), so one seed gives one sequence of cases.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st


@contextmanager
def without_local_constants() -> Iterator[None]:
    """Hypothesis draws no constants read from loaded modules' source while the block runs."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a Hypothesis without the provider module
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if original is None or cache is None:  # a Hypothesis from before the local-constants pool
        yield
        return
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    cache.cache.clear()  # entries computed earlier hold the local pool
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()


def seeded_find(
    strategy: st.SearchStrategy[Any],
    condition: Callable[[Any], bool],
    *,
    examples: int,
    seed: Optional[int],
    phases: Optional[Sequence[Phase]] = None,
) -> Any:
    """``hypothesis.find`` with ``examples`` draws, no database and no deadline.

    ``seed`` fixes the cases whatever Hypothesis profile is loaded and whatever modules are
    imported; None draws a fresh random search. Raises ``NoSuchExample`` when nothing satisfies
    ``condition``.
    """
    options: dict = dict(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,  # a loaded test profile must not override `seed`
        suppress_health_check=list(HealthCheck),
    )
    if phases is not None:
        options["phases"] = list(phases)
    with without_local_constants():
        return find(
            strategy,
            condition,
            settings=settings(**options),
            random=random.Random(seed) if seed is not None else random.Random(),
        )
