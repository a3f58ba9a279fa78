"""Hypothesis profiles, chosen by WORKBENCH_HYPOTHESIS_PROFILE (dev | ci | nightly).

Without that variable: ``ci`` when the environment variable CI is set (CI services set CI=true,
and so does ``.ci/run``), else ``dev``. ``ci`` is derandomized (same examples every run) and
prints the reproduction blob; ``dev`` draws fresh examples every run; ``nightly`` draws many more.
``deadline=None`` everywhere: network calls vary in time. Every test must be green under all three.
"""

import os

import torch
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.register_profile("ci", max_examples=30, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=500, **_COMMON)


def hypothesis_profile(environ=os.environ) -> str:
    """The profile to load: WORKBENCH_HYPOTHESIS_PROFILE, else ``ci`` if CI is set, else ``dev``."""
    chosen = environ.get("WORKBENCH_HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no") else "dev"


settings.load_profile(hypothesis_profile())

# one thread: the tests' tensors are small, and two xdist workers with two threads each
# oversubscribe two cores (tiny operations then wait on each other: 19 s instead of 0.3 s seen)
torch.set_num_threads(1)
