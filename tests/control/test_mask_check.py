"""A brush mask naming an image that is not in the masks folder is refused at once, over OSC."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bridge.control import ParamError, ParamStore
from bridge.control.osc import OscServer
from bridge.control.region_params import RegionFeed

from .osc_helpers import Client


@pytest.fixture
def masks(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "left.png"), np.full((8, 8), 255, np.uint8))
    return folder


def test_missing_mask_png_gets_an_error_and_is_not_stored(masks):
    store = ParamStore()
    RegionFeed((64, 64), masks_dir=str(masks)).check_masks(store)
    with OscServer(store, port=0) as srv:
        c = Client(srv.address)
        c.send("/sd/region/3/mask", "nowhere.png")
        error = c.wait_for("/sd/error")[0]
        assert error == f"/sd/region/3/mask: no mask 'nowhere.png' in {masks}"
        c.send("/sd/region/3/mask", "left.png")
        c.send("/sd/region/4/mask", "ellipse")
        c.send("/sd/region/5/mask", "source:luma")
        c.sync()
        assert c.received("/sd/error") == []
        c.close()
    assert store.drain() == {
        "region.3.mask": "left.png",
        "region.4.mask": "ellipse",
        "region.5.mask": "source:luma",
    }


def test_without_a_masks_folder_a_png_name_is_refused():
    store = ParamStore()
    RegionFeed((64, 64)).check_masks(store)
    with pytest.raises(ParamError, match="no masks folder is configured"):
        store.set("region.0.mask", "left.png")
    assert store.get("region.0.mask") == "rect"
