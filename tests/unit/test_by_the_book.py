"""The README's commands are what CI runs, and the test profile follows the documented rule."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The shell lines of the README's "Two commands" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    commands = readme_commands()
    test_cmd = next(c for c in commands if "pytest" in c)
    assert test_cmd == 'python3 -m pip install -e ".[test]" && python3 -m pytest -q -n 2'
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert ci_lines == [test_cmd]


def _conftest():
    spec = importlib.util.spec_from_file_location("_workbench_root_conftest", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_profile_rule():
    pick = _conftest().hypothesis_profile
    assert pick({}) == "dev"
    assert pick({"CI": "true"}) == "ci"
    assert pick({"CI": "1"}) == "ci"
    assert pick({"CI": "false"}) == "dev"
    assert pick({"CI": "true", "WORKBENCH_HYPOTHESIS_PROFILE": "nightly"}) == "nightly"
    assert pick({"WORKBENCH_HYPOTHESIS_PROFILE": "dev", "CI": "true"}) == "dev"
