"""Every address changes its parameter, over real UDP, and shows in the next drain()."""

from __future__ import annotations

import time

import pytest

from bridge.control import PARAMS, Kind, Param, param
from bridge.control.osc_map import ROUTES, decode, encode

from .osc_helpers import bundle, message


def sample(p: Param) -> tuple[list, object]:
    """OSC arguments that set `p` to something other than its default, and the value expected."""
    k = p.kind
    if k is Kind.FLOAT:
        assert p.minimum is not None and p.maximum is not None
        v = p.minimum + 0.25 * (p.maximum - p.minimum)
        return [v], v
    if k is Kind.INT:
        return [7], 7
    if k is Kind.BOOL:
        return [0 if p.default else 1], not p.default
    if k is Kind.STR:
        if p.name.startswith("region.") and p.name.endswith(".mask"):  # a mask spec, not free text
            return ["ellipse"], "ellipse"
        choices = getattr(p, "choices", ())
        if choices:  # a ChoiceParam (a ControlNet preprocessor): a choice other than the default
            pick = next(c for c in choices if c != p.default)
            return [pick], pick
        text = "studio_b" if p.name in ("preset", "model") else "ネオンの街, café 🌃"
        return [text], text
    if k is Kind.INT_LIST:
        return [12, 30, 45], [12, 30, 45]
    if k is Kind.INT_PAIR:
        return [640, 384], [640, 384]
    if k is Kind.FLOAT_LIST:
        return [0.25, 0.0, 0.5, 1.0], [0.25, 0.0, 0.5, 1.0]
    if k is Kind.WEIGHTED_STR:
        return ["forest", 0.75, "fire", 0.25], [("forest", 0.75), ("fire", 0.25)]
    if k is Kind.WEIGHTED_INT:
        return [11, 0.5, 42, 0.5], [(11, 0.5), (42, 0.5)]
    raise AssertionError(k)


@pytest.mark.parametrize("p", PARAMS, ids=lambda p: p.address)
def test_every_address_sets_its_param(server, client, store, p):
    store.drain()
    args, expected = sample(p)
    assert store.get(p.name) != expected
    client.send(p.address, *args)
    client.sync()
    changed = store.drain()
    assert list(changed) == [p.name]
    got = changed[p.name]
    if p.kind is Kind.FLOAT:
        assert got == pytest.approx(expected, rel=1e-6)  # OSC floats are 32-bit
    elif p.kind is Kind.WEIGHTED_STR or p.kind is Kind.WEIGHTED_INT:
        assert [k for k, _ in got] == [k for k, _ in expected]
        assert [w for _, w in got] == pytest.approx([w for _, w in expected])
    else:
        assert got == expected
    assert client.errors() == []


NORM_PARAMS = [p for p in PARAMS if p.has_norm]


@pytest.mark.parametrize("p", NORM_PARAMS, ids=lambda p: p.address + "/norm")
def test_norm_maps_zero_half_one_onto_the_range(server, client, store, p):
    assert NORM_PARAMS, "some float parameters must have a range"
    for x in (0.0, 0.5, 1.0):
        client.send(p.address + "/norm", x)
        client.sync()
        assert store.drain()[p.name] == pytest.approx(p.minimum + x * (p.maximum - p.minimum))
    client.send(p.address + "/norm", 1)  # an int on /norm works too
    client.sync()
    assert store.drain()[p.name] == pytest.approx(p.maximum)


def test_ints_as_floats_and_floats_as_ints(server, client, store):
    client.send("/sd/seed", 7.0)
    client.send("/sd/guidance", 3)
    client.send("/sd/filter/enabled", True)  # OSC T
    client.send("/sd/pause", 1.0)
    client.send("/sd/resolution", 768.0, 432.0)
    client.send("/sd/t_index", 20.0, 40)
    client.sync()
    assert store.drain() == {
        "seed": 7,
        "guidance": 3.0,
        "filter.enabled": True,
        "pause": True,
        "resolution": [768, 432],
        "t_index": [20, 40],
    }
    assert isinstance(store.get("seed"), int) and isinstance(store.get("guidance"), float)


def test_bundle_with_future_timetag_is_applied_at_once(server, client, store):
    far_future = time.time() + 3600.0
    seen = []
    store.subscribe(lambda name, value, origin: seen.append((name, origin)))
    client.send_raw(
        bundle(far_future, message("/sd/guidance", 4.0), message("/sd/delta", 0.5), message("/sd/seed", 9))
    )
    client.sync(timeout=5.0)  # would time out if the server slept until the timetag
    assert store.drain() == {"guidance": 4.0, "delta": 0.5, "seed": 9}
    # One ParamStore.update for the whole bundle: all three changes share one origin object.
    assert len({id(origin) for _, origin in seen}) == 1


def test_nested_bundles_and_last_value_wins_within_a_bundle(server, client, store):
    inner = bundle(0, message("/sd/guidance", 2.0))
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_bundle_builder import OscBundleBuilder

    outer = OscBundleBuilder(0)
    outer.add_content(OscBundle(inner))
    from pythonosc.osc_message import OscMessage

    outer.add_content(OscMessage(message("/sd/guidance", 6.0)))
    client.send_raw(outer.build().dgram)
    client.sync()
    assert store.drain() == {"guidance": 6.0}


@pytest.mark.parametrize("p", PARAMS, ids=lambda p: p.address)
def test_encode_decode_round_trip(p):
    args, expected = sample(p)
    value = decode(ROUTES[p.address], args).value
    assert decode(ROUTES[p.address], encode(p, value)).value == value


def test_out_of_range_values_are_clamped():
    assert decode(ROUTES["/sd/guidance"], [99]).value == param("guidance").maximum
    assert decode(ROUTES["/sd/guidance"], [5]).value == 5.0
