"""The /sd/region/N/... parameters: coercion, validation and building engine regions."""

import cv2
import numpy as np
import pytest

from bridge.control import PARAMS, ParamError, ParamStore
from bridge.control.region_params import REGION_PARAMS, build_regions, is_region_param, uses_mask_source
from bridge.masks import MaskLibrary
from engine.regions import as_brushes

BY_NAME = {p.name: p for p in REGION_PARAMS}


def store():
    return ParamStore()


def test_addresses_defaults_and_no_clash_with_the_main_table():
    addresses = [p.address for p in PARAMS]
    assert len(addresses) == len(set(addresses))
    for n in range(8):
        for leaf in ("prompt", "strength", "enabled", "blur", "rect", "alpha", "mask"):
            assert f"/sd/region/{n}/{leaf}" in addresses
    for p in REGION_PARAMS:
        assert p.coerce(p.default) == p.default, p.name
        assert is_region_param(p.name)
    assert not is_region_param("prompt")


def test_coercion_and_refusal():
    assert BY_NAME["region.3.strength"].coerce(2) == 1.0  # clamped
    assert BY_NAME["region.3.blur"].coerce(100) == 64.0
    assert BY_NAME["region.3.enabled"].coerce(1) is True
    assert BY_NAME["region.3.rect"].coerce([0, 0.5, 1, 0.25]) == [0.0, 0.5, 1.0, 0.25]
    assert BY_NAME["region.3.mask"].coerce("source:alpha") == "source:alpha"
    assert BY_NAME["region.3.mask"].coerce(" left.png ") == "left.png"
    with pytest.raises(ParamError, match=r"/sd/region/3/rect expects four numbers x y w h in \[0, 1\]"):
        BY_NAME["region.3.rect"].coerce([0, 0, 1])
    with pytest.raises(ParamError, match="/sd/region/3/rect"):
        BY_NAME["region.3.rect"].coerce([0, 0, 1, 1.5])
    with pytest.raises(ParamError, match="/sd/region/3/rect"):
        BY_NAME["region.3.rect"].coerce([0, 0, "1", 1])
    for bad in ("../x.png", "source:hue", "circle", 3):
        with pytest.raises(ParamError, match="/sd/region/3/mask expects 'rect', 'ellipse'"):
            BY_NAME["region.3.mask"].coerce(bad)
    with pytest.raises(ParamError, match="/sd/region/3/enabled"):
        BY_NAME["region.3.enabled"].coerce(2)
    s = store()
    with pytest.raises(ParamError):
        s.update({"region.0.prompt": "fire", "region.0.rect": [2, 0, 0, 0]})
    assert s.get("region.0.prompt") == ""  # all or nothing


def test_build_regions_from_the_store(tmp_path):
    s = store()
    s.update(
        {
            "region.0.prompt": "fire",
            "region.0.enabled": 1,
            "region.0.rect": [0, 0, 0.5, 1],
            "region.0.blur": 4.0,
            "region.0.strength": 0.8,
            "region.2.prompt": "ice",  # not enabled
            "region.5.enabled": 1,  # no prompt
            "region.6.prompt": "city",
            "region.6.enabled": 1,
            "region.6.mask": "ellipse",
        }
    )
    built = build_regions(s.snapshot(), (8, 16))
    assert built.problems == []
    assert [r["prompt"] for r in built.regions] == ["fire", "city"]
    fire = built.regions[0]
    assert fire["mask"][:, :8].min() == 1.0 and fire["mask"][:, 8:].max() == 0.0
    assert (fire["blur"], fire["alpha"], fire["strength"]) == (4.0, 1.0, 0.8)
    brushes = as_brushes(built.regions)  # what the engine will accept
    assert len(brushes) == 2


def test_png_and_source_masks_and_their_problems(tmp_path):
    img = np.zeros((8, 8), np.uint8)
    img[4:] = 255
    cv2.imwrite(str(tmp_path / "bottom.png"), img)
    s = store()
    s.update({"region.1.prompt": "sea", "region.1.enabled": 1, "region.1.mask": "bottom.png"})
    s.update({"region.4.prompt": "sky", "region.4.enabled": 1, "region.4.mask": "source:alpha"})
    values = s.snapshot()
    assert uses_mask_source(values)

    no_lib = build_regions(values, (8, 8))
    assert [r["prompt"] for r in no_lib.regions] == []
    assert no_lib.problems == [
        "region 1: no masks folder configured for 'bottom.png'",
        "region 4: no frame from the mask source yet",
    ]

    frame = np.zeros((8, 8, 4), np.uint8)
    frame[:4, :, 3] = 255
    built = build_regions(values, (8, 8), MaskLibrary(tmp_path), frame)
    assert built.problems == []
    sea, sky = built.regions
    assert sea["mask"][4:].min() == 1.0 and sea["mask"][:4].max() == 0.0
    assert sky["mask"][:4].min() == 1.0 and sky["mask"][4:].max() == 0.0

    s.set("region.1.mask", "gone.png")
    missing = build_regions(s.snapshot(), (8, 8), MaskLibrary(tmp_path), frame)
    assert [r["prompt"] for r in missing.regions] == ["sky"]
    assert missing.problems == [f"region 1: mask 'gone.png' not found in {tmp_path}"]


def test_presets_hold_regions():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads(
        """
prompt = "a city at night"
[[regions]]
prompt = "a wall of fire"
rect = [0.0, 0.0, 0.33, 1.0]
blur = 16
[[regions]]
prompt = "a calm lake"
mask = "bottom.png"
strength = 0.8
enabled = false
"""
    )
    from bridge.control.region_params import region_values_from_preset

    values = region_values_from_preset(data["regions"])
    assert values["region.0.prompt"] == "a wall of fire" and values["region.0.enabled"] is True
    assert values["region.0.rect"] == [0.0, 0.0, 0.33, 1.0] and values["region.0.blur"] == 16.0
    assert values["region.1.mask"] == "bottom.png" and values["region.1.enabled"] is False
    assert values["region.2.enabled"] is False and values["region.7.prompt"] == ""
    s = store()
    s.update(values)  # what loading the preset does
    built = build_regions(s.snapshot(), (8, 8))
    assert [r["prompt"] for r in built.regions] == ["a wall of fire"]

    with pytest.raises(ParamError, match=r"regions\[0\]\.rect: /sd/region/0/rect expects four numbers"):
        region_values_from_preset([{"prompt": "x", "rect": [0, 0, 1]}])
    with pytest.raises(ParamError, match=r"regions\[0\]: unknown keys \['colour'\]"):
        region_values_from_preset([{"prompt": "x", "colour": "red"}])
    with pytest.raises(ParamError, match="at most 8"):
        region_values_from_preset([{"prompt": "x"}] * 9)
    with pytest.raises(ParamError, match="list of tables"):
        region_values_from_preset({"prompt": "x"})


def test_region_feed_rebuilds_only_when_needed():
    from bridge.control.region_params import RegionFeed

    s = store()
    feed = RegionFeed((8, 8))
    assert feed.poll(s.drain(), s.snapshot()) is None  # nothing region-related yet
    s.update({"region.0.prompt": "fire", "region.0.enabled": 1})
    first = feed.poll(s.drain(), s.snapshot())
    assert [r["prompt"] for r in first] == ["fire"]
    s.set("guidance", 2.0)
    assert feed.poll(s.drain(), s.snapshot()) is None
    s.set("region.0.mask", "source:luma")
    frame = np.full((4, 4, 3), 255, np.uint8)
    assert feed.poll(s.drain(), s.snapshot(), None) == [] and feed.problems
    got = feed.poll({}, s.snapshot(), frame, fresh=True)  # a new mask frame while a brush uses the source
    assert got[0]["mask"].min() == 1.0 and not feed.problems
    assert feed.poll({}, s.snapshot(), frame, fresh=False) is None  # the same frame again
    s.set("region.0.mask", "rect")
    s.drain()
    assert feed.poll({}, s.snapshot(), frame, fresh=True) is None  # no brush uses the source now
