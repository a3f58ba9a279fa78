"""Check a method's axioms on a given trained network: the same Report, Verdicts, JSON and replay
as the fixture checker (``workbench.check``), with drawn rewrites of the user's model instead of
drawn networks.

Replay files (``workbench_network_counterexample: 1``) name the architecture, the checkpoint by
its sha256, the images by source key and sha256, and the drawn choice -- never a copy of the
weights. ``replay_network(path, weights=...)`` re-runs one; ``workbench replay FILE --weights W``
dispatches here when the file is a network counterexample (``is_network_counterexample``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import torch
from hypothesis.errors import NoSuchExample, Unsatisfiable
from torch import Tensor, nn

from workbench import __version__
from workbench.axioms.base import Case, Outcome
from workbench.check.counterexample import method_record
from workbench.check.search import Report, Verdict
from workbench.check.seeded_find import seeded_find
from workbench.core.errors import InputError
from workbench.methods.base import CallableMethod, Method, as_method
from workbench.core.tolerance import rtol_for
from workbench.check.network.axioms import NETWORK_AXIOMS, get_network_axiom
from workbench.check.network.network import Network, load_checkpoint, sha256_file

FORMAT_KEY = "workbench_network_counterexample"


def _method(obj: Any, claims=None) -> Method:
    if isinstance(obj, str):
        from workbench.methods import parse_method
        from workbench.methods.base import import_callable

        return as_method(import_callable(obj)) if ":" in obj and "[" not in obj else parse_method(obj)
    return as_method(obj, claims=claims)


def _verdict(axiom: str, method: Method, holds, claimed: bool, residual: float, tolerance: float, cases: int, counterexample, note: str, status: str = "") -> Verdict:
    """A ``workbench.check.Verdict`` built by field name (the fixture checker's own type)."""
    return Verdict(axiom=axiom, method=method.label, holds=holds, claimed=claimed, residual=residual, tolerance=tolerance, cases=cases, counterexample=counterexample, note=note, status=status)


def check_network_axiom(
    method: Method,
    net: Network,
    axiom_name: str,
    *,
    examples: int = 10,
    seed: Optional[int] = 0,
    save_dir: Optional[Union[str, Path]] = "counterexamples",
    claimed: Optional[bool] = None,
    shrink_evaluations: int = 30,
    shrink_seconds: float = 120.0,
) -> Verdict:
    """Search `examples` drawn choices for a violation of one axiom on `net`; shrink and save one.

    Shrinking stops after ``shrink_evaluations`` evaluated choices (or ``shrink_seconds``) past the
    first violation; the smallest violating choice seen by then is kept.
    """
    axiom = get_network_axiom(axiom_name)
    claims = method.claims
    is_claimed = axiom_name in claims if claimed is None else claimed
    dtype = net.images.dtype
    rtol = max(rtol_for(dtype), claims.get(axiom_name) or 0.0)
    reason = axiom.applicable(net)
    if reason:
        return _verdict(axiom_name, method, None, is_claimed, math.nan, rtol, 0, None, reason)
    state = {"worst": 0.0, "note": "", "applicable": 0, "reasons": [], "best": None, "spent": 0, "t0": None, "error": ""}

    def exhausted() -> bool:
        return state["t0"] is not None and (state["spent"] >= shrink_evaluations or time.monotonic() - state["t0"] > shrink_seconds)

    def violated(choice: dict) -> bool:
        if exhausted() or state["error"]:
            return False
        if state["t0"] is not None:
            state["spent"] += 1
        outcome = axiom.run(method, axiom.build(net, choice), rtol)
        if outcome.error:  # the method raised: its error, not a violation of the axiom
            state["error"] = outcome.error
            return False
        if outcome.applicable:
            state["applicable"] += 1
            if not outcome.violated and outcome.residual > state["worst"]:
                state["worst"], state["note"] = outcome.residual, outcome.note
        elif len(state["reasons"]) < 3:
            state["reasons"].append(outcome.note)
        if outcome.violated:
            state["best"] = choice
            if state["t0"] is None:
                state["t0"] = time.monotonic()
        return outcome.violated

    found = None
    try:
        found = seeded_find(axiom.choices(net), violated, examples=examples, seed=seed)
    except (NoSuchExample, Unsatisfiable):
        found = None
    except Exception:  # noqa: BLE001 - the shrink budget ends shrinking as a "flaky" failure
        if state["best"] is None:
            raise
    found = state["best"] if state["best"] is not None else found
    if state["error"]:
        return _verdict(axiom_name, method, None, is_claimed, math.nan, rtol, state["applicable"], None, f"method raised {state['error']}", "error")
    if found is None:
        if state["applicable"] == 0:
            why = state["reasons"][0] if state["reasons"] else "no applicable case was drawn"
            return _verdict(axiom_name, method, None, is_claimed, math.nan, rtol, 0, None, why)
        return _verdict(axiom_name, method, True, is_claimed, state["worst"], rtol, state["applicable"], None, state["note"])
    case = axiom.build(net, found)
    outcome = axiom.run(method, case, rtol)
    if outcome.error:
        return _verdict(axiom_name, method, None, is_claimed, math.nan, rtol, state["applicable"], None, f"method raised {outcome.error}", "error")
    if not outcome.violated:
        return _verdict(axiom_name, method, None, is_claimed, math.nan, rtol, state["applicable"], None,
                        f"nondeterministic: a violation did not repeat when re-run (residual {outcome.residual:.3g})", "contract")
    path = None if save_dir is None else str(save_network_counterexample(save_dir, method, net, axiom_name, found, outcome))
    where = case.params.get("where")
    note = f"{case.params['transform']} at {where}: " if where else ""
    return _verdict(axiom_name, method, False, is_claimed, outcome.residual, rtol, state["applicable"], path, note + outcome.note)


def examples_for(index: int, count: int, examples: int) -> int:
    """Drawn choices for image `index` of `count`: `examples` per axiom shared out over the images
    (the first ``examples % count`` images one more), at least one per image."""
    return max(1, examples // count + (1 if index < examples % count else 0))


def item_seed(seed: Optional[int], axiom: str, key: str) -> Optional[int]:
    """The search seed of one (axiom, image) unit: a function of (seed, axiom, image key) only, so a
    verdict is the same whatever process, rank or order computes it (None: unseeded)."""
    from workbench.runner.experiment import seed_for

    return None if seed is None else seed_for(seed, f"{axiom}/{key}")


def check_network_item(
    method: Method,
    net: Network,
    axiom_name: str,
    image: int,
    *,
    examples: int = 10,
    seed: Optional[int] = 0,
    save_dir: Optional[Union[str, Path]] = "counterexamples",
    claimed: Optional[bool] = None,
    shrink_evaluations: int = 30,
    shrink_seconds: float = 120.0,
) -> Verdict:
    """One unit of a network check: `axiom_name` on image `image` of `net` alone, with its share of
    `examples` (``examples_for``) and its own seed (``item_seed``). ``check_network`` and the
    torchrun job (``workbench.check.network.job``) both run these units and merge them (``merge_verdicts``)."""
    n = int(net.images.shape[0])
    return check_network_axiom(method, net.image(image), axiom_name, examples=examples_for(image, n, examples),
                               seed=item_seed(seed, axiom_name, net.keys[image]), save_dir=save_dir, claimed=claimed,
                               shrink_evaluations=shrink_evaluations, shrink_seconds=shrink_seconds)


def merge_verdicts(parts: list[tuple[str, Verdict]]) -> Verdict:
    """One axiom's verdict from its (image key, verdict) units in image order: the first error, else
    the first violation, else the first non-repeating violation ("contract"), else "holds" with the
    worst residual, else "n/a"; ``cases`` counts the applicable cases of every image."""
    from dataclasses import replace

    if not parts:
        raise InputError("no verdict to merge")
    cases = sum(v.cases for _, v in parts)
    for status in ("error", "fails", "contract"):
        for key, v in parts:
            if v.status == status:
                return replace(v, cases=cases, note=f"image {key}: {v.note}")
    holding = [(k, v) for k, v in parts if v.status == "holds"]
    if holding:
        key, v = max(holding, key=lambda kv: kv[1].residual)  # the first of the worst
        return replace(v, cases=cases, note=f"worst on image {key}: {v.note}" if v.note else "")
    return replace(parts[0][1], cases=cases)


def verdict_record(v: Verdict) -> dict:
    """A verdict as JSON (non-finite numbers as strings); ``verdict_from_record`` reads it back."""
    from dataclasses import asdict

    return {k: (str(x) if isinstance(x, float) and not math.isfinite(x) else x) for k, x in asdict(v).items()}


def verdict_from_record(d: dict) -> Verdict:
    return Verdict(**{k: (float(x) if k in ("residual", "tolerance") else x) for k, x in d.items()})


def report_from_dict(d: dict) -> Report:
    """A ``Report`` from its ``to_dict()`` form."""
    return Report(d["method"], [verdict_from_record(v) for v in d["verdicts"]], dict(d.get("settings") or {}), dict(d.get("contract") or {}))


def network_settings(net_record: dict, images: int, examples: int, seed: Optional[int], dtype: torch.dtype) -> dict:
    """The settings a network check's Report names (the same for the in-memory and the torchrun run)."""
    return {**net_record, "images": int(images), "examples": examples, "seed": seed, "dtype": str(dtype).replace("torch.", "")}


def check_network(
    method_or_callable: Any,
    model: Union[nn.Module, Network],
    images: Optional[Tensor] = None,
    *,
    axioms: Optional[Iterable[str]] = None,
    examples: int = 10,
    seed: Optional[int] = 0,
    claims=None,
    save_dir: Optional[Union[str, Path]] = "counterexamples",
    progress: Optional[Callable[[str], None]] = None,
    shrink_evaluations: int = 30,
    shrink_seconds: float = 120.0,
    memory_budget: Optional[Union[str, int]] = None,
) -> Report:
    """Check a method's axioms on a given network and images; a ``Report`` as ``workbench.check``.

    `model` is a ``Network`` (from ``load_network``: architecture, checkpoint hash, image keys,
    so counterexamples can be replayed) or a plain eval-mode ``nn.Module`` with `images`
    (N, C, H, W) of its dtype (then counterexample files name no checkpoint and cannot be replayed
    from the command line). Rewrites are function-preserving to round-off, so float64 is advised.
    Each axiom is searched image by image (``check_network_item``: ``examples`` shared out, a
    seed per (axiom, image)) and the units merged (``merge_verdicts``), as a torchrun job does.
    ``memory_budget`` (e.g. "2GB") bounds the rows of each of the method's passes
    (``workbench.data.pipeline.chunk_rows``; the method is rebuilt with that ``chunk_size``).
    """
    method = _method(method_or_callable, claims)
    if isinstance(model, Network) and images is not None:
        raise InputError("pass images either inside the Network or as `images` with a plain model, not both")
    net = model if isinstance(model, Network) else Network(model, images if images is not None else torch.empty(0))
    if memory_budget is not None:
        from workbench.data.pipeline import chunk_rows, with_chunk

        method = with_chunk(method, chunk_rows(net.model, net.images[:1], memory_budget))
    names = list(axioms) if axioms is not None else list(NETWORK_AXIOMS)
    for n in names:
        get_network_axiom(n)
    if net.model.training:
        raise InputError("the model is in training mode; call model.eval() first")
    treat_all = isinstance(method, CallableMethod) and not method.declared
    report = Report(method.label, settings=network_settings(net.record(), net.images.shape[0], examples, seed, net.images.dtype))
    for n in names:
        if progress:
            progress(f"{method.label} on {net.arch}: {n} ...")
        parts = [(net.keys[i], check_network_item(method, net, n, i, examples=examples, seed=seed, save_dir=save_dir, claimed=True if treat_all else None,
                                                  shrink_evaluations=shrink_evaluations, shrink_seconds=shrink_seconds)) for i in range(net.images.shape[0])]
        report.verdicts.append(merge_verdicts(parts))
    return report


# -- replay files ---------------------------------------------------------------------------------
def save_network_counterexample(directory: Union[str, Path], method: Method, net: Network, axiom: str, choice: dict, outcome: Outcome) -> Path:
    """Write the replay file: method, axiom, architecture + checkpoint hash, image key + hash, choice."""
    i = int(choice.get("image", 0))
    record = {
        FORMAT_KEY: 1,
        "workbench_version": __version__,
        "torch_version": torch.__version__,
        "axiom": axiom,
        "method": method_record(method),
        "dtype": str(net.images.dtype).replace("torch.", ""),
        "network": net.record(),
        "image": {"key": net.keys[i], "sha256": net.image_sha256[i] if net.image_sha256 else None},
        "choice": choice,
        "outcome": {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in outcome.__dict__.items()},
    }
    text = json.dumps(record, indent=1)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", method.label)[:60]
    path = Path(directory) / f"{safe}--{net.arch}--{axiom}--{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from workbench.runner.store import write_text_atomic

    return write_text_atomic(path, text)  # temporary file in the folder, fsync, rename: never a torn file


def is_network_counterexample(data: dict) -> bool:
    """Whether a loaded replay file is a network counterexample (``replay_network`` replays it)."""
    return isinstance(data, dict) and data.get(FORMAT_KEY) == 1


def _network_file_schema() -> dict:
    """JSON Schema of a network counterexample file: names and hashes, small scalars, no weights."""
    from workbench.check.replay_schema import DTYPES, LIMITS, schema

    scalar = {"oneOf": [{"type": "number", "minimum": -2**31, "maximum": 2**31}, {"type": "string", "maxLength": 32},
                        {"type": "boolean"}, {"type": "null"}]}
    sha = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    text = {"type": "string", "maxLength": 100}
    return {
        "type": "object",
        "properties": {
            FORMAT_KEY: {"const": 1},
            "workbench_version": text,
            "torch_version": text,
            "axiom": {"enum": sorted(NETWORK_AXIOMS)},
            "method": schema(LIMITS)["properties"]["method"],
            "dtype": {"enum": sorted(DTYPES)},
            "network": {
                "type": "object",
                "properties": {"arch": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}, "weights_sha256": sha,
                               "source": {"type": "string", "maxLength": 4096}, "size": {"type": "integer", "minimum": 8, "maximum": 1024}},
                "required": ["arch", "weights_sha256", "size"],
                "additionalProperties": False,
            },
            "image": {
                "type": "object",
                # a path inside the image folder: relative, no '..' component
                "properties": {"key": {"type": "string", "maxLength": 1024, "pattern": r"^(?!/)(?!.*(^|/)\.\.(/|$)).+$"},
                               "sha256": {"oneOf": [sha, {"type": "null"}]}},
                "required": ["key"],
                "additionalProperties": False,
            },
            "choice": {"type": "object", "maxProperties": 16, "additionalProperties": {
                "oneOf": [scalar, {"type": "object", "maxProperties": 4, "additionalProperties": scalar}]}},
            "outcome": {"type": "object", "maxProperties": 8, "properties": {
                "tolerance": {"type": "number", "minimum": 0}, "note": {"type": "string", "maxLength": 10_000},
                "residual": {"oneOf": [{"type": "number"}, {"type": "string", "maxLength": 16}]},
                "error": {"type": "string", "maxLength": 10_000}},
                        "required": ["tolerance"], "additionalProperties": scalar},
        },
        "required": [FORMAT_KEY, "axiom", "method", "dtype", "network", "image", "choice", "outcome"],
        "additionalProperties": False,
    }


def load_network_counterexample(path: Union[str, Path]) -> dict:
    """Read and validate a network counterexample file (bounded, schema-checked); nothing is built."""
    import jsonschema

    from workbench.check.counterexample import read_json_document

    data = read_json_document(path)
    if not is_network_counterexample(data):
        raise InputError(f"{path} is not a network counterexample file")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_network_file_schema()).iter_errors(data))
    if error is not None:
        where = "/".join(str(e) for e in error.absolute_path) or "(top level)"
        raise InputError(f"{path} is not a valid network counterexample file: at {where}: {error.message[:300]}")
    return data


def replay_network(
    path: Union[str, Path],
    *,
    weights: Union[str, Path],
    source: Optional[Union[str, Path]] = None,
    method: Any = None,
    device: Union[str, torch.device] = "cpu",
    trust_callable: bool = False,
) -> tuple[Outcome, Case, Method]:
    """Re-run a network counterexample with the checkpoint `weights` (its sha256 must match the
    recorded one) and the recorded image from `source` (default: the recorded source).

    The file is validated first and runs no code: a callable it names is imported only when the
    caller passes it as `method` or sets `trust_callable` (as ``workbench replay`` does).
    """
    from workbench.check.counterexample import LIMITS, _recorded_method
    from workbench.data.sources import image_source
    from workbench.check.replay_schema import DTYPES

    data = load_network_counterexample(path)
    rec_net, rec_img = data["network"], data["image"]
    digest = sha256_file(weights) if Path(weights).is_file() else None
    if digest != rec_net.get("weights_sha256"):
        raise InputError(f"{weights} is not the checkpoint of {path} (sha256 {digest} != recorded {rec_net.get('weights_sha256')})")
    src_dir = Path(source or rec_net.get("source") or "")
    if not src_dir.is_dir():
        raise InputError(f"the image source {str(src_dir)!r} is not a directory; pass --source")
    key = rec_img["key"]
    if rec_img.get("sha256") and (not (src_dir / key).is_file() or sha256_file(src_dir / key) != rec_img["sha256"]):
        raise InputError(f"{src_dir / key} is missing or differs from the recorded image (sha256)")
    dtype = DTYPES[data["dtype"]]
    model = load_checkpoint(rec_net["arch"], weights).to(device=device, dtype=dtype)
    images = image_source(str(src_dir), size=int(rec_net["size"]))
    if key not in images.keys():
        raise InputError(f"{key!r} is not an image of {src_dir}")
    x = images[key].image.unsqueeze(0).to(device=device, dtype=dtype)
    net = Network(model, x, rec_net["arch"], digest, str(src_dir), [key], rec_net["size"], [rec_img.get("sha256")])
    if method is None:
        method = _recorded_method(data["method"], trust_callable, LIMITS, path)
    method = _method(method)
    choice = {**data["choice"], "image": 0}
    axiom = get_network_axiom(data["axiom"])
    try:
        case = axiom.build(net, choice)
    except (IndexError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: the recorded choice {json.dumps(data['choice'])} does not fit {rec_net['arch']} ({type(e).__name__}: {e})") from None
    tol = data["outcome"].get("tolerance", rtol_for(dtype))
    return axiom.run(method, case, float(tol)), case, method
