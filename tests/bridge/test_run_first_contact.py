"""What a new user meets first with `sd-bridge run`: OSCQuery served, a taken port refused, signals
obeyed at once (also while loading), `--version`, and a status that never looks dead or wrong."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from daemon_process import Daemon, free_port_pair, offline_env
from typer.testing import CliRunner

from bridge.cli import app
from bridge.cli.run import StopRequested, StopSignals
from bridge.runtime.stats import RollingStats

PASSTHROUGH = ["--engine", "passthrough", "--width", "64", "--height", "64", "--sink", "null"]


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return json.loads(reply.read())


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=cwd,
        env=offline_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_version_prints_without_a_command() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sd-bridge 0.")


def test_run_serves_oscquery_with_live_values(tmp_path: Path) -> None:
    from pythonosc.udp_client import SimpleUDPClient

    with Daemon(PASSTHROUGH, tmp_path) as d:
        info = _get(d.query_port, "/?HOST_INFO")
        assert info["OSC_PORT"] == d.osc_port and info["OSC_IP"] == "127.0.0.1", info
        tree = _get(d.query_port, "/")
        assert "sd" in tree["CONTENTS"], tree
        SimpleUDPClient("127.0.0.1", d.osc_port).send_message("/sd/seed", 4242)
        deadline = time.monotonic() + 10
        value = None
        while time.monotonic() < deadline:
            value = _get(d.query_port, "/sd/seed?VALUE")["VALUE"]
            if value == [4242]:
                break
            time.sleep(0.05)
        assert value == [4242], d.output()


def test_a_taken_osc_port_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    port = free_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other_program:
        other_program.bind(("127.0.0.1", port))
        r = _run(["run", *PASSTHROUGH, "--frames", "5", "--osc-port", str(port)], tmp_path)
        assert r.returncode == 1, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if "is taken" in ln]
        assert len(errors) == 1 and f"port {port}" in errors[0] and "--osc-port" in errors[0], r.stderr
        assert "Traceback" not in r.stderr and "running:" not in r.stderr
        optional = ["run", *PASSTHROUGH, "--frames", "5", "--osc-port", str(port), "--osc-optional"]
        r = _run(optional, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "running without OSC" in r.stderr and "stopped: 5 frames out" in r.stderr


def test_a_taken_oscquery_port_is_refused_too(tmp_path: Path) -> None:
    port = free_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other_program:
        other_program.bind(("127.0.0.1", port + 1))
        other_program.listen()
        r = _run(["run", *PASSTHROUGH, "--frames", "5", "--osc-port", str(port)], tmp_path)
        assert r.returncode == 1, r.stderr
        assert f"OSCQuery port {port + 1}" in r.stderr and "--osc-query-port" in r.stderr, r.stderr
        r = _run(
            ["run", *PASSTHROUGH, "--frames", "5", "--osc-port", str(port), "--osc-query-port", "0"], tmp_path
        )
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_signal_while_the_model_loads_exits_with_a_message(tmp_path: Path, sig: int, code: int) -> None:
    args = ["--model", "random:sd-turbo", "--sink", "null", "--width", "512", "--height", "512"]
    with Daemon(args, tmp_path, ready="loading random:sd-turbo") as d:
        assert d.stop(sig) == code, d.output()
    assert "before the daemon was running" in d.output() and "Traceback" not in d.output(), d.output()


class _SignalInADel:
    """Raises the signal from a __del__, where Python ignores any exception (importlib's module-lock
    weakref callbacks are the real place a Ctrl-C during a model load lands and is dropped)."""

    def __init__(self, sig: int) -> None:
        self.sig = sig

    def __del__(self) -> None:
        signal.raise_signal(self.sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_python_drops_while_loading_is_delivered_again(
    sig: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_value))
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signals = StopSignals()
    started = time.monotonic()
    with pytest.raises(StopRequested), signals:
        _SignalInADel(sig)  # dropped at once: the first StopRequested is ignored
        assert [type(e) for e in dropped] == [StopRequested]
        while time.monotonic() - started < 5:  # the model load going on
            sum(range(1000))
    took = time.monotonic() - started
    assert signals.received == sig and took < 1.0, f"stopped after {took:.2f} s"
    time.sleep(3 * StopSignals.REDELIVER_S)  # and nothing is delivered once `run` has left
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # restored


def test_a_signal_seen_after_the_load_is_not_delivered_again() -> None:
    signals = StopSignals()
    with pytest.raises(StopRequested), signals:
        signal.raise_signal(signal.SIGTERM)
    signals2 = StopSignals()  # a signal once running only sets the stop event
    signals2.stop = threading.Event()
    with signals2:
        signals2.starting = False
        signal.raise_signal(signal.SIGTERM)
        time.sleep(3 * StopSignals.REDELIVER_S)
    assert signals2.stop.is_set() and signals2.received == signal.SIGTERM


def test_sigterm_does_not_wait_for_a_slow_engine_call(tmp_path: Path) -> None:
    """random:sd-turbo on a CPU takes a second or more a frame: stopping must not wait for the call
    in flight. Compared with the time one frame takes, measured in the same run (no fixed threshold)."""
    args = ["--model", "random:sd-turbo", "--sink", "null", "--width", "256", "--height", "256"]
    with Daemon(args, tmp_path, ready="first frame out") as d:
        assert d.wait_for_line("first frame out", 10)
        started = time.monotonic()
        time.sleep(0.2)  # an engine call is in flight now: frames are back to back
        t0 = time.monotonic()
        code = d.stop(signal.SIGTERM)
        took = time.monotonic() - t0
    first = next(ln for ln in d.lines if "first frame out" in ln)
    print(f"SIGTERM to exit {took:.2f} s; {first.strip()}; waited {t0 - started:.2f} s")
    assert code == 0 and "stopped:" in d.output(), d.output()
    frame_ms = float(first.split("first frame out, ")[1].split(" ms")[0])
    assert took < frame_ms / 1000, f"exit took {took:.2f} s, one frame {frame_ms:.0f} ms"


def test_fps_shows_a_slow_engines_true_rate() -> None:
    stats = RollingStats()
    stats.mark_start(0.0)
    for i in range(1, 11):  # one frame every 2 s: an older 2 s window saw 0 or 1 frame, "0.0 fps"
        stats.frame_out(2.0 * i)
    assert stats.fps(now=21.0) == pytest.approx(0.5, rel=0.2)
    assert stats.fps(now=40.0) < 0.3  # then a stall shows as a falling rate


def test_fps_in_the_first_second_is_not_a_burst_rate() -> None:
    stats = RollingStats()
    stats.mark_start(0.0)
    for i in range(6):  # a stream batch filling up: six frames within 30 ms, half a second in
        stats.frame_out(0.5 + i * 0.005)
    assert stats.fps(now=0.6) < 12  # 6 frames in 0.6 s, not the 200 fps of their spacing
    for i in range(60):  # then a steady 30 fps
        stats.frame_out(1.0 + i / 30)
    assert stats.fps(now=3.0) == pytest.approx(30, rel=0.1)


def test_status_line_says_the_first_frame_is_being_computed() -> None:
    from daemon_helpers import ListSink

    from bridge.runtime import PassthroughEngine, Runtime
    from bridge.sources.pattern import PatternSource
    from engine.config import EngineConfig

    config = EngineConfig(model="passthrough", width=64, height=64)
    runtime = Runtime(PatternSource(fps=30), [ListSink()], PassthroughEngine(64, 64), config)
    assert "computing the first frame" in runtime.status_line()
    assert "fps" not in runtime.status_line()


def test_stopping_closes_the_sinks_without_waiting_for_the_engine_call() -> None:
    """The engine call in flight is not awaited: the sinks are closed (files finalised) while it still
    runs. No clock: the engine blocks until the test lets it go, after stop() has returned."""
    import threading

    from daemon_helpers import InvertEngine, ListSink, wait_for

    from bridge.runtime import Runtime
    from bridge.sources.pattern import PatternSource
    from engine.config import EngineConfig

    release, inside = threading.Event(), threading.Event()

    class BlockingEngine(InvertEngine):
        def __call__(self, frames=None):
            if self.calls >= 2:
                inside.set()
                release.wait(30)
            return super().__call__(frames)

    class ClosingSink(ListSink):
        closed = False

        def close(self) -> None:
            self.closed = True

    sink = ClosingSink()
    config = EngineConfig(model="passthrough", width=64, height=64)
    runtime = Runtime(PatternSource(fps=60), [sink], BlockingEngine(64, 64), config)
    runtime.start()
    try:
        assert wait_for(inside.is_set, 30), "the engine was never called twice"
        runtime.stop(timeout=10.0, engine_timeout=0.05)
        assert sink.closed and not release.is_set()
    finally:
        release.set()


def test_a_missing_video_file_fails_at_start_in_one_line(tmp_path: Path) -> None:
    """Before the model loads (the default model is not cached here, so its error would come next)."""
    r = _run(["run", "--source", "file:/nonexistent.mp4", "--osc-port", "0", "--frames", "3"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "sd-bridge: file:/nonexistent.mp4: no such file (/nonexistent.mp4)"
    ]


def test_the_test_cards_frame_number_is_white_on_black() -> None:
    from bridge.sources.pattern import PatternSource

    source = PatternSource()
    source.open(512, 288)
    img = source.read()
    corner = img[-40:, :60]  # the label's box, over the dark end of the grey ramp
    white = (corner.min(axis=2) > 200).sum()
    black = (corner.max(axis=2) < 30).sum()
    assert white > 20 and black > white, (white, black)


def test_the_masks_the_docs_name_are_shipped() -> None:
    from bridge.masks import MaskLibrary
    from bridge.presets import presets_dir

    library = MaskLibrary(presets_dir() / "masks")
    for name in ("left.png", "bottom.png"):
        mask = library.load(name)
        assert mask.min() == 0 and mask.max() > 0, name


def test_ctrl_c_while_running_exits_130_after_closing_the_sinks(tmp_path: Path) -> None:
    import cv2

    out = tmp_path / "rec.avi"
    args = ["--engine", "passthrough", "--width", "64", "--height", "64", "--sink", f"file:{out}"]
    with Daemon(args, tmp_path, ready="first frame out") as d:
        assert d.stop(signal.SIGINT) == 130, d.output()
    assert "stopped:" in d.output() and "Traceback" not in d.output()
    ok, img = cv2.VideoCapture(str(out)).read()  # the recording was closed properly: it decodes
    assert ok and img.shape == (64, 64, 3)
