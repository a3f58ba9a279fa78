"""Replay files from someone else: validated before anything is built, bounded before anything is
allocated, and never a source of code unless the user names it. Every malformed file is a
WorkbenchError (exit status 2), never a traceback and never a "VIOLATED" verdict."""

import copy
import os
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench
from workbench.axioms import Case, get_axiom
from workbench.cli import main
from workbench.check.counterexample import ReplayLimits, load_counterexample, replay, save_counterexample, schema
from workbench.core.errors import InputError, UntrustedCodeError, WorkbenchError
from workbench.nets import spec as S
from workbench.prototype import relu_rule, rule_method
from workbench.rules import GuidedBackprop


def _case(seed: int = 0) -> Case:
    g = torch.Generator().manual_seed(seed)
    spec = S.NetSpec((2,), (S.Linear(3), S.ReLU(), S.Linear(2)))
    net = S.build(spec, generator=g)
    x = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    return Case({"f": net}, x, torch.full_like(x, 0.25), 1)


def _save(tmp_path, method, axiom="completeness", case=None):
    case = case or _case()
    outcome = get_axiom(axiom).run(method, case, 1e-9)
    return save_counterexample(tmp_path, method, axiom, case, outcome, torch.float64)


@pytest.fixture
def base(tmp_path):
    path = _save(tmp_path, workbench.method("gradient"))
    return json.loads(path.read_text())


def test_a_saved_file_replays_and_version_1_files_still_load(tmp_path, base):
    path = _save(tmp_path, workbench.method("gradient"))
    outcome, case, m = replay(path)
    assert outcome.violated and m.label == "gradient" and case.target == 1
    old = dict(base, workbench_counterexample=1)
    (tmp_path / "v1.json").write_text(json.dumps(old))
    assert replay(tmp_path / "v1.json")[0].violated


def _layers(d):
    return d["case"]["networks"]["f"]["spec"]["layers"]


def _state(d):
    return d["case"]["networks"]["f"]["state"]


def _set(path, value):
    def f(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return f


def _delete(path):
    def f(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return f


def _nested_residual(depth):
    layer = {"type": "ReLU"}
    for _ in range(depth):
        layer = {"type": "Residual", "body": [layer]}
    return layer


# (name, mutation of the parsed base document, or raw text)
MALFORMED = [
    ("not json", "{"),
    ("empty file", ""),
    ("a list", "[]"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000),
    ("nan", None),
    ("huge integer", None),
    ("non-utf8", b"\xff\xfe{}"),
    ("no version", _delete(["workbench_counterexample"])),
    ("future version", _set(["workbench_counterexample"], 99)),
    ("version as text", _set(["workbench_counterexample"], "1")),
    ("no axiom", _delete(["axiom"])),
    ("unknown axiom", _set(["axiom"], "no-such-axiom")),
    ("dtype getattr", _set(["dtype"], "__class__")),
    ("dtype int", _set(["dtype"], "int64")),
    ("no method", _delete(["method"])),
    ("empty method", _set(["method"], {})),
    ("label not text", _set(["method"], {"label": 5})),
    ("unknown label", _set(["method"], {"label": "no-such-method"})),
    ("label with huge steps", _set(["method"], {"label": "integrated-gradients[tolerance=None,steps=1000000000]"})),
    ("label with steps as float", _set(["method"], {"label": "integrated-gradients[tolerance=None,steps=1e9]"})),
    ("label with steps in hex", _set(["method"], {"label": "integrated-gradients[tolerance=None,steps=0x3B9ACA00]"})),
    ("label nested huge option", _set(["method"], {"label": "smoothgrad[base=integrated-gradients[tolerance=None,steps=99999999]]"})),
    ("label too long", _set(["method"], {"label": "gradient" + " " * 5000})),
    ("label bad option", _set(["method"], {"label": "gradient[nonsense=1]"})),
    ("method extra key", _set(["method", "eval"], "1")),
    ("no tolerance", _delete(["outcome", "tolerance"])),
    ("tolerance text", _set(["outcome", "tolerance"], "abc")),
    ("tolerance negative", _set(["outcome", "tolerance"], -1)),
    ("no case", _delete(["case"])),
    ("no networks", _set(["case", "networks"], {})),
    ("network path name", lambda d: d["case"]["networks"].update({"../evil": d["case"]["networks"]["f"]})),
    ("unknown layer", lambda d: _layers(d).insert(1, {"type": "Evil"})),
    ("layer getattr", lambda d: _layers(d).insert(1, {"type": "__init__"})),
    ("negative width", lambda d: _layers(d)[0].update(out_features=-1)),
    ("width as text", lambda d: _layers(d)[0].update(out_features="3")),
    ("width 1e8", lambda d: _layers(d)[0].update(out_features=10**8)),
    ("layer extra field", lambda d: _layers(d)[1].update(inplace=True, evil=1)),
    ("conv on flat input", lambda d: _layers(d).insert(0, {"type": "Conv2d", "out_channels": 2})),
    ("deep residual", lambda d: _layers(d).insert(1, _nested_residual(40))),
    ("empty input shape", _set(["case", "networks", "f", "spec", "input_shape"], [])),
    ("zero input shape", _set(["case", "networks", "f", "spec", "input_shape"], [0])),
    ("missing weight", lambda d: _state(d).pop("0.weight")),
    ("extra weight", lambda d: _state(d).update(extra=[1.0])),
    ("wrong weight shape", lambda d: _state(d).update({"0.weight": [[1.0, 2.0]]})),
    ("weight of text", lambda d: _state(d).update({"0.bias": ["a", "b", "c"]})),
    ("weight of booleans", lambda d: _state(d).update({"0.bias": [True, False, True]})),
    ("ragged weight", lambda d: _state(d).update({"0.weight": [[1.0, 2.0], [1.0], [1.0, 2.0]]})),
    ("x wrong shape", _set(["case", "x"], [[1.0, 2.0, 3.0]])),
    ("x ragged", _set(["case", "x"], [[1.0, [2.0]]])),
    ("x empty", _set(["case", "x"], [[]])),
    ("baseline shape", _set(["case", "baseline"], [[1.0]])),
    ("target out of range", _set(["case", "target"], 7)),
    ("target negative", _set(["case", "target"], -1)),
    ("target fractional", _set(["case", "target"], 0.5)),
    ("params not a dict", _set(["case", "params"], [1, 2])),
    ("params array of another shape", lambda d: d.update(axiom="weak-dependence") or d["case"].update(params={"x2": [[1.0, 2.0, 3.0]]})),
    ("params ragged array", lambda d: d["case"].update(params={"x2": [[1.0], [2.0, 3.0]]})),
    ("dummy without feature", _set(["axiom"], "dummy")),
    ("symmetry index out of range", lambda d: d.update(axiom="symmetry") or d["case"].update(params={"i": 0, "j": 99})),
    ("400-digit integer in x", _set(["case", "x"], [[10**400, -0.5]])),
    ("400-digit tolerance", _set(["outcome", "tolerance"], 10**400)),
    ("number beyond float32", lambda d: d.update(dtype="float32") or d["case"].update(x=[[1e39, -0.5]])),
]


def _write(tmp_path, base, name, mutation):
    path = tmp_path / "bad.json"
    if isinstance(mutation, bytes):
        path.write_bytes(mutation)
    elif isinstance(mutation, str):
        path.write_text(mutation)
    elif name == "nan":
        path.write_text(json.dumps(base).replace("[[1.5, -0.5]]", "[[NaN, -0.5]]", 1))
    elif name == "huge integer":
        path.write_text(json.dumps(base).replace('"target": 1', '"target": 1' + "0" * 5000, 1))
    else:
        d = copy.deepcopy(base)
        mutation(d)
        path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize("name,mutation", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_every_malformed_file_is_a_clear_error_and_exit_2(name, mutation, base, tmp_path, capsys):
    path = _write(tmp_path, base, name, mutation)
    with pytest.raises(InputError, match="not a valid workbench counterexample|cannot read"):
        replay(path)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: error:") and "Traceback" not in err


def test_a_fifo_is_refused_not_read_forever(tmp_path):
    fifo = tmp_path / "replay.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_counterexample(fifo)


def test_a_file_over_the_byte_limit_is_refused_unread(base, tmp_path):
    path = _write(tmp_path, base, "ok", lambda d: None)
    with pytest.raises(InputError, match="bytes"):
        load_counterexample(path, ReplayLimits(max_bytes=100))


EVIL_MODULE = """
import pathlib
pathlib.Path({marker!r}).touch()          # runs on import

def attribute(model, x, target, baseline):
    pathlib.Path({marker!r}).touch()
    return x
"""


def test_a_named_callable_is_never_imported_unless_the_user_says_so(base, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "marker"
    (tmp_path / "evilmod.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, as a module beside the file would be
    for ref in ("evilmod:attribute", "os:system", "builtins:print", "this:s"):
        path = _write(tmp_path, base, "callable", _set(["method"], {"callable": ref, "name": "f", "claims": {}}))
        with pytest.raises(UntrustedCodeError, match=f"--method {ref}"):
            replay(path)
        assert main(["replay", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"workbench replay {path} --method {ref}" in err and "--trust-callable" in err
    assert not marker.exists() and "evilmod" not in sys.modules
    # the explicit flag is what imports it (the marker proves the check above would see it)
    path = _write(tmp_path, base, "callable", _set(["method"], {"callable": "evilmod:attribute", "name": "f", "claims": {}}))
    assert main(["replay", str(path), "--trust-callable"]) in (0, 1)
    assert marker.exists()


def test_prototype_methods_replay_without_importing_user_code(tmp_path):
    m = rule_method("my-gbp", relu=GuidedBackprop(), claims={"dummy": None})
    path = _save(tmp_path, m)
    record = json.loads(path.read_text())["method"]
    assert record["prototype"]["rules"] == [[{"layers": ["ReLU"]}, {"rule": "GuidedBackprop", "fields": {"at_zero": False}}]]
    outcome, _, replayed = replay(path)
    assert replayed.label == "my-gbp" and outcome.residual == get_axiom("completeness").run(m, _case(), 1e-9).residual


@relu_rule
def _positive(z, a, g):
    return g * (a > 0) * (g > 0)


def test_a_prototype_with_a_user_function_names_it_and_needs_the_user(tmp_path):
    m = rule_method("user-rule", relu=_positive)
    path = _save(tmp_path, m)
    with pytest.raises(UntrustedCodeError, match="test_replay_files:_positive"):
        replay(path)
    outcome, _, _ = replay(path, trust_callable=True)
    assert outcome.residual == get_axiom("completeness").run(m, _case(), 1e-9).residual
    assert replay(path, method=m)[2] is m


def test_the_schema_covers_every_layer_type_and_axiom():
    s = schema()
    layer_types = {alt["properties"]["type"]["const"] for alt in s["$defs"]["layer"]["oneOf"]}
    assert layer_types == set(S.LAYER_TYPES)
    assert set(s["properties"]["axiom"]["enum"]) == set(workbench.axioms.axioms())


OVERSIZED = textwrap.dedent("""
    import json, resource, sys
    from workbench.cli import main
    base = json.loads(open(sys.argv[1]).read())
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    before = peak()
    codes = []
    for width in (10**8, 10**9):
        base["case"]["networks"]["f"]["spec"]["layers"][0]["out_features"] = width
        open(sys.argv[2], "w").write(json.dumps(base))
        codes.append(main(["replay", sys.argv[2]]))
    print(json.dumps({"codes": codes, "grown_kib": peak() - before}))
""")


def test_oversized_widths_are_refused_without_allocating(base, tmp_path):
    src = tmp_path / "base.json"
    src.write_text(json.dumps(base))
    out = subprocess.run([sys.executable, "-c", OVERSIZED, str(src), str(tmp_path / "big.json")], capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"] == [2, 2], out.stderr
    assert "out_features" in out.stderr
    assert result["grown_kib"] < 100 * 1024, result  # a 10^8-wide float64 layer alone would be 1.6 GB


def test_limits_apply_to_the_meta_layout_too(base, tmp_path):
    # widths within the schema, but a product of parameters over the total bound
    path = _write(tmp_path, base, "ok", lambda d: None)
    with pytest.raises(InputError, match="parameters|elements"):
        replay(path, limits=ReplayLimits(max_total_elements=10))


def test_a_valid_case_with_a_method_error_is_the_methods_failure_not_the_files(tmp_path):
    path = _save(tmp_path, workbench.method("gradient"))

    def crash(model, x, target, baseline):
        raise RuntimeError("boom")

    outcome, _, _ = replay(path, method=crash)
    assert outcome.violated and "boom" in outcome.note

    class BrokenReconstruct(type(workbench.method("full-gradients"))):
        def reconstruct(self, *args, **kwargs):
            raise RuntimeError("reconstruct is broken")

    path = _save(tmp_path, workbench.method("full-gradients"), axiom="full-gradient-completeness")
    assert not replay(path)[0].violated
    outcome, _, _ = replay(path, method=BrokenReconstruct())
    assert outcome.violated and "reconstruct is broken" in outcome.note
    assert issubclass(InputError, WorkbenchError)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            yield from _paths(v, prefix + (i,))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_mutation_of_a_valid_file_replays_or_is_a_workbench_error(base, tmp_path, data):
    doc = copy.deepcopy(base)
    paths = [p for p in _paths(doc) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths))
        node = doc
        try:
            for k in where[:-1]:
                node = node[k]
            node[where[-1]] = data.draw(_JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(doc))
    try:
        outcome, _, _ = replay(path)
    except WorkbenchError:
        return
    assert outcome.applicable in (True, False)
