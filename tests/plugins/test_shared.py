"""plugins/shared.py, the code both plugins carry (generated into each): real processes, sockets, files."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest
from plugin_fakes import ROOT, fake_obspython, load_module, wait_for

from plugins import generate, shared

sys.modules.setdefault("obspython", fake_obspython())


@pytest.mark.parametrize("relpath", ["plugins/obs/sd_bridge_obs.py", "plugins/touchdesigner/SdBridgeExt.py"])
def test_each_plugin_carries_the_shared_code_verbatim(relpath):
    text = (ROOT / relpath).read_text(encoding="utf-8")
    start = text.index(generate.SHARED_BEGIN) + len(generate.SHARED_BEGIN)
    copy = text[start : text.index(generate.SHARED_END)].strip("\n")
    assert copy == generate.shared_code()
    module = load_module(relpath, "shared_copy_" + relpath.replace("/", "_").replace(".", "_"))
    for name in ("split_command", "Daemon", "OwnEchoes", "Resolver", "tracked_daemon", "port_in_use"):
        assert callable(getattr(module, name)), name


def test_an_unquoted_program_path_with_spaces_stays_whole(tmp_path):
    program = tmp_path / "Jane Doe" / "sd-bridge.exe"
    program.parent.mkdir()
    program.write_text("")
    posix = f"{program} run --preset x"
    assert shared.split_command(posix, windows=False) == [str(program), "run", "--preset", "x"]
    windows = f"{str(program)[:-4]} run --source spout:OBS"  # Windows finds the .exe unnamed
    assert shared.split_command(windows, windows=True) == [str(program)[:-4], "run", "--source", "spout:OBS"]
    quoted = f'"{program}" run'
    assert shared.split_command(quoted, windows=True) == [str(program), "run"]
    assert shared.split_command("sd-bridge run --prompt 'a b'", windows=False) == [
        "sd-bridge",
        "run",
        "--prompt",
        "a b",
    ]


def _exit_note(daemon: shared.Daemon) -> str:
    notes: list[str] = []
    assert wait_for(lambda: notes.append(daemon.check() or "") or notes[-1], timeout=10), "no exit noticed"
    return notes[-1]


def test_a_daemon_that_fails_is_noticed_with_its_last_line_and_reaped(tmp_path):
    daemon = shared.Daemon()
    code = "import sys; print('starting'); print('error: no such source', file=sys.stderr); sys.exit(3)"
    assert daemon.start([sys.executable, "-c", code], str(tmp_path / "d.log")).startswith(
        "started sd-bridge (pid "
    )
    proc = daemon.proc
    assert _exit_note(daemon) == f"sd-bridge exited (pid {proc.pid}, exit code 3): error: no such source"
    assert proc.returncode == 3  # poll() collected it: no zombie left behind
    assert daemon.check() is None  # said once


def test_stop_asks_first_and_says_it_stopped(tmp_path):
    daemon = shared.Daemon()
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
        "print('up', flush=True); time.sleep(60)"
    )
    daemon.start([sys.executable, "-c", code], str(tmp_path / "d.log"))
    assert wait_for(lambda: daemon.last_line() == "up", timeout=10)
    assert daemon.stop().startswith("stopping sd-bridge")
    note = _exit_note(daemon)
    assert note.startswith("sd-bridge stopped") and note.endswith("exit code 0)")
    assert shared.Daemon().stop() == "sd-bridge was not started from here"


def test_a_daemon_ignoring_stop_is_killed_after_the_grace_period(tmp_path):
    daemon = shared.Daemon()
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    daemon.start([sys.executable, "-c", code], str(tmp_path / "d.log"))
    assert wait_for(lambda: daemon.last_line() == "up", timeout=10)
    daemon.stop(now=0.0)
    assert daemon.check(now=1.0) is None and daemon.running()  # still in its grace period
    daemon.check(now=shared.STOP_GRACE_S + 1.0)  # past it: killed
    assert wait_for(lambda: not daemon.running(), timeout=10)


def test_port_in_use_sees_a_listening_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        assert shared.port_in_use(port)
    finally:
        sock.close()
    assert not shared.port_in_use(port)
    assert shared.is_local_host("127.0.0.1") and shared.is_local_host("localhost")
    assert not shared.is_local_host("192.168.1.20")


def test_host_names_are_looked_up_once_on_a_thread_of_their_own(monkeypatch):
    seen: list[str] = []
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        seen.append(threading.current_thread().name)
        time.sleep(0.3)  # a slow resolver: the caller must not wait for it
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    resolver = shared.Resolver()
    assert resolver.lookup("10.0.0.7") == "10.0.0.7"  # a literal: no lookup
    assert resolver.lookup("show-pc") is None  # answered at once, looked up behind
    assert resolver.lookup("show-pc") is None  # one lookup, however often asked
    assert wait_for(lambda: resolver.lookup("show-pc") == "127.0.0.1", timeout=5)
    assert seen == ["sd-bridge-resolve"] and resolver.lookups == 1


def test_own_echoes_are_told_from_changes_made_elsewhere():
    own = shared.OwnEchoes(window=1.0)
    own.sent("/sd/guidance", [3.0], now=10.0)
    own.sent("/sd/guidance", [3.1], now=10.1)
    assert own.is_own("/sd/guidance", [3.0000001], now=10.5)  # late echo of our own send
    assert not own.is_own("/sd/guidance", [7.5], now=10.5)  # a preset or another controller
    assert not own.is_own("/sd/guidance", [3.0], now=11.5)  # too old to be an echo


def test_the_tracked_daemon_survives_a_reload_of_the_plugin():
    first = load_module("plugins/obs/sd_bridge_obs.py", "sd_bridge_obs_reload_a")
    again = load_module("plugins/obs/sd_bridge_obs.py", "sd_bridge_obs_reload_b")  # fresh module code
    assert first._daemon is again._daemon
    assert shared.tracked_daemon("touchdesigner:/project1/a") is not shared.tracked_daemon("obs")


def test_quit_stops_a_server_that_has_a_stop_and_is_refused_by_one_without(daemon):
    from bridge.control.osc import OscServer
    from bridge.control.store import ParamStore

    stopped = threading.Event()
    with OscServer(ParamStore(), host="127.0.0.1", port=0, advertise=False, on_quit=stopped.set) as server:
        assert shared.send_quit(server.address[1])
        assert stopped.wait(5)
    _store, plain = daemon  # no on_quit: the message is refused with a reason
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    try:
        client.sendto(shared.QUIT_MESSAGE, plain.address)
        reply = client.recv(65536)
    finally:
        client.close()
    assert reply.startswith(b"/sd/error") and b"cannot stop its daemon" in reply


def test_stop_asks_a_real_daemon_over_osc_first(tmp_path):
    port = _free_udp_port()
    cmd = [
        sys.executable,
        "-m",
        "bridge",
        "run",
        "--engine",
        "passthrough",
        "--sink",
        "null",
        "--osc-port",
        str(port),
    ]
    daemon = shared.Daemon()
    daemon.start(cmd, str(tmp_path / "d.log"), port)
    assert wait_for(lambda: "OSC listening" in (tmp_path / "d.log").read_text(errors="replace"), timeout=120)
    assert daemon.stop().startswith("stopping")
    assert not daemon.signalled  # asked over OSC, no signal yet
    note = _exit_note(daemon)
    assert note.endswith("exit code 0)"), note
    log = (tmp_path / "d.log").read_text(errors="replace")
    assert "/sd/quit from 127.0.0.1: stopping" in log and "stopped:" in log
    assert not daemon.signalled  # the daemon stopped on /sd/quit alone


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
