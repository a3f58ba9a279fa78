"""check() searches drawn networks on one torch thread and gives the caller's setting back."""

from __future__ import annotations

import pytest
import torch

import workbench


@pytest.mark.parametrize("raises", [False, True])
def test_search_runs_on_one_thread_and_restores_the_setting(raises, tmp_path):
    seen = []

    def f(model, x, target, baseline):
        seen.append(torch.get_num_threads())
        if raises:
            raise KeyboardInterrupt
        return torch.zeros_like(x)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        if raises:
            with pytest.raises(KeyboardInterrupt):
                workbench.check(f, axioms=["dummy"], examples=3, seed=0, save_dir=tmp_path, contract=False)
        else:
            workbench.check(f, axioms=["dummy"], examples=3, seed=0, save_dir=tmp_path, contract=False)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
