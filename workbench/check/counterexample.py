"""Counterexample files: written by the checker, replayed by ``workbench replay FILE``.

A replay file comes from someone else (an issue thread, an e-mail), so reading one runs no code
and allocates nothing the file did not pay for in bytes:

1. the text is bounded (``ReplayLimits.max_bytes``) and parsed with non-finite numbers refused
   and nesting bounded (``max_depth``);
2. the document is validated against a versioned JSON Schema (``workbench.check.replay_schema``, from the
   layer registry ``workbench.nets.spec.LAYER_TYPES`` and the axiom registry) before anything is
   built: unknown keys, layer types and dtypes are errors, widths and kernels are bounded;
3. every network is laid out on the ``meta`` device (shapes, no memory) and its parameter and
   activation sizes, the weights' shapes in the file, the input's shape and the target are checked;
4. only then are tensors and networks built.

The method a file names is a registry label (``integrated-gradients[rule='exact']``, parsed, never
evaluated), a prototype rule method made of built-in rules (rebuilt from the rules' names and
numbers: ``workbench.check.prototype_record``), or an importable callable. A callable is imported only when the user names it
(``--method module:callable``) or allows it (``--trust-callable``); the default says what the
file names and how to run it. The peer adapters of ``workbench.peers`` are part of the bench and
always allowed. Every malformed file raises a ``WorkbenchError`` (exit status 2 on the command line).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Union

import torch

from workbench import __version__
from workbench.axioms import Case, Outcome, get_axiom
from workbench.axioms.base import not_applicable
from workbench.core.errors import InputError, UntrustedCodeError, WorkbenchError
from workbench.methods.base import CallableMethod, Method, as_method
from workbench.nets import spec as S
from workbench.check.prototype_record import NeedsCode, NotSerializable, PrototypeRecordError, prototype_record, rebuild_prototype
from workbench.check.replay_schema import DTYPES, LIMITS, READABLE_VERSIONS, SCHEMA_VERSION, ReplayLimits, schema

__all__ = ["ReplayLimits", "SCHEMA_VERSION", "load_counterexample", "method_record", "replay", "save_counterexample", "schema"]

# -- writing ------------------------------------------------------------------------------------
def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, float) and not math.isfinite(d):
        return str(d)
    return d


def method_record(method: Method) -> dict:
    """How a replay file names the method: a registry label, a prototype's rules, or a callable."""
    from workbench.prototype import _PrototypeMethod

    if isinstance(method, CallableMethod):
        return {"callable": method.reference, "name": method.name, "claims": method.claims}
    if isinstance(method, _PrototypeMethod):
        try:
            return {"prototype": prototype_record(method), "name": method.name, "claims": method.claims}
        except NotSerializable as e:
            return {"prototype": None, "name": method.name, "claims": method.claims, "reason": str(e)}
    return {"label": method.label}


def save_counterexample(directory: Union[str, Path], method: Method, axiom: str, case: Case, outcome: Outcome, dtype: torch.dtype) -> Path:
    """Write the replay file (atomically): method, axiom, networks (spec + weights), input, baseline, target."""
    record = {
        "workbench_counterexample": SCHEMA_VERSION,
        "workbench_version": __version__,
        "torch_version": torch.__version__,
        "axiom": axiom,
        "method": method_record(method),
        "dtype": str(dtype).replace("torch.", ""),
        "outcome": _jsonable(asdict(outcome)),
        "case": _jsonable(case.to_dict()),
    }
    text = json.dumps(record, indent=1, allow_nan=False)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", method.label)[:60]
    path = Path(directory) / f"{safe}--{axiom}--{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from workbench.runner.store import write_text_atomic

    return write_text_atomic(path, text)  # temporary file in the folder, fsync, rename


# -- reading ------------------------------------------------------------------------------------
def _bad(path: Any, what: str) -> InputError:
    return InputError(f"{path} is not a valid workbench counterexample file: {what}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text} is out of range")
    return v


#: the largest magnitude of a number in a replay file (integer or array entry); float32's range is ~3.4e38
MAX_MAGNITUDE = 1e30


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 30:
        raise ValueError(f"integer {text[:20]}... has more than 30 digits")
    return int(text)


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"non-finite number {text} (NaN and Infinity are not allowed)")


def _depth(doc: Any) -> int:
    """Nesting depth of a parsed JSON document, iteratively (no recursion)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node if isinstance(v, (list, dict)))
    return deepest


def read_json_document(path: Union[str, Path], limits: ReplayLimits = LIMITS) -> Any:
    """A JSON file from someone else: size, finite numbers and nesting bounded. Raises InputError."""
    p = Path(path)
    try:
        if not p.is_file():  # a FIFO or device reports size 0 and never ends
            raise InputError(f"cannot read counterexample file {path}: not a regular file")
        with p.open("rb") as fh:
            raw = fh.read(limits.max_bytes + 1)  # bounded whatever stat() said
        if len(raw) > limits.max_bytes:
            raise _bad(path, f"more than the {limits.max_bytes} bytes a replay file may have")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read counterexample file {path}: {e}") from None
    try:
        data = json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except RecursionError:
        raise _bad(path, f"JSON nested too deeply (more than {limits.max_depth} levels allowed)") from None
    except ValueError as e:  # JSONDecodeError, huge integers, non-finite numbers
        raise _bad(path, f"not JSON: {str(e)[:200]}") from None
    if _depth(data) > limits.max_depth:
        raise _bad(path, f"JSON nested more than {limits.max_depth} levels")
    return data


def load_counterexample(path: Union[str, Path], limits: ReplayLimits = LIMITS) -> dict:
    """Read and validate a replay file (schema, bounds); nothing is built. Raises InputError."""
    import jsonschema

    data = read_json_document(path, limits)
    if not isinstance(data, dict) or "workbench_counterexample" not in data:
        raise _bad(path, "no 'workbench_counterexample' version field (is it a counterexample file?)")
    version = data.get("workbench_counterexample")
    if version not in READABLE_VERSIONS:
        raise _bad(path, f"schema version {version!r}; this workbench reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    validator = jsonschema.Draft202012Validator(schema(limits))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(e) for e in error.absolute_path) or "(top level)"
        raise _bad(path, f"at {where}: {error.message[:300]}")
    return data


def _shape(nested: Any, what: str, limits: ReplayLimits, path: Any) -> tuple:
    """Shape of a rectangular nested list of numbers, iteratively; bounded element count."""
    shape: list[int] = []
    node = nested
    while isinstance(node, list):
        if not node:
            raise _bad(path, f"{what} has an empty dimension")
        shape.append(len(node))
        node = node[0]
    if math.prod(shape) > limits.max_elements:
        raise _bad(path, f"{what} has {math.prod(shape)} elements, more than {limits.max_elements}")
    level = [nested]
    for n in shape:
        nxt = []
        for item in level:
            if not isinstance(item, list) or len(item) != n:
                raise _bad(path, f"{what} is not a rectangular array of shape {tuple(shape)}")
            nxt.extend(item)
        level = nxt
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in level):
        raise _bad(path, f"{what} holds something other than numbers")
    if any(abs(v) > MAX_MAGNITUDE for v in level):
        raise _bad(path, f"{what} holds a number beyond +-{MAX_MAGNITUDE:g} (it would overflow or become inf)")
    return tuple(shape)


def _checked_networks(data: dict, limits: ReplayLimits, path: Any) -> dict:
    """name -> NetSpec, after sizes, weight shapes, input shape and target are checked on ``meta``."""
    case = data["case"]
    x_shape = _shape(case["x"], "x", limits, path)
    if _shape(case["baseline"], "baseline", limits, path) != x_shape:
        raise _bad(path, "baseline and x have different shapes")
    for name, value in case.get("params", {}).items():
        if isinstance(value, list):
            _shape(value, f"params.{name}", limits, path)  # rectangular, numbers, bounded; the axiom checks the rest
    specs, total = {}, 0
    for name, net in case["networks"].items():
        try:
            spec = S.spec_from_dict(net["spec"])
        except (WorkbenchError, TypeError, ValueError) as e:
            raise _bad(path, f"network {name!r}: {e}") from None
        if sum(1 for _ in S.iter_layers(spec.layers)) > limits.max_layers:
            raise _bad(path, f"network {name!r} has more than {limits.max_layers} layers")
        for shape in [spec.input_shape] + spec.shapes():
            if math.prod(shape) > limits.max_elements:
                raise _bad(path, f"network {name!r} has an activation of shape {shape}, more than {limits.max_elements} elements")
        with torch.device("meta"):
            layout = S.build(spec, dtype=DTYPES[data["dtype"]])
        wanted = {k: tuple(v.shape) for k, v in layout.state_dict().items() if v.is_floating_point()}
        total += sum(math.prod(s) for s in wanted.values())
        if total > limits.max_total_elements:
            raise _bad(path, f"the networks have more than {limits.max_total_elements} parameters")
        given = net["state"]
        if set(given) != set(wanted):
            missing, extra = sorted(set(wanted) - set(given)), sorted(set(given) - set(wanted))
            raise _bad(path, f"network {name!r} weights: missing {missing[:5]}, unexpected {extra[:5]}")
        for k, shape in wanted.items():
            got = _shape(given[k], f"{name}.{k}", limits, path) if isinstance(given[k], list) else ()
            if got != shape:
                raise _bad(path, f"weight {name}.{k} has shape {got}, the network needs {shape}")
        if x_shape != (1,) + spec.input_shape:
            raise _bad(path, f"x has shape {x_shape}, network {name!r} takes {(1,) + spec.input_shape}")
        if case["target"] >= spec.outputs:
            raise _bad(path, f"target {case['target']} but network {name!r} has {spec.outputs} outputs")
        specs[name] = spec
    return specs


def _build_case(data: dict, specs: dict, path: Any) -> Case:
    dtype = DTYPES[data["dtype"]]
    c = data["case"]
    try:
        nets = {k: S.build(spec, dtype=dtype, state=c["networks"][k]["state"]) for k, spec in specs.items()}
    except WorkbenchError as e:
        raise _bad(path, str(e)) from None
    return Case(nets, torch.tensor(c["x"], dtype=dtype), torch.tensor(c["baseline"], dtype=dtype), int(c["target"]), dict(c.get("params", {})), c.get("label", ""))


# -- the method -----------------------------------------------------------------------------------
def _trusted_callables() -> set:
    """Callables of the bench itself that a file may name: the peer adapters."""
    from workbench import peers

    return {f"workbench.peers:{n}" for n in peers.__all__}


def _large_options(m: Method, limit: int) -> list[str]:
    """Numeric options (of `m` and of methods nested in its options) above `limit` in size."""
    out, stack = [], [(m.label, v) for v in m.options.values()]
    while stack:
        where, v = stack.pop()
        if isinstance(v, Method):
            stack += [(v.label, o) for o in v.options.values()]
        elif isinstance(v, (list, tuple, set)):
            stack += [(where, o) for o in v]
        elif isinstance(v, dict):
            stack += [(where, o) for o in v.values()]
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) > limit:
            out.append(f"{v:g} in {where}")
    return out


def _parse_label(label: str, limits: ReplayLimits, path: Any) -> Method:
    """The built-in method a label names (parsed: registry names and literals only), its numeric
    options bounded (a step count of 10^9 is a denial of service, not a counterexample)."""
    from workbench.methods import parse_method

    try:
        m = parse_method(label)
    except WorkbenchError as e:
        raise _bad(path, f"method label {label!r}: {e}") from None
    except (RecursionError, MemoryError, ValueError, TypeError, SyntaxError) as e:
        raise _bad(path, f"method label {label!r} cannot be parsed: {type(e).__name__}") from None
    big = _large_options(m, limits.max_option_int)
    if big:
        raise _bad(path, f"method label {label!r} has option values above {limits.max_option_int} ({', '.join(big[:3])}); pass --method to replay with them")
    return m


def _how_to_run(path: Any, what: str, reference: Optional[str]) -> UntrustedCodeError:
    named = f" ({reference})" if reference else ""
    shown = shlex.quote(str(path))
    lines = [
        f"{path} was not replayed: its method is {what}{named}, code that replaying would import and run.",
        "A replay file never runs code by itself. To replay it:",
    ]
    if reference:
        lines.append(f"  workbench replay {shown} --method {shlex.quote(reference)}   (you name the code; in Python: replay(FILE, method=...))")
        lines.append(f"  workbench replay {shown} --trust-callable   (import what the file names: only for files you trust)")
    else:
        lines.append(f"  workbench replay {shown} --method MODULE:CALLABLE   (or a built-in method name; in Python: replay(FILE, method=f))")
    return UntrustedCodeError("\n".join(lines))


def _recorded_method(rec: dict, trust_callable: bool, limits: ReplayLimits, path: Any) -> Method:
    from workbench.methods.base import import_callable

    if "label" in rec:
        return _parse_label(rec["label"], limits, path)
    if "prototype" in rec:
        if rec["prototype"] is None:
            raise _how_to_run(path, f"the prototype rule method {rec['name']!r}, which could not be saved ({rec.get('reason', 'unknown reason')})", None)
        try:
            return rebuild_prototype(rec, trust_callable)
        except PrototypeRecordError as e:
            raise _bad(path, str(e)) from None
        except NeedsCode as e:
            raise _how_to_run(path, f"the prototype rule method {rec['name']!r} with a rule function", e.reference) from None
    ref = rec["callable"]
    if ref is None:
        raise _how_to_run(path, f"the callable {rec['name']!r}, which cannot be imported again", None)
    if ref in _trusted_callables() or trust_callable:
        return as_method(import_callable(ref), claims=rec.get("claims"))
    raise _how_to_run(path, f"the callable {rec['name']!r}", ref)


def _given_method(method: Any) -> Method:
    from workbench.methods import parse_method
    from workbench.methods.base import import_callable

    if isinstance(method, str):
        return as_method(import_callable(method)) if ":" in method and "[" not in method else parse_method(method)
    return as_method(method)


class _Watched:
    """The method, with a flag set when an exception leaves its ``attribute``: an error raised
    elsewhere while evaluating a case is the file's (a parameter the axiom needs is missing or
    out of range), not the method's."""

    def __init__(self, method: Method) -> None:
        self._method = method
        self.raised = False

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._method, name)
        if not callable(value):
            return value

        def watched(*args: Any, **kwargs: Any) -> Any:  # representation(), reconstruct(), ...
            try:
                return value(*args, **kwargs)
            except BaseException:
                self.raised = True
                raise

        return watched

    def attribute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._method.attribute(*args, **kwargs)
        except BaseException:
            self.raised = True
            raise


def replay(path: Union[str, Path], method: Any = None, *, trust_callable: bool = False, limits: ReplayLimits = LIMITS) -> tuple[Outcome, Case, Method]:
    """Re-run a saved counterexample: (outcome, case, method).

    ``method`` (a Method, a callable, a built-in name or ``module:callable``) replaces the recorded
    one. Without it, a recorded registry label or prototype is rebuilt; a recorded callable is
    imported only with ``trust_callable=True`` (it runs code the file names), otherwise an
    ``UntrustedCodeError`` says how to run it. A malformed or oversized file raises ``InputError``
    before anything is allocated.
    """
    data = load_counterexample(path, limits)
    specs = _checked_networks(data, limits, path)
    m = _given_method(method) if method is not None else _recorded_method(data["method"], trust_callable, limits, path)
    case = _build_case(data, specs, path)
    axiom = get_axiom(data["axiom"])
    tol = float(data["outcome"]["tolerance"])
    reason = axiom.degenerate(m, case)
    if reason:  # as the checker judges it: a case on a kink or tie is no evidence for this method
        return not_applicable(reason), case, m
    watched = _Watched(m)
    try:
        outcome = axiom.evaluate(watched, case, tol)  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - sorted below: the method's error or the file's
        if not watched.raised:
            raise _bad(path, f"the case does not fit the {axiom.name} axiom ({type(e).__name__}: {str(e)[:200]})") from None
        outcome = axiom.run(m, case, tol)  # the method's own failure, reported as the checker does
    return outcome, case, m
