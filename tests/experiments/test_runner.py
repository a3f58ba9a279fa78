"""The experiment runner: names from fields, manifest, resumable items, registry, CLI."""

import json
from dataclasses import dataclass

import pytest
import torch

from workbench.runner import experiment as X
from workbench.cli import main
from workbench.core.errors import InputError


@dataclass(frozen=True)
class Squares(X.Experiment):
    name_prefix = "squares-test"
    n: int = 4
    fail_at: int = -1
    scale: float = 1.0
    tags: tuple = ("a", "b")

    def items(self):
        return [f"k{i}" for i in range(self.n)]

    def run_item(self, key, ctx):
        i = int(key[1:])
        if i == self.fail_at:
            raise RuntimeError("interrupted")
        noise = float(torch.rand(1, generator=ctx.generator(key)))
        return {"i": i, "square": self.scale * i * i, "noise": noise}

    def summarize(self, records, ctx):
        (ctx.out_dir / "table.md").write_text(str([r["square"] for r in records]))
        return {"total": sum(r["square"] for r in records), "text": "total squares"}


def test_name_derives_from_fields():
    a, b = Squares(), Squares(n=5)
    assert a.name.startswith("squares-test--") and "n=" not in a.name
    assert b.name.startswith("squares-test--n=5--")
    assert a.name != b.name and Squares().name == a.name
    assert Squares(device="cuda").name != a.name  # device is in the hash, not in the readable part
    assert "device" not in Squares(device="cuda").name


def test_run_writes_manifest_items_and_summary(tmp_path):
    r = X.run(Squares(), results=tmp_path, log=lambda m: None)
    assert r.done == 4 and r.skipped == 0 and r.summary["total"] == 0 + 1 + 4 + 9
    man = json.loads((r.out_dir / "manifest.json").read_text())
    assert man["config"]["n"] == 4 and man["config"]["tags"] == ["a", "b"]
    assert man["versions"]["torch"] == torch.__version__ and man["device"] == "cpu"
    assert "commit" in man["git"]
    rows = [json.loads(line) for line in (r.out_dir / "items.jsonl").read_text().splitlines()]
    assert [row["key"] for row in rows] == ["k0", "k1", "k2", "k3"]
    assert (r.out_dir / "table.md").exists() and json.loads((r.out_dir / "summary.json").read_text())["total"] == 14


def test_interrupted_run_resumes_and_skips_finished_items(tmp_path):
    with pytest.raises(RuntimeError, match="interrupted"):
        X.run(Squares(fail_at=2), results=tmp_path, log=lambda m: None)
    # same config without the failure: a different name, so use a resumable config instead
    exp = Squares()
    partial = X.run(exp, results=tmp_path, limit=2, log=lambda m: None)
    assert partial.done == 2 and partial.summary == {}
    items = partial.out_dir / "items.jsonl"
    with items.open("a") as fh:
        fh.write('{"key": "k2", "record": {"i": 2')  # a torn line from a killed process
    first_noise = [json.loads(line)["record"]["noise"] for line in items.read_text().splitlines()[:2]]
    rest = X.run(exp, results=tmp_path, log=lambda m: None)
    assert rest.skipped == 2 and rest.done == 2 and rest.summary["total"] == 14
    full = X.run(exp, results=tmp_path / "fresh", log=lambda m: None)
    fresh_noise = [json.loads(line)["record"]["noise"] for line in (full.out_dir / "items.jsonl").read_text().splitlines()[:2]]
    assert first_noise == fresh_noise  # per-item seeds do not depend on the order of the run


def test_results_of_another_configuration_are_refused(tmp_path):
    r = X.run(Squares(), results=tmp_path, log=lambda m: None)
    man = json.loads((r.out_dir / "manifest.json").read_text())
    man["config"]["n"] = 99
    (r.out_dir / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InputError, match="another configuration"):
        X.run(Squares(), results=tmp_path, log=lambda m: None)


def test_configure_parses_settings_and_names_bad_keys():
    exp = X.configure(Squares, ["n=3", "scale=2", "tags=x,y,z"])
    assert exp.n == 3 and exp.scale == 2.0 and isinstance(exp.scale, float) and exp.tags == ("x", "y", "z")
    with pytest.raises(InputError, match="no parameter 'bogus'"):
        X.configure(Squares, ["bogus=1"])
    with pytest.raises(InputError, match="key=value"):
        X.configure(Squares, ["n"])


def test_unavailable_device_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(InputError, match="CUDA is not available"):
        X.run(Squares(device="cuda"), results=tmp_path, log=lambda m: None)


def test_registry_lists_the_shipped_experiments_and_cli_names_unknown(capsys):
    names = X.experiments()
    assert "ig-convergence" in names
    assert main(["experiment", "list"]) == 0
    assert "ig-convergence" in capsys.readouterr().out
    assert main(["experiment", "no-such-experiment"]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    assert main(["experiment", "ig-convergence", "--params"]) == 0
    assert "rules" in capsys.readouterr().out
