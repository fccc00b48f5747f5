"""`sd-bridge run` and `sd-bridge doctor` as a user runs them (real subprocesses, real sockets)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
from typer.testing import CliRunner

from bridge.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),  # an empty cache: nothing is cached, nothing downloads
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def _bridge(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge", *args]


def test_sigterm_stops_a_running_daemon_within_about_a_second(tmp_path: Path) -> None:
    out = tmp_path / "rec.avi"  # MJPG in AVI grows as frames are written
    cmd = _bridge(
        "run", "--engine", "passthrough", "--width", "64", "--height", "64", "--sink", f"file:{out}"
    )
    proc = subprocess.Popen(
        cmd + ["--osc-port", "0"], cwd=tmp_path, env=_env(tmp_path), stderr=subprocess.PIPE, text=True
    )
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # readline returns "" at EOF, so this cannot hang
            line = proc.stderr.readline()
            lines.append(line)
            if "first frame out" in line or not line:
                break
        assert any("running:" in ln for ln in lines) and "first frame out" in lines[-1], "".join(lines)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"SIGTERM to exit: {took:.2f} s")
    assert proc.returncode == 0, rest
    assert took < 1.5, f"took {took:.2f} s to stop"
    assert "stopped:" in rest and "Traceback" not in rest
    cap = cv2.VideoCapture(str(out))  # the file was closed properly: it decodes
    ok, img = cap.read()
    assert ok and img.shape == (64, 64, 3)


def test_missing_default_model_offline_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        _bridge("run", "--osc-port", "0", "--frames", "3"),
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if "not available" in ln]
    assert len(errors) == 1, r.stderr
    assert "stabilityai/sd-turbo" in errors[0] and "sd-bridge run --model random:sd-turbo" in errors[0]
    assert "Traceback" not in r.stderr


def test_fallback_passthrough_keeps_serving(tmp_path: Path) -> None:
    r = subprocess.run(
        _bridge(
            "run",
            "--model",
            "someone/missing-model",
            "--fallback-passthrough",
            "--width",
            "64",
            "--height",
            "64",
        )
        + ["--sink", "null", "--frames", "10", "--osc-port", "0"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "running passthrough" in r.stderr and "stopped: 10 frames out" in r.stderr


def test_bad_input_is_one_line(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    runner = CliRunner()
    for args, expected in [
        (["run", "--source", "webcam"], "key 'source' expects a source spec"),
        (["run", "--sink", "tv", "--engine", "passthrough"], "'tv' is not one"),
        (["run", "--sink", "file:x.gif", "--engine", "passthrough"], "cannot record .gif; use .mp4, .mov"),
        (["run", "--width", "100"], "command line: key 'width' expects"),
        (["run", "--preset", "../../etc/passwd"], "passwd"),
        (["run", "--preset", "no-such-preset"], "not found"),
        (["run", "--engine", "passthrough", "--source", "screen"], "needs a display"),
        (["run", "--engine", "passthrough", "--source", "spout:TD"], "Spout exists only on Windows"),
        (["run", "--engine", "passthrough", "--sink", "spout:out"], "Spout exists only on Windows"),
        (["run", "--engine", "passthrough", "--sink", "vcam"], "vcam"),
    ]:
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="sd-bridge"):
            res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert isinstance(res.exception, SystemExit)  # an orderly exit, not a crash
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and expected in errors[0] and "\n" not in errors[0], (args, errors)


def test_doctor_reports_each_part_and_a_taken_osc_port() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        res = CliRunner().invoke(app, ["doctor", "--osc-port", str(port), "--model", "random:sd-turbo"])
    finally:
        sock.close()
    out = res.output
    for name in (
        "python",
        "torch",
        "cuda",
        "tensorrt",
        "screen",
        "spout",
        "ndi",
        "opencv",
        "vcam",
        "window",
        "file",
    ):
        assert any(line.split()[1:2] == [name] for line in out.splitlines()), (name, out)
    osc = next(line for line in out.splitlines() if line.split()[1:2] == ["osc"])
    assert osc.startswith("FAIL") and f"UDP port {port} is taken" in osc and "--osc-port" in osc
    assert res.exit_code == 1  # a red line makes doctor fail


def test_seconds_limit_and_a_preset_file(tmp_path: Path) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_text('engine = "passthrough"\nwidth = 64\nheight = 64\nsinks = ["null"]\nosc_port = 0\n')
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["run", "--preset", str(preset), "--seconds", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert 0.9 <= time.monotonic() - t0 < 30
