"""How fast the screen is: launch to first frame, and key-to-screen latency while training.

    python bench/ui.py [--launches 5] [--presses 60] [--layers 4] [--embd 128]

Everything runs the real `llmlab` command in a pseudo-terminal of 80x24 (TERM=xterm-256color),
as a user's terminal would, and reads what the app writes to it:

1. First frame: from starting the process (`python -m llmlab SESSION`) until the terminal has
   received a complete first screen (title line, footer). Interpreter start and imports are
   included. Median and best of `--launches` fresh processes. Afterwards the UI process's
   memory map is checked for libtorch: the UI must never load torch (the engine does, in its
   own process).
2. Key latency under load: the app starts a training run (`s`) on `sample:synthetic` with a GPT
   big enough to keep every core busy; once it runs, `l` (log-scale toggle of the plots, which
   redraws the hparam line and the plots) is pressed `--presses` times at irregular intervals,
   and the time from writing the key to the terminal until the screen shows the new state
   ("log on" / "log off") is measured; p50, p95 and max are printed, with the training speed
   from the run's metrics.jsonl over the same time. The app shows the new setting first and
   redraws the plots in the following frame, so the time until the plots are redrawn (the
   first plot axis written after the key) is printed too.
3. The same training headless (`llmlab train`, no UI), for the tokens/s the UI may cost.
4. The Prune slider (`--moves`, 0 skips 4 and 5): a baby GPT (nanoGPT's shakespeare_char
   "baby" config, 4x128, context 64) is trained headless for `--baby-steps` steps on
   tinyshakespeare (../shared/data, or the shipped tiny-tales sample without it); the app is
   then driven in-process by Textual's Pilot at 80x24 with the real engine process: p opens
   the Prune pane (which loads the run and sweeps), and each of `--moves` slider moves (right,
   5% a step, then back) is timed from the key press until the table has been redrawn with
   the new candidate's loss (the engine prunes a copy and evaluates it on the fixed val
   sample). p50 / p95 / max.
5. Generation: the real app in the pty again, on the same run: g opens the Generate pane,
   n generates `--tokens` tokens (prompt "ROMEO:", temperature 0.8), three times per launch;
   the tokens/s the pane shows (the engine's figure) against the same generations made headless
   by `core.generate` in a fresh process on the same checkpoint (bench/generate.py's way,
   torch's default threads). `--rounds` launches of the app alternate with as many headless
   processes, so both see the same machine; medians over all generations, and each round's
   ratio (the machine's speed drifts between rounds: a ratio within a round cancels it). The
   app's and the engine's CPU time during each pane generation is read from /proc, to show
   what drawing costs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import fcntl
import json
import os
import pty
import random
import re
import select
import signal
import statistics
import struct
import subprocess
import tempfile
import termios
import time

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?<>=!]*[ -/]*[@-~]"  # CSI sequences (colours, cursor moves)
                  r"|\x1b\][^\x07\x1b]*(\x07|\x1b\\)"  # OSC (title, clipboard)
                  r"|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHMc]")  # charsets, keypad, save/restore


class Terminal:
    """A child process in a pseudo-terminal of a given size; what it writes, as plain text."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path,
                 size: tuple[int, int] = (80, 24)) -> None:
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=cwd, start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.text = ""  # everything received so far, escape codes removed

    def read(self, timeout: float) -> str:
        """Wait up to `timeout` for output; the new text (escape codes removed)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return ""
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:
            return ""
        new = ANSI.sub("", data.decode("utf-8", errors="replace"))
        self.text += new
        return new

    def wait_for(self, needles: list[str], timeout: float, since: int = 0) -> float:
        """Read until every needle is in the text received after offset `since`; the
        perf_counter time at which that happened."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(n in self.text[since:] for n in needles):
                return time.perf_counter()
            self.read(0.05)
        raise TimeoutError(f"no {needles} on screen after {timeout}s; "
                           f"last: {self.text[-300:]!r}")

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.read(max(0.0, end - time.perf_counter()))

    def send(self, data: str) -> float:
        t = time.perf_counter()
        os.write(self.fd, data.encode())
        return t

    def close(self, timeout: float = 60.0) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.fd)


def loads_torch(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "libtorch" in maps


def write_session(folder: Path, layers: int, embd: int) -> Path:
    from core.session import Session, save_session

    s = Session(name="bench-ui")
    s.data.corpus = "sample:synthetic"
    s.model.n_layer, s.model.n_head, s.model.n_embd, s.model.context = layers, 4, embd, 64
    s.optim.warmup_steps = 10
    s.train.batch_size = 16
    s.train.max_steps = 1_000_000
    s.train.eval_interval = 200
    s.train.eval_iters = 10
    s.train.log_interval = 5
    s.train.checkpoint_interval = 0
    s.train.runs_dir = str(folder / "runs")
    return save_session(s, folder / "bench.toml")


def first_frames(session: Path, env: dict[str, str], launches: int) -> tuple[list[float], bool]:
    times, torch_loaded = [], False
    for _ in range(launches):
        term = Terminal([sys.executable, "-m", "llmlab", str(session)], env, session.parent)
        shown = term.wait_for(["llmlab", "help", "palette"], 60)
        times.append(shown - term.started)
        term.drain(0.3)
        torch_loaded |= loads_torch(term.proc.pid)
        term.send("\x11")  # ctrl+q: nothing to ask about, the app exits at once
        term.close()
    return times, torch_loaded


def key_latency(session: Path, env: dict[str, str], presses: int) -> dict[str, float]:
    term = Terminal([sys.executable, "-m", "llmlab", str(session)], env, session.parent)
    term.wait_for(["palette"], 60)
    term.drain(1.0)  # let the corpus statistics arrive
    term.send("s")
    mark = len(term.text)
    term.wait_for(["running", "tok/s"], 180, since=mark)
    term.drain(3.0)  # past the first evaluation: training at full speed
    ui_torch = loads_torch(term.proc.pid)
    engines = [pid for pid in children(term.proc.pid) if loads_torch(pid)]
    runs = sorted((session.parent / "runs" / "bench-ui").iterdir())
    quiet_start = time.time()
    term.drain(8.0)  # the app on the Train pane, plots updating, no keys
    quiet_end = time.time()
    t_start = time.time()
    latencies, plotted = press_toggles(term, presses)
    t_end = time.time()
    term.send("\x11")
    term.wait_for(["Quit?"], 10, since=len(term.text) - 200)
    term.send("y")
    term.close(120)
    records = [r for r in _metrics(runs[-1]) if r.get("type") == "train"]
    speeds = [r["tokens_per_s"] for r in records if t_start <= r.get("time", 0) <= t_end]
    quiet = [r["tokens_per_s"] for r in records
             if quiet_start <= r.get("time", 0) <= quiet_end]
    latencies.sort()
    plotted.sort()
    return {
        "plot_p50": statistics.median(plotted),
        "plot_p95": plotted[max(0, int(round(0.95 * len(plotted))) - 1)],
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
        "max": latencies[-1],
        "n": len(latencies),
        "tokens_per_s": statistics.median(speeds) if speeds else float("nan"),
        "quiet_tokens_per_s": statistics.median(quiet) if quiet else float("nan"),
        "ui_loads_torch": ui_torch,
        "engines": len(engines),
        "engine_left": sum(alive(pid) for pid in engines),
    }


def press_toggles(term: Terminal, presses: int) -> tuple[list[float], list[float]]:
    """Press `l` (the plots' log-scale toggle) `presses` times at irregular intervals: the
    seconds from each key until the screen shows the new state ("log on" / "log off"), and
    until the plots were redrawn after it (the first plot axis written after that)."""
    latencies, plotted = [], []
    state = False  # log scale off
    for _ in range(presses):
        term.drain(random.uniform(0.05, 0.25))
        state = not state
        mark = len(term.text)
        pressed = term.send("l")
        shown = term.wait_for([f"log {'on' if state else 'off'}"], 10, since=mark)
        latencies.append(shown - pressed)
        after = term.text.index(f"log {'on' if state else 'off'}", mark)
        plotted.append(term.wait_for(["┤"], 10, since=after) - pressed)
    return latencies, plotted


def _metrics(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (the engine is the UI's child)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def headless_speed(session: Path, env: dict[str, str], steps: int) -> float:
    """Median tokens/s of the same session trained by `llmlab train` (no UI), after the
    first evaluation."""
    subprocess.run([sys.executable, "-m", "llmlab", "train", str(session), "--set",
                    f"train.max_steps={steps}", "--set", 'train.runs_dir="runs-headless"'],
                   env=env, cwd=session.parent, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    run = sorted((session.parent / "runs-headless" / "bench-ui").iterdir())[-1]
    speeds = [r["tokens_per_s"] for r in _metrics(run)
              if r.get("type") == "train" and r.get("step", 0) > 20]
    return statistics.median(speeds) if speeds else float("nan")


# --------------------------------------------------------------------------- the workbench panes


def write_baby_session(folder: Path, steps: int) -> Path:
    """nanoGPT's shakespeare_char baby config, on tinyshakespeare when it is beside the repo."""
    from core.session import Session, save_session

    shakespeare = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
    s = Session(name="bench-baby")
    s.data.corpus = str(shakespeare) if shakespeare.is_file() else "sample:tiny-tales"
    s.model.n_layer, s.model.n_head, s.model.n_embd, s.model.context = 4, 4, 128, 64
    s.model.dropout = 0.0
    s.optim.lr, s.optim.min_lr, s.optim.warmup_steps = 1e-3, 1e-4, 10
    s.train.batch_size = 12
    s.train.max_steps = steps
    s.train.eval_interval = steps
    s.train.eval_iters = 20
    s.train.checkpoint_interval = 0
    s.train.runs_dir = str(folder / "runs")
    return save_session(s, folder / "baby.toml")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(q * len(ordered))) - 1)]


async def drive_workbench(session_path: Path, moves: int) -> dict:
    """The Prune pane through Pilot, with the real engine process."""
    from core.session import load_session
    from tui.app import LlmlabApp

    app = LlmlabApp(load_session(session_path), session_path)
    out: dict = {}
    async with app.run_test(size=(80, 24)) as pilot:
        async def until(condition, timeout: float, what: str) -> None:
            deadline = time.perf_counter() + timeout
            while not condition():
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"no {what} after {timeout}s")
                await pilot.pause(0.02)  # (polling faster would take CPU from the engine)

        await until(lambda: app.corpus is not None, 120, "the corpus")  # the first screen
        await pilot.press("p")
        prune = app.query_one("#prune")
        await until(lambda: prune.dense is not None, 180, "model loaded")
        await until(lambda: len(prune.requests.sweep_points) >= 11
                    and not prune.requests.sweeping, 300, "sweep")
        out["dense_loss"] = prune.dense.loss
        latencies, engine = [], []
        keys = ["right"] * min(moves, 19) + ["left"] * max(0, moves - 19)
        for key in keys:
            before = prune.measured
            t0 = time.perf_counter()
            await pilot.press(key)
            await until(lambda before=before: prune.measured > before, 30, "a measured candidate")
            await pilot.pause()  # the table redrawn with it
            latencies.append(time.perf_counter() - t0)
            engine.append(prune.engine_seconds)
        out["latencies"] = latencies
        out["engine"] = engine
        out["last"] = (prune.percent, prune.shown_loss)

        out["run_dir"] = app.model_source
        await app.quit_cleanly()
    return out


HEADLESS_GENERATION = """
import sys, time
from core.generate import Sampling, generate_text
from core.inference import load_run
run = load_run(sys.argv[1], "best")
list(generate_text(run.model, run.tokenizer, "ROMEO:", Sampling(max_tokens=20)))  # warm up
for seed in range(3):
    sampling = Sampling(max_tokens=int(sys.argv[2]), temperature=0.8, seed=seed)
    t0 = time.perf_counter()
    n = sum(1 for _ in generate_text(run.model, run.tokenizer, "ROMEO:", sampling))
    print(n / (time.perf_counter() - t0))
"""


def headless_generation(run_dir: str, tokens: int, env: dict[str, str]) -> list[float]:
    """The same generations as the pane's, headless: core.generate on the same checkpoint, in
    a process of its own (as `llmlab sample` would run)."""
    out = subprocess.run([sys.executable, "-c", HEADLESS_GENERATION, run_dir, str(tokens)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shown_rate(text: str) -> float:
    """The tokens/s of the last finished generation in the Generate pane's header."""
    figure = re.findall(r"([\d.]+)(k?) tok/s · done", text)[-1]
    return float(figure[0]) * (1000 if figure[1] else 1)


def pane_generation(session: Path, env: dict[str, str], times: int) -> dict[str, list[float]]:
    """`times` generations in the Generate pane of the app in a pty: the rates shown, and the
    app's and the engine's CPU seconds per generation."""
    term = Terminal([sys.executable, "-m", "llmlab", str(session)], env, session.parent)
    out: dict[str, list[float]] = {"rates": [], "app_cpu": [], "engine_cpu": [], "wall": []}
    try:
        term.wait_for(["Browse"], 60)
        term.drain(1.0)
        term.send("g")
        term.wait_for(["generates"], 120)  # the model loaded: "n generates"
        term.drain(1.0)
        engines = children(term.proc.pid)
        for _ in range(times):
            since = len(term.text)
            app0, eng0 = cpu_seconds(term.proc.pid), sum(map(cpu_seconds, engines))
            t0 = term.send("n")
            t1 = term.wait_for(["· done"], 300, since)
            out["app_cpu"].append(cpu_seconds(term.proc.pid) - app0)
            out["engine_cpu"].append(sum(map(cpu_seconds, engines)) - eng0)
            out["wall"].append(t1 - t0)
            term.drain(0.3)
            out["rates"].append(shown_rate(term.text[since:]))
    finally:
        term.send("\x11")  # ctrl+q
        term.close()
    return out


def generation_session(session: Path, tokens: int) -> Path:
    """The baby session with the [generate] settings of the comparison."""
    from core.session import load_session, save_session

    s = load_session(session)
    s.generate.prompt, s.generate.max_tokens, s.generate.temperature = "ROMEO:", tokens, 0.8
    return save_session(s, session.parent / "baby-generate.toml")


def workbench(folder: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    import asyncio

    session = write_baby_session(folder, args.baby_steps)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmlab", "train", str(session)], env=env,
                   cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"baby GPT trained headless for {args.baby_steps} steps in "
          f"{time.perf_counter() - t0:.0f} s")
    os.environ.update({k: env[k] for k in ("LLMLAB_CONFIG_DIR", "LLMLAB_CACHE_DIR")})
    r = asyncio.run(drive_workbench(session, args.moves))
    lat = r["latencies"]
    print(f"prune slider, move to table showing the new loss ({len(lat)} moves, magnitude, "
          f"fixed val sample of 8x32 windows): p50 {statistics.median(lat) * 1000:.0f} ms, "
          f"p95 {percentile(lat, 0.95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
          f"(dense loss {r['dense_loss']:.3f}; at {r['last'][0]}%: {r['last'][1]:.3f}); "
          f"of which the engine pruning and measuring: p50 "
          f"{statistics.median(r['engine']) * 1000:.0f} ms")
    gen_session = generation_session(session, args.tokens)
    pane: dict[str, list[float]] = {"rates": [], "app_cpu": [], "engine_cpu": [], "wall": []}
    headless: list[float] = []
    round_ratios: list[float] = []  # each round's pane / headless: drift between rounds cancels
    for _ in range(args.rounds):
        shown = pane_generation(gen_session, env, 3)
        for key, values in shown.items():
            pane[key] += values
        made = headless_generation(r["run_dir"], args.tokens, env)
        headless += made
        round_ratios.append(statistics.median(shown["rates"]) / statistics.median(made))
    p, h = statistics.median(pane["rates"]), statistics.median(headless)
    wall = sum(pane["wall"])
    print(f"generation, {args.tokens} tokens, temperature 0.8, {len(pane['rates'])} each, "
          f"alternated: shown in the Generate pane (80x24 pty) {p:,.0f} tokens/s "
          f"{[round(x) for x in pane['rates']]}; headless (core.generate, a process of its "
          f"own, same checkpoint) {h:,.0f} tokens/s {[round(x) for x in headless]}; "
          f"pane / headless {p / h:.3f} (by round {[round(x, 3) for x in round_ratios]}, "
          f"median {statistics.median(round_ratios):.3f}); while the pane generated, the app used "
          f"{sum(pane['app_cpu']) / wall:.0%} of a core and the engine "
          f"{sum(pane['engine_cpu']) / wall:.1f} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--embd", type=int, default=128)
    parser.add_argument("--headless-steps", type=int, default=300,
                        help="steps of the headless baseline (0: skip it)")
    parser.add_argument("--moves", type=int, default=20,
                        help="Prune slider moves to time (0: skip the workbench panes)")
    parser.add_argument("--baby-steps", type=int, default=300,
                        help="training steps of the baby GPT the Prune pane loads")
    parser.add_argument("--tokens", type=int, default=500, help="tokens per generation")
    parser.add_argument("--rounds", type=int, default=3,
                        help="app launches (3 generations each) alternated with headless runs")
    parser.add_argument("--skip-training-ui", action="store_true",
                        help="only the workbench panes (4 and 5)")
    parser.add_argument("--first-frame-only", action="store_true", help="only 1")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="llmlab-bench-ui-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24",
               "LLMLAB_CONFIG_DIR": str(folder / "config"),
               "LLMLAB_CACHE_DIR": str(folder / "cache"),
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("COLORTERM", None)  # what an SSH session usually has: 256 colours
        session = write_session(folder, args.layers, args.embd)
        compiled = "not cached (PYTHONDONTWRITEBYTECODE: each launch compiles llmlab)" \
            if os.environ.get("PYTHONDONTWRITEBYTECODE") else "cached"
        print(f"machine: {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; bytecode {compiled}")

        if args.skip_training_ui:
            workbench(folder, env, args)
            return
        times, torch_loaded = first_frames(session, env, args.launches)
        print(f"first frame: median {statistics.median(times) * 1000:.0f} ms, "
              f"best {min(times) * 1000:.0f} ms over {len(times)} launches "
              f"(process start to a complete screen in an 80x24 pty)")
        print(f"torch loaded in the UI process: {'YES' if torch_loaded else 'no'}")
        if args.first_frame_only:
            return

        r = key_latency(session, env, args.presses)
        print(f"key to screen while training ({args.layers}x{args.embd} GPT, "
              f"{r['tokens_per_s']:,.0f} tokens/s): p50 {r['p50'] * 1000:.1f} ms, "
              f"p95 {r['p95'] * 1000:.1f} ms, max {r['max'] * 1000:.1f} ms "
              f"over {r['n']} presses; plots redrawn: p50 {r['plot_p50'] * 1000:.1f} ms, "
              f"p95 {r['plot_p95'] * 1000:.1f} ms")
        if args.headless_steps:
            base = headless_speed(session, env, args.headless_steps)
            print(f"training speed: headless (llmlab train) {base:,.0f} tokens/s; in the app "
                  f"{r['quiet_tokens_per_s']:,.0f} ({r['quiet_tokens_per_s'] / base:.0%}) "
                  f"with no keys pressed, {r['tokens_per_s']:,.0f} "
                  f"({r['tokens_per_s'] / base:.0%}) during the key presses")
        print(f"torch loaded in the UI process while training: "
              f"{'YES' if r['ui_loads_torch'] else 'no'} (in {r['engines']} engine process); "
              f"engine processes left after quitting: {r['engine_left']}")
        if args.moves:
            workbench(folder, env, args)


if __name__ == "__main__":
    main()
