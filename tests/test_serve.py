"""`llmlab serve`: the app in a browser tab, seen as a user sees it (a headless Chromium loads
the page, reads the terminal xterm.js draws, takes a screenshot), and its bad input."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from helpers.browser import Chromium, chromium_path, end_group, group_members
from helpers.cli import llmlab
from helpers.jobs import alive, train_steps, until
from helpers.sessions import small_session

from core.run_claim import read_heartbeat
from core.runs import has_checkpoint, read_run_info
from core.session import save_session

PANES = ["Dataset", "Model", "Train", "Prune", "Generate", "Runs"]
needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="no Chromium on this machine (Debian: apt-get install "
                                    "chromium); the browser view is untested here")


def start_server(folder: Path, *args: str, **env_vars: str) -> tuple[subprocess.Popen, str]:
    """`llmlab serve ARGS --port 0` in a process group of its own; the address it printed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLMLAB_CACHE_DIR": str(folder / "cache"),
           "LLMLAB_CONFIG_DIR": str(folder), **env_vars}
    server = subprocess.Popen([sys.executable, "-m", "llmlab", "serve", *args, "--port", "0"],
                              cwd=folder, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert server.stdout is not None
    line = server.stdout.readline()  # (the address, printed once the socket listens)
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if match is None:
        end_group(server)
        pytest.fail(f"llmlab serve printed {line!r}, stderr: {server.stderr.read()!r}")
    return server, match.group(0)


def stop_server(server: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the server alone, as ctrl+c or a service manager would: it closes its tabs,
    whose apps exit; nothing of its process group may be left."""
    server.terminate()
    try:
        server.wait(timeout)
    finally:
        deadline = time.monotonic() + timeout
        while (left := group_members(server.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        end_group(server)
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""
    assert not left, f"processes {left} of the server's outlived it"


def not_blank(png: Path) -> bool:
    """The screenshot has the drawn terminal in it: many colours over a large area (a page
    that failed shows one background colour, or a dialog)."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    background = max(colours)[1] if colours else None
    drawn = sum(count for count, colour in colours if colour != background)
    return len(colours) > 20 and drawn > image.width * image.height * 0.05


@needs_chromium
def test_a_browser_tab_runs_the_app_on_the_session(tmp_path: Path) -> None:
    """The page shows the app on the session served (its panes, the Dataset pane's
    fields), keys typed in the tab reach it, and closing the tab ends its app while the
    server serves on."""
    session = small_session(tmp_path, name="webtab")
    path = save_session(session, tmp_path / "webtab.toml")
    server, url = start_server(tmp_path, str(path))
    shot = tmp_path / "serve.png"
    try:
        with Chromium(tmp_path / "profile") as browser:
            first, model, apps, after = asyncio.run(use_tab(browser, url, shot, server.pid))
    finally:
        stop_server(server)
    print(f"screenshot: {shot}")
    for word in PANES + ["webtab", "corpus", "tokenizer"]:
        assert word in first, f"{word!r} not in the browser's terminal:\n{first}"
    assert not_blank(shot), f"the screenshot {shot} shows no terminal"
    assert "Summary" in model and "FLOPs/token" in model, f"m showed no Model pane:\n{model}"
    assert apps, "no app process besides the server while the tab is open"
    assert after == [server.pid], "the closed tab's app is still running"


async def use_tab(browser: Chromium, url: str, shot: Path,
                  server: int) -> tuple[str, str, list[int], list[int]]:
    """What the tab showed first, after `m`; the server's other processes while the tab is
    open, and once it is closed (navigated away)."""
    async with browser.page() as page:
        await page.open(url)
        first = await page.wait_for_text(PANES + ["webtab", "corpus"])
        await page.screenshot(shot)
        await page.press("m")
        model = await page.wait_for_text(["Summary", "FLOPs/token"])
        apps = [pid for pid in group_members(server) if pid != server]
        await page.close()
        deadline = time.monotonic() + 30
        while (after := group_members(server)) != [server] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    return first, model, apps, after


@needs_chromium
def test_a_training_started_in_a_tab_outlives_it_and_another_tab_attaches(
        tmp_path: Path) -> None:
    """Trainings are jobs: one started with `s` in a tab trains on once the tab is closed
    (its app gone), and a new tab on the session follows it and stops it with `x`."""
    session = small_session(tmp_path, name="webjob", log_interval=5, checkpoint_interval=200,
                            runs_dir="runs")
    path = save_session(session, tmp_path / "webjob.toml")
    server, url = start_server(tmp_path, str(path), LLMLAB_HEARTBEAT_S="0.5")
    runs, job = tmp_path / "runs" / "webjob", None
    try:
        with Chromium(tmp_path / "profile") as browser:
            async def first_tab() -> str:
                async with browser.page() as page:
                    await page.open(url)
                    await page.wait_for_text(["webjob", "idle"])
                    await page.press("s")
                    shown = await page.wait_for_text(["running"])
                    await asyncio.to_thread(until, lambda: runs.is_dir() and any(
                        len(train_steps(r)) >= 3 for r in runs.iterdir()), 120)
                    await page.close()
                return shown

            assert "running" in asyncio.run(first_tab()), "s did not start a training"
            (run_dir,) = runs.iterdir()
            job = read_heartbeat(run_dir)
            assert job is not None
            assert until(lambda: group_members(server.pid) == [server.pid], 30), \
                "the closed tab's app is still running"
            before = train_steps(run_dir)[-1]
            assert until(lambda: train_steps(run_dir)[-1] > before + 20, 60), \
                "the training ended with the tab"

            async def second_tab() -> tuple[str, str]:
                async with browser.page() as page:
                    await page.open(url)
                    attached = await page.wait_for_text(["webjob", "running"])
                    await page.press("x")
                    stopped = await page.wait_for_text(["stopped"])
                    await page.close()
                return attached, stopped

            attached, stopped = asyncio.run(second_tab())
    finally:
        stop_server(server)
        if job is not None and alive(job.pid):
            os.kill(job.pid, signal.SIGKILL)
    assert "running" in attached, f"the new tab did not follow the job:\n{attached}"
    assert "stopped" in stopped, f"x in the tab did not stop the job:\n{stopped}"
    assert until(lambda: not alive(job.pid), 30), "the job outlived its stop"
    assert read_run_info(run_dir)["status"] == "stopped" and has_checkpoint(run_dir)




def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = llmlab(tmp_path, "serve", "--port", str(port), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"port {port} on 127.0.0.1: in use (another server? "
                                     "choose another with --port)")
    assert result.stdout == ""


@pytest.mark.parametrize("args, line", [
    (["--port", "http"], "--port 'http': not a port number (0-65535; 0 picks a free one)"),
    (["--port", "65536"], "--port '65536': not a port number (0-65535; 0 picks a free one)"),
    (["--host", "no-such-host.invalid", "--port", "0"],
     "--host 'no-such-host.invalid': not an address of this machine"),
    (["broken.toml", "--port", "0"], "broken.toml: TOML syntax error"),
    (["absent.toml", "--port", "0"], "absent.toml: no such session file"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    (tmp_path / "broken.toml").write_text("[model\n")
    result = llmlab(tmp_path, "serve", *args, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and line in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_non_local_host_warns_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "LLMLAB_CACHE_DIR": str(tmp_path / "cache")}
    server = subprocess.Popen([sys.executable, "-m", "llmlab", "serve", "--host", "0.0.0.0",
                               "--port", "0"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        address = server.stdout.readline()
        warning = server.stderr.readline()
    finally:
        stop_server(server)
    assert re.match(r"llmlab serve: http://0\.0\.0\.0:\d+ ", address), address
    assert warning.startswith("llmlab serve: warning: listening on http://0.0.0.0:")
    assert "anyone who reaches the port gets the full app" in warning


def test_stopping_the_server_ends_the_apps_of_open_tabs(tmp_path: Path) -> None:
    """A tab (a websocket, as the page opens it) running its app when the server gets
    SIGTERM: the app exits with the server, nothing is left."""
    server, url = start_server(tmp_path)

    async def open_tab() -> int:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"{url}/ws?width=100&height=30".replace("http", "ws", 1),
                                headers={"Origin": url}) as ws:
            drawn = 0
            while drawn < 10_000:  # (the app's first frames)
                message = await ws.receive(timeout=60)
                assert message.type == aiohttp.WSMsgType.BINARY, message
                drawn += len(message.data)
            running = len(group_members(server.pid)) - 1
            server.terminate()
            while not ws.closed:  # (a browser answers the server's close at once)
                await ws.receive(timeout=60)
            return running

    try:
        running = asyncio.run(open_tab())
    finally:
        stop_server(server)
    assert running >= 1, "no app process for the tab"


def test_the_page_follows_the_address_used_and_refuses_other_sites(tmp_path: Path) -> None:
    """Through a tunnel on another port the page's websocket address is the tunnel's; a
    websocket opened by another site's page, or through a name other than a loopback one
    (DNS rebinding), is refused before any app starts."""
    server, url = start_server(tmp_path)
    port = url.rsplit(":", 1)[1]

    async def visit() -> tuple[str, list[int]]:
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers={"Host": "localhost:9999"}) as answer:
                page = await answer.text()
            refused = []
            for headers in ({"Origin": "http://evil.example"},
                            {"Host": f"evil.example:{port}",
                             "Origin": f"http://evil.example:{port}"}):
                try:
                    async with http.ws_connect(url.replace("http", "ws", 1) + "/ws",
                                               headers=headers):
                        pass
                except aiohttp.WSServerHandshakeError as e:
                    refused.append(e.status)
            return page, refused

    try:
        page, refused = asyncio.run(visit())
        apps = [pid for pid in group_members(server.pid) if pid != server.pid]
    finally:
        stop_server(server)
    assert 'data-session-websocket-url="ws://localhost:9999/ws"' in page
    assert refused == [403, 403]
    assert apps == []
