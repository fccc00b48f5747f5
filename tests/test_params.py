"""The parameter store: validation, coalescing and listeners."""

import math
import threading

import pytest

from bridge.control import PARAMS, PARAMS_BY_ADDRESS, Kind, ParamError, ParamStore, param


def test_every_param_default_is_valid():
    for p in PARAMS:
        if p.nonempty:  # a placeholder the daemon fills with what it serves; never settable
            with pytest.raises(ParamError, match="expects a name, got an empty one"):
                p.coerce(p.default)
        elif p.default is not None:
            assert p.coerce(p.default) == p.default, p.name


def test_addresses_are_unique_and_under_sd():
    addresses = [p.address for p in PARAMS]
    assert len(addresses) == len(set(addresses))
    assert all(a.startswith("/sd/") for a in addresses)
    assert PARAMS_BY_ADDRESS["/sd/filter/threshold"].name == "filter.threshold"


def test_int_for_float_and_float_for_int_accepted():
    assert param("guidance").coerce(2) == 2.0
    assert param("seed").coerce(7.0) == 7
    with pytest.raises(ParamError, match=r"/sd/seed expects an integer"):
        param("seed").coerce(7.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "2", None, True, [1.0]])
def test_guidance_refuses_non_numbers(bad):
    with pytest.raises(ParamError, match=r"/sd/guidance expects a number in \[0, 20\]"):
        param("guidance").coerce(bad)


def test_clamp_and_refuse():
    assert param("guidance").coerce(99) == 20.0
    with pytest.raises(ParamError):
        param("seed").coerce(-1)


def test_norm_maps_onto_range():
    g = param("guidance")
    assert g.from_norm(0) == 0.0
    assert g.from_norm(0.5) == 10.0
    assert g.from_norm(1) == 20.0
    with pytest.raises(ParamError):
        g.from_norm(1.5)
    assert not param("seed").has_norm


def test_weighted_forms():
    p = param("prompts")
    assert p.kind is Kind.WEIGHTED_STR
    assert p.coerce(["neon city", 0.7, "forest", 0.3]) == [("neon city", 0.7), ("forest", 0.3)]
    assert p.coerce([("a", 1)]) == [("a", 1.0)]
    for bad in (["a"], ["a", -1.0], [3, 1.0], ["a", 0.0]):
        with pytest.raises(ParamError):
            p.coerce(bad)
    assert param("seeds").coerce([1, 0.5, 2, 0.5]) == [(1, 0.5), (2, 0.5)]


def test_resolution_must_be_multiple_of_8():
    assert param("resolution").coerce([768, 432]) == [768, 432]
    with pytest.raises(ParamError, match="multiples of 8"):
        param("resolution").coerce([770, 432])


def test_store_coalesces_and_keeps_state_on_error():
    store = ParamStore()
    for i in range(100):
        store.set("guidance", i / 10)
    assert store.drain() == {"guidance": 9.9}
    assert store.drain() == {}
    with pytest.raises(ParamError):
        store.update({"delta": 0.5, "seed": "nope"})
    assert store.get("delta") == 1.0
    assert store.drain() == {}


def test_listeners_see_accepted_changes_only():
    store = ParamStore()
    seen = []
    unsubscribe = store.subscribe(lambda n, v, o: seen.append((n, v, o)))
    store.set("prompt", "neon city", origin="a")
    with pytest.raises(ParamError):
        store.set("prompt", 5)
    unsubscribe()
    store.set("prompt", "forest")
    assert seen == [("prompt", "neon city", "a")]


def test_store_is_thread_safe():
    store = ParamStore()

    def writer(k):
        for i in range(500):
            store.set("seed", k * 1000 + i)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.drain()["seed"] == store.get("seed")
