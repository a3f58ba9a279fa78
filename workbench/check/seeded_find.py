"""A Hypothesis search whose drawn cases depend on the strategy and the seed alone.

Hypothesis (since 6.131) mixes into its draws the constants it reads from the source of every
loaded module outside the standard library and site-packages. For a search run by the bench that
pool is the bench's own code plus whatever the user's process has imported, so the cases one seed
drew changed with unrelated imports (another method's optional dependency, an editable install
against ``PYTHONPATH``) and with any literal edited anywhere in the code: a verdict depended on the
launch. ``seeded_find`` turns the local pool off for its own thread and context while it searches
(Hypothesis's fixed, built-in constants stay), so one seed gives one sequence of cases; ``@given``
tests running meanwhile in other threads keep their pool.
"""

from __future__ import annotations

import random
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Optional, Sequence

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

#: whether this thread / context searches without the local pool (nesting restores the outer value)
_POOL_OFF: ContextVar[bool] = ContextVar("workbench_local_constants_off", default=False)
_INSTALL = threading.Lock()


def _empty_like(pool: Any) -> Any:
    """An empty pool of the form this Hypothesis uses (a ``Constants``, or a dict of sets)."""
    if isinstance(pool, dict):
        return {kind: type(values)() for kind, values in pool.items()}
    return type(pool)()


def _gate() -> Optional[Any]:
    """Wrap Hypothesis's local-pool lookup once per process so that it returns an empty pool where
    ``_POOL_OFF`` is set; the provider module, or None for a Hypothesis without a local pool."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a Hypothesis without the provider module
        return None
    with _INSTALL:
        lookup = getattr(providers, "_get_local_constants", None)
        if lookup is None or not hasattr(getattr(providers, "CONSTANTS_CACHE", None), "cache"):
            return None  # a Hypothesis from before the local-constants pool
        if not getattr(lookup, "workbench_gate", False):
            empty = _empty_like(lookup())

            def gated() -> Any:
                return empty if _POOL_OFF.get() else lookup()

            gated.workbench_gate = True  # type: ignore[attr-defined]
            providers._get_local_constants = gated
    return providers


@contextmanager
def without_local_constants() -> Iterator[None]:
    """Hypothesis draws no constants read from loaded modules' source while the block runs (in
    this thread and context); the cache of allowed constants is cleared on the way in and out."""
    providers = _gate()
    if providers is None:
        yield
        return
    token = _POOL_OFF.set(True)
    providers.CONSTANTS_CACHE.cache.clear()  # entries computed earlier hold the local pool
    try:
        yield
    finally:
        _POOL_OFF.reset(token)
        providers.CONSTANTS_CACHE.cache.clear()


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
