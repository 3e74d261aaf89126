"""Helpers for the browser tests of the classroom web app (Solara server + headless chromium)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "tests" / "screenshots"


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``solara run sim/app/page.py`` in a subprocess (its own process group), always stopped."""

    def __init__(self, world: str | None = None, ready_timeout: float = 60.0, game: bool = False):
        from sim.app_cli import server_command, server_env

        self.port = free_port()
        cmd = (
            [sys.executable, "-m", "sim.cli", "game", "--port", str(self.port)]
            if game
            else server_command(self.port)
        )
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = SCREENSHOTS / ("game.log" if game else "server.log")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            env=server_env(world),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            self._wait(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"server not ready after {timeout} s: {self.log()}")

    def log(self) -> str:
        """The server's output so far (tail)."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Terminate the server's process group; kill it if it does not stop."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, 9)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()


def python() -> str:
    """The interpreter running the tests."""
    return sys.executable
