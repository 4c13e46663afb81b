"""A headless Chromium driven over its DevTools protocol: load a page, read what the page's
terminal shows, take a screenshot. For `llmlab serve`, whose page draws the app with xterm.js on
a canvas (WebGL), so the text is not in the DOM: a script run before the page's own hands us
the xterm.js Terminal object when the page stores it (`this.terminal = new Terminal(...)`),
and its buffer is the text the canvas shows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal",
                          {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && value.loadAddon && !window.__xterm) window.__xterm = value;
  },
});
"""

READ_TERMINAL = """
(() => {
  const t = window.__xterm;
  if (!t) return null;
  const buffer = t.buffer.active, lines = [];
  for (let i = 0; i < t.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
})()
"""


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class Chromium:
    """`with Chromium(profile_dir) as browser:` a headless browser in a process group of its
    own, ended (the whole group) on leaving."""

    def __init__(self, profile_dir: Path, width: int = 1280, height: int = 800) -> None:
        self.profile_dir, self.width, self.height = profile_dir, width, height
        self.process: subprocess.Popen | None = None
        self.devtools = ""

    def __enter__(self) -> Chromium:
        args = [chromium_path() or "chromium", "--headless=new", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile_dir}", f"--window-size={self.width},"
                f"{self.height}", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-extensions",
                "--enable-unsafe-swiftshader", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # (Chromium refuses to run as root otherwise)
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self.devtools = self._devtools_address()
        return self

    def _devtools_address(self, timeout: float = 30) -> str:
        """host:port of the DevTools server (Chromium writes it into the profile folder)."""
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            if port_file.exists() and (lines := port_file.read_text().split()):
                return f"127.0.0.1:{lines[0]}"
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def __exit__(self, *exc: object) -> None:
        end_group(self.process)

    def new_tab(self) -> str:
        """Open a blank tab; its DevTools websocket."""
        request = urllib.request.Request(f"http://{self.devtools}/json/new?about:blank",
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)["webSocketDebuggerUrl"]

    @contextlib.asynccontextmanager
    async def page(self) -> AsyncIterator[Page]:
        """A new tab, driven over DevTools."""
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(self.new_tab(), max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
            yield page


class Page:
    """One tab: DevTools calls (send a method, wait for its answer by id), and what a user
    does and sees there."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), timeout=30)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def terminal_text(self) -> str:
        """The rows the page's terminal shows ("" before it exists)."""
        answer = await self.call("Runtime.evaluate", expression=READ_TERMINAL,
                                 returnByValue=True)
        return answer["result"].get("value") or ""

    async def wait_for_text(self, wanted: list[str], timeout: float = 60) -> str:
        """The terminal's text once it shows every string in `wanted`, or when `timeout`
        runs out (the caller's asserts then say what was missing)."""
        deadline = time.monotonic() + timeout
        while True:
            text = await self.terminal_text()
            if all(w in text for w in wanted) or time.monotonic() > deadline:
                return text
            await asyncio.sleep(0.2)

    async def press(self, key: str) -> None:
        """A printable key, typed into the terminal (focused first, as a click would)."""
        await self.call("Runtime.evaluate", expression="window.__xterm.focus()")
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=key, text=key)

    async def close(self) -> None:
        """Close the tab (navigating away may keep the page, and its websocket, cached)."""
        await self.call("Page.close")

    async def screenshot(self, path: Path) -> Path:
        await asyncio.sleep(0.5)  # (the page fades the terminal in over 0.3 s)
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def end_group(process: subprocess.Popen | None, grace: float = 5) -> None:
    """SIGTERM the process group `process` leads, then SIGKILL what is left of it."""
    if process is None:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(process.pid):
            process.poll()
            time.sleep(0.05)
    process.poll()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid` (Linux: /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # (it ended meanwhile)
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
