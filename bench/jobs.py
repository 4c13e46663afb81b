"""Trainings as jobs, followed by the app (issue 12): how fast and how cheap following is.

    python bench/jobs.py [--only latency,attach,keys,speed] [--latency-steps 400]
                         [--records 1000000] [--attaches 3] [--presses 60] [--pairs 3]
                         [--speed-steps 400] [--layers 4] [--embd 128]

Every training here is a real job (core.launch.launch_training, or `llmlab train --detach`:
its own process, as the app starts one) and the app follows its run folder (tui.job_client):

1. latency: step logged to plot. A small GPT (2x64, logging every step) trains
   `--latency-steps` steps as a job; the app runs in this process under Textual's Pilot
   (80x24), attached to it (`LlmlabApp(attach=RUN)`, what `llmlab attach RUN` opens). For each
   step logged after the app's first plot, the delay from the record's own "time" field in
   metrics.jsonl until the frame after the Train pane's loss plot was given data ending at
   that step or later. p50 / p95 / max. (Goal < 0.5 s.)
2. attach: a tiny run is trained for 30 steps, then its metrics.jsonl gets `--records` more
   train records (as RunWriter writes them) with an eval and a sample every 100 steps.
   Timed: `RunFollower.attach()` alone (median of `--attaches`; its peak Python allocations
   by tracemalloc in a separate run); then, with run.json saying it runs (its job on another
   machine, a fresh heartbeat) and again saying finished (which also has the Runs pane list
   the runs and preview its curves): the app in this process from `LlmlabApp(attach=RUN)` to
   the first frame whose loss plot ends at the last step, and `llmlab attach RUN` as a user
   starts it in an 80x24 pty, from the process start until the screen shows the last step's
   progress line and a plot drawn after it, with the process's peak RSS (VmHWM), against
   the same command on the 30-step run (the baseline, launches alternated). (Goal < 2 s.)
3. keys: a GPT of `--layers` x `--embd` (busy enough to keep every core working) trains as a
   job started by `llmlab train --detach`; `llmlab attach RUN` in an 80x24 pty follows it, and
   `l` is pressed `--presses` times as bench/ui.py does (key to "log on/off" shown, and to
   the plots redrawn). p50 / p95 / max. (Goal p95 < 50 ms.)
4. speed: the same GPT trains `--speed-steps` steps as a job `--pairs` times headless alone
   and `--pairs` times with `llmlab attach RUN` watching it in a pty, alternated. Median
   tokens/s of each job over the steps after the slowest app had its first frame; the ratio
   of the medians. (Goal >= 97 %.)
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module: take this folder off
# the import path, and import bench/ui.py's helpers as bench.ui.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import tracemalloc

from bench.ui import REPO, Terminal, _metrics, alive, percentile, press_toggles

PLOT_AXIS = "┤"


def write_job_session(folder: Path, name: str, layers: int, embd: int, steps: int,
                      log_interval: int, batch: int = 16) -> Path:
    from core.session import Session, save_session

    s = Session(name=name)
    s.data.corpus = "sample:synthetic"
    s.model.n_layer, s.model.n_head, s.model.n_embd, s.model.context = layers, 4, embd, 64
    s.optim.warmup_steps = 10
    s.train.batch_size = batch
    s.train.max_steps = steps
    s.train.eval_interval = 100
    s.train.eval_iters = 5
    s.train.log_interval = log_interval
    s.train.checkpoint_interval = 0
    s.train.runs_dir = str(folder / "runs")
    return save_session(s, folder / f"{name}.toml")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def spread(values: list[float]) -> str:
    return (f"p50 {ms(statistics.median(values))}, p95 {ms(percentile(values, 0.95))}, "
            f"max {ms(max(values))} over {len(values)}")


# --------------------------------------------------------------------------- 1. latency


async def follow_job(session_path: Path, steps: int) -> tuple[Path, list[tuple[float, float]]]:
    """Launch a job, follow it in the app until it ended: its run folder, and (time, last
    step) of every frame drawn after the loss plot got new data."""
    from core.launch import launch_training
    from core.session import load_session
    from tui.app import LlmlabApp
    from tui.widgets.metric_plot import MetricPlot

    session = load_session(session_path)
    job = launch_training(session)
    frames: list[tuple[float, float]] = []
    try:
        app = LlmlabApp(session, session_path, attach=job.run_dir)
        async with app.run_test(size=(80, 24)):
            plot = app.query_one("#plot-loss", MetricPlot)
            show = plot.show

            def shown(data) -> None:
                show(data)
                train = data.series[0].steps if data.series else []
                if train:
                    last = train[-1]
                    plot.call_after_refresh(lambda: frames.append((time.time(), last)))

            plot.show = shown  # type: ignore[method-assign]
            deadline = time.monotonic() + 60 + steps
            while not (frames and frames[-1][1] >= steps):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the plot never showed step {steps}")
                await asyncio.sleep(0.05)  # (not pilot.pause: it forces a screen update)
            await app.action_quit()
    finally:
        job.process.wait(60)
    return job.run_dir, frames


def plot_latency(folder: Path, args: argparse.Namespace) -> None:
    session = write_job_session(folder, "latency", 2, 64, args.latency_steps, 1, batch=8)
    run_dir, frames = asyncio.run(follow_job(session, args.latency_steps))
    records = [r for r in _metrics(run_dir) if r.get("type") == "train"]
    first_frame = frames[0][0]
    delays = []
    for r in records:
        if r["time"] <= first_frame:
            continue  # (logged before the app was up: read at its attach)
        drawn = next((t for t, last in frames if last >= r["step"]), None)
        if drawn is not None:
            delays.append(drawn - r["time"])
    span = records[-1]["time"] - records[0]["time"]
    print(f"step logged to plot while attached to a job (2x64 GPT, every step logged, "
          f"{len(records) / span:.0f} steps/s): {spread(delays)} steps "
          f"[python bench/jobs.py --only latency --latency-steps {args.latency_steps}]")


# --------------------------------------------------------------------------- 2. attach


def million_run(folder: Path, env: dict[str, str], records: int) -> tuple[Path, Path, int]:
    """(a 30-step tiny run, a copy of it with `records` more train records, its last step)."""
    session = write_job_session(folder, "tiny", 2, 32, 30, 1, batch=8)
    subprocess.run([sys.executable, "-m", "llmlab", "train", str(session), "--set",
                    "optim.warmup_steps=5", "--set", "train.eval_interval=10"],
                   env=env, cwd=folder, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    (small,) = (folder / "runs" / "tiny").iterdir()
    big = small.with_name(small.name + "-1m")
    shutil.copytree(small, big)
    rng = random.Random(0)
    last = [r for r in _metrics(small) if r.get("type") == "train"][-1]
    step, t, tokens = last["step"], last["time"], last["tokens"]
    with open(big / "metrics.jsonl", "a") as f:
        lines = []
        for _ in range(records):
            step, t, tokens = step + 1, t + 0.02, tokens + 256
            loss = 1.2 + 1.6 * math.exp(-step / 200_000) + rng.gauss(0, 0.05)
            lines.append(json.dumps({
                "type": "train", "step": step, "tokens": tokens, "loss": loss,
                "lr": 1e-3 * (0.1 + 0.9 * (1 - step / (records + 30))),
                "grad_norm": abs(rng.gauss(0.6, 0.2)), "tokens_per_s": rng.gauss(20000, 800),
                "mfu": rng.gauss(0.01, 0.001), "elapsed": t - last["time"], "time": t}))
            if step % 100 == 0:
                val = loss + 0.05
                lines.append(json.dumps({
                    "type": "eval", "step": step, "tokens": tokens, "split": "val",
                    "val_loss": val, "val_ppl": math.exp(val), "val_top1": 0.6,
                    "val_top5": 0.9, "elapsed": t - last["time"], "time": t}))
                lines.append(json.dumps({"type": "sample", "step": step, "prompt": "ejojnmjl",
                                         "text": "feggfhmjno\nffimblobfnnbkckmegfel",
                                         "time": t}))
            if len(lines) >= 100_000:
                f.write("\n".join(lines) + "\n")
                lines = []
        f.write("\n".join(lines) + "\n" if lines else "")
    info = json.loads((big / "run.json").read_text())
    info.update(step=step, max_steps=step, status="finished")
    (big / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return small, big, step


def mark(run_dir: Path, live: bool) -> None:
    """run.json and heartbeat.json as a job writing `run_dir` from another machine (a shared
    filesystem) has them while it trains (`live`), or as a finished run has them."""
    info = json.loads((run_dir / "run.json").read_text())
    if live:
        info.update(status="running", host="another-machine")
        beat = {"time": time.time(), "pid": 1, "host": "another-machine", "state": "running",
                "step": info["step"], "every": 600.0}  # (fresh for half an hour)
        (run_dir / "heartbeat.json").write_text(json.dumps(beat) + "\n")
    else:
        info.update(status="finished", host=os.uname().nodename)
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")


async def app_attach(run_dir: Path, last_step: int) -> float:
    """Seconds from making the app attached to `run_dir` to the first frame whose loss plot
    ends at `last_step`."""
    from core.runs import restart_session
    from tui.app import LlmlabApp
    from tui.widgets.metric_plot import MetricPlot

    t0 = time.perf_counter()
    app = LlmlabApp(restart_session(run_dir), None, attach=run_dir)
    drawn: list[float] = []
    async with app.run_test(size=(80, 24)):
        plot = app.query_one("#plot-loss", MetricPlot)
        show = plot.show

        def shown(data) -> None:
            show(data)
            train = data.series[0].steps if data.series else []
            if train and train[-1] >= last_step:
                plot.call_after_refresh(lambda: drawn.append(time.perf_counter()))

        plot.show = shown  # type: ignore[method-assign]
        deadline = time.monotonic() + 120
        while not drawn:
            if time.monotonic() > deadline:
                raise TimeoutError("the plot never showed the last step")
            await asyncio.sleep(0.01)  # (not pilot.pause: it forces a screen update)
        await app.action_quit()
    return drawn[0] - t0


def cli_attach(run_dir: Path, last_step: int, env: dict[str, str]) -> tuple[float, float]:
    """`llmlab attach RUN` in a pty: (seconds from the process start until the screen shows
    the last step's progress line and a plot drawn after it, peak RSS in MB)."""
    term = Terminal([sys.executable, "-m", "llmlab", "attach", str(run_dir)], env,
                    run_dir.parent)
    progress = f"{last_step}/{last_step}"
    term.wait_for([progress], 120)
    shown = term.wait_for([PLOT_AXIS], 30, since=term.text.index(progress))
    term.drain(1.0)
    rss = peak_rss(term.proc.pid)
    quit_app(term)
    return shown - term.started, rss


def peak_rss(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MB. (Not wait4's ru_maxrss: a
    forked child starts from its parent's peak.)"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def attach_million(folder: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    from core.follow import RunFollower

    t0 = time.perf_counter()
    small, big, last = million_run(folder, env, args.records)
    size = (big / "metrics.jsonl").stat().st_size
    print(f"synthetic run: {args.records:,} train records + an eval and a sample every 100 "
          f"steps, metrics.jsonl {size / 1e6:.0f} MB, written in "
          f"{time.perf_counter() - t0:.0f} s")
    times = []
    for _ in range(args.attaches):
        t = time.perf_counter()
        attached = RunFollower(big).attach()
        times.append(time.perf_counter() - t)
    assert attached is not None
    kept = sum(1 for r in attached.records if r.get("type") == "train")
    tracemalloc.start()
    RunFollower(big).attach()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"RunFollower.attach() alone: median {ms(statistics.median(times))}, best "
          f"{ms(min(times))} of {len(times)}; {kept:,} of {attached.train_records:,} train "
          f"records kept, last step {attached.last_step():,}; peak Python allocations "
          f"{peak / 1e6:.0f} MB (tracemalloc)")
    for live in (True, False):
        mark(big, live)
        status = ("running (its job on another machine, fresh heartbeat)" if live
                  else "finished")
        in_app = [asyncio.run(app_attach(big, last)) for _ in range(args.attaches)]
        print(f"{status}: app in this process (Pilot 80x24), LlmlabApp(attach=RUN) to the "
              f"first frame whose plot ends at step {last:,}: median "
              f"{ms(statistics.median(in_app))}, best {ms(min(in_app))} of {len(in_app)}")
        base_t, base_rss, big_t, big_rss = [], [], [], []
        for _ in range(args.attaches):
            t, rss = cli_attach(small, 30, env)
            base_t.append(t)
            base_rss.append(rss)
            t, rss = cli_attach(big, last, env)
            big_t.append(t)
            big_rss.append(rss)
        print(f"{status}: `llmlab attach RUN` in an 80x24 pty, process start to the last "
              f"step's progress line and plot: median {ms(statistics.median(big_t))} (best "
              f"{ms(min(big_t))}); the 30-step run {ms(statistics.median(base_t))} (best "
              f"{ms(min(base_t))}); peak RSS {statistics.median(big_rss):.0f} MB vs "
              f"{statistics.median(base_rss):.0f} MB "
              f"[python bench/jobs.py --only attach --records {args.records} "
              f"--attaches {args.attaches}]")


# --------------------------------------------------------------------------- 3 and 4. jobs


def detach(session: Path, env: dict[str, str], *overrides: str) -> tuple[Path, int]:
    """`llmlab train SESSION --detach`: (the run folder, the job's pid)."""
    sets = [a for o in overrides for a in ("--set", o)]
    out = subprocess.run([sys.executable, "-m", "llmlab", "train", str(session), "--detach",
                          *sets], env=env, cwd=session.parent, check=True,
                         capture_output=True, text=True).stdout
    found = re.search(r"pid (\d+), run folder (.+)", out)
    if found is None:
        raise RuntimeError(f"llmlab train --detach said: {out!r}")
    return Path(found.group(2).strip()), int(found.group(1))


def train_records(run_dir: Path) -> list[dict]:
    try:
        return [r for r in _metrics(run_dir) if r.get("type") == "train"]
    except OSError:
        return []


def until(condition, timeout: float, what: str, term: Terminal | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s")
        if term is not None:
            term.read(0.1)
        else:
            time.sleep(0.1)


def stop_job(run_dir: Path, pid: int, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "llmlab", "ctl", str(run_dir), "stop"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    try:
        until(lambda: not alive(pid), 60, "end of the job")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def quit_app(term: Terminal) -> None:
    """ctrl+q (the app started no job: it quits at once, the job trains on)."""
    term.send("\x11")
    try:
        until(lambda: term.proc.poll() is not None, 60, "the app's exit", term)
    except TimeoutError:
        os.killpg(term.proc.pid, signal.SIGKILL)
    term.close()


def attached_keys(folder: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    session = write_job_session(folder, "keys", args.layers, args.embd, 1_000_000, 5)
    run_dir, pid = detach(session, env)
    try:
        until(lambda: len(train_records(run_dir)) >= 3, 180, "training steps")
        term = Terminal([sys.executable, "-m", "llmlab", "attach", str(run_dir)], env, folder)
        term.wait_for(["running", "tok/s"], 60)
        term.drain(3.0)
        latencies, plotted = press_toggles(term, args.presses)
        quit_app(term)
        speed = statistics.median(r["tokens_per_s"] for r in train_records(run_dir)[-20:])
    finally:
        stop_job(run_dir, pid, env)
    print(f"key to screen while attached to a running job ({args.layers}x{args.embd} GPT, "
          f"{speed:,.0f} tokens/s): {spread(latencies)} presses; plots redrawn: "
          f"p50 {ms(statistics.median(plotted))}, p95 {ms(percentile(plotted, 0.95))} "
          f"[python bench/jobs.py --only keys --presses {args.presses} --layers {args.layers} "
          f"--embd {args.embd}]")


def one_job(session: Path, env: dict[str, str], steps: int, watched: bool
            ) -> tuple[Path, int, float]:
    """Train `steps` steps as a job, with `llmlab attach` watching it or not: (the run
    folder, the step the job was at when the app's first frame was up (0 headless), the
    share of one core the app used from then until the job ended)."""
    run_dir, pid = detach(session, env, f"train.max_steps={steps}")
    ready, cpu = 0, 0.0
    try:
        if watched:
            until(lambda: (run_dir / "run.json").exists(), 120, "run.json")
            term = Terminal([sys.executable, "-m", "llmlab", "attach", str(run_dir)], env,
                            session.parent)
            term.wait_for([PLOT_AXIS, "tok/s"], 120)
            records = train_records(run_dir)
            ready = records[-1]["step"] if records else 0
            t0, cpu0 = time.monotonic(), cpu_seconds(term.proc.pid)
            until(lambda: not alive(pid), 60 + steps, "end of the job", term)
            cpu = (cpu_seconds(term.proc.pid) - cpu0) / (time.monotonic() - t0)
            quit_app(term)
        else:
            until(lambda: not alive(pid), 120 + steps, "end of the job")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    return run_dir, ready, cpu


def watched_speed(folder: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    session = write_job_session(folder, "speed", args.layers, args.embd, args.speed_steps, 5)
    runs: list[tuple[bool, Path]] = []
    ready, cpu = 0, []
    for pair in range(args.pairs):
        for watched in ((False, True) if pair % 2 == 0 else (True, False)):
            run_dir, at, used = one_job(session, env, args.speed_steps, watched)
            runs.append((watched, run_dir))
            ready = max(ready, at)
            if watched:
                cpu.append(used)
    skip = max(ready, 20)  # (and past the warmup)

    def median_speed(run_dir: Path) -> float:
        return statistics.median(r["tokens_per_s"] for r in train_records(run_dir)
                                 if r["step"] > skip)

    alone = [median_speed(r) for w, r in runs if not w]
    watched = [median_speed(r) for w, r in runs if w]
    pairs = [w / a for w, a in zip(watched, alone, strict=True)]  # (each pair ran back to back)
    print(f"training as a job ({args.layers}x{args.embd} GPT, {args.speed_steps} steps, "
          f"tokens/s after step {skip}, {args.pairs} alternated pairs): headless alone "
          f"median {statistics.median(alone):,.0f} ({', '.join(f'{x:,.0f}' for x in alone)}); "
          f"watched by `llmlab attach` {statistics.median(watched):,.0f} "
          f"({', '.join(f'{x:,.0f}' for x in watched)}); watched / alone "
          f"{statistics.median(watched) / statistics.median(alone):.1%} (per pair: "
          f"{', '.join(f'{x:.0%}' for x in pairs)}, median {statistics.median(pairs):.1%}); "
          f"the app used "
          f"{statistics.median(cpu):.0%} of one core meanwhile "
          f"[python bench/jobs.py --only speed --pairs {args.pairs} --speed-steps "
          f"{args.speed_steps} --layers {args.layers} --embd {args.embd}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="latency,attach,keys,speed",
                        help="comma-separated: latency, attach, keys, speed")
    parser.add_argument("--latency-steps", type=int, default=400)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--attaches", type=int, default=3)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--speed-steps", type=int, default=400)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--embd", type=int, default=128)
    args = parser.parse_args()
    only = set(args.only.split(","))

    with tempfile.TemporaryDirectory(prefix="llmlab-bench-jobs-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24",
               "LLMLAB_CONFIG_DIR": str(folder / "config"),
               "LLMLAB_CACHE_DIR": str(folder / "cache"),
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("COLORTERM", None)
        os.environ.update({k: env[k] for k in ("LLMLAB_CONFIG_DIR", "LLMLAB_CACHE_DIR",
                                               "PYTHONPATH")})
        print(f"machine: {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if "latency" in only:
            plot_latency(folder, args)
        if "attach" in only:
            attach_million(folder, env, args)
        if "keys" in only:
            attached_keys(folder, env, args)
        if "speed" in only:
            watched_speed(folder, env, args)
        print(f"peak RSS of this process: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
