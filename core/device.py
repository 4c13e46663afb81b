"""Where a run executes: device, precision (autocast), process rank, and the peak FLOP/s that
MFU is measured against.

All placement decisions live here, and all model wrapping (torch.compile, DDP) in `wrap_model`,
so the trainer runs unchanged in one process or under `torchrun` (one process per device, with
RANK / LOCAL_RANK / WORLD_SIZE in the environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.errors import LlmlabError
from core.threads import CpuMeter, choose_threads, explicit_threads

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Placement:
    device: str  # "cpu", "cuda:0", "mps"
    precision: str  # fp32 | bf16 | fp16
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    attempt: int = 0  # torchrun's restarts of the job's processes so far (--max-restarts)

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """A context for forward passes: autocast in bf16/fp16, nothing in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_AUTOCAST_DTYPES[self.precision])


def place(device: str, precision: str) -> Placement:
    """Resolve `train.device` / `train.precision` for this process; LlmlabError if impossible.

    Under torchrun the process joins its job's group first, whatever it finds: a rank that
    cannot run (no CUDA for nccl, no bf16) says so to the others (`as_one`), so every rank
    ends with the same line instead of the others waiting for it in a collective."""
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    problem: LlmlabError | None = None
    try:
        resolved = _resolve_device(device, local_rank)
        _check_precision(precision, resolved)
    except LlmlabError as e:
        problem, resolved = e, "cpu"  # (gloo: joins the group to say so)
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0) or 0)
    placement = Placement(resolved, precision, rank, local_rank, world_size, attempt)
    if world_size > 1 and not torch.distributed.is_initialized():
        import datetime

        backend = "nccl" if resolved.startswith("cuda") else "gloo"
        # Bounded: a rank that died makes the others give up within this, not 30 minutes.
        timeout = datetime.timedelta(seconds=dist_timeout())
        torch.distributed.init_process_group(backend=backend, timeout=timeout)
    with as_one(placement):
        if problem is not None:
            raise problem
    fit_threads()
    return placement


@contextlib.contextmanager
def as_one(placement: Placement) -> Iterator[None]:
    """Run a start-up check on every rank of a job and end them alike: when any rank refuses
    (an LlmlabError, or a bug), every rank raises, the lowest refusing rank's line (rank 0,
    which reports the run, says it: "rank 3: corpus ...: no such file"). Alone, nothing is
    exchanged. Every rank must enter it at the same point (it is a collective)."""
    try:
        yield
    except Exception as e:
        if placement.distributed:
            line = str(e) if isinstance(e, LlmlabError) else f"internal error: " \
                f"{type(e).__name__}: {e}"
            _agree(placement, line.splitlines()[0] if line else type(e).__name__)
        raise
    if placement.distributed:
        _agree(placement, None)


def _agree(placement: Placement, line: str | None) -> None:
    """Exchange each rank's refusal (None: none); raise the first other rank's, if any, here."""
    lines: list[str | None] = [None] * placement.world_size
    torch.distributed.all_gather_object(lines, line)
    first = next(((r, t) for r, t in enumerate(lines) if t is not None), None)
    if first is not None and first[0] != placement.rank:
        raise LlmlabError(f"rank {first[0]}: {first[1]}")


def dist_timeout() -> float:
    """Seconds a collective waits for the other ranks (LLMLAB_DIST_TIMEOUT, default 60)."""
    try:
        return max(5.0, float(os.environ.get("LLMLAB_DIST_TIMEOUT", 60)))
    except ValueError:
        return 60.0


def _resolve_device(device: str, local_rank: int) -> str:
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        device = "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda":
        if not cuda:
            raise LlmlabError("train.device: cuda is not available on this machine "
                              "(use auto or cpu)")
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    if device == "mps" and not mps:
        raise LlmlabError("train.device: mps is not available on this machine (use auto or cpu)")
    return device


def _check_precision(precision: str, device: str) -> None:
    if precision == "fp16" and not device.startswith("cuda"):
        raise LlmlabError(f"train.precision: fp16 needs a CUDA GPU, this run is on {device} "
                          "(use bf16 or fp32)")
    if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise LlmlabError("train.precision: this GPU has no bf16 (use fp16 or fp32)")


def wrap_model(model: torch.nn.Module, placement: Placement, compile: bool) -> torch.nn.Module:
    """The model as training calls it: compiled and/or DistributedDataParallel as asked."""
    if compile:
        model = torch.compile(model)
    if placement.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [placement.local_rank] if placement.device_type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    return model


# --------------------------------------------------------------------------- denormal floats

_flushing = False  # what flush_denormals last set on this thread (torch has no getter)


def flush_denormals(on: bool = True) -> None:
    """Treat denormal floats as 0 on the CPU (on: FTZ/DAZ; off: IEEE), in this thread.

    A run collapsing towards zero weights computes with denormals, which x86 CPUs handle in
    microcode: an LSTM step measured 50x slower (11.2 s instead of 0.22 s). The setting is per
    thread and a thread inherits it when created, so a process that trains calls this at its
    start, before torch's first parallel op creates its thread pool (core.worker, the CLI);
    set later, torch's pool threads keep computing with denormals."""
    global _flushing
    torch.set_flush_denormal(on)
    _flushing = on


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Flush denormals in this thread for the duration (a training in a process that did not
    flush from its start: a test, a script); the previous setting comes back after."""
    before = _flushing
    flush_denormals(True)
    try:
        yield
    finally:
        flush_denormals(before)


# --------------------------------------------------------------------------- CPU threads

_meter: CpuMeter | None = None
# What torch had when this module was loaded, then what fit_threads last gave it: a different
# count found later was set by someone else (a script, a test), and is left alone.
_threads_given = torch.get_num_threads()


def fit_threads() -> int:
    """Give torch one thread per core that other processes leave free now (core.threads).

    The user's choice wins: LLMLAB_THREADS / OMP_NUM_THREADS, or their own
    `torch.set_num_threads` (made after importing core)."""
    global _meter, _threads_given
    current = torch.get_num_threads()
    if current != _threads_given:
        return current
    explicit = explicit_threads()
    if _meter is None:
        _meter = CpuMeter()
    busy = 0.0 if explicit is not None else _meter.busy_elsewhere()
    threads = choose_threads(len(_meter.cpus), busy, explicit)
    if threads != current:
        torch.set_num_threads(threads)
    _threads_given = threads
    return threads


# --------------------------------------------------------------------------- peak FLOP/s

# Dense peak (tensor cores, no sparsity) in FLOP/s for GPUs people train on.
_GPU_PEAKS = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
    "L4": {"bf16": 121e12, "fp16": 121e12, "fp32": 30e12},
    "4090": {"bf16": 165e12, "fp16": 165e12, "fp32": 82e12},
}


def peak_flops(placement: Placement) -> float:
    """The FLOP/s that 100% MFU means here: a table for known GPUs; on a CPU (or an unknown
    GPU) the speed of a large matmul, the best ever measured on this machine (cached)."""
    if placement.device_type == "cuda":
        name = torch.cuda.get_device_name(placement.local_rank)
        for key, peaks in _GPU_PEAKS.items():
            if key in name:
                return peaks[placement.precision]
    return _measured_peak(placement)


def observe_flops(placement: Placement, achieved: float, peak: float) -> float:
    """The peak to divide by from now on, given that a run just achieved `achieved` FLOP/s.

    A measured peak can only be too low (a matmul timed while other work ran). When a run goes
    faster than it, the matmul is timed again (the machine is evidently less busy now), and the
    better of that and the run's own speed is the new peak, cached for later runs too."""
    if achieved <= peak:
        return peak
    key = _peak_key(placement)
    if key not in _peak_cache:  # a GPU's datasheet figure: nothing to re-measure
        return achieved
    remeasured = matmul_flops(1024, _time_matmul(placement, 1024))
    _store_peak(key, max(achieved, remeasured))
    return _peak_cache[key]


def mfu(achieved: float, peak: float) -> float:
    """Model FLOP utilisation: `achieved` over `peak` FLOP/s, never above 1 (100 %)."""
    return min(1.0, achieved / peak) if peak > 0 else 0.0


def matmul_flops(n: int, seconds: list[float]) -> float:
    """FLOP/s of an n x n matmul from several timings of it: the fastest counts, since other
    work on the machine only ever makes a run slower than the hardware can go."""
    return 2 * n**3 / min(seconds)


_peak_cache: dict[str, float] = {}


def _peak_key(placement: Placement) -> str:
    """The machine, device, precision and torch; not the thread count: 100 % means what the
    whole machine can do, whatever share of it a run gets (core.threads)."""
    return f"{platform.processor() or platform.machine()}|{placement.device}|" \
           f"{placement.precision}|{torch.__version__}"


def _measured_peak(placement: Placement) -> float:
    """Measured once per process (best of several timings); the highest figure any process
    measured or observed (`observe_flops`) is kept on disk and never lowered."""
    key = _peak_key(placement)
    if key not in _peak_cache:
        _store_peak(key, matmul_flops(1024, _time_matmul(placement, 1024)))
    return _peak_cache[key]


def _store_peak(key: str, flops: float) -> None:
    """Cache max(`flops`, the figure on disk) for `key`, in this process and on disk."""
    from core.dataset import cache_root
    from core.fileio import atomic_write_text

    path = cache_root() / "peak_flops.json"
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    if not isinstance(table, dict):
        table = {}
    try:
        known = float(table.get(key, 0.0))
    except (TypeError, ValueError):
        known = 0.0
    table[key] = max(flops, known, _peak_cache.get(key, 0.0))
    _peak_cache[key] = table[key]
    try:
        atomic_write_text(path, json.dumps(table, indent=1))
    except OSError:
        pass  # a read-only cache only costs the best-of-history figure


def _time_matmul(placement: Placement, n: int = 1024, reps: int = 8) -> list[float]:
    """Seconds taken by each of `reps` n x n matmuls (after a warm-up)."""
    dtype = torch.float32 if placement.precision == "fp32" else _AUTOCAST_DTYPES[
        placement.precision]
    local = torch.Generator().manual_seed(0)  # leave the global RNG (the run's seed) alone
    a = torch.randn(n, n, generator=local).to(placement.device, dtype)
    b = torch.randn(n, n, generator=local).to(placement.device, dtype)
    a @ b  # warm up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        if placement.device_type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times
