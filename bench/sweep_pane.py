"""How long the Sweep pane takes to show a study of 200 trials, and what a refresh costs.

A synthetic study (tests/helpers/sweeps.py: an Optuna journal and 200 trial run folders of 300
steps, a val eval every 50, in the shapes a real sweep writes) is read by core.sweep_view, and
shown by the app at 80x24 from the key press to the table drawn. The baseline, measured in the
same run: the Runs pane showing the same runs folder (200 runs). Medians of several.

    python bench/sweep_pane.py [--trials 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.sessions import small_session  # noqa: E402
from helpers.sweeps import fake_study, metrics_lines  # noqa: E402

from core.sweep_storage import list_sweeps  # noqa: E402
from core.sweep_view import StudyReader  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def pane_time(folder: Path, key: str, ready) -> float:
    """Seconds from pressing `key` to `ready(app)`, the app at 80x24 on `folder`'s session."""
    from tui.app import LlmlabApp

    app = LlmlabApp(small_session(folder, name="tiny"), None, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        start = time.perf_counter()
        await pilot.press(key)
        while not ready(app):
            await pilot.pause(0.005)
        return time.perf_counter() - start


def sweep_ready(app) -> bool:
    pane = app.query_one("#sweep")
    return pane.state is not None and pane.table.row_count > 0


def runs_ready(app) -> bool:
    pane = app.query_one("#runs")
    return pane.scanned and pane.table.row_count > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sweep-pane-bench-"))
    running = tuple(range(args.trials - 4, args.trials))
    made = timed(lambda: fake_study(folder / "runs", "tiny", args.trials, running=running,
                                    pruned=tuple(range(0, args.trials, 7)), steps=300,
                                    eval_every=50))
    print(f"study of {args.trials} trials (4 running), 300 steps each: made in {made:.1f} s")
    (info,) = list_sweeps(folder / "runs")

    first = [timed(lambda: StudyReader(info).read()) for _ in range(args.repeat)]
    reader = StudyReader(info)
    reader.read()
    again = [timed(reader.read) for _ in range(args.repeat)]
    # a refresh while the 4 running trials each log 10 more steps and one eval
    grow = []
    for i in range(args.repeat):
        for number in running:
            path = folder / "runs" / "tiny" / f"trial-{number:04d}" / "metrics.jsonl"
            lines = metrics_lines(3e-3, 160 + 10 * (i + 1), 10)[-11:]
            with open(path, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in lines)
        grow.append(timed(reader.read))
    print(f"core.sweep_view: first read {statistics.median(first) * 1e3:.0f} ms, "
          f"refresh with nothing new {statistics.median(again) * 1e3:.1f} ms, "
          f"refresh with 4 trials grown {statistics.median(grow) * 1e3:.1f} ms "
          f"(medians of {args.repeat})")

    shown = [asyncio.run(pane_time(folder, "k", sweep_ready)) for _ in range(3)]
    base = [asyncio.run(pane_time(folder, "r", runs_ready)) for _ in range(3)]
    s, b = statistics.median(shown), statistics.median(base)
    print(f"app at 80x24, key to table: Sweep pane {s:.2f} s, Runs pane on the same "
          f"{args.trials} runs {b:.2f} s (baseline); ratio {s / b:.2f} (medians of 3)")


if __name__ == "__main__":
    main()
