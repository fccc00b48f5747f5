from __future__ import annotations

import threading
import time

from bridge.runtime.slot import LatestSlot
from bridge.runtime.stats import RollingStats


def test_latest_slot_keeps_the_newest_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.get(0.01) == 4
    assert slot.dropped == 4
    assert slot.get(0.01) is None


def test_latest_slot_wakes_a_waiting_consumer() -> None:
    slot: LatestSlot[str] = LatestSlot()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(slot.get(5.0)))
    t.start()
    slot.put("x")
    t.join(5.0)
    assert got == ["x"] and slot.dropped == 0


def test_rolling_stats_percentiles_and_fps() -> None:
    s = RollingStats(window=100)
    for ms in range(1, 101):
        s.add("e2e", ms / 1000)
    p = s.percentiles()["e2e"]
    assert 49 <= p["p50"] <= 52 and 94 <= p["p95"] <= 96 and 98 <= p["p99"] <= 100
    assert s.percentiles()["engine"] == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    now = time.perf_counter()
    for i in range(11):
        s.frame_out(now - 1.0 + i * 0.1)
    assert 9.0 < s.fps() < 11.0


def test_rolling_stats_quantiles_equal_numpy_percentile() -> None:
    """The status line's cheap quantiles (plain Python) are the numbers `percentiles()` reports."""
    import numpy as np

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 100, 513):
        s = RollingStats(window=1000)
        values = rng.exponential(0.02, n)
        for v in values:
            s.add("e2e", float(v))
        got = s.quantiles("e2e", (0.0, 0.5, 0.95, 0.99, 1.0))
        want = np.percentile(np.array(list(s._lat["e2e"])), [0, 50, 95, 99, 100])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        assert round(got[1], 2) == s.percentiles()["e2e"]["p50"]
    assert RollingStats().quantiles("engine", (0.5, 0.95)) == [0.0, 0.0]
