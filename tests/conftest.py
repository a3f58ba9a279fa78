"""Hypothesis profiles, chosen by WORKBENCH_HYPOTHESIS_PROFILE (dev | ci | nightly).

``ci`` is derandomized (same examples every run) and prints the reproduction blob; ``nightly``
draws many more examples. ``deadline=None`` everywhere: network calls vary in time.
"""

import os

import torch
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.register_profile("ci", max_examples=30, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=500, **_COMMON)
_default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("WORKBENCH_HYPOTHESIS_PROFILE", _default))

# one thread: the tests' tensors are small, and two xdist workers with two threads each
# oversubscribe two cores (tiny operations then wait on each other: 19 s instead of 0.3 s seen)
torch.set_num_threads(1)
