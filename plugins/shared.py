"""What the OBS script and the TouchDesigner extension share, written once.

Both plugins are single files their host program loads on its own (OBS from its Scripts window,
TouchDesigner from a Text DAT inside the component), so neither can import this module.
`python -m plugins.generate` copies everything below the SHARED line into each of them, between
their `BEGIN SHARED` / `END SHARED` markers, and tests/plugins/test_drift.py fails when a copy
differs. Standard library only, and no host API: the host glue calls into this.

What lives here is what both hosts got wrong the same way: value typing and echo handling on
the OSC side; a daemon process that logs to a file, whose exit is noticed, that is stopped
cleanly, and that is not started twice on one port; command lines with spaces in their paths;
host names resolved on a thread of their own, never on the host's UI or graphics thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import types

# --- SHARED: everything below is copied into the plugins by `python -m plugins.generate` ---
OWN_ECHO_S = 1.0
"""The daemon echoes every change to every client, the sender too. An echo equal to something
sent in the last this-many seconds is the plugin's own, arriving late: applying it would pull a
control being dragged back to where it was a moment ago."""
QUIT_GRACE_S = 2.0
"""After `/sd/quit`, the daemon gets this long before it is asked again by signal (SIGTERM)."""
STOP_GRACE_S = 5.0
"""After a stop request, the daemon gets this long to shut down before it is killed."""
QUIT_MESSAGE = b"/sd/quit\x00\x00\x00\x00,\x00\x00\x00"
"""`/sd/quit` with no arguments, as OSC bytes."""


def send_quit(port: int) -> bool:
    """Ask the daemon listening on this machine's `port` to stop cleanly (`/sd/quit`, one UDP
    datagram, never a wait). The only clean stop on Windows, where a console-less daemon can't be
    sent Ctrl+C, and the same everywhere so that the path tested on Linux is the one Windows runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(QUIT_MESSAGE, ("127.0.0.1", int(port)))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def osc_args(kind: str, value: object) -> list:
    """The OSC arguments for a parameter value, typed as the daemon expects: floats as f, whole
    numbers as i, toggles as i 0/1 (not OSC's T/F, which some controllers mishandle), text as s."""
    if kind == "float":
        return [float(value)]
    if kind == "int":
        return [int(round(float(value)))]
    if kind == "bool":
        return [1 if value and str(value).lower() not in ("0", "false", "off") else 0]
    if kind == "str":
        return [str(value)]
    raise ValueError(f"unsupported parameter kind {kind!r}")


def same_args(a: list, b: list) -> bool:
    """Equal OSC arguments, numbers compared to float32 precision (what OSC carries back)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if not (math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) if numbers else x == y):
            return False
    return True


class OwnEchoes:
    """Tells the daemon's echo of our own recent sends from a change made elsewhere (a preset,
    another controller, a value the daemon clamped): only the latter should update the panel."""

    def __init__(self, window: float = OWN_ECHO_S) -> None:
        self.window = window
        self.recent: dict[str, list[tuple[float, list]]] = {}

    def sent(self, address: str, args: list, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        kept = [(t, a) for t, a in self.recent.get(address, []) if now - t < self.window]
        self.recent[address] = [*kept, (now, list(args))]

    def is_own(self, address: str, args: list, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return any(now - t < self.window and same_args(a, args) for t, a in self.recent.get(address, []))


def split_command(text: str, windows: bool | None = None, exists=os.path.isfile) -> list[str]:
    """Split a command line the way the platform would, keeping an unquoted program path that has
    spaces in it (`C:\\Users\\Jane Doe\\sd-bridge.exe run`) whole: like Windows' CreateProcess,
    the longest run of leading words that names an existing file is the program."""
    windows = sys.platform.startswith("win") if windows is None else windows
    if windows:
        words = [
            w[1:-1] if len(w) >= 2 and w[0] == w[-1] == '"' else w for w in shlex.split(text, posix=False)
        ]
    else:
        words = shlex.split(text)
    if text.lstrip()[:1] in ("'", '"'):
        return words  # quoted: the user said where the program ends
    raw = text.split()
    for n in range(len(raw), 1, -1):
        program = " ".join(raw[:n])
        if exists(program) or (windows and exists(program + ".exe")):
            rest = " ".join(raw[n:])
            return (
                [program, *split_command(rest, windows=windows, exists=lambda _p: False)]
                if rest
                else [program]
            )
    return words


def is_local_host(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_in_use(port: int) -> bool:
    """Whether a UDP port on this machine is taken (by a daemon listening there, say): a bind
    that fails at once, never a wait."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", int(port)))
        return False
    except OSError:
        return True
    finally:
        probe.close()


class Resolver:
    """Host names resolved once per name, on a thread of their own: a slow resolver must never
    freeze the host's UI or graphics thread (where the plugins' timers run). `lookup` answers at
    once: the address, or None while the lookup is still running (or failed: see `error`)."""

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.pending: set[str] = set()
        self.lookups = 0
        self._lock = threading.Lock()

    def lookup(self, host: str) -> str | None:
        try:
            return str(ipaddress.ip_address(host))  # a literal needs no lookup
        except ValueError:
            pass
        with self._lock:
            if host in self.addresses:
                return self.addresses[host]
            if host in self.pending or host in self.errors:
                return None
            self.pending.add(host)
            self.lookups += 1
        threading.Thread(target=self._resolve, args=(host,), name="sd-bridge-resolve", daemon=True).start()
        return None

    def error(self, host: str) -> str:
        with self._lock:
            return self.errors.get(host, "")

    def forget(self, host: str) -> None:
        """Look `host` up again next time (after a failure, or when the user retypes it)."""
        with self._lock:
            self.addresses.pop(host, None)
            self.errors.pop(host, None)

    def _resolve(self, host: str) -> None:
        try:
            info = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
            address, error = info[0][4][0], ""
        except (OSError, IndexError) as exc:
            address, error = None, f"cannot resolve {host!r}: {exc}"
        with self._lock:
            self.pending.discard(host)
            if address is None:
                self.errors[host] = error
            else:
                self.addresses[host] = address


class Daemon:
    """An sd-bridge process a plugin started: its output goes to a log file (so a failure can be
    read after the window that showed it is gone), its exit is noticed and reported with the last
    line it wrote, and Stop asks it to shut down cleanly before it is killed. Never waits."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.log_path = ""
        self.port = 0
        """The OSC port it was started on (where `/sd/quit` goes)."""
        self.stop_asked_at: float | None = None
        self.signalled = False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, cmd: list[str], log_path: str, port: int = 0) -> str:
        """Start `cmd`, a daemon with OSC on `port` (raises OSError if it can't); returns the line
        to show."""
        self.log_path, self.port = log_path, int(port)
        log = open(log_path, "ab")  # noqa: SIM115 - the child holds it; ours closes below
        try:
            if os.name == "nt":
                # No console window that closes (taking the error with it) as the daemon dies:
                # the log file keeps it.
                flags = subprocess.CREATE_NO_WINDOW
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, creationflags=flags
                )
            else:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        finally:
            log.close()
        self.stop_asked_at, self.signalled = None, False
        return f"started sd-bridge (pid {self.proc.pid}), its log: {log_path}: {' '.join(cmd)}"

    def stop(self, now: float | None = None, closing: bool = False) -> str:
        """Ask the daemon to shut down cleanly: `/sd/quit` on its OSC port; `check` follows up
        with SIGTERM after QUIT_GRACE_S and a kill after STOP_GRACE_S. `closing` (the host is
        quitting, so nothing will follow up): SIGTERM at once too, where it is a clean stop."""
        if not self.running():
            return "sd-bridge was not started from here" if self.proc is None else self.check() or ""
        assert self.proc is not None
        asked = bool(self.port) and send_quit(self.port)
        self.signalled = False
        if not asked or (closing and os.name != "nt"):
            self._signal()
        self.stop_asked_at = time.monotonic() if now is None else now
        return f"stopping sd-bridge (pid {self.proc.pid})"

    def _signal(self) -> None:
        """SIGTERM, which the daemon handles as Ctrl-C (on Windows this is TerminateProcess)."""
        if self.proc is not None and not self.signalled:
            self.signalled = True
            with contextlib.suppress(OSError):
                self.proc.terminate()

    def check(self, now: float | None = None) -> str | None:
        """Once the daemon has exited, the line that says how (once); None while it runs."""
        if self.proc is None:
            return None
        code = self.proc.poll()  # reaps it: no zombie
        if code is None:
            now = time.monotonic() if now is None else now
            if self.stop_asked_at is not None:
                waited = now - self.stop_asked_at
                if waited > STOP_GRACE_S:
                    self.proc.kill()
                elif waited > QUIT_GRACE_S:
                    self._signal()
            return None
        pid, asked, self.proc = self.proc.pid, self.stop_asked_at is not None, None
        if asked and code in (0, -signal.SIGTERM, 130):
            return f"sd-bridge stopped (pid {pid}, exit code {code})"
        last = self.last_line()
        return f"sd-bridge exited (pid {pid}, exit code {code})" + (f": {last}" if last else "")

    def last_line(self) -> str:
        """The last non-empty line of the daemon's log (its error, when it failed)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 4096))
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else ""


def tracked_daemon(key: str) -> Daemon:
    """The Daemon a plugin instance (`key`) started, kept in the Python process across a reload of
    the plugin's code (OBS's Reload, a scene-collection switch, TouchDesigner re-initialising the
    extension), so a reloaded plugin still knows, stops and doesn't duplicate its daemon."""
    registry = sys.modules.get("_sd_bridge_daemons")
    if registry is None:
        registry = sys.modules["_sd_bridge_daemons"] = types.ModuleType("_sd_bridge_daemons")
        registry.daemons = {}  # type: ignore[attr-defined]
    return registry.daemons.setdefault(key, Daemon())  # type: ignore[attr-defined]
