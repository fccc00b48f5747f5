"""The OBS script inside a real OBS Studio (Xvfb, software GL), against real sd-bridge daemons.

One OBS run covers the whole life of the script, in the order a user meets it, because each OBS
start costs seconds on a small machine. OBS loads `plugins/obs/sd_bridge_obs.py` from a generated
scene collection with saved settings; `obs_driver.py`, loaded next to it, makes the same libobs
calls the Scripts window makes (property edits, buttons, Reload, a collection switch) on OBS's UI
thread. What happened is read from the daemons (`/sd/get`, `/sd/status`), from a relay that
counts what the script sent, from the processes, and from OBS's own log. Every wait has a timeout.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from obs_host import ObsHost, obs_available
from plugin_fakes import ROOT, fake_obspython, load_module

sys.modules.setdefault("obspython", fake_obspython())
codec = load_module("plugins/obs/sd_bridge_obs.py", "sd_bridge_obs_codec")  # its OSC codec, outside OBS

SCRIPT = ROOT / "plugins" / "obs" / "sd_bridge_obs.py"
PRESET = "sd-turbo-1step"
"""A shipped preset name (the script lists only those); the test daemons read a small test copy."""
PRESET_VALUES = {"guidance": 7.5, "prompt": "from the preset", "seed": 99}

pytestmark = pytest.mark.skipif(obs_available() is not None, reason=str(obs_available()))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Osc:
    """A plain OSC client of a daemon (the script's codec, checked against python-osc elsewhere)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def ask(self, address: str, *args: Any, timeout: float = 2.0) -> list[Any] | None:
        """Send `address` and return the arguments of the first reply on `reply`, or None."""
        reply = "/sd/status" if address == "/sd/status" else (args[0] if args else address)
        self.sock.sendto(codec.encode_message(address, list(args)), self.target)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionRefusedError):
                return None
            for addr, got in codec.decode_packet(data):
                if addr == reply:
                    return got
        return None

    def get(self, name: str) -> Any:
        got = self.ask("/sd/get", "/sd/" + name.replace(".", "/"))
        return None if got is None else got[0]

    def set(self, address: str, value: Any) -> None:
        self.sock.sendto(codec.encode_message(address, [value]), self.target)

    def close(self) -> None:
        self.sock.close()


class Relay:
    """Between the script and a daemon: forwards both ways and keeps what the script sent."""

    def __init__(self, daemon_port: int) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.daemon = ("127.0.0.1", daemon_port)
        self.port = self.front.getsockname()[1]
        self.client: tuple[str, int] | None = None
        self.messages: list[tuple[str, list[Any]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for sock in ready:
                data, sender = sock.recvfrom(65536)
                if sock is self.front:
                    self.client = sender
                    self.messages += codec.decode_packet(data)
                    self.back.sendto(data, self.daemon)
                elif self.client is not None:
                    self.front.sendto(data, self.client)

    def sent(self, address: str) -> list[list[Any]]:
        return [args for a, args in list(self.messages) if a == address]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.front.close()
        self.back.close()


def wait(predicate, what: str, timeout: float = 20.0, host: ObsHost | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tail = "" if host is None else "\n" + host.tail(40)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not: its exit was never collected)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A daemon on its own port (as if started by hand), a relay in front of it, test presets, and
    an `sd-bridge` launcher in a folder whose name has a space (as on `C:\\Users\\Jane Doe`)."""
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / f"{PRESET}.toml").write_text(
        'description = "test copy"\nguidance = 7.5\nprompt = "from the preset"\nseed = 99\n', encoding="utf-8"
    )
    # TMPDIR: the daemons' log files (in the temp folder) stay inside this test's folder
    env = {**os.environ, "SD_BRIDGE_PRESETS": str(presets), "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    bindir = tmp_path / "Jane Doe" / "bin"
    bindir.mkdir(parents=True)
    launcher = bindir / "sd-bridge"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bridge "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    port = free_port()
    log = (tmp_path / "manual-daemon.log").open("wb")
    manual = subprocess.Popen(
        [
            str(launcher),
            "run",
            "--engine",
            "passthrough",
            "--sink",
            "null",
            "--osc-port",
            str(port),
            "--quiet",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    osc = Osc(port)
    relay = Relay(port)
    try:
        wait(lambda: osc.ask("/sd/status", timeout=0.5) is not None, "the hand-started daemon to answer", 120)
        yield {"env": env, "launcher": launcher, "port": port, "osc": osc, "relay": relay, "manual": manual}
    finally:
        relay.close()
        osc.close()
        manual.send_signal(signal.SIGINT)
        try:
            manual.wait(timeout=15)
        except subprocess.TimeoutExpired:
            manual.kill()
        log.close()


STARTED: list[int] = []
"""Daemons the script started, killed at the end whatever happened (a failed test leaves none)."""


def started_pid(host: ObsHost, after: int) -> int:
    pid = int(host.wait_log(r"started sd-bridge \(pid (\d+)\)", 30, after).group(1))
    STARTED.append(pid)
    return pid


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    for pid in STARTED:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    STARTED.clear()


def test_the_script_in_a_real_obs(rig: dict[str, Any], tmp_path: Path) -> None:
    osc, relay = rig["osc"], rig["relay"]
    own_port = free_port()  # where the script will start its own daemon
    saved = {  # as an older version of the script saved them: "(none)" is the list's label
        "port": relay.port,
        "guidance": 3.25,
        "prompt": "from the saved scene",
        "seed": 1234,
        "preset": "(none)",
        "command": f"{rig['launcher']} run",  # unquoted, with a space in the path
        "extra": "--engine passthrough --sink null --quiet",
        "stop_on_exit": True,
    }
    collections = {"Show": [(SCRIPT, saved)], "Other": []}
    with ObsHost(tmp_path / "obs", collections, env=rig["env"]) as obs:
        obs.wait_log(r"Loaded python script: sd_bridge_obs\.py", 120)

        # -- the saved settings reach the running daemon on load; "(none)" is no preset -------------
        wait(lambda: osc.get("guidance") == 3.25 and osc.get("seed") == 1234, "the saved panel", host=obs)
        assert osc.get("prompt") == "from the saved scene"
        assert relay.sent("/sd/preset") == [], "the '(none)' label must never go out as a preset"
        assert obs.do("settings")["preset"] == ""  # cleaned, so it is not saved again
        props = obs.do("properties")
        assert props["preset"]["list_type"] == props["OBS_COMBO_TYPE_LIST"]  # stores values, not labels
        assert props["preset"]["items"][0] == ["(none)", ""]

        # -- a changed setting arrives once; the seed waits for typing to pause -----------------------
        # First the daemon's first answer, which gets the whole panel once more: after it, a change
        # made now is the only send of its value.
        obs.wait_log(r"connected to 127\.0\.0\.1:", 60)
        obs.do("update", values={"guidance": 4.5})
        obs.do("update", values={"guidance": 4.5, "delta": 0.5})  # another field: guidance unchanged
        for typed in (1, 12, 123, 4321):  # typing 4321 digit by digit
            obs.do("update", values={"seed": typed})
        wait(lambda: osc.get("seed") == 4321, "the typed seed", host=obs)
        assert osc.get("guidance") == 4.5
        # (the panel goes out on load and again at the daemon's first answer: a send may be lost)
        assert relay.sent("/sd/guidance").count([4.5]) == 1
        assert [s for s in relay.sent("/sd/seed") if s != [1234]] == [[4321]]  # not 1, 12, 123

        # -- another controller's change comes back into the panel ------------------------------------
        osc.set("/sd/guidance", 5.5)
        wait(lambda: obs.do("settings")["guidance"] == 5.5, "the echo in the panel", host=obs)

        # -- choosing a preset: the daemon loads it, and the panel shows what it set ------------------
        obs.do("update", values={"preset": PRESET})
        wait(lambda: osc.get("guidance") == 7.5, "the preset in the daemon", host=obs)
        shown = wait(
            lambda: (s := obs.do("settings"))["prompt"] == "from the preset" and s,
            "the preset's values in the panel",
            host=obs,
        )
        assert (shown["guidance"], shown["seed"]) == (7.5, 99)
        assert relay.sent("/sd/preset") == [[PRESET]]

        # -- Reload with a preset chosen: the panel goes out, the preset doesn't override it -----------
        obs.do("update", values={"guidance": 2.0})
        wait(lambda: osc.get("guidance") == 2.0, "guidance 2.0", host=obs)
        mark = len(obs.log())
        obs.do("reload")
        obs.wait_log(r"Loaded python script: sd_bridge_obs\.py", 30, mark)
        obs.do("update", values={"negative_prompt": "after the reload"})
        wait(lambda: osc.get("negative_prompt") == "after the reload", "a change after the reload", host=obs)
        assert osc.get("guidance") == 2.0 and relay.sent("/sd/preset") == [[PRESET]]

        # -- Start while a daemon answers on the port: refused, nothing started -----------------------
        mark = len(obs.log())
        obs.do("click", button="start")
        obs.wait_log(r"already answers on 127\.0\.0\.1:\d+: not starting another", 10, mark)
        assert "started sd-bridge" not in obs.log()[mark:]

        # -- typing a port: one new target, once typing pauses ----------------------------------------
        mark = len(obs.log())
        for typed in ("1", "17", "177"):
            obs.do("update", values={"port": int(typed)})
        obs.do("update", values={"port": own_port})
        obs.wait_log(rf"now sending to 127\.0\.0\.1:{own_port}\b", 10, mark)
        assert re.findall(r"now sending to \S+", obs.log()[mark:]) == [f"now sending to 127.0.0.1:{own_port}"]

        # -- Start: a daemon on the free port, from a path with a space; it gets the panel -----------
        mark = len(obs.log())
        obs.do("click", button="start")
        pid = started_pid(obs, mark)
        mine = Osc(own_port)
        try:
            wait(lambda: mine.get("guidance") == 2.0, "the panel in the started daemon", 120, obs)
            assert mine.get("negative_prompt") == "after the reload"
            mark = len(obs.log())
            obs.do("click", button="start")
            obs.wait_log(rf"already running \(pid {pid}\)", 10, mark)

            # -- a Reload and a collection switch keep the daemon, and the script still knows it -----
            for step in ({"op": "reload"}, {"op": "collection", "name": "Other"}):
                mark = len(obs.log())
                obs.do(**step)
                time.sleep(0.5)  # a stop would have been sent by now (script_unload is synchronous)
                assert alive(pid), f"{step} stopped the daemon"
            obs.do("collection", name="Show")
            obs.wait_log(rf"still tracking the sd-bridge started from here \(pid {pid}\)", 20, mark)
            mark = len(obs.log())
            obs.do("click", button="start")
            obs.wait_log(rf"already running \(pid {pid}\)", 10, mark)

            # -- Stop: a clean shutdown (the daemon's own "stopped:" line), noticed and reaped --------
            mark = len(obs.log())
            obs.do("click", button="stop")
            obs.wait_log(rf"sd-bridge stopped \(pid {pid}, exit code 0\)", 30, mark)
            assert not alive(pid)
            daemon_log = Path(obs.wait_log(r"its log: (\S+\.log)", 1).group(1)).read_text(errors="replace")
            assert "/sd/quit from 127.0.0.1: stopping" in daemon_log, daemon_log[-2000:]  # asked, not killed
            assert "stopped:" in daemon_log, daemon_log[-2000:]
        finally:
            mine.close()

        # -- a daemon that fails at start: its exit and its error show in the log, no zombie ----------
        obs.do("update", values={"extra": "--engine passthrough --sink null --source nope:x --quiet"})
        mark = len(obs.log())
        obs.do("click", button="start")
        bad = started_pid(obs, mark)
        failed = obs.wait_log(rf"sd-bridge exited \(pid {bad}, exit code 1\): (.+)", 120, mark)
        assert "nope" in failed.group(1), failed.group(0)
        assert not alive(bad)

        # -- a host name is looked up off OBS's threads, once per change, not per send ----------------
        obs.do("update", values={"host": "localhost", "guidance": 2.5})
        obs.wait_log(rf"now sending to localhost:{own_port}", 10, mark)
        obs.do("update", values={"guidance": 2.75})
        obs.do("update", values={"guidance": 3.0})
        lookups = [name for name in obs.do("lookups") if name[1] == "localhost"]
        assert lookups and all(thread == "sd-bridge-resolve" for thread, _ in lookups), lookups
        assert len(lookups) <= 2, lookups

        # -- OBS closes: its daemon is stopped, the collection is saved without "(none)" -------------
        obs.do("update", values={"host": "127.0.0.1", "extra": "--engine passthrough --sink null --quiet"})
        mark = len(obs.log())
        obs.do("click", button="start")
        last = started_pid(obs, mark)
        assert obs.close() == 0
        wait(lambda: not alive(last), "the daemon to stop with OBS", 60)
        log = obs.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:4000]
    assert alive(rig["manual"].pid), "the hand-started daemon must be left alone"
    scripts = ObsHost(tmp_path / "obs", collections).saved_collection("Show")["modules"]["scripts-tool"]
    mine = next(s for s in scripts if s["path"].endswith("sd_bridge_obs.py"))
    assert mine["settings"].get("preset", "") in ("", PRESET)
