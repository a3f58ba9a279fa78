"""``workbench`` command line: methods, check, replay, prove, explain, experiment."""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
import warnings
from typing import Any, Optional, Sequence

import torch

from .errors import WorkbenchError

#: the method x axiom matrix of ``workbench check --all``: every built-in in its default
#: configuration plus the variants whose verdicts differ
MATRIX_METHODS = (
    "gradient",
    "input-x-gradient",
    "integrated-gradients",
    "integrated-gradients[rule='exact']",
    "integrated-gradients[tolerance=None,steps=8,rule='right']",
    "smoothgrad",
    "smoothgrad[base=integrated-gradients]",
    "expected-gradients",
    "full-gradients",
    "fullgrad",
    "gradcam",
    "guided-backprop",
    "rectgrad",
    "lrp",
    "lrp[composite='zero']",
    "deeplift",
)


def _progress(quiet: bool):
    start = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items or ():
        key, eq, val = item.partition("=")
        if not eq:
            raise WorkbenchError(f"--option takes key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key] = val
    return out


def _resolve_method(name: str, options: dict[str, Any]):
    from .methods import parse_method
    from .methods.base import as_method, import_callable

    if ":" in name and "[" not in name:
        if options:
            raise WorkbenchError("--option applies to built-in methods, not to module:callable")
        return as_method(import_callable(name))
    m = parse_method(name)
    if options:
        from .methods import method

        m = method(m.name, **{**m.options, **options})
    return m


def cmd_methods(args: argparse.Namespace) -> int:
    from . import methods
    from .check import format_table

    infos = methods()
    if args.json:
        print(json.dumps([{"name": i.name, "description": i.description, "claims": i.claims, "uses_baseline": i.uses_baseline} for i in infos], indent=2))
        return 0
    rows = [("method", "baseline", "claims (default configuration)", "description")]
    for i in infos:
        claims = ", ".join(k if v is None else f"{k} (rtol {v:g})" for k, v in i.claims.items()) or "-"
        rows.append((i.name, "yes" if i.uses_baseline else "no", claims, i.description))
    print(format_table(rows))
    return 0


def _dtype(name: str) -> torch.dtype:
    return {"float64": torch.float64, "float32": torch.float32}[name]


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check, format_table

    say = _progress(args.quiet)
    axioms = args.axioms.split(",") if args.axioms else None
    shrink = args.shrink_seconds if args.shrink_seconds is not None else (5.0 if args.all else 20.0)
    common = dict(axioms=axioms, examples=args.examples, seed=args.seed, kind=args.kind, activations=tuple(args.activations.split(",")), dtype=_dtype(args.dtype), save_dir=args.out, progress=say, shrink_seconds=shrink)
    if args.all:
        names = list(MATRIX_METHODS)
        reports = [check(_resolve_method(n, {}), **common) for n in names]
    elif args.method:
        reports = [check(_resolve_method(args.method, _parse_options(args.option)), **common)]
    else:
        raise WorkbenchError("name a method (see `workbench methods`) or use --all")
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    elif args.all:
        axes = [v.axiom for v in reports[0].verdicts]
        rows = [("method",) + tuple(axes)] + [(r.method,) + tuple(v.cell() for v in r.verdicts) for r in reports]
        print(format_table(rows))
        print("\nholds: claimed and holds   holds*: holds, not claimed   fails: not claimed, fails as expected")
        print("FAILS: claimed but a counterexample was found   n/a: no applicable case")
        cx = [(r.method, v) for r in reports for v in r.verdicts if v.counterexample]
        if cx:
            print("\ncounterexamples (replay with `workbench replay FILE`):")
            for m, v in cx:
                print(f"  {m} / {v.axiom}: {v.counterexample}")
    else:
        print(reports[0].table())
    failed = [(r.method, v.axiom, v.counterexample) for r in reports for v in r.verdicts if v.unexpected]
    for m, a, path in failed:
        print(f"\nclaimed axiom failed: {m} / {a}; counterexample: {path}", file=sys.stderr)
    return 1 if failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .counterexample import replay

    outcome, case, method = replay(args.file, method=args.method, trust_callable=args.trust_callable)
    print(f"method: {method.label}")
    print(case.describe())
    status = "not applicable" if not outcome.applicable else ("VIOLATED" if outcome.violated else "holds")
    print(f"\n{status}: residual {outcome.residual:.3e} vs tolerance {outcome.tolerance:.3e}")
    if outcome.note:
        print(outcome.note)
    return 1 if outcome.violated else 0


def cmd_prove(args: argparse.Namespace) -> int:
    from proofs.report import main as prove_main

    return prove_main(list(args.rest))


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import cli

    return cli(args)


def cmd_experiment(args: argparse.Namespace) -> int:
    from . import experiment as X
    from .check import format_table

    if args.name in (None, "list"):
        rows = [("experiment", "claim")] + [(n, c.claim) for n, c in X.experiments().items()]
        print(format_table(rows))
        return 0
    cls = X.get_experiment(args.name)
    if args.params:
        print(format_table([("parameter", "default")] + X.describe(cls)))
        return 0
    exp = X.configure(cls, args.set + ([f"device={args.device}"] if args.device else []))
    from .distributed import from_environment

    group = from_environment(exp.device, backend=args.backend, timeout=args.dist_timeout)  # None unless started by torchrun
    try:
        result = X.run(exp, results=args.results, limit=args.limit, log=_progress(args.quiet), wait=args.wait, allow_mixed=args.allow_mixed, dist=group)
    finally:
        if group is not None:
            group.close()
    if group is None or group.rank == 0:
        print(json.dumps(result.summary, indent=2) if args.json else _summary_text(result.summary))
        print(f"results: {result.out_dir}")
    return 0


def _summary_text(summary: dict) -> str:
    text = summary.get("text") if isinstance(summary, dict) else None
    return text if isinstance(text, str) else json.dumps(summary, indent=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Theory-checking bench for attribution methods")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("methods", help="list built-in methods and the axioms each claims")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_methods)

    c = sub.add_parser("check", help="search for axiom violations of a method")
    c.add_argument("method", nargs="?", help="built-in name, name[key=value,...], or module:callable")
    c.add_argument("--all", action="store_true", help="the method x axiom matrix of the built-in methods")
    c.add_argument("--axioms", help="comma-separated axiom names (default: all)")
    c.add_argument("--examples", type=int, default=60, help="drawn cases per axiom (default 60)")
    c.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    c.add_argument("--kind", default="any", choices=["mlp", "cnn", "any"], help="networks drawn")
    c.add_argument("--activations", default="relu", help="comma-separated: relu,softplus,gelu")
    c.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    c.add_argument("--option", action="append", default=[], help="method option key=value (repeatable)")
    c.add_argument("--out", default="counterexamples", help="where counterexample files go")
    c.add_argument("--shrink-seconds", type=float, help="time spent shrinking each counterexample (default 20, 5 with --all)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(func=cmd_check)

    pr = sub.add_parser("prove", help="run the symbolic proofs and write a Markdown report", add_help=False)
    pr.add_argument("rest", nargs=argparse.REMAINDER, help="[NAME ...] [--json] [--out FILE]")
    pr.set_defaults(func=cmd_prove)

    e = sub.add_parser("explain", help="PNG of a saliency map over an image, beside input gradient and Grad-CAM")
    e.add_argument("image", help="image file, skimage:NAME (e.g. skimage:astronaut) or digits:K")
    e.add_argument("--method", default="fullgrad", help="saliency method (default fullgrad)")
    e.add_argument("--model", help="torchvision architecture (default: a small CNN trained on sklearn digits)")
    e.add_argument("--weights", help="checkpoint for --model: a state dict (torch.save) or .safetensors file (without it the weights are random)")
    e.add_argument("--trust-pickle", action="store_true", help="also load a whole pickled module from --weights: this EXECUTES CODE from the file; only for files you trust")
    e.add_argument("--out", help="PNG path (default explain-METHOD.png)")
    e.add_argument("--target", type=int, help="class to explain (default: the top class)")
    e.add_argument("--size", type=int, default=224, help="input side for --model (default 224)")
    e.set_defaults(func=cmd_explain)

    x = sub.add_parser("experiment", help="reproduce a published experiment (resumable, with a manifest)")
    x.add_argument("name", nargs="?", help="experiment name, or 'list' (default)")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter (repeatable)")
    x.add_argument("--device", help="torch device, e.g. cuda or cuda:1 (default: the experiment's, cpu)")
    x.add_argument("--results", default="results", help="results root directory (default results/)")
    x.add_argument("--limit", type=int, help="stop after this many new items (run again to resume)")
    x.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for another run holding the results folder (default: refuse at once)")
    x.add_argument("--allow-mixed", action="store_true", help="resume results made by another commit or package versions (each item records its own)")
    x.add_argument("--backend", choices=["gloo", "nccl"], help="under torchrun: torch.distributed backend (default nccl for --device cuda, else gloo)")
    x.add_argument("--dist-timeout", type=float, default=7 * 24 * 3600.0, metavar="SECONDS", help="under torchrun: how long a rank waits for the others (default 7 days; torchrun ends a job whose worker died)")
    x.add_argument("--params", action="store_true", help="list the experiment's parameters and defaults")
    x.add_argument("--json", action="store_true", help="print the summary as JSON")
    x.add_argument("--quiet", action="store_true", help="no progress lines")
    x.set_defaults(func=cmd_experiment)

    r = sub.add_parser("replay", help="re-run a saved counterexample file (validated; runs no code from the file)")
    r.add_argument("file")
    r.add_argument("--method", help="method to use instead of the recorded one: a built-in name or module:callable (you name the code that runs)")
    r.add_argument("--trust-callable", action="store_true", help="import and run the module:callable the FILE names: this EXECUTES CODE chosen by the file's author; only for files you trust")
    r.set_defaults(func=cmd_replay)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    # raised inside torch on its first forward-mode AD pass (exact IG), not actionable by a user
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prove"]:
        # the proofs' own parser takes every option (argparse.REMAINDER would drop leading ones)
        from proofs.report import main as prove_main

        return prove_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
