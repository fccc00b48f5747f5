"""`sd-bridge osc-monitor` as a real subprocess: it prints what a controller sends."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

from .osc_helpers import Client

ROOT = Path(__file__).resolve().parents[2]


def _lines(proc: subprocess.Popen) -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            q.put(line.rstrip("\n"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_line(q: queue.Queue, pattern: str, timeout: float = 20.0) -> re.Match:
    seen = []
    while True:
        line = q.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"process ended before {pattern!r}; saw {seen}")
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def test_monitor_prints_changes_and_counts():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "osc-monitor", "--osc-port", "0", "--seconds", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _lines(proc)
        port = int(_wait_line(lines, r"listening for OSC on 127\.0\.0\.1:(\d+)").group(1))
        client = Client(("127.0.0.1", port))
        client.send("/sd/guidance", 5.0)
        _wait_line(lines, r"^/sd/guidance = 5\.0  \(from 127\.0\.0\.1:\d+\)$")
        client.send("/sd/preset", "../secrets")
        assert "/sd/preset expects a bare name" in client.wait_for("/sd/error")[0]
        _wait_line(lines, r"/sd/preset expects a bare name")
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_monitor_refuses_a_bad_allow_entry():
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "osc-monitor", "--osc-port", "0", "--osc-allow", "studio-pc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--osc-allow: 'studio-pc' is not an IP address" in result.stderr
