"""How many CPU threads torch should use on a machine it shares.

An SSH lab runs on a shared machine: other users' jobs, the app's own drawing, a second
training. torch starts as many threads as there are cores; with one other busy process on 2
cores, every parallel op then waits for a thread the kernel has descheduled, and a training ran
45x slower (31,000 -> 680 tokens/s). So torch gets the cores of our CPU affinity that other
processes leave free (`choose_threads`), measured from /proc/stat minus our own CPU time
(`CpuMeter`), and re-measured while a run goes, as other work comes and goes.

OpenMP's wait policy is left as the user (or OpenMP) has it. Measured on 2 cores with the
baby GPT (`bench/train.py --contention`), fitted threads: alone 27,500 tokens/s with OpenMP's
default, 16,600 with OMP_WAIT_POLICY=PASSIVE; beside a busy process 15,700 and 15,800. A
sleeping pool costs 40 % alone and buys nothing once the thread count fits the free cores.

A user who sets OMP_NUM_THREADS (or LLMLAB_THREADS) chooses; this module then stays out.
Torch-free on purpose: the CLI imports it before torch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

_THREAD_VARS = ("LLMLAB_THREADS", "OMP_NUM_THREADS")
THREADS_EVERY = 10.0  # seconds between fittings of torch's threads to the free cores


def explicit_threads(env: Mapping[str, str] = os.environ) -> int | None:
    """The thread count the user asked for (LLMLAB_THREADS, else OMP_NUM_THREADS), if any."""
    for name in _THREAD_VARS:
        value = env.get(name, "").strip().split(",")[0]  # OMP allows a list per nesting level
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def choose_threads(affinity: int, busy_elsewhere: float, explicit: int | None) -> int:
    """Threads for torch: the user's number if given, else the cores we may run on (affinity)
    less the cores other processes keep busy, rounded to the nearest, at least 1."""
    if explicit is not None:
        return max(1, explicit)
    free = affinity - max(0.0, busy_elsewhere)
    return max(1, min(affinity, int(free + 0.5)))


def affinity_cpus() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_jiffies(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) clock ticks since boot, summed over `cpus`, from /proc/stat (Linux)."""
    busy = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                if int(name[3:]) not in cpus:
                    continue
                ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq ...
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


class CpuMeter:
    """How many of our CPUs other processes kept busy since the last reading: all the busy
    time on those CPUs, less this process's own CPU time (so a running training does not count
    itself as load)."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = cpus if cpus is not None else affinity_cpus()
        self._last = self._reading()

    def _reading(self) -> tuple[float, float, tuple[int, int] | None]:
        return time.monotonic(), time.process_time(), _cpu_jiffies(self.cpus)

    def busy_elsewhere(self, min_window: float = 0.1) -> float:
        """Cores' worth of other processes' work since the last call (waits until at least
        `min_window` seconds have passed, for a reading worth having)."""
        wait = self._last[0] + min_window - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        (t0, own0, jiffies0), now = self._last, self._reading()
        self._last = now
        t1, own1, jiffies1 = now
        own = (own1 - own0) / max(t1 - t0, 1e-9)  # cores' worth of our own work
        if jiffies0 is None or jiffies1 is None or jiffies1[1] <= jiffies0[1]:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
            return max(0.0, load - own)
        busy = (jiffies1[0] - jiffies0[0]) / (jiffies1[1] - jiffies0[1]) * len(self.cpus)
        return max(0.0, busy - own)


def bound_tokenizer_threads(env: dict[str, str] | os._Environ = os.environ) -> None:
    """Bound Hugging Face tokenizers' thread pool (rayon) before its first parallel call:
    rayon starts one thread per CPU of the machine, not per CPU we may run on, and its pool
    cannot be resized later. It gets the user's count (LLMLAB_THREADS / OMP_NUM_THREADS) or
    our CPU affinity; a RAYON_NUM_THREADS the user set stays. (Unlike OpenMP's, rayon's
    threads steal work, so a core busy elsewhere slows it by that core's share, not more:
    no fitting to the load is needed.)"""
    if "RAYON_NUM_THREADS" not in env:
        env["RAYON_NUM_THREADS"] = str(explicit_threads(env) or len(affinity_cpus()))
