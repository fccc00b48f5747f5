"""Malformed OSC, built byte by byte: refused with /sd/error, and the parameter keeps its value.

Each case is a datagram python-osc would have read leniently (a float cut short zero-padded,
a blob of negative size read as empty text, an RGBA colour read as a number). The server
must refuse each with one `/sd/error` line and change nothing; the well-formed twins at the
end prove the same bytes are accepted when they are right.
"""

from __future__ import annotations

import struct

import pytest

from .osc_helpers import blob, f32, i32, osc_str, raw_bundle, raw_message

GUIDANCE = raw_message("/sd/guidance", "f", f32(12.0))

MALFORMED = [
    # (case id, datagram, parameter it aims at, words the /sd/error must hold)
    ("float-cut-short", raw_message("/sd/guidance", "f", f32(8.0)[:2]), "guidance", "not a multiple of 4"),
    ("float-missing", raw_message("/sd/guidance", "ff", f32(8.0)), "guidance", "float32 argument truncated"),
    ("float-no-bytes", raw_message("/sd/guidance", "f"), "guidance", "float32 argument truncated"),
    ("rgba-as-number", raw_message("/sd/guidance", "r", bytes([0, 0, 0, 8])), "guidance", "RGBA colour"),
    ("midi-as-int", raw_message("/sd/seed", "m", bytes([0, 144, 60, 100])), "seed", "MIDI message"),
    ("timetag-as-int", raw_message("/sd/seed", "t", struct.pack(">Q", 5)), "seed", "timetag"),
    ("nil-as-number", raw_message("/sd/guidance", "N"), "guidance", "nil"),
    ("impulse-as-bool", raw_message("/sd/bypass", "I"), "bypass", "impulse"),
    ("char-as-text", raw_message("/sd/prompt", "c", i32(ord("x"))), "prompt", "char"),
    ("symbol-as-text", raw_message("/sd/prompt", "S", osc_str("neon")), "prompt", "symbol"),
    ("blob-as-text", raw_message("/sd/prompt", "b", blob(b"neon city")), "prompt", "blob"),
    ("blob-as-model", raw_message("/sd/model", "b", blob(b"tiny")), "model", "blob"),
    (
        "blob-negative-prompt",
        raw_message("/sd/prompt", "b", blob(b"", size=-4)),
        "prompt",
        "blob of -4 bytes",
    ),
    ("blob-negative-model", raw_message("/sd/model", "b", blob(b"", size=-8)), "model", "blob of -8 bytes"),
    (
        "blob-oversized",
        raw_message("/sd/prompt", "b", blob(b"abcd", size=4000)),
        "prompt",
        "blob of 4000 bytes",
    ),
    ("empty-model", raw_message("/sd/model", "s", osc_str("")), "model", "expects a name, got an empty one"),
    (
        "blank-model",
        raw_message("/sd/model", "s", osc_str("  ")),
        "model",
        "expects a name, got an empty one",
    ),
    ("trailing-bytes", GUIDANCE + b"\x00\x00\x00\x01", "guidance", "4 bytes after the last argument"),
    (
        "text-unterminated",
        raw_message("/sd/prompt", "s") + b"neon",
        "prompt",
        "string argument not terminated",
    ),
    (
        "text-bad-padding",
        raw_message("/sd/prompt", "s") + b"neon\x00xx\x00",
        "prompt",
        "padding is not NUL bytes",
    ),
    ("text-not-utf8", raw_message("/sd/prompt", "s", osc_str(b"\xff\xfe")), "prompt", "not UTF-8"),
    ("tags-unterminated", osc_str("/sd/guidance") + b",fff", "guidance", "type tags not terminated"),
    ("tags-no-comma", osc_str("/sd/guidance") + f32(8.0), "guidance", "type tags must start with ','"),
    ("unknown-tag", raw_message("/sd/guidance", "x", f32(8.0)), "guidance", "unsupported OSC type tag 'x'"),
    ("array-open", raw_message("/sd/t_index", "[ii", i32(10), i32(20)), "t_index", "'[' without ']'"),
    ("array-close", raw_message("/sd/t_index", "ii]", i32(10), i32(20)), "t_index", "']' without '['"),
    ("array-in-single", raw_message("/sd/guidance", "[f]", f32(8.0)), "guidance", "array"),
    (
        "t-index-decreasing",
        raw_message("/sd/t_index", "ii", i32(40), i32(30)),
        "t_index",
        "strictly increasing",
    ),
    (
        "t-index-repeated",
        raw_message("/sd/t_index", "ii", i32(35), i32(35)),
        "t_index",
        "strictly increasing",
    ),
    ("bundle-negative-size", raw_bundle(GUIDANCE, sizes=[-4]), "guidance", "bundle element of -4 bytes"),
    ("bundle-size-unaligned", raw_bundle(GUIDANCE + b"\x00", sizes=[len(GUIDANCE) + 1]), "guidance", "size"),
    ("bundle-oversized", raw_bundle(GUIDANCE, sizes=[4000]), "guidance", "bundle element of 4000 bytes"),
]

KEPT = {
    "guidance": 12.0,
    "seed": 77,
    "bypass": True,
    "prompt": "kept prompt",
    "model": "kept-model",
    "t_index": [20, 30],
}


@pytest.mark.parametrize(
    ("dgram", "name", "words"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_datagram_is_refused_and_changes_nothing(server, client, store, dgram, name, words):
    store.update(KEPT)
    store.drain()
    before = store.snapshot()
    client.send_raw(dgram)
    error = client.wait_for("/sd/error")[0]
    assert words in error, error
    assert "\n" not in error
    client.sync()
    assert store.get(name) == KEPT[name]
    assert store.snapshot() == before and store.drain() == {}
    assert server.accepted == 1 and server.rejected == 1  # the sync was the one accepted


WELL_FORMED = [
    ("float", raw_message("/sd/guidance", "f", f32(3.3)), "guidance", 3.3),
    ("double", raw_message("/sd/guidance", "d", struct.pack(">d", 2.5)), "guidance", 2.5),
    ("int-as-float", raw_message("/sd/guidance", "i", i32(4)), "guidance", 4.0),
    ("int64-seed", raw_message("/sd/seed", "h", struct.pack(">q", 123)), "seed", 123),
    ("true", raw_message("/sd/bypass", "T"), "bypass", True),
    ("false", raw_message("/sd/bypass", "F"), "bypass", False),
    ("text", raw_message("/sd/prompt", "s", osc_str("neon city")), "prompt", "neon city"),
    ("array-list", raw_message("/sd/t_index", "[ii]", i32(10), i32(20)), "t_index", [10, 20]),
    ("list", raw_message("/sd/t_index", "iii", i32(5), i32(25), i32(45)), "t_index", [5, 25, 45]),
    ("no-tags", osc_str("/sd/status"), None, None),
]


@pytest.mark.parametrize(
    ("dgram", "name", "value"), [c[1:] for c in WELL_FORMED], ids=[c[0] for c in WELL_FORMED]
)
def test_well_formed_twins_are_accepted(server, client, store, dgram, name, value):
    client.send_raw(dgram)
    client.sync()
    assert client.received("/sd/error") == []
    if name is not None:
        assert store.get(name) == value
        assert store.drain() == {name: value}


def test_float32_values_are_held_without_float_noise(server, client, store):
    """3.3 sent as float32 is held as 3.3 (the shortest decimal of that float32), not 3.299999952316284."""
    client.send_raw(raw_message("/sd/delta", "f", f32(0.1)))
    client.send_raw(raw_message("/sd/region/0/rect", "ffff", f32(0.1), f32(0.2), f32(0.3), f32(0.7)))
    client.sync()
    assert store.get("delta") == 0.1
    assert store.get("region.0.rect") == [0.1, 0.2, 0.3, 0.7]


@pytest.mark.parametrize(
    ("dgram", "shown"),
    [
        (raw_message("/sd/seed", "i", i32(-1)), "got -1"),
        (raw_message("/sd/seed", "h", struct.pack(">q", 2**31)), "got 2147483648"),
        (raw_message("/sd/resolution", "ii", i32(60), i32(64)), "got 60"),
        (raw_message("/sd/t_index", "ii", i32(10), i32(60)), "got 60"),
    ],
    ids=["seed-negative", "seed-too-big", "resolution-small", "t-index-range"],
)
def test_integers_are_shown_as_sent_in_errors(server, client, dgram, shown):
    client.send_raw(dgram)
    error = client.wait_for("/sd/error")[0]
    assert error.endswith(shown), error
    assert ".0" not in error.rsplit("got", 1)[1], error
