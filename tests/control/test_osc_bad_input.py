"""Bad input of every kind: an /sd/error reply naming the address, a log line, state unchanged."""

from __future__ import annotations

import logging
import math
import random
import struct
import time

import pytest

from bridge.control import ParamError, ParamStore
from bridge.control.osc import MAX_PACKET, OscServer, packet_problem
from bridge.control.osc_map import ROUTES, decode

from .osc_helpers import Client, bundle, message, send_all, wait_until

BAD_MESSAGES = [
    (("/sd/nope", 1.0), "unknown address '/sd/nope'"),
    (("/sd/guidance", "loud"), "/sd/guidance expects a number in [0, 20]"),
    (("/sd/guidance", 1.0, 2.0), "/sd/guidance expects one argument, a number in [0, 20], got 2 arguments"),
    (("/sd/guidance",), "/sd/guidance expects one argument, a number in [0, 20], got no arguments"),
    (("/sd/guidance", math.nan), "/sd/guidance expects"),
    (("/sd/guidance", math.inf), "/sd/guidance expects"),
    (("/sd/guidance/norm", 1.5), "/sd/guidance/norm expects a number in [0, 1]"),
    (("/sd/guidance/norm", "half"), "/sd/guidance/norm expects one number in [0, 1]"),
    (("/sd/seed", -1), "/sd/seed expects an integer in [0, 2147483647]"),
    (("/sd/seed", 7.5), "/sd/seed expects"),
    (("/sd/t_index", 99), "/sd/t_index expects 1 to 16 integers in [0, 49]"),
    (("/sd/t_index", *range(17)), "/sd/t_index expects 1 to 16 integers"),
    (("/sd/resolution", 512), "/sd/resolution expects two integers"),
    (("/sd/resolution", 513, 512), "/sd/resolution expects multiples of 8"),
    (("/sd/prompts", "forest", 0.5, "fire"), "/sd/prompts expects pairs of text and weight"),
    (("/sd/prompts", 0.5, "forest"), "/sd/prompts expects pairs of text and weight"),
    (("/sd/seeds", 1, -0.5), "/sd/seeds expects pairs of seed and weight"),
    (("/sd/prompt", 5), "/sd/prompt expects text"),
    (("/sd/prompt", "x" * 2001), "/sd/prompt expects text (at most 2000 characters)"),
    (("/sd/filter/enabled", 2), "/sd/filter/enabled expects 0 or 1"),
    (("/sd/preset", "../../etc/passwd"), "/sd/preset expects a bare name"),
    (("/sd/preset", "/etc/passwd"), "/sd/preset expects a bare name"),
    (("/sd/preset", "live/set1"), "/sd/preset expects a bare name"),
    (("/sd/preset", "C:\\presets\\evil"), "/sd/preset expects a bare name"),
    (("/sd/preset", ".."), "/sd/preset expects a bare name"),
    (("/sd/get", 5), "/sd/get expects one address"),
]


@pytest.mark.parametrize(("msg", "expected"), BAD_MESSAGES, ids=[m[0][0] for m in BAD_MESSAGES])
def test_bad_message_gets_an_error_and_changes_nothing(server, client, store, caplog, msg, expected):
    before = store.snapshot()
    with caplog.at_level(logging.WARNING, logger="bridge.osc"):
        client.send(*msg)
        error = client.wait_for("/sd/error")
    assert error[0].startswith(expected) or expected in error[0], error
    assert "\n" not in error[0]
    assert store.snapshot() == before and store.drain() == {}
    assert server.rejected == 1 and server.accepted == 0
    assert any(expected.split(" expects")[0] in r.getMessage() for r in caplog.records)


def test_bad_message_in_a_bundle_does_not_stop_the_good_ones(server, client, store):
    client.send_raw(bundle(0, message("/sd/guidance", "loud"), message("/sd/delta", 0.5)))
    assert "/sd/guidance" in client.wait_for("/sd/error")[0]
    client.sync()
    assert store.drain() == {"delta": 0.5}


def test_oversized_and_malformed_packets(server, client, store):
    before = store.snapshot()
    client.send_raw(message("/sd/prompt", "x" * 1900) * 10)  # > MAX_PACKET bytes
    assert f"at most {MAX_PACKET}" in client.wait_for("/sd/error")[0]
    unknown_tag = b"/sd/guidance\x00\x00\x00\x00,x\x00\x00\x00\x00\x00\x01"
    for junk in (b"", b"hello", b"/sd/guidance", b"#bundle\x00\x01", unknown_tag):
        client.send_raw(junk)
        assert "malformed OSC packet" in client.wait_for("/sd/error")[0]
    client.sync()
    assert store.snapshot() == before and store.drain() == {}


def test_log_lines_are_rate_limited(server, client, caplog):
    with caplog.at_level(logging.WARNING, logger="bridge.osc"):
        send_all(client, (message("/sd/nope", i) for i in range(300)))
    lines = [r for r in caplog.records if "unknown address" in r.getMessage()]
    assert 1 <= len(lines) <= 10, len(lines)
    assert server.rejected == 300


def _invalid(dgram: bytes) -> bool:
    """True unless the packet would validly set a parameter (the fuzz keeps only what must be refused)."""
    from pythonosc.osc_packet import OscPacket

    if packet_problem(dgram):
        return True
    try:
        messages = [t.message for t in OscPacket(dgram).messages]
    except Exception:
        return True
    for m in messages:
        route = ROUTES.get(m.address)
        if route is None:
            continue
        try:
            decode(route, list(m.params))
        except ParamError:
            continue
        return False
    return True


def _fuzz_packets(rng: random.Random, count: int) -> list[bytes]:
    addresses = list(ROUTES) + ["/sd", "/sd/", "/", "/sd/guidance/norm/x", "/SD/GUIDANCE", "/sd/*", "//"]
    junk_args: list = [
        math.nan,
        -math.inf,
        "",
        "x" * 3000,
        "a/b",
        "..",
        b"\x00\xff",
        True,
        None,
        2**31 - 1,
        -(2**31),
        1e30,
        -1,
    ]
    # No /sd/status here: a stray status reply would end a sync too early.
    valid = [message(a, 0.5) for a in ROUTES] + [message("/sd/prompts", "a", 1.0)]
    packets: list[bytes] = []
    while len(packets) < count:
        kind = rng.randrange(6)
        if kind == 0:
            p = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        elif kind == 1:
            v = rng.choice(valid)
            p = v[: rng.randrange(len(v))]  # truncated
        elif kind == 2:
            v = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                v[rng.randrange(len(v))] ^= 1 << rng.randrange(8)
            p = bytes(v)
        elif kind == 3:
            args = [rng.choice(junk_args) for _ in range(rng.randrange(0, 5))]
            p = message(rng.choice(addresses), *args)
        elif kind == 4:
            p = b"#bundle\x00" + struct.pack(">Qi", rng.getrandbits(64), rng.randrange(-8, 64))
            p += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        else:
            args = [rng.choice(junk_args) for _ in range(rng.randrange(1, 4))]
            inner = message(rng.choice(addresses), *args)
            p = bundle(rng.choice([0, 1, time.time() + 1e6]), inner)
        if _invalid(p):
            packets.append(p)
    return packets


def test_fuzz_thousands_of_bad_packets_change_nothing(server, client, store):
    rng = random.Random(20261123)
    packets = _fuzz_packets(rng, 3000)
    before = store.snapshot()
    sent = send_all(client, packets)
    assert sent == 3000
    assert len(client.sync()) == 6  # still answers
    assert store.snapshot() == before and store.drain() == {}
    # A few random packets may be empty bundles or a mangled /sd/status: nothing to refuse there.
    assert server.rejected >= 2900, (server.rejected, server.accepted)
    assert all(t.is_alive() for t in server._threads)
    client.send("/sd/guidance", 3.0)  # and still works
    client.sync()
    assert store.drain() == {"guidance": 3.0}


def test_flood_of_10000_guidance_messages_applies_the_last(server, make_client, store):
    watcher, flooder = make_client(), make_client()
    watcher.sync()
    values = [round((i % 2000) / 100.0, 2) for i in range(10_000)]
    values[-1] = 7.25
    sent = send_all(flooder, (message("/sd/guidance", v) for v in values), chunk=100)
    assert sent == 10_000
    assert server.accepted >= 10_000  # every one arrived and was validated
    assert store.drain() == {"guidance": 7.25}  # coalesced: the runtime sees only the newest
    assert len(flooder.sync()) == 6
    assert wait_until(lambda: watcher.received("/sd/guidance")[-1:] == [[7.25]])
    assert len(watcher.received("/sd/guidance")) < 10_000  # echoes were coalesced too


def test_allow_list_drops_and_counts_others(store):
    with OscServer(store, port=0, allow=["10.1.2.3", "192.168.0.0/16"]) as srv:
        c = Client(srv.address)
        c.send("/sd/guidance", 5.0)
        c.send("/sd/status")
        assert wait_until(lambda: srv.dropped_not_allowed == 2)
        assert c.received("/sd/status") == [] and c.received("/sd/error") == []
        assert store.drain() == {} and srv.clients() == []
        c.close()
    with OscServer(store, port=0, allow=["127.0.0.0/8"]) as srv:
        c = Client(srv.address)
        c.send("/sd/guidance", 5.0)
        c.sync()
        assert store.drain() == {"guidance": 5.0} and srv.dropped_not_allowed == 0
        c.close()


def test_allow_list_entries_are_checked():
    with pytest.raises(ValueError, match="--osc-allow: 'studio-pc' is not an IP address"):
        OscServer(ParamStore(), port=0, allow=["studio-pc"])
