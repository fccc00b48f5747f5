"""Replies, echoes and the stats push, over real UDP."""

from __future__ import annotations

import pytest

from bridge.control import PARAMS, ParamStore
from bridge.control.osc import OscServer
from bridge.control.osc_map import ROUTES, encode
from bridge.control.store import Failure

from .osc_helpers import Client, wait_until


def test_status_replies_with_runtime_stats(server, client):
    fps, p50, p95, skip, dropped, source_down = client.sync()
    assert (fps, p50, p95, skip, dropped, source_down) == pytest.approx((29.5, 41.0, 55.5, 0.25, 3, 0))
    assert isinstance(dropped, int)


ZEROS = [0.0, 0.0, 0.0, 0.0, 0, 0]


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (None, ZEROS),
        (lambda: {}, ZEROS),
        (lambda: {"fps": "fast", "latency": {"p50": 12.0}, "dropped_frames": 2}, [0.0, 12.0, 0.0, 0.0, 2, 0]),
        (lambda: {"fps": float("nan"), "skip_rate": True}, ZEROS),
        (lambda: 1 / 0, ZEROS),
    ],
    ids=["no-stats", "empty", "odd-keys", "nan-and-bool", "raises"],
)
def test_status_tolerates_missing_or_broken_stats(store, stats, expected):
    with OscServer(store, port=0, stats=stats) as srv:
        c = Client(srv.address)
        try:
            assert c.sync() == expected
            assert len(c.sync()) == 6  # still answering
        finally:
            c.close()


def test_status_reads_nested_latency_and_aliases(store):
    stats = {"fps": 10, "latency": {"p50": 12.5, "p95": 20.0}, "dropped_frames": 2, "skip_rate": 0.5}
    with OscServer(store, port=0, stats=lambda: stats) as srv:
        c = Client(srv.address)
        assert c.sync() == pytest.approx([10.0, 12.5, 20.0, 0.5, 2, 0])
        c.close()


def test_get_replies_with_current_value(server, client, store):
    store.set("guidance", 5.0)
    client.send("/sd/get", "/sd/guidance")
    assert client.wait_for("/sd/guidance") == pytest.approx([5.0])
    client.send("/sd/get", "/sd/guidance/norm")
    assert client.wait_for("/sd/guidance/norm") == pytest.approx([0.25])
    client.send("/sd/get", "filter.threshold")
    assert client.wait_for("/sd/filter/threshold") == pytest.approx([0.98])
    client.send("/sd/get", "/sd/resolution")
    assert client.wait_for("/sd/resolution") == [512, 512]
    client.send("/sd/get", "/sd/nope")
    assert "/sd/nope" in client.wait_for("/sd/error")[0]


def test_get_without_argument_replies_with_every_address(server, client, store):
    client.send("/sd/get")
    for p in PARAMS:
        args = client.wait_for(p.address)
        expected = encode(p, store.get(p.name))
        assert len(args) == len(expected), p.address
        for got, want in zip(args, expected, strict=True):
            assert got == (pytest.approx(want) if isinstance(want, float) else want), p.address
    assert all(client.wait_for(a) is not None for a, r in ROUTES.items() if r.norm)


def test_echo_reaches_every_client_the_sender_too(server, make_client, store):
    a, b = make_client(), make_client()
    b.sync()  # b has talked to us: it is on the echo list
    a.send("/sd/guidance", 5.0)
    assert b.wait_for("/sd/guidance") == pytest.approx([5.0])
    assert b.wait_for("/sd/guidance/norm") == pytest.approx([0.25])
    a.send("/sd/prompt", "forest at dawn")
    assert b.wait_for("/sd/prompt") == ["forest at dawn"]
    b.send("/sd/seed", 99)
    assert a.wait_for("/sd/seed") == [99]
    # "every accepted change is echoed to all clients": the one that made it hears it back as well
    assert a.wait_for("/sd/guidance") == pytest.approx([5.0])
    assert a.wait_for("/sd/prompt") == ["forest at dawn"]
    assert b.wait_for("/sd/seed") == [99]


def test_clamped_value_is_echoed_to_the_sender_too(server, make_client, store):
    a, b = make_client(), make_client()
    b.sync()
    a.send("/sd/guidance", 99.0)
    assert a.wait_for("/sd/guidance") == pytest.approx([20.0])
    assert b.wait_for("/sd/guidance") == pytest.approx([20.0])


def test_changes_from_elsewhere_reach_every_client(server, make_client, store):
    a, b = make_client(), make_client()
    a.sync()
    b.sync()
    store.set("delta", 0.4, origin="preset")
    assert a.wait_for("/sd/delta") == pytest.approx([0.4])
    assert b.wait_for("/sd/delta") == pytest.approx([0.4])


def test_a_failure_the_daemon_undoes_is_explained_to_every_client(server, make_client, store):
    a, b = make_client(), make_client()
    a.sync()
    b.sync()
    store.set("seed", 7, origin=Failure("rebuild failed: out of memory; the current engine keeps serving"))
    for c in (a, b):
        assert c.wait_for("/sd/error") == ["rebuild failed: out of memory; the current engine keeps serving"]
        assert c.wait_for("/sd/seed") == [7]


def test_subscribe_pushes_stats_until_unsubscribed(server, client):
    client.send("/sd/subscribe", 20.0)
    for _ in range(2):  # at least two pushes
        assert client.wait_for("/sd/stats/fps") == pytest.approx([29.5])
        assert client.wait_for("/sd/stats/latency/p50") == pytest.approx([41.0])
        assert client.wait_for("/sd/stats/latency/p95") == pytest.approx([55.5])
        assert client.wait_for("/sd/stats/latency/p99") == pytest.approx([80.0])
        assert client.wait_for("/sd/stats/skip_rate") == pytest.approx([0.25])
        assert client.wait_for("/sd/stats/dropped") == [3]
    assert server.subscribers() == [("127.0.0.1", client.port)]
    client.send("/sd/unsubscribe")
    assert wait_until(lambda: server.subscribers() == [])
    client.send("/sd/subscribe", 1000.0)
    assert "/sd/subscribe expects" in client.wait_for("/sd/error")[0]
    assert server.subscribers() == []


def test_replies_go_to_the_reply_port_when_set(store):
    listener = Client(("127.0.0.1", 9))
    with OscServer(store, port=0, reply_port=listener.port) as srv:
        sender = Client(srv.address)
        sender.send("/sd/status")
        assert listener.wait_for("/sd/status") == pytest.approx([0.0, 0.0, 0.0, 0.0, 0, 0])
        sender.send("/sd/guidance", "loud")
        assert "/sd/guidance" in listener.wait_for("/sd/error")[0]
        assert srv.clients() == [("127.0.0.1", listener.port)]
        sender.close()
    listener.close()


def test_server_counts_and_runs_in_its_own_threads(store):
    srv = OscServer(store, port=0)
    srv.start()  # returns at once
    c = Client(srv.address)
    c.send("/sd/guidance", 2.0)
    c.send("/sd/guidance", "x")
    c.sync()
    assert (srv.accepted, srv.rejected, srv.dropped_not_allowed) == (2, 1, 0)
    srv.stop()
    c.close()
    assert not any(t.is_alive() for t in srv._threads)
    # and it can serve again, on a fresh free port
    with OscServer(ParamStore(), port=0) as again:
        c2 = Client(again.address)
        assert len(c2.sync()) == 6
        c2.close()


def test_busy_port_is_a_clear_error(server, store):
    with pytest.raises(OSError, match=r"cannot listen for OSC on 127\.0\.0\.1:\d+"):
        OscServer(store, port=server.address[1]).start()
