"""``workbench`` command line: methods, check, replay, prove, explain, experiment."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
import warnings
from typing import Any, Optional, Sequence

import torch

from workbench.core.options import assignments, literal
from workbench.methods.registry import matrix_methods
from workbench.core.errors import WorkbenchError

def _progress(quiet: bool):
    start = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    return {key: literal(value) for key, value in assignments(items or (), what="--option").items()}


def _resolve_method(name: str, options: dict[str, Any]):
    from workbench.methods import parse_method
    from workbench.methods.base import as_method, import_callable

    if ":" in name and "[" not in name:
        if options:
            raise WorkbenchError("--option applies to built-in methods, not to module:callable")
        return as_method(import_callable(name))
    m = parse_method(name)
    if options:
        from workbench.methods import method

        m = method(m.name, **{**m.options, **options})
    return m


def cmd_methods(args: argparse.Namespace) -> int:
    from workbench import methods
    from workbench.check.expected_failures import REASONS
    from workbench.core.render import Column, Table, render

    infos = methods()
    records = [{"name": i.name, "description": i.description, "claims": i.claims, "uses_baseline": i.uses_baseline,
                "unclaimed_reasons": REASONS.get(i.name, {})} for i in infos]
    rows = []
    for i in infos:
        claims = ", ".join(k if v is None else f"{k} (rtol {v:g})" for k, v in i.claims.items()) or "-"
        rows.append([i.name, "yes" if i.uses_baseline else "no", claims, i.description])
    cols = [Column("name", "method", wrap=True, min_width=14), Column("uses_baseline", "base", title="uses a baseline"),
            Column("claims", "claims (default configuration)", wrap=True, min_width=20),
            Column("description", "description", wrap=True, min_width=20)]
    legend = ["base: whether the method takes a baseline", "rtol: the relative tolerance a claim is made to (none: round-off)",
              "options: workbench check 'NAME[key=value,...]'; why an unclaimed axiom fails: workbench methods --format json"]
    print(render(Table(cols, rows, title="built-in methods", legend=legend, records=records), args.format, title="workbench methods"))
    return 0


def _dtype(name: str) -> torch.dtype:
    return {"float64": torch.float64, "float32": torch.float32}[name]


def cmd_check(args: argparse.Namespace) -> int:
    from workbench.axioms import DEFAULT_AXIOMS, get_axiom
    from workbench.check.search import check
    from workbench.check.views import render_reports, write_heatmap, write_html

    say = _progress(args.quiet)
    axioms = args.axioms.split(",") if args.axioms else None
    if args.model is not None:
        return _check_network(args, say)
    _refuse_options(args, NETWORK_ONLY, "without --model (they set up a network check: --model ARCH --weights W --source DIR)")
    args.kind, args.shrink = args.kind or "any", args.shrink or "unexpected"
    if args.jobs is not None and not args.all:
        raise WorkbenchError("--jobs applies to --all (methods checked side by side), not to one method")
    for a in axioms or ():
        get_axiom(a)  # unknown names fail before any work
    activations = tuple(args.activations.split(",")) if args.activations else None
    common = dict(axioms=axioms, examples=args.examples if args.examples is not None else 60, seed=args.seed, kind=args.kind, activations=activations, dtype=_dtype(args.dtype), save_dir=args.out, shrink_seconds=args.shrink_seconds, shrink=args.shrink)
    reports: list = []
    interrupted = False
    if args.all:
        from workbench.check.pool import check_methods

        if args.option:
            raise WorkbenchError("--option applies to one method, not to --all")
        methods = matrix_methods()
        try:  # one process per core; each method's check is seeded alone, so the reports are those of one process
            for report in check_methods(methods, jobs=args.jobs, progress=say, **common):
                reports.append(report)
        except KeyboardInterrupt as stop:
            interrupted = True
            reports = list(getattr(stop, "reports", reports))
    elif args.method:
        methods = [_resolve_method(args.method, _parse_options(args.option))]
        try:
            reports.append(check(methods[0], progress=say, **common))
        except KeyboardInterrupt as stop:  # the method being checked keeps its finished verdicts
            interrupted = True
            partial = getattr(stop, "report", None)
            if partial is not None:
                reports.append(partial)
    else:
        raise WorkbenchError("name a method (see `workbench methods`) or use --all")
    shown = [r for r in reports if r.verdicts]
    if shown:
        print(render_reports(shown, args.format, matrix=bool(args.all)))
        if args.html:
            print(f"html report: {write_html(shown, args.html)}", file=sys.stderr)
        if args.heatmap:
            print(f"heatmap: {write_heatmap(shown, args.heatmap)}", file=sys.stderr)
    if interrupted:
        finished = sum(len(r.verdicts) for r in reports)
        asked = axioms if axioms is not None else list(DEFAULT_AXIOMS)
        if args.all:
            todo = "run `workbench check --all` again (the search is seeded: finished verdicts repeat)"
        else:
            rest = [a for a in asked if a not in {v.axiom for r in reports for v in r.verdicts}]
            todo = f"to finish: workbench check {args.method} --axioms {','.join(rest)}" if rest else "all verdicts finished"
        shown_note = " (shown above)" if finished else ""
        print(f"interrupted: {finished} of {len(methods) * len(asked)} verdicts finished{shown_note}; {todo}", file=sys.stderr)
        return 130
    failed = [(r.method, v.axiom, v.counterexample) for r in reports for v in r.verdicts if v.unexpected and v.status == "fails"]
    for m, a, path in failed:
        print(f"claimed axiom failed: {m} / {a}" + (f"; counterexample: {path}" if path else ""), file=sys.stderr)
    breached = [(r.method, "; ".join(r.contract.get("breaches", []))) for r in reports if r.contract.get("breaches")]
    for m, what in breached:
        print(f"contract breached: {m}: {what}", file=sys.stderr)
    failed += breached
    errors = [(r.method, v.note) for r in reports for v in r.verdicts if v.status == "error"]
    for m, note in dict(errors).items():
        print(f"error: {m}: {note}", file=sys.stderr)
    return 2 if errors else (1 if failed else 0)


#: options of ``check`` that only a network check reads, and those only the fixture check reads
#: (dest -> flag): giving one to the other kind of check is refused, never ignored
NETWORK_ONLY = {"weights": "--weights", "source": "--source", "images": "--images", "size": "--size", "device": "--device",
                "memory_budget": "--memory-budget", "results": "--results"}
FIXTURE_ONLY = {"all": "--all", "kind": "--kind", "activations": "--activations", "jobs": "--jobs", "shrink": "--shrink"}


def _refuse_options(args: argparse.Namespace, options: dict[str, str], why: str) -> None:
    given = [flag for dest, flag in options.items() if getattr(args, dest, None) not in (None, False)]
    if given:
        raise WorkbenchError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply {why}")


def _check_network(args: argparse.Namespace, say) -> int:
    """``check METHOD --model ARCH --weights FILE --source DIR``: axioms on the user's network, in
    memory, or through a results folder (``--results``; under torchrun, sharded over the ranks)."""
    from workbench.runner.distributed import from_environment, run_job
    from workbench.check.network.job import NetworkCheck, run_network_check

    _refuse_options(args, FIXTURE_ONLY, "to a network check (--model): it draws rewrites of your network and shrinks every violation")
    if not args.method or not (args.model and args.weights and args.source):
        raise WorkbenchError("a network check needs a METHOD and --model, --weights and --source together")
    exp = NetworkCheck.of(args.method, weights=args.weights, source=args.source, option=tuple(args.option), model=args.model,
                          images=args.images if args.images is not None else 4, size=args.size if args.size is not None else 224,
                          dtype=args.dtype, axioms=tuple(args.axioms.split(",")) if args.axioms else (), seed=args.seed,
                          examples=args.examples if args.examples is not None else 10, memory_budget=args.memory_budget,
                          shrink_seconds=args.shrink_seconds if args.shrink_seconds is not None else 120.0, out=args.out, device=args.device or "cpu")
    group = from_environment(exp.device)  # None unless started by torchrun
    results = args.results if args.results is not None or group is None else "results"
    out = Path(results) / exp.name if results is not None else None
    say(f"{args.model} from {args.weights}, {exp.images} images of {args.source} at {exp.size} px: {len(exp.items())} units"
        + (f" over {group.world} processes" if group is not None else "") + (f", results in {out}" if out is not None else ""))
    report, status = run_job(lambda: run_network_check(exp, results=results, group=group, log=say), group, out, len(exp.items()), "units")
    if status is not None:
        return status
    if report is None:
        print(f"not finished: run the same command again to resume ({out})", file=sys.stderr)
        return 2
    from workbench.check.views import render_reports, write_heatmap, write_html

    print(render_reports([report], args.format, matrix=False))
    if args.html:
        print(f"html report: {write_html([report], args.html)}", file=sys.stderr)
    if args.heatmap:
        print(f"heatmap: {write_heatmap([report], args.heatmap)}", file=sys.stderr)
    failed = [v for v in report.verdicts if v.unexpected and v.status == "fails"]
    for v in failed:
        print(f"\nclaimed axiom failed: {report.method} / {v.axiom}; counterexample: {v.counterexample} "
              f"(replay: workbench replay FILE --weights {args.weights})", file=sys.stderr)
    errors = [v for v in report.verdicts if v.status == "error"]
    for v in errors:
        print(f"error: {report.method} / {v.axiom}: {v.note}", file=sys.stderr)
    breached = [v for v in report.verdicts if v.status == "contract"]
    return 2 if errors else (1 if failed or breached else 0)


def cmd_replay(args: argparse.Namespace) -> int:
    from workbench.check.counterexample import replay

    if args.weights is not None or _is_network_file(args.file):
        from workbench.check.network import replay_network

        if args.weights is None:
            raise WorkbenchError(f"{args.file} is a network counterexample: pass the checkpoint with --weights")
        outcome, case, method = replay_network(args.file, weights=args.weights, source=args.source, method=args.method, trust_callable=args.trust_callable)
        print(f"method: {method.label}")
        print(f"network: {case.params.get('where', '')} {json.dumps({k: v for k, v in case.params.items() if k != 'where'})}")
    else:
        outcome, case, method = replay(args.file, method=args.method, trust_callable=args.trust_callable)
        print(f"method: {method.label}")
        print(case.describe())
    status = "not applicable" if not outcome.applicable else ("VIOLATED" if outcome.violated else "holds")
    print(f"\n{status}: residual {outcome.residual:.3e} vs tolerance {outcome.tolerance:.3e}")
    if outcome.note:
        print(outcome.note)
    return 1 if outcome.violated else 0


def _is_network_file(path: str) -> bool:
    """Whether FILE is a network-check counterexample (read within the replay size bound)."""
    from workbench.check.counterexample import LIMITS
    from workbench.check.network import is_network_counterexample

    try:
        with open(path, "rb") as fh:
            text = fh.read(LIMITS.max_bytes + 1)
        if len(text) > LIMITS.max_bytes:
            return False  # the replay validator refuses it with the reason
        return is_network_counterexample(json.loads(text))
    except (OSError, ValueError, RecursionError):
        return False
def cmd_explain(args: argparse.Namespace) -> int:
    from workbench.explain import cli

    return cli(args)


def cmd_experiment(args: argparse.Namespace) -> int:
    from workbench.runner import experiment as X
    from workbench.core.render import Column, Table, render

    if args.name in (None, "list"):
        known = X.experiments()
        rows = [[n, c.claim] for n, c in known.items()]
        cols = [Column("name", "experiment", wrap=True, min_width=16), Column("claim", "claim it reproduces", wrap=True, min_width=30)]
        legend = ["run: workbench experiment NAME   parameters: workbench experiment NAME --params"]
        print(render(Table(cols, rows, title="experiments", legend=legend), args.format, title="workbench experiments"))
        return 0
    cls = X.get_experiment(args.name)
    if args.params:
        from workbench.runner.config import field_types

        types = field_types(cls)
        rows = [[k, types.get(k, "?"), v] for k, v in X.describe(cls)]
        cols = [Column("parameter", "parameter", wrap=True, min_width=12), Column("type", "type", wrap=True, min_width=10),
                Column("default", "default", wrap=True, min_width=20)]
        print(render(Table(cols, rows, title=f"{cls.name_prefix}: {cls.claim}"), args.format, title=cls.name_prefix))
        return 0
    exp = X.configure(cls, args.set + ([f"device={args.device}"] if args.device else []) + _batch_setting(cls, args))
    _warn_short_data(exp)
    out_dir = Path(args.results) / exp.name
    from workbench.runner.distributed import from_environment, run_job

    group = from_environment(exp.device, backend=args.backend, timeout=args.dist_timeout)  # None unless started by torchrun
    result, status = run_job(
        lambda: X.run(exp, results=args.results, limit=args.limit, log=_progress(args.quiet), wait=args.wait, allow_mixed=args.allow_mixed, dist=group),
        group, out_dir, None, "item(s)",
    )
    if status is not None:
        return status
    if result.summary:
        print(json.dumps(result.summary, indent=2) if args.json else _summary_text(result.summary))
    else:
        print(f"{result.done} new item(s) done, {result.skipped} done before; not finished: run the same command again "
              f"(without --limit) to finish and summarize")
    print(f"results: {result.out_dir}")
    if args.export:
        from workbench.runner.store import export_items

        from workbench.runner.distributed import shard_paths

        fmt = "csv" if args.export.endswith(".csv") else "jsonl"
        shards = [p.stem for p in shard_paths(result.out_dir)]
        print(f"exported {export_items(result.out_dir, args.export, format=fmt, shards=shards)} items to {args.export}")
    return 0


def _batch_setting(cls: Any, args: argparse.Namespace) -> list[str]:
    """``--batch-size N`` as the setting batch_size=N of an experiment that batches images through
    its methods; refused, naming the option, by any other."""
    from workbench.runner import experiment as X

    if args.batch_size is None:
        return []
    if not getattr(cls, "batches_images", False):
        able = [n for n, c in X.experiments().items() if getattr(c, "batches_images", False)]
        raise WorkbenchError(f"--batch-size does not apply to {cls.name_prefix}: its methods take one image (or a fixed set) per item, "
                             f"its images are still read ahead by the DataLoader; --batch-size applies to {', '.join(able)}")
    if any(s.partition("=")[0].strip().replace("-", "_") == "batch_size" for s in args.set):
        raise WorkbenchError("--batch-size and --set batch_size=... both given; give one")
    return [f"batch_size={args.batch_size}"]


def _warn_short_data(exp: Any) -> None:
    """Warn when an image experiment asks for more images than its source holds."""
    from workbench.runner.experiment import ImageExperiment

    if not isinstance(exp, ImageExperiment):
        return
    available = len(exp.image_source().keys())
    if available < exp.images:
        print(f"workbench: warning: images={exp.images} requested but {exp.source!r} holds {available}; "
              f"running on {available}", file=sys.stderr)


def _summary_text(summary: dict) -> str:
    text = summary.get("text") if isinstance(summary, dict) else None
    return text if isinstance(text, str) else json.dumps(summary, indent=2)


def _add_format(p: argparse.ArgumentParser) -> None:
    from workbench.core.render import FORMATS

    p.add_argument("--format", choices=FORMATS, default="table", help="output on stdout: table (100 columns), md, json or html (default table)")
    p.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")


def build_parser() -> argparse.ArgumentParser:
    from workbench import __version__

    p = argparse.ArgumentParser(prog="workbench", description="Theory-checking bench for attribution methods")
    p.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("methods", help="list built-in methods and the axioms each claims")
    _add_format(m)
    m.set_defaults(func=cmd_methods)

    c = sub.add_parser("check", help="search for axiom violations of a method")
    c.add_argument("method", nargs="?", help="built-in name, name[key=value,...], or module:callable (the current directory is importable)")
    c.add_argument("--all", action="store_true", help="the method x axiom matrix of the built-in methods")
    c.add_argument("--axioms", help="comma-separated axiom names (default: all)")
    c.add_argument("--examples", type=int, default=None, help="drawn cases per axiom (default 60; on a given network 10, shared out over the images, at least one each)")
    c.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    c.add_argument("--kind", choices=["mlp", "cnn", "any"], help="networks drawn (default any)")
    c.add_argument("--activations", help="comma-separated: relu,softplus,gelu (default: all three, ReLU only for a piecewise-linear method)")
    c.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    c.add_argument("--option", action="append", default=[], help="method option key=value (repeatable)")
    c.add_argument("--out", default="counterexamples", help="where counterexample files go")
    c.add_argument("--jobs", type=int, help="with --all: processes checking methods side by side (default: one per core; the result is the same)")
    c.add_argument("--shrink", choices=["unexpected", "all", "none"], help="which failures are shrunk and saved (default: claimed ones)")
    c.add_argument("--shrink-seconds", type=float, help="optional wall-clock cap per shrink (default none: shrinking counts evaluations)")
    _add_format(c)
    c.add_argument("--html", metavar="PATH", help="also write an HTML report (matrix, reasons, links to counterexample files)")
    c.add_argument("--heatmap", metavar="PATH", help="also write the method x axiom matrix as a PNG")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.add_argument("--model", help="check on YOUR network: a torchvision architecture (with --weights and --source)")
    c.add_argument("--weights", help="state-dict checkpoint of --model (read with weights_only=True)")
    c.add_argument("--source", help="ImageFolder directory of the images to check on")
    c.add_argument("--images", type=int, help="images drawn from --source (default 4)")
    c.add_argument("--size", type=int, help="image side in pixels for --source (default 224)")
    c.add_argument("--device", help="torch device for a network check, e.g. cuda (default cpu)")
    c.add_argument("--memory-budget", help="bound each pass of a network check, e.g. 2GB (rows per pass measured on one probe)")
    c.add_argument("--results", help="network check: keep finished units in this results folder and resume from it (under torchrun: default results/, one shard per rank)")
    c.set_defaults(func=cmd_check)

    pr = sub.add_parser("prove", help="run the symbolic proofs and write a Markdown report", add_help=False)
    pr.add_argument("rest", nargs=argparse.REMAINDER, help="[NAME ...] [--format F | --json] [--out FILE]")
    pr.set_defaults(func=lambda a: __import__("workbench.proofs.report", fromlist=["main"]).main(list(a.rest)))

    e = sub.add_parser("explain", help="PNG of a saliency map over an image, beside input gradient and Grad-CAM")
    e.add_argument("image", help="image file, skimage:NAME (e.g. skimage:astronaut) or digits:K")
    e.add_argument("--method", default="fullgrad", help="saliency method (default fullgrad)")
    e.add_argument("--model", help="torchvision architecture (default: a small CNN trained on sklearn digits)")
    e.add_argument("--weights", help="checkpoint for --model: a state dict (torch.save) or .safetensors file (without it the weights are random)")
    e.add_argument("--trust-pickle", action="store_true", help="also load a whole pickled module from --weights: this EXECUTES CODE from the file; only for files you trust")
    e.add_argument("--out", help="PNG path (default explain-IMAGE-METHOD.png, numbered so that nothing is overwritten)")
    e.add_argument("--target", type=int, help="class to explain (default: the top class)")
    e.add_argument("--size", type=int, default=224, help="input side for --model (default 224)")
    e.set_defaults(func=cmd_explain)

    x = sub.add_parser("experiment", help="reproduce a published experiment (resumable, with a manifest)")
    x.add_argument("name", nargs="?", help="experiment name, or 'list' (default)")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter (repeatable; typed by the parameter)")
    x.add_argument("--device", help="torch device, e.g. cuda or cuda:1 (default: the experiment's, cpu)")
    x.add_argument("--results", default="results", help="results root directory (default results/)")
    x.add_argument("--limit", type=int, help="stop after this many new items (run again to resume)")
    x.add_argument("--batch-size", type=int, help="images per pass of the methods, for experiments that batch them (same results at any size)")
    x.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for another run holding the results folder (default: refuse at once)")
    x.add_argument("--export", metavar="FILE", help="also write the items to FILE: CSV if it ends in .csv, else JSONL")
    x.add_argument("--allow-mixed", action="store_true", help="resume results made by another commit or package versions (each item records its own)")
    x.add_argument("--backend", choices=["gloo", "nccl"], help="under torchrun: torch.distributed backend (default nccl for --device cuda, else gloo)")
    x.add_argument("--dist-timeout", type=float, default=7 * 24 * 3600.0, metavar="SECONDS", help="under torchrun: how long a rank waits for the others (default 7 days; torchrun ends a job whose worker died)")
    x.add_argument("--params", action="store_true", help="list the experiment's parameters and defaults")
    x.add_argument("--format", choices=("table", "md", "json", "html"), default="table", help="format of list and --params (default table)")
    x.add_argument("--json", action="store_true", help="print the summary (or the list) as JSON")
    x.add_argument("--quiet", action="store_true", help="no progress lines")
    x.set_defaults(func=cmd_experiment)

    r = sub.add_parser("replay", help="re-run a saved counterexample file (validated; runs no code from the file)")
    r.add_argument("file")
    r.add_argument("--method", help="method to use instead of the recorded one: a built-in name or module:callable (you name the code that runs)")
    r.add_argument("--trust-callable", action="store_true", help="import and run the module:callable the FILE names: this EXECUTES CODE chosen by the file's author; only for files you trust")
    r.add_argument("--weights", help="checkpoint of a network counterexample (its sha256 is checked)")
    r.add_argument("--source", help="image folder of a network counterexample (default: the recorded one)")
    r.set_defaults(func=cmd_replay)
    return p


def _cwd_importable() -> None:
    """``module:callable`` resolves against the current directory, as ``python -m`` does."""
    import os

    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # raised inside torch on its first forward-mode AD pass (exact IG), not actionable by a user
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    _cwd_importable()
    try:
        if argv[:1] == ["prove"]:
            # the proofs' own parser takes every option (argparse.REMAINDER would drop leading ones)
            from workbench.proofs.report import main as prove_main

            return prove_main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command == "experiment" and args.json and args.format == "table":
            args.format = "json"
        return args.func(args)
    except WorkbenchError as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workbench: interrupted (nothing was finished and saved)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `workbench methods | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
