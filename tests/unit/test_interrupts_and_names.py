"""Interrupts and names: Ctrl-C keeps finished work and says how to resume; typed --set values;
warnings for requests larger than the data; explain never overwrites; --limit prints no {}."""

import json
from dataclasses import dataclass
from typing import Optional, Union

import pytest

import workbench
from workbench.runner import experiment as X
from workbench.check.search import Report
from workbench.cli import main
from workbench.runner.config import parse_value, type_name


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ctrl_c_during_check_keeps_finished_verdicts(capsys, monkeypatch, tmp_path):
    import sys

    C = sys.modules["workbench.check.search"]  # where the checker looks check_axiom up
    real = C.check_axiom
    calls = []

    def interrupted_after_two(method, axiom, **kw):  # Ctrl-C while the third axiom is searched
        calls.append(axiom)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(method, axiom, **kw)

    monkeypatch.setattr(C, "check_axiom", interrupted_after_two)
    code, out, err = _run(capsys, "check", "gradient", "--axioms", "dummy,symmetry,linearity,completeness", "--examples", "3",
                          "--out", str(tmp_path), "--quiet")
    assert code == 130
    assert "dummy" in out and "symmetry" in out and "linearity" not in out  # the finished verdicts are printed
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted: 2 of 4 verdicts finished" in lines[0]
    assert "workbench check gradient --axioms linearity,completeness" in lines[0]


@X.register
@dataclass(frozen=True)
class _Interruptible(X.Experiment):
    name_prefix = "interrupt-test"
    claim = "test only"
    stop_at: int = 2
    ratio: float = 1.0
    label: Optional[str] = None
    fill: Union[float, str] = "mean"
    flag: bool = False
    keys: tuple = ("a", "b", "c")

    def items(self):
        return list(self.keys)

    def run_item(self, key, ctx):
        if self.items().index(key) == self.stop_at:
            raise KeyboardInterrupt
        return {"key": key}

    def summarize(self, records, ctx):
        return {"items": len(records), "text": "done"}


def test_ctrl_c_during_an_experiment_keeps_items_and_says_how_to_resume(capsys, tmp_path):
    code, out, err = _run(capsys, "experiment", "interrupt-test", "--results", str(tmp_path), "--quiet")
    assert code == 130 and "interrupted: 2 item(s) saved" in err and "run the same command again to resume" in err
    assert len(err.strip().splitlines()) == 1
    folder = next(tmp_path.iterdir())
    assert len((folder / "items.jsonl").read_text().splitlines()) == 2


def test_limit_prints_progress_not_an_empty_summary(capsys, tmp_path):
    code, out, err = _run(capsys, "experiment", "interrupt-test", "--set", "stop_at=9", "--limit", "1", "--results", str(tmp_path), "--quiet")
    assert code == 0 and "{}" not in out and "1 new item(s) done" in out and "run the same command again" in out
    code, out, err = _run(capsys, "experiment", "interrupt-test", "--set", "stop_at=9", "--results", str(tmp_path), "--quiet")
    assert code == 0 and out.startswith("done")


def test_set_values_are_typed_by_the_field():
    exp = X.configure(_Interruptible, ["ratio=2", "label=None", "fill=0", "flag=yes", "keys=a,b[x=1,y=2],c", "stop_at=3"])
    assert exp.ratio == 2.0 and isinstance(exp.ratio, float) and exp.label is None and exp.fill == 0.0
    assert exp.flag is True and exp.keys == ("a", "b[x=1,y=2]", "c") and exp.stop_at == 3
    assert X.configure(_Interruptible, ["fill=mean", "label=7"]).label == "7"  # a str field keeps the text
    with pytest.raises(workbench.InputError, match="stop_at takes int, got '1.5'"):
        X.configure(_Interruptible, ["stop_at=1.5"])
    with pytest.raises(workbench.InputError, match="flag takes bool"):
        X.configure(_Interruptible, ["flag=maybe"])
    assert type_name(Optional[str]) == "str or None" and parse_value("(1, 2)", tuple) == (1, 2)


def test_pixel_perturbation_replacement_is_a_number():
    from workbench.experiments.pixel_perturbation import PixelPerturbation

    assert X.configure(PixelPerturbation, ["replacement=0"]).replacement == 0.0
    assert X.configure(PixelPerturbation, ["replacement=mean"]).replacement == "mean"


def test_more_images_than_the_source_holds_warns(capsys, tmp_path):
    from workbench.cli import _warn_short_data
    from workbench.experiments.pixel_perturbation import PixelPerturbation

    src = tmp_path / "folder" / "cls"
    src.mkdir(parents=True)
    from PIL import Image
    import numpy as np

    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((8, 8, 3)) * 255).astype("uint8")).save(src / f"{i}.png")
    _warn_short_data(PixelPerturbation(source=str(tmp_path / "folder"), images=1000, size=8))
    err = capsys.readouterr().err
    assert "images=1000 requested" in err and "holds 3" in err
    _warn_short_data(PixelPerturbation(images=4))
    assert capsys.readouterr().err == ""


def test_explain_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "explain", "digits:3", "--method", "gradient")
    code2, out2, _ = _run(capsys, "explain", "digits:3", "--method", "gradient")
    assert code == code2 == 0
    assert out.strip() == "explain-digits_3-gradient.png" and out2.strip() == "explain-digits_3-gradient-2.png"
    assert (tmp_path / "explain-digits_3-gradient.png").exists() and (tmp_path / "explain-digits_3-gradient-2.png").exists()
