"""Region parameters over a real OSC socket: messages land in the store and become regions."""

import socket
import time

import torch
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.control import ParamStore
from bridge.control.osc import OscServer
from bridge.control.osc_map import encode, type_tags
from bridge.control.region_params import REGION_PARAMS, build_regions, is_region_param
from engine.regions import as_brushes


def send_over_osc(messages: list[tuple]) -> tuple[ParamStore, OscServer]:
    """Send `(address, *args)` messages to a real OSC server on a fresh store; return once the
    last one has landed (each list ends with an `/enabled 1`, whose arrival marks the end)."""
    store = ParamStore()
    store.drain()
    with (
        OscServer(store, host="127.0.0.1", port=0, advertise=False) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        for address, *args in messages:
            b = OscMessageBuilder(address=address)
            for a in args:
                b.add_arg(a)
            sock.sendto(b.build().dgram, server.address)
        last = messages[-1][0].split("/")[3]
        deadline = time.monotonic() + 5.0
        while not store.get(f"region.{last}.enabled") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.get(f"region.{last}.enabled"), "OSC messages did not arrive"
    return store, server


def test_osc_messages_change_the_regions():
    store, server = send_over_osc(
        [
            ("/sd/region/2/prompt", "a wall of fire"),
            ("/sd/region/2/rect", 0.0, 0.0, 0.5, 1.0),
            ("/sd/region/2/blur/norm", 0.5),
            ("/sd/region/2/rect", 0.0, 0.0, 2.0),  # refused: three numbers, one out of range
            ("/sd/region/2/enabled", 1),
        ]
    )
    changes = store.drain()
    assert all(is_region_param(n) for n in changes)
    assert changes["region.2.rect"] == [0.0, 0.0, 0.5, 1.0]
    assert changes["region.2.blur"] == 32.0
    assert server.rejected >= 1

    built = build_regions(store.snapshot(), (8, 8))
    (region,) = built.regions
    assert region["prompt"] == "a wall of fire" and region["blur"] == 32.0
    assert region["mask"][:, :4].min() == 1.0 and region["mask"][:, 4:].max() == 0.0
    assert len(as_brushes(built.regions)) == 1


def test_rect_echoes_as_floats():
    rect = next(p for p in REGION_PARAMS if p.name == "region.0.rect")
    assert encode(rect, [0.25, 0.0, 0.5, 1.0]) == [0.25, 0.0, 0.5, 1.0]
    assert type_tags(rect) == "ffff"


def test_osc_regions_reach_the_next_frame(make_engine, frames):
    common = dict(t_index_list=[30], cfg_type="none")  # no residual carried from frame to frame
    eng = make_engine(**common)
    before = eng(frames[0])
    store, _server = send_over_osc(
        [
            ("/sd/region/0/prompt", "fire"),
            ("/sd/region/0/rect", 0.0, 0.0, 1.0, 1.0),
            ("/sd/region/0/blur", 0.0),
            ("/sd/region/0/enabled", 1),
        ]
    )
    # what the runtime does between frames when a region parameter changed
    changes = store.drain()
    assert any(is_region_param(n) for n in changes)
    built = build_regions(store.snapshot(), (eng.height, eng.width))
    eng.update(regions=built.regions)
    after = eng(frames[0])
    assert eng.stats()["unet_batch"] == 2
    expected = make_engine(prompt="fire", **common)(frames[0])
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-4)  # full-frame brush = its prompt
    assert not torch.allclose(after, before, atol=1e-3)
