"""Losing a real source never stalls the output: the X server behind a `screen` source goes away
and comes back (NDI's sender loss is in test_ndi.py)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from conftest import need_xvfb, start_xvfb
from daemon_helpers import ListSink, wait_for

from bridge.runtime import PassthroughEngine, Runtime, RuntimeOptions
from bridge.sources import open_source
from engine import EngineConfig


def _rate(sink: ListSink, seconds: float) -> float:
    n, t = len(sink.frames), time.monotonic()
    time.sleep(seconds)
    return (len(sink.frames) - n) / (time.monotonic() - t)


def test_losing_the_screen_keeps_the_output_going(monkeypatch, caplog) -> None:  # noqa: ANN001
    need_xvfb()
    started = start_xvfb()
    assert started is not None, "Xvfb did not start"
    proc, display = started
    monkeypatch.setenv("DISPLAY", display)
    sink = ListSink()
    rt = Runtime(
        open_source("screen:0,0,64,64", fps=30.0),
        [sink],
        PassthroughEngine(64, 64),
        EngineConfig(width=64, height=64),
        options=RuntimeOptions(fps=30.0, retry_s=0.2),
    )
    caplog.set_level(logging.INFO, logger="sd-bridge")
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 10, 20.0), rt.stats()
        normal = _rate(sink, 2.0)
        proc.terminate()  # the display goes away (a clean exit frees its number for the restart)
        proc.wait(5)
        gap = _rate(sink, 3.0)
        down, status = rt.stats(), rt.status_line()
        proc, _ = start_xvfb(display)  # type: ignore[misc]
        assert wait_for(lambda: not rt.stats()["source_down"], 20.0), rt.stats()["source"]
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 5)
    finally:
        rt.stop()
        proc.terminate()
        proc.wait(5)
    assert gap >= 0.9 * normal, f"{gap:.1f} fps with the display gone, {normal:.1f} before"
    assert down["source_down"] and down["faults"]["source"] >= 1 and "[source down" in status
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "source screen:0,0,64,64: screen grab failed (AssertionError)" in logged
    assert "source screen:0,0,64,64 is back" in logged
    assert all(np.array_equal(f, sink.frames[-1]) for f in sink.frames[-3:])  # a still screen
    assert os.environ["DISPLAY"] == display
    print(f"screen loss: {normal:.1f} fps before, {gap:.1f} fps with the display gone")
