"""Experiments: a frozen config, independent items, resumable results with provenance.

An experiment is a frozen dataclass (subclass of :class:`Experiment`) whose fields are its
parameters; the defaults are the small CPU run, and the same code runs at ImageNet scale by
overriding fields (``data=/path/to/imagefolder``, ``model=resnet50``, ``weights=ckpt.pt``,
``device=cuda``). It defines

* ``items()``: keys of independent work units (image ids, network seeds, ...);
* ``run_item(key, ctx)``: one unit's JSON-able result record;
* ``summarize(records, ctx)``: tables and figures from all records; returns a JSON-able summary.

``run(exp, results="results")`` writes ``results/<exp.name>/``:

* ``manifest.json``: experiment, config, git commit, package versions, device, host;
* ``items.jsonl``: one line per finished item with its provenance (commit, dirty flag, package
  versions), appended durably as it finishes, so an interrupted run resumes where it stopped and
  skips finished work (``workbench.runner.store``: a torn last line is cut off and rerun, the folder is
  locked while a run writes to it, a resume under other code is refused unless allowed);
* ``summary.json`` and whatever files ``summarize`` writes (PNG figures, Markdown tables).

The directory name derives from the fields: the experiment's name, the fields that differ from
the defaults, and a hash of the whole config, so two configurations never share results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import pkgutil
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Optional, Type, TypeVar, Union

import torch

from workbench.core.errors import InputError
from workbench.runner.store import FolderLock, ItemStore, ResultsCorruptError, ResultsLockedError, ResultsMismatchError, write_error, write_json_atomic

if TYPE_CHECKING:
    from workbench.runner.distributed import Group

__all__ = ["Context", "Experiment", "ImageExperiment", "RunResult", "experiments", "get_experiment", "register", "run", "seed_for"]


@dataclass(frozen=True)
class Experiment:
    """Base class of experiment configs. Subclasses add fields (with defaults) and the three hooks."""

    #: registry name, also the first part of the results directory
    name_prefix: ClassVar[str] = "experiment"
    #: one line: the published claim this experiment reproduces
    claim: ClassVar[str] = ""

    seed: int = 0
    device: str = "cpu"

    # -- the three hooks -------------------------------------------------------------------
    def items(self) -> list[str]:
        """Keys of the independent work units."""
        raise NotImplementedError(f"{type(self).__name__} must define items()")

    def run_item(self, key: str, ctx: "Context") -> dict:
        """One unit's result record (JSON-able)."""
        raise NotImplementedError(f"{type(self).__name__} must define run_item()")

    def summarize(self, records: list[dict], ctx: "Context") -> dict:
        """Tables and figures from all records (in ``items()`` order); a JSON-able summary."""
        return {"items": len(records)}

    # -- naming ----------------------------------------------------------------------------
    def config(self) -> dict:
        """The fields as a JSON-able dict."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def overrides(self) -> dict:
        """Fields whose value differs from the default."""
        out = {}
        for f in dataclasses.fields(self):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING  # type: ignore[misc]
            )
            if default is dataclasses.MISSING or _plain(default) != _plain(getattr(self, f.name)):
                out[f.name] = _plain(getattr(self, f.name))
        return out

    @property
    def name(self) -> str:
        """``prefix``, the overridden fields, and a hash of the whole config: the results directory."""
        digest = hashlib.sha256(json.dumps({"experiment": self.name_prefix, **self.config()}, sort_keys=True).encode()).hexdigest()[:8]
        parts = [f"{k}={_short(v)}" for k, v in sorted(self.overrides().items()) if k != "device"]
        text = self.name_prefix + ("--" + ",".join(parts) if parts else "")
        safe = "".join(c if c.isalnum() or c in "=,.-_+" else "_" for c in text)[:100]
        return f"{safe}--{digest}"


@dataclass(frozen=True)
class ImageExperiment(Experiment):
    """The common shape: images of a source (``workbench.data.sources.image_source``) explained by one
    classifier (``workbench.data.sources.load_model``) in one dtype; items are the image keys unless a
    subclass groups them. Subclasses redeclare a field to change its default."""

    source: str = "digits"
    model: str = "digits-cnn"
    weights: Optional[str] = None
    #: also load a pickled whole module from ``weights``: this executes code from the file
    trust_pickle: bool = False
    images: int = 8
    size: int = 224
    dtype: str = "float32"

    def image_source(self):
        """The experiment's images (built anew: cheap, lazy loading)."""
        from workbench.data.sources import image_source

        return image_source(self.source, count=self.images, size=self.size, seed=self.seed)

    def items(self) -> list[str]:
        return self.image_source().keys()

    def image_keys(self) -> list[str]:
        """The keys of the experiment's images, listed once per config object."""
        keys = self.__dict__.get("_image_keys")
        if keys is None:
            keys = self.image_source().keys()
            object.__setattr__(self, "_image_keys", keys)  # a cache, not a field: the config is unchanged
        return list(keys)

    def torch_dtype(self) -> torch.dtype:
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return getattr(torch, self.dtype)

    def images_of(self, ctx: "Context"):
        """The image source, once per run."""
        return ctx.cached("source", self.image_source)

    def loaded_model(self, ctx: "Context"):
        """``LoadedModel`` (model on ctx.device in the experiment's dtype, random_weights flag), once per run."""
        from dataclasses import replace

        from workbench.data.sources import load_model

        def build():
            loaded = load_model(self.model, weights=self.weights, device=ctx.device, allow_pickle=self.trust_pickle)
            return replace(loaded, model=loaded.model.to(self.torch_dtype()))
        return ctx.cached("model", build)

    #: whether ``batch_size`` (a field of the subclass) is the number of images each pass of the
    #: methods takes (``workbench experiment NAME --batch-size N``; results do not depend on it)
    batches_images: ClassVar[bool] = False

    def item_images(self, key: str) -> list[str]:
        """The image keys item `key` explains, in order (default: the item is one image). The run
        decodes them ahead in DataLoader workers (``workbench.data.pipeline.item_batches``)."""
        return [key]

    def batch(self, ctx: "Context", keys: list[str]) -> torch.Tensor:
        """The images of `keys` as one (N, C, H, W) tensor on ctx.device in the experiment's dtype:
        the tensor the run's DataLoader prepared for the current item, else read here."""
        ready = ctx._cache.get(_PREFETCHED)
        if ready is not None and ready[0] == list(keys):
            return ready[1]
        src = self.images_of(ctx)
        return torch.stack([src[k].image for k in keys]).to(ctx.device, self.torch_dtype())


#: the context entry holding (image keys, images) of the item being run
_PREFETCHED = "_prefetched_images"


def with_images(exp: Experiment, todo: list[str], ctx: "Context") -> Iterator[str]:
    """The keys of `todo` in order; for an image experiment, each item's images
    (``item_images``) are decoded ahead by the pipeline's DataLoader (worker processes, pinned
    memory on CUDA) and handed to ``batch`` while the item runs."""
    if not isinstance(exp, ImageExperiment) or not todo:
        yield from todo
        return
    from workbench.data.pipeline import item_batches

    groups = [exp.item_images(k) for k in todo]
    try:
        for key, group, x in zip(todo, groups, item_batches(exp.images_of(ctx), groups, device=ctx.device, dtype=exp.torch_dtype())):
            ctx._cache[_PREFETCHED] = (group, x)
            yield key
    finally:
        ctx._cache.pop(_PREFETCHED, None)


def _plain(v: Any) -> Any:
    """A JSON-able form of a field value (tuples become lists, paths strings)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _short(v: Any) -> str:
    if isinstance(v, list):
        text = "+".join(str(x) for x in v)
    else:
        text = json.dumps(v) if not isinstance(v, str) else v
    text = text.replace("/", "_")
    return text if len(text) <= 24 else text[:21] + "..."


def seed_for(seed: int, key: str) -> int:
    """A per-item seed that depends only on (seed, key): items repeat whatever order they run in."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little")


@dataclass
class Context:
    """What ``run_item`` and ``summarize`` receive: the output directory, the device, a cache."""

    out_dir: Path
    device: torch.device
    seed: int
    log: Callable[[str], None] = print
    _cache: dict = field(default_factory=dict)

    def cached(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per run (a model, a data set), shared by all items."""
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def seed_for(self, key: str) -> int:
        return seed_for(self.seed, key)

    def generator(self, key: str) -> torch.Generator:
        """A CPU generator seeded for item `key`."""
        return torch.Generator().manual_seed(self.seed_for(key))


@dataclass(frozen=True)
class RunResult:
    """Where a run wrote its results, what it did this time, and its summary."""

    out_dir: Path
    done: int
    skipped: int
    summary: dict


# -- provenance ------------------------------------------------------------------------------
def _git_commit() -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    out = {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    if out["dirty"]:  # the commit does not name the code: a hash of the uncommitted changes does
        try:
            diff = subprocess.run(["git", "diff", "HEAD", "--no-ext-diff", "--binary"], cwd=root, capture_output=True, timeout=30)
            out["diff"] = hashlib.sha256(diff.stdout).hexdigest()[:16] if diff.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            out["diff"] = None
    return out


def provenance() -> dict:
    """What made a result: git commit, dirty flag (with a hash of the uncommitted diff), versions."""
    return {**_git_commit(), "versions": _versions()}


def _provenance_differences(old: dict, new: dict) -> list[str]:
    """Readable differences between two provenances (empty: the same code and packages)."""
    out = []
    describe = lambda p: f"{(p.get('commit') or 'no commit')[:12]}" + (f" + uncommitted changes {p.get('diff')}" if p.get("dirty") else "")
    if (old.get("commit"), bool(old.get("dirty")), old.get("diff")) != (new.get("commit"), bool(new.get("dirty")), new.get("diff")):
        out.append(f"code {describe(old)} -> {describe(new)}")
    ov, nv = old.get("versions") or {}, new.get("versions") or {}
    out += [f"{k} {ov.get(k)} -> {nv.get(k)}" for k in sorted(set(ov) | set(nv)) if ov.get(k) != nv.get(k)]
    return out


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "torch": torch.__version__}  # with its build (+cu130, +cpu)
    out["cuda"] = torch.version.cuda
    for pkg in ("workbench", "torchvision", "numpy", "scipy", "captum", "zennit", "scikit-learn", "scikit-image"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def manifest(exp: Experiment, device: torch.device) -> dict:
    """Config, seed, git commit, package versions, device: enough to rerun and to trust."""
    dev = {"device": str(device)}
    if device.type == "cuda" and torch.cuda.is_available():
        dev["device_name"] = torch.cuda.get_device_name(device)
    return {
        "experiment": exp.name_prefix,
        "claim": exp.claim,
        "name": exp.name,
        "config": exp.config(),
        "seed": exp.seed,
        "git": _git_commit(),
        "versions": _versions(),
        **dev,
        "host": platform.node(),
        "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def resolve_device(name: str) -> torch.device:
    """A torch device from its name, with a clear error when it is not available here."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise InputError(f"unknown device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {name!r} requested but MPS is not available on this machine")
    return device


def finished_records(path: Path) -> dict[str, dict]:
    """key -> record of the items in a results file (read-only: a torn last line is skipped)."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "key" in row and "record" in row:
            done[str(row["key"])] = row["record"]
    return done


def _make_folder(out: Path) -> list[Path]:
    """Create `out` (and missing parents); the folders created, outermost first, for clean-up."""
    missing = [p for p in [out, *out.parents] if not p.exists()][::-1]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, "create the results folder", out) from None
    return missing


def _check_manifest(out: Path, exp: Experiment, device: torch.device, prov: dict, rows: dict, allow_mixed: bool, say: Callable[[str], None]) -> None:
    """Write the manifest of a new folder; on resume, refuse another configuration and (unless
    `allow_mixed`) other code or package versions than the recorded ones."""
    path = out / "manifest.json"
    old: Any = None
    if path.exists():
        try:
            text = path.read_text()
            old = json.loads(text) if text.strip() else "empty"
        except (OSError, ValueError, UnicodeDecodeError):
            old = "corrupt"
        if not (isinstance(old, dict) and isinstance(old.get("config"), dict)):
            what = "empty" if old == "empty" else "not a valid manifest"
            if rows:
                raise ResultsCorruptError(
                    f"{path} is {what}, but {len(rows)} items are recorded under it: their configuration and provenance cannot "
                    "be checked. Restore the manifest (e.g. from a backup) or move the folder away and run again"
                )
            say(f"{path} was {what} and no item is recorded: writing it anew")
            old = None
    if old is None:
        write_json_atomic(path, manifest(exp, device))
        return
    if old["config"] != exp.config():
        raise ResultsMismatchError(f"{out} holds results of another configuration; choose another results directory")
    seen = [{**(old.get("git") or {}), "versions": old.get("versions") or {}}] + [r["provenance"] for r in rows.values() if isinstance(r.get("provenance"), dict)]
    distinct = {json.dumps(p, sort_keys=True): p for p in seen}
    diffs = sorted({d for p in distinct.values() for d in _provenance_differences(p, prov)})
    if not diffs:
        return
    if not allow_mixed:
        raise ResultsMismatchError(
            f"{out} holds results made by other code or packages than this run ({'; '.join(diffs[:6])}); resuming would "
            "mix them in one result. Run into a fresh --results folder, or pass --allow-mixed (run(..., allow_mixed=True)) "
            "to continue: every item records its own provenance"
        )
    say(f"{out}: resuming under different code or packages ({'; '.join(diffs[:6])}); each item records its own provenance")
    old.setdefault("resumed_under", []).append({**prov, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    write_json_atomic(path, old)


def run(
    exp: Experiment,
    *,
    results: Union[str, Path] = "results",
    log: Optional[Callable[[str], None]] = None,
    limit: Optional[int] = None,
    wait: float = 0.0,
    allow_mixed: bool = False,
    shard: str = "items",
    dist: Optional["Group"] = None,
) -> RunResult:
    """Run (or resume) `exp`; ``limit`` stops after that many new items (for a partial run).

    ``dist``: this process's ``workbench.runner.distributed.Group`` under torchrun: items are shared
    out over the ranks, each writing its own shard, and rank 0 merges and summarizes
    (``workbench.runner.distributed.run_sharded``). A run of the default shard reads the shards of
    such jobs too, so a job resumes with any number of processes.

    The results folder (precisely: its ``shard``) is locked for the run (``wait`` seconds for
    another run to finish, else ``ResultsLockedError`` naming it); items are appended durably to
    ``<shard>.jsonl`` with their provenance; a resume under other code or package versions is
    refused unless ``allow_mixed``. A folder this call created is removed again when the call
    fails before recording any item.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", shard) or shard in ("manifest", "summary"):
        raise InputError(f"shard must be a plain name (letters, digits, _ . -), not 'manifest' or 'summary'; got {shard!r}")
    if dist is not None:
        from workbench.runner.distributed import run_sharded

        if shard != "items":
            raise InputError(f"shard={shard!r} with dist: under torchrun each rank writes the shard of its rank (rank<r>-of-<w>)")

        return run_sharded(exp, dist, results=results, log=log, limit=limit, wait=wait, allow_mixed=allow_mixed)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    device = resolve_device(exp.device)
    keys = [str(k) for k in exp.items()]  # before any folder exists: a bad setting leaves nothing behind
    if len(set(keys)) != len(keys):
        raise InputError(f"{exp.name_prefix}: items() returned duplicate keys")
    out = Path(results) / exp.name
    created = _make_folder(out)
    # one lock per shard (the default shard: one per folder); the manifest under its own short lock,
    # so that runs writing different shards of one folder (one per rank) can share it
    lock, store = FolderLock(out, shard, wait=wait), ItemStore(out, shard, log=say)
    recorded = locked = False
    shard_locks: list[FolderLock] = []
    try:
        lock.acquire()
        locked = True
        rows = store.load()
        if shard == "items":  # also the shards of torchrun jobs (workbench.runner.distributed), locked against ranks still writing
            from workbench.runner.distributed import lock_shards, merge_shards

            shard_locks = lock_shards(out, {shard}, wait, say)
            rows = merge_shards(out, say)
        prov = provenance()
        with FolderLock(out, "manifest", wait=60.0):
            _check_manifest(out, exp, device, prov, rows, allow_mixed, say)
        stray = sorted(set(rows) - set(keys))
        if stray:
            say(f"{exp.name}: {len(stray)} recorded items are not items of this experiment ({', '.join(stray[:3])}); ignored")
        done = {k: rows[k]["record"] for k in keys if k in rows}
        ctx = Context(out, device, exp.seed, say)
        todo = [k for k in keys if k not in done]
        if limit is not None:
            todo = todo[: max(0, limit)]
        skipped = len(done)
        if skipped:
            say(f"{exp.name}: {skipped} of {len(keys)} items already done, resuming")
        store.open()
        from workbench.data.pipeline import Progress

        progress = Progress(len(todo), exp.name_prefix)
        for i, key in enumerate(with_images(exp, todo, ctx), 1):
            t0 = time.monotonic()
            record = exp.run_item(key, ctx)
            seconds = time.monotonic() - t0
            row = {"key": key, "seconds": round(seconds, 4), "record": _plain(record), "provenance": prov}
            store.append(row)
            recorded = True
            done[key] = json.loads(json.dumps(row["record"]))  # the form a resume reads back
            progress.update()
            say(f"{exp.name_prefix}: item {key} done in {seconds:.1f}s; {progress.line()}")
        summary: dict = {}
        if all(k in done for k in keys):
            summary = _plain(exp.summarize([done[k] for k in keys], ctx))
            write_json_atomic(out / "summary.json", summary)
        else:
            say(f"{exp.name}: {sum(k in done for k in keys)} of {len(keys)} items done; run again to finish")
    except BaseException as e:
        store.close()
        for other in shard_locks:
            other.release()
        lock.release()
        if created and not recorded and (locked or not isinstance(e, ResultsLockedError)):  # never a folder another run holds
            _remove_new_folder(created, store.path)
        raise
    store.close()
    for other in shard_locks:
        other.release()
    lock.release()
    return RunResult(out, len(todo), skipped, summary)


def _remove_new_folder(created: list[Path], items: Path) -> None:
    """Remove the folders a failed run created (innermost first), unless some item was recorded."""
    folder = created[-1]
    try:
        # a recorded item of any shard (runs writing other shards share a folder): not ours alone
        if any(p.stat().st_size > 0 for p in folder.glob("*.jsonl")):
            return
    except OSError:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for folder in reversed(created[:-1]):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break


# -- registry ------------------------------------------------------------------------------------
E = TypeVar("E", bound=Type[Experiment])
_REGISTRY: dict[str, Type[Experiment]] = {}


def register(cls: E) -> E:
    """Class decorator: make an experiment available to ``workbench experiment NAME``."""
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise TypeError("register() takes an Experiment subclass")
    existing = _REGISTRY.get(cls.name_prefix)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"experiment name {cls.name_prefix!r} registered twice")
    _REGISTRY[cls.name_prefix] = cls
    return cls


def _discover() -> None:
    package = importlib.import_module("workbench.experiments")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"workbench.experiments.{info.name}")


def experiments() -> dict[str, Type[Experiment]]:
    """Registered experiments by name (the modules of the ``experiments`` package are imported)."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get_experiment(name: str) -> Type[Experiment]:
    known = experiments()
    try:
        return known[name]
    except KeyError:
        raise InputError(f"unknown experiment {name!r}; known: {', '.join(known) or 'none'}") from None


def configure(cls: Type[Experiment], settings: Iterable[str]) -> Experiment:
    """Build `cls` from ``key=value`` strings, each typed by its field's annotation
    (``workbench.runner.config.parse_value``)."""
    from workbench.runner.config import field_annotations, parse_value

    annotations = field_annotations(cls)
    kwargs: dict[str, Any] = {}
    for item in settings:
        key, eq, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise InputError(f"--set takes key=value, got {item!r}")
        if key not in annotations:
            raise InputError(f"{cls.name_prefix} has no parameter {key!r}; parameters: {', '.join(annotations)}")
        kwargs[key] = parse_value(text, annotations[key], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad parameters for {cls.name_prefix}: {e}") from None


def describe(cls: Type[Experiment]) -> list[tuple[str, str]]:
    """(parameter, default) pairs of an experiment, for ``workbench experiment NAME --help``."""
    return [(f.name, repr(f.default)) for f in dataclasses.fields(cls)]
