"""A real `sd-bridge run` in a subprocess, on free loopback ports, for tests that talk to it from outside
(`sd-bridge send`, OSCQuery over HTTP, the documented commands)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
"""Seconds a daemon may take to say it is running (a loaded 2-core machine, torch imports)."""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port nothing holds right now (UDP by default; TCP with SOCK_STREAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A UDP port N whose TCP N+1 is free too (the daemon's OSC and default OSCQuery ports)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port N with a free TCP port N+1")


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a daemon that can download nothing and finds this tree's code."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(home / "hf"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    bin_dir = str(Path(sys.executable).parent)  # where `sd-bridge` is, as after `source .venv/bin/activate`
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


class Daemon:
    """`sd-bridge run ARGS --osc-port P` until stopped; `lines` holds its stderr as it comes."""

    def __init__(self, args: list[str], cwd: Path, ready: str = "running:") -> None:
        self.osc_port = free_port_pair()
        self.query_port = self.osc_port + 1
        self.cwd = cwd
        cmd = [sys.executable, "-m", "bridge", "run", *args, "--osc-port", str(self.osc_port)]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=offline_env(cwd), stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.wait_for_line(ready, START_TIMEOUT):
            self.stop()
            raise AssertionError(f"the daemon did not start: {self.output()}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                self._reader.join(2.0)
                return any(text in line for line in self.lines)
            time.sleep(0.02)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2.0)
        return self.proc.returncode

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
