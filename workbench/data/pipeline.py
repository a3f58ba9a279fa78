"""A batched image pipeline for ImageNet-scale runs: DataLoader batches, memory-bounded chunks,
progress with items/s and ETA.

* ``image_batches(source, batch_size=...)``: a torch ``DataLoader`` over an image source
  (``workbench.data.sources.image_source``: an ImageFolder directory at scale) with worker processes and,
  when the device is CUDA, pinned memory and non-blocking copies; yields (keys, images on device).
* ``chunk_rows(model, sample, budget)``: how many rows (images, or path points of IG) one
  forward + backward pass may hold so that activations stay within a memory budget. The
  activation size per row is MEASURED on one probe forward pass (the sum of every leaf module's
  output bytes: what autograd keeps for the backward pass), doubled for the gradients of the
  backward pass; the memory in use (the process's resident set on CPU, allocated memory on
  CUDA) is taken off the budget first, and a pass's activations get half of the rest.
* ``with_chunk(method, rows)``: the method rebuilt with ``chunk_size=rows`` where its constructor
  takes one (gradient, input x gradient, integrated gradients, smooth FullGrad, I-GOS; a
  SmoothGrad's base method), unchanged otherwise -- rows are independent, so values are the same.
* ``item_batches(source, groups)``: the images of each experiment item, read ahead by DataLoader
  workers (what ``workbench.runner.experiment.run`` feeds an image experiment's items from).
* ``Progress``: "12/100 items, 3.1 items/s, ETA 28s" lines.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import time
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from workbench.core.errors import InputError
from workbench.methods.base import Method
from workbench.core.modelguard import preserved

_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
#: backward pass memory relative to the forward activations it keeps (one gradient per activation)
BACKWARD_FACTOR = 2.0
#: the part of the budget left after the parameters that a pass's activations may take
ACTIVATION_SHARE = 0.5


def parse_memory(text: Union[str, int, float]) -> int:
    """Bytes from ``"2GB"``, ``"512MiB"``, ``"1.5G"`` or a number of bytes (decimal units: GB = 1e9)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if not m or m.group(2).upper() not in _UNITS:
            raise InputError(f"cannot read the memory size {text!r}: use e.g. 2GB, 512MiB or a number of bytes")
        value, unit = float(m.group(1)), m.group(2).upper()
    out = int(value * _UNITS[unit])
    if out <= 0:
        raise InputError(f"a memory budget must be positive, got {text!r}")
    return out


def activation_bytes(model: nn.Module, sample: Tensor) -> int:
    """Bytes of every leaf module's output for ONE row of `sample`, measured on a probe forward
    pass (no gradients; hooks removed after, the model is left as it was)."""
    if sample.dim() < 2 or sample.shape[0] < 1:
        raise InputError("the probe sample must be a batch (N, ...) with N >= 1")
    x = sample[:1].detach()
    total = [0]

    def hook(_m, _inp, out) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                total[0] += t.numel() * t.element_size()

    with preserved(model, freeze_parameters=True):
        for m in model.modules():
            if not list(m.children()):
                m.register_forward_hook(hook)
        with torch.no_grad():
            model(x)
    return total[0] + x.numel() * x.element_size()


def parameter_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def memory_in_use(device: Union[str, torch.device]) -> Optional[int]:
    """Bytes in use now: the process's resident memory for the CPU (Linux ``/proc``), the
    allocator's for CUDA; None where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def chunk_rows(model: nn.Module, sample: Tensor, budget: Union[str, int], *, backward: bool = True, share: float = ACTIVATION_SHARE) -> int:
    """Rows per pass so that rows * activations * factor fits `share` of what the budget leaves
    after the memory in use now (``memory_in_use``: the interpreter, the loaded model; where it
    cannot be read, the model's parameters and buffers).

    factor = ``BACKWARD_FACTOR`` for a gradient pass, 1 for a forward pass without gradients
    (which keeps far less; 1 is a safe upper bound). The rest of the budget is left to the rows'
    own tensors (a method's path points, perturbed copies) and the interpreter. Refuses when not
    even one row fits.
    """
    limit = parse_memory(budget)
    if not 0 < share <= 1:
        raise InputError(f"share must be in (0, 1], got {share}")
    per_row = activation_bytes(model, sample) * (BACKWARD_FACTOR if backward else 1.0)
    in_use = memory_in_use(sample.device)
    used = parameter_bytes(model) if in_use is None else in_use
    free = (limit - used) * share
    rows = int(free // per_row) if free > 0 else 0
    if rows < 1:
        raise InputError(
            f"a memory budget of {limit / 1e9:.2f} GB does not hold what is in use ({used / 1e9:.2f} GB, the model "
            f"{parameter_bytes(model) / 1e9:.2f} GB) and one row of activations ({per_row / 1e9:.3f} GB); "
            "raise --memory-budget or lower the image size"
        )
    return rows


def with_chunk(method: Method, rows: int) -> Method:
    """`method` rebuilt to evaluate at most `rows` rows per pass (same values), where it can."""
    from workbench.methods import method as build

    params = inspect.signature(type(method).__init__).parameters
    options = method.options
    if "chunk_size" in params:
        options["chunk_size"] = int(rows)
    base = getattr(method, "base", None)
    if "base" in params and isinstance(base, Method):
        options["base"] = with_chunk(base, rows)
    if options == method.options:
        return method
    return build(method.name, **options)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, source, keys: Sequence[str]) -> None:
        self.source, self.keys = source, list(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        item = self.source[self.keys[i]]
        return i, item.image


def _collate(rows):
    return [r[0] for r in rows], torch.stack([r[1] for r in rows])


def default_workers() -> int:
    """Worker processes for image decoding: the cores beyond the main process, at most 8; under
    torchrun the cores of a node are shared by its ``LOCAL_WORLD_SIZE`` ranks."""
    try:
        ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        ranks = 1
    return max(0, min(8, (os.cpu_count() or 1) // ranks - 1))


class _Groups(torch.utils.data.Dataset):
    def __init__(self, source, groups: Sequence[Sequence[str]]) -> None:
        self.source, self.groups = source, [list(g) for g in groups]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> Tensor:
        return torch.stack([self.source[k].image for k in self.groups[i]])


def item_batches(
    source,
    groups: Sequence[Sequence[str]],
    *,
    workers: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[Tensor]:
    """The images of each group of keys (one group per experiment item, in order) as one
    (len(group), C, H, W) tensor on `device`: decoded ahead by `workers` DataLoader processes
    (default ``default_workers()``) while the main process computes, pinned and copied without
    blocking on CUDA. An item's tensor is the same whatever the other items are."""
    device = torch.device(device)
    n_workers = default_workers() if workers is None else int(workers)
    loader = torch.utils.data.DataLoader(_Groups(source, groups), batch_size=None, shuffle=False, num_workers=n_workers,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    for images in loader:
        yield images.to(device=device, dtype=dtype, non_blocking=device.type == "cuda")


def image_batches(
    source,
    *,
    keys: Optional[Sequence[str]] = None,
    batch_size: int = 32,
    workers: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[list, Tensor]]:
    """(keys, images) batches of `source` (an ``ImageSource``) in order, decoded by `workers`
    DataLoader processes (default ``default_workers()``), pinned and copied without blocking on CUDA."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    keys = list(source.keys() if keys is None else keys)
    device = torch.device(device)
    n_workers = default_workers() if workers is None else int(workers)
    loader = torch.utils.data.DataLoader(
        _Rows(source, keys), batch_size=batch_size, shuffle=False, num_workers=n_workers,
        pin_memory=device.type == "cuda", collate_fn=_collate, persistent_workers=False,
    )
    for index, images in loader:
        yield [keys[i] for i in index], images.to(device=device, dtype=dtype, non_blocking=device.type == "cuda")


def load_images(source, device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32, *, batch_size: int = 64) -> Tensor:
    """Every image of `source` as one (N, C, H, W) tensor, read through ``image_batches`` (for the
    experiments whose items share one small, fixed set of images)."""
    return torch.cat([x for _, x in image_batches(source, batch_size=batch_size, device=device, dtype=dtype)])


class Progress:
    """Counts finished items and reports items/s and the ETA through `say` (every `every` seconds
    at most, and at the end)."""

    def __init__(self, total: int, label: str = "", say: Optional[Callable[[str], None]] = None, every: float = 2.0) -> None:
        self.total, self.label, self.every = int(total), label, every
        self.say = say
        self.done = 0
        self.start = time.monotonic()
        self._last = -math.inf

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        r = self.rate()
        left = self.total - self.done
        eta = f"{_duration(left / r)}" if r > 0 else "?"
        head = f"{self.label}: " if self.label else ""
        return f"{head}{self.done}/{self.total} items, {r:.3g} items/s, ETA {eta}"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.say is not None and (now - self._last >= self.every or self.done >= self.total):
            self._last = now
            self.say(self.line())


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
