"""A flood of OSC never starves the frame loop, and still ends on the last value sent (issue 19.6).

A real runtime (pattern source at 20 fps, the tiny random engine, null sink) serves while a
second process offers 20,000 datagrams a second on loopback; the frames it delivers during the
flood are compared with idle windows of the same length just before and after, in the same test
(a ratio, not a time). On a shared 2-core box other load comes in bursts, so a round that misses
is measured again, up to three rounds. The counts (all read, few parsed) do not depend on load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bridge.control import ParamStore
from bridge.control.osc import OscServer
from bridge.runtime import Runtime, RuntimeOptions
from bridge.sinks.null import NullSink
from bridge.sources import open_source
from engine import EngineConfig
from engine.models import load_models
from engine.stream import StreamEngine

from .osc_helpers import Client

RATE = 20_000
WINDOW = 3.0
FPS = 20.0
"""The show's rate: the tiny engine on a shared CPU makes it with room to spare, as a GPU would."""
SENDER = Path(__file__).with_name("osc_flood_sender.py")


def _frames_in(rt: Runtime, seconds: float) -> int:
    start = rt.frames_out
    time.sleep(seconds)
    return rt.frames_out - start


@pytest.fixture
def serving():
    store = ParamStore()
    config = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[35])
    torch.set_num_threads(1)
    engine = StreamEngine(load_models(config), config)
    rt = Runtime(
        open_source("pattern", fps=FPS),
        [NullSink()],
        engine,
        config,
        store=store,
        options=RuntimeOptions(fps=FPS),
    )
    osc = OscServer(store, port=0)
    rt.start()
    osc.start()
    try:
        yield rt, osc, store
    finally:
        osc.stop()
        rt.stop()


@dataclass
class Round:
    """Frames delivered in an idle window, a flooded one and another idle one, and the flood."""

    before: int
    flooded: int
    after: int
    offered: float
    """Datagrams a second the sender really offered."""

    @property
    def ratio(self) -> float:
        return self.flooded / ((self.before + self.after) / 2)  # idle on both sides: load drift cancels


def _flood_round(rt: Runtime, osc: OscServer) -> Round:
    before = _frames_in(rt, WINDOW)
    host, port = osc.address
    sender = subprocess.Popen(
        [sys.executable, str(SENDER), host, str(port), str(RATE), str(WINDOW + 0.5)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sender.stdout is not None and sender.stdout.readline().strip() == "flooding"
        time.sleep(0.2)
        flooded = _frames_in(rt, WINDOW)
        out, _ = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
    report = json.loads(out.strip().splitlines()[-1])
    return Round(before, flooded, _frames_in(rt, WINDOW), report["sent"] / report["seconds"])


def test_20000_messages_a_second_keep_the_frame_rate_and_end_on_the_last_values(serving):
    rt, osc, store = serving
    deadline = time.monotonic() + 10
    while rt.frames_out < 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    rounds = [_flood_round(rt, osc)]
    while rounds[-1].ratio < 0.9 and len(rounds) < 3:  # a shared 2-core box has bursts of other load
        rounds.append(_flood_round(rt, osc))
    best = max(rounds, key=lambda r: r.ratio)
    for r in rounds:
        print(
            f"frames idle {r.before}, {r.after}; flooded {r.flooded} ({r.offered:.0f} msg/s): {r.ratio:.3f}"
        )
    received = getattr(osc, "received", 0)
    parsed = osc.accepted + osc.rejected
    print(f"received {received}, parsed {parsed}, coalesced {getattr(osc, 'coalesced', 0)}")
    assert best.before >= WINDOW * FPS * 0.5, (
        f"the runtime is not serving ({best.before} frames in {WINDOW}s)"
    )
    assert best.offered >= RATE * 0.8, f"the sender offered only {best.offered:.0f} msg/s"
    assert best.ratio >= 0.9, rounds
    assert received >= len(rounds) * RATE * WINDOW * 0.8  # read, so none of it waits in the kernel
    assert parsed <= received * 0.25  # most of a flood is replaced by newer values before parsing
    c = Client(osc.address)  # everything before this round trip has been applied
    c.sync()
    c.close()
    values = store.snapshot()
    assert values["guidance"] == 7.25 and values["delta"] == 0.5 and values["seed"] == 4242
    assert values["region.1.rect"] == [0.125, 0.25, 0.5, 0.75]
    assert values["filter.threshold"] == 0.875 and values["strength"] == 0.625
    assert values["prompt"] == "the last prompt" and values["transition"] == 2.5
