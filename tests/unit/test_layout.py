"""The house: subpackages import as modules, no public name shadows one, the proofs and
experiments live under the workbench namespace only, and the lists come from the registry."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import types

import workbench


def test_check_and_methods_are_modules_that_can_be_called():
    import workbench.check as check_module
    import workbench.methods.integrated_gradients as ig

    assert isinstance(check_module, types.ModuleType) and check_module is workbench.check
    assert ig.IntegratedGradients.name == "integrated-gradients"
    assert [m.name for m in workbench.methods()] == sorted(m.name for m in workbench.methods())
    report = workbench.check("gradient", axioms=["dummy"], examples=2, seed=0)
    assert report.verdicts[0].holds is True


def test_no_public_name_shadows_a_subpackage():
    subpackages = {info.name for info in pkgutil.iter_modules(workbench.__path__) if not info.name.startswith("_")}
    for name in workbench.__all__:
        value = getattr(workbench, name)
        if name in subpackages:
            assert isinstance(value, types.ModuleType) and value.__name__ == f"workbench.{name}", name
    for name in subpackages:
        module = importlib.import_module(f"workbench.{name}")
        assert getattr(workbench, name) is module, name


def test_proofs_and_experiments_are_namespaced(tmp_path):
    import workbench.experiments
    import workbench.proofs.registry

    assert workbench.proofs.registry.CLAIMS and list(pkgutil.iter_modules(workbench.experiments.__path__))
    code = "import importlib.util as u; print(u.find_spec('proofs'), u.find_spec('experiments'))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # what the installation exposes
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None None", out.stdout


def test_every_subpackage_states_its_exports_or_purpose():
    for info in pkgutil.iter_modules(workbench.__path__):
        if not info.name.startswith("_"):
            assert importlib.import_module(f"workbench.{info.name}").__doc__, info.name
    assert set(workbench.__all__) <= set(dir(workbench))


def test_every_registered_axiom_is_in_the_default_report():
    from workbench.axioms import DEFAULT_AXIOMS, axioms

    assert sorted(DEFAULT_AXIOMS) == sorted(axioms()) and len(set(DEFAULT_AXIOMS)) == len(DEFAULT_AXIOMS)
