"""Bad input of every kind: an /sd/error reply naming the address, a log line, state unchanged."""

from __future__ import annotations

import logging
import math
import random

import pytest

from bridge.control import ParamStore, osc_map
from bridge.control.osc import MAX_PACKET, OscServer
from bridge.control.osc_map import ROUTES
from bridge.control.params import Kind

from .osc_helpers import (
    Client,
    blob,
    bundle,
    f32,
    i32,
    message,
    osc_str,
    raw_bundle,
    raw_message,
    send_all,
    wait_until,
)

BAD_MESSAGES = [
    (("/sd/nope", 1.0), "unknown address '/sd/nope'"),
    (("/sd/guidance", "loud"), "/sd/guidance expects one argument, a number in [0, 20], got an OSC string"),
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
    (("/sd/prompt", 5), "/sd/prompt expects one argument, text (at most 2000 characters), got an OSC int32"),
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


def _kept_values(store: ParamStore) -> dict:
    """A valid value for every parameter that is not its default, so any change shows."""
    kept: dict = {}
    for p in store.params.values():
        k = p.kind
        if k is Kind.FLOAT:
            lo, hi = p.minimum or 0.0, p.maximum if p.maximum is not None else 1.0
            kept[p.name] = lo + (hi - lo) * 0.375
        elif k is Kind.INT:
            lowest = int(p.minimum or 0)
            kept[p.name] = lowest + 3 if lowest + 3 != p.default else lowest + 2
        elif k is Kind.BOOL:
            kept[p.name] = not p.default
        elif k is Kind.STR:
            choices = [c for c in getattr(p, "choices", ()) if c != p.default]  # a ControlNet preprocessor
            kept[p.name] = choices[0] if choices else "ellipse" if p.name.endswith(".mask") else "kept"
        elif k is Kind.INT_LIST:
            kept[p.name] = [12, 24]
        elif k is Kind.INT_PAIR:
            kept[p.name] = [320, 240]
        elif k is Kind.FLOAT_LIST:
            kept[p.name] = [0.125, 0.25, 0.5, 0.5]
        elif k is Kind.WEIGHTED_STR:
            kept[p.name] = [("kept", 1.0)]
        else:
            kept[p.name] = [(5, 1.0)]
    for name, value in kept.items():
        assert value != store.spec(name).default, name
    return kept


REFUSED_TAGS = {"a number": "bcmrtNIS", "text": "bcmrtNIifhdTF", "a boolean": "bcmrtNIS"}
"""Type tags no argument of that role takes (see osc_map.ACCEPTED_TAGS)."""


def _arg_bytes(tag: str, rng: random.Random) -> bytes:
    if tag in "ifcrm":
        return bytes(rng.randrange(256) for _ in range(4))
    if tag in "hdt":
        return bytes(rng.randrange(256) for _ in range(8))
    if tag in "sS":
        return osc_str("x" * rng.randrange(12))
    if tag == "b":
        return blob(bytes(rng.randrange(256) for _ in range(rng.randrange(9))))
    return b""  # T F N I


def _wrong_message(rng: random.Random, route: osc_map.Route, kind: int) -> bytes:
    """A message to `route`, well-formed or not, that no parameter may accept."""
    if kind == 3:  # an argument of a type the address never takes, in a random position
        n = rng.randrange(1, 5)
        tags = [rng.choice("if") for _ in range(n)]
        pos = rng.randrange(n)
        tags[pos] = rng.choice(REFUSED_TAGS[osc_map._role(route, pos)])
        return raw_message(route.address, "".join(tags), *(_arg_bytes(t, rng) for t in tags))
    if kind == 4:  # numbers no parameter takes: NaN and infinities (refused as text where text goes)
        return raw_message(route.address, "f", f32(rng.choice([math.nan, math.inf, -math.inf])))
    size = rng.choice([-1, -4, -(2**31), 5000, 2**31 - 1])  # a blob whose size field lies
    return raw_message(route.address, "b", i32(size), b"\x00" * rng.choice([0, 4, 8]))


def _fuzz_packets(rng: random.Random, count: int) -> list[bytes]:
    """`count` datagrams that are each wrong by construction (no oracle from the code under test)."""
    routes = list(ROUTES.values())
    well_formed = [raw_message(r.address, "f", f32(0.5)) for r in routes]
    well_formed += [
        raw_message("/sd/prompts", "sf", osc_str("a"), f32(1.0)),
        raw_message("/sd/t_index", "ii"),
    ]
    packets: list[bytes] = []
    while len(packets) < count:
        kind = rng.randrange(8)
        route = rng.choice(routes)
        if kind == 0:  # random bytes that are neither a message nor a bundle
            p = bytes([rng.choice(b"\x00ABCxyz,[#")]) + bytes(
                rng.randrange(256) for _ in range(rng.randrange(64))
            )
        elif kind == 1:  # a strict prefix of a well-formed message: something is always cut short
            v = rng.choice(well_formed)
            p = v[: rng.randrange(len(v))]
        elif kind == 2:  # a well-formed message with bytes after its last argument
            p = rng.choice(well_formed) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        elif kind in (3, 4, 5):
            p = _wrong_message(rng, route, kind)
        elif kind == 6:  # bundles whose element sizes lie
            inner = rng.choice(well_formed)
            size = rng.choice([-4, 0, len(inner) + 1, len(inner) + 4, 2**31 - 1, 3])
            p = raw_bundle(inner, sizes=[size])
        else:  # a bundle (maybe in a bundle) holding a well-formed message with a wrong argument
            p = raw_bundle(_wrong_message(rng, route, rng.choice((3, 4, 5))))
            if rng.random() < 0.3:
                p = raw_bundle(p)
        packets.append(p)
    return packets


def test_fuzz_100000_bad_packets_change_no_parameter(server, client, store):
    kept = _kept_values(store)
    store.update(kept)
    store.drain()
    before = store.snapshot()
    rng = random.Random(20261204)
    packets = _fuzz_packets(rng, 100_000)
    sent = send_all(client, packets, chunk=200)
    assert sent == 100_000
    assert len(client.sync()) == 6  # still answers
    after = store.snapshot()
    assert [n for n in before if after[n] != before[n]] == []  # every parameter compared
    assert store.drain() == {}
    # A bundle holding a bundle that holds a refused message refuses once, not per level: count packets.
    assert server.rejected + server.coalesced >= 100_000 - 500, (server.rejected, server.coalesced)
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
    assert server.accepted + server.coalesced >= 10_000  # every one arrived: parsed, or replaced unread
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
