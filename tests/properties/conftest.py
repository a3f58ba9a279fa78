"""Fixtures shared by the property tests."""

import os

import pytest
import torch


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    """Two small CNNs trained on scikit-learn digits (about a second each, in a private cache) and
    20 held-out digits, all in float64."""
    from workbench.data.sources import image_source
    from workbench.data.digits import DigitsConfig, train_digits

    old = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("digits-cache"))
    try:
        nets = []
        for seed in (0, 1):
            model, info = train_digits(DigitsConfig(channels=(8, 16), epochs=4, seed=seed))
            assert info["test_accuracy"] > 0.9, info
            nets.append(model.double())
    finally:
        if old is None:
            del os.environ["WORKBENCH_CACHE"]
        else:
            os.environ["WORKBENCH_CACHE"] = old
    src = image_source("digits", count=20)
    return nets, torch.stack([src[k].image for k in src.keys()]).double()
