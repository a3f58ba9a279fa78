"""workbench.testing: assert_axioms both ways, and the README's pytest example run as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench.testing import AxiomsFailed, assert_axioms

ROOT = Path(__file__).resolve().parents[2]


def test_assert_axioms_passes_a_good_method_and_returns_the_report():
    report = assert_axioms("integrated-gradients[rule='exact']", ["completeness", "dummy"], examples=5)
    assert report.ok and [v.axiom for v in report.verdicts] == ["completeness", "dummy"]


def test_assert_axioms_raises_with_the_table_and_the_reason():
    with pytest.raises(AxiomsFailed) as e:
        assert_axioms("gradient", ["completeness", "dummy"], examples=5)
    text = str(e.value)
    assert "completeness (fails)" in text and "method: gradient" in text and "local slope" in text
    assert e.value.report.verdict("dummy").holds is True


def test_assert_axioms_uses_the_function_tolerances():
    def my_ig(model, x, target, baseline):
        return workbench.method("integrated-gradients", tolerance=1e-4).attribute(model, x, target=target, baseline=baseline)

    assert_axioms(my_ig, {"completeness": 1e-3}, examples=5)
    with pytest.raises(AssertionError, match="completeness"):
        assert_axioms(my_ig, {"completeness": 1e-12}, examples=5)


def test_bad_arguments():
    with pytest.raises(workbench.InputError, match="list of names"):
        assert_axioms("gradient", "completeness")
    with pytest.raises(workbench.InputError, match="at least one"):
        assert_axioms("gradient", [])


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Axiom checks in your own test suite", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_pytest_example_runs_as_written(tmp_path):
    example = readme_example()
    assert len(example.strip().splitlines()) <= 14
    (tmp_path / "test_readme_example.py").write_text(example)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "workbench.testing", "-p", "no:cacheprovider",
                          "test_readme_example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout
