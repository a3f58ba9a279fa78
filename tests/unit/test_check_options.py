"""`workbench check` refuses, naming it, an option that the kind of check asked for would not read:
the network check's options without --model, the fixture check's with --model (never a silently
ignored flag); the options of each kind still work there (tests/unit/test_cli.py, test_netcheck.py)."""

import pytest

from workbench.cli import FIXTURE_ONLY, NETWORK_ONLY, main

STORE_TRUE = {"all"}


def _args(dest: str, flag: str) -> list:
    return [flag] if dest in STORE_TRUE else [flag, {"kind": "any", "shrink": "all", "activations": "relu"}.get(dest, "1")]


@pytest.mark.parametrize("dest, flag", sorted(NETWORK_ONLY.items()))
def test_a_network_option_without_model_is_refused_by_name(dest, flag, capsys):
    assert main(["check", "gradient", *_args(dest, flag), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} does not apply without --model" in err, err


@pytest.mark.parametrize("dest, flag", sorted(FIXTURE_ONLY.items()))
def test_a_fixture_option_with_model_is_refused_by_name(dest, flag, capsys, tmp_path):
    assert main(["check", "gradient", "--model", "resnet18", "--weights", str(tmp_path / "w.pt"), "--source", str(tmp_path), *_args(dest, flag)]) == 2
    err = capsys.readouterr().err
    assert f"{flag} does not apply to a network check" in err, err


def test_several_are_named_together_and_jobs_needs_all(capsys):
    assert main(["check", "gradient", "--size", "32", "--images", "2"]) == 2
    assert "--images, --size do not apply without --model" in capsys.readouterr().err
    assert main(["check", "gradient", "--jobs", "2"]) == 2
    assert "--jobs applies to --all" in capsys.readouterr().err
