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


def test_latest_slot_accounts_for_every_item_under_a_racing_producer() -> None:
    """A producer thread putting as fast as it can against a consumer taking as fast as it can:
    the consumer sees each item at most once, in order, and every item put was either taken or
    counted as dropped (the slot's empty/full state and its wake-up lock never disagree)."""
    slot: LatestSlot[int] = LatestSlot()
    n = 20000
    taken: list[int] = []

    def consume() -> None:
        while not taken or taken[-1] != n - 1:
            item = slot.get(2.0)
            assert item is not None, "the consumer was not woken by a put"
            taken.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(n):
        slot.put(i)
    consumer.join(10.0)
    assert not consumer.is_alive()
    assert taken == sorted(set(taken)) and taken[-1] == n - 1
    assert len(taken) + slot.dropped == n == slot.put_count
    assert slot.get(0) is None  # empty again: no stray wake-up left behind


def test_latest_slot_times_out_when_nothing_comes() -> None:
    slot: LatestSlot[int] = LatestSlot()
    t0 = time.perf_counter()
    assert slot.get(0.05) is None
    assert time.perf_counter() - t0 >= 0.045
    assert slot.get(0) is None and slot.get(-1) is None  # a zero or negative timeout only looks
    slot.put(7)
    assert slot.get(0) == 7


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
