"""Drive headless Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

No websocket client or npm package needed: Chromium reads NUL-terminated JSON commands on fd 3 and
writes replies and events on fd 4. Used by the render test to load the report, collect console
errors, check every <img> decoded and take a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
    "--remote-debugging-pipe",
]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class PageCheck(BaseModel):
    console_errors: list[str]  # console.error/assert, uncaught exceptions, error log entries
    images: list[tuple[str, bool, int]]  # (alt, complete, naturalWidth) of every <img>
    screenshot: bytes
    title: str


def _above_four(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class _Pipe:
    def __init__(self, binary: str, profile: str) -> None:
        self.log_path = Path(profile) / "chromium.log"
        self._log = self.log_path.open("wb")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # move the child's ends above 4 so that the shell's 3<& / 4>& cannot clobber one another
        to_chrome_r, from_chrome_w = (_above_four(fd) for fd in (to_chrome_r, from_chrome_w))
        # bash (dash only takes one-digit fds) puts our pipe ends on 3 and 4 for Chromium
        cmd = " ".join([f"exec {binary}", *FLAGS, f"--user-data-dir={profile}"])
        self.proc = subprocess.Popen(
            ["bash", "-c", f"{cmd} 3<&{to_chrome_r} 4>&{from_chrome_w}"],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)

    def call(
        self, method: str, session: str | None = None, timeout: float = 30, **params: Any
    ) -> Any:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"chromium exited; its log ends:\n{self.log_tail()}") from None
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(
                        f"chromium did not answer {method} within {timeout} s "
                        f"(exit code {self.proc.poll()}); its log ends:\n{self.log_tail()}"
                    )
                self._cond.wait(left)
            reply = self._replies.pop(self._next)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        self._log.close()


def _error_text(event: dict[str, Any]) -> str | None:
    method, p = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        return "console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
    if method == "Runtime.exceptionThrown":
        return "exception: " + json.dumps(p.get("exceptionDetails", {}))[:500]
    if method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        return "log: " + p["entry"].get("text", "")
    return None


def check_page(page: Path, binary: str, timeout: float = 60) -> PageCheck:
    """Load ``page``, wait for its load event, and report errors, images and a screenshot."""
    with tempfile.TemporaryDirectory(prefix="kubohb-chromium-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.call("Target.createTarget", url="about:blank", timeout=timeout)[
                "targetId"
            ]
            session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                pipe.call(f"{domain}.enable", session)
            pipe.call("Page.navigate", session, url=page.resolve().as_uri())
            errors: list[str] = []
            deadline = time.monotonic() + timeout
            loaded = False
            while not loaded:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{page}: no load event within {timeout} s")
                event = pipe.events.get(timeout=left)
                loaded = event.get("method") == "Page.loadEventFired"
                if (text := _error_text(event)) is not None:
                    errors.append(text)
            probe = (
                "JSON.stringify([document.title, Array.from(document.images)"
                ".map(i => [i.alt, i.complete, i.naturalWidth])])"
            )
            value = pipe.call("Runtime.evaluate", session, expression=probe, returnByValue=True)
            title, images = json.loads(value["result"]["value"])
            size = pipe.call("Page.getLayoutMetrics", session)["cssContentSize"]
            shot = pipe.call(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
            while not pipe.events.empty():  # anything logged after load
                if (text := _error_text(pipe.events.get_nowait())) is not None:
                    errors.append(text)
        finally:
            pipe.close()
    return PageCheck(
        console_errors=errors,
        images=[(alt, bool(done), int(width)) for alt, done, width in images],
        screenshot=base64.b64decode(shot["data"]),
        title=title,
    )
