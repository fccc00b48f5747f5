"""vcam and Spout, tested up to the OS device that cannot exist here."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from bridge.errors import BackendMissing
from bridge.sinks import make_sink
from bridge.sources import open_source


def test_vcam_without_a_device_is_one_clear_line() -> None:
    pytest.importorskip("pyvirtualcam", reason="pyvirtualcam is not installed")
    sink = make_sink("vcam")
    if sys.platform.startswith("linux"):
        with pytest.raises(BackendMissing) as err:
            sink.open(64, 48, 30.0)
        msg = str(err.value)
        assert msg.startswith("vcam: no virtual camera device; install v4l2loopback") and "\n" not in msg
    else:
        print("SKIP: real-device check is for Linux without v4l2loopback")


def test_vcam_sends_rgb_frames_at_the_camera_size(monkeypatch: pytest.MonkeyPatch) -> None:
    pyvirtualcam = pytest.importorskip("pyvirtualcam", reason="pyvirtualcam is not installed")
    made = []

    class Camera:  # stands in for the kernel device only
        def __init__(self, width, height, fps, fmt=None, device=None, **kw):
            self.args = (width, height, fps, fmt)
            self.sent: list[np.ndarray] = []
            self.closed = False
            made.append(self)

        def send(self, frame):
            assert frame.shape == (self.args[1], self.args[0], 3) and frame.dtype == np.uint8
            self.sent.append(frame.copy())

        def close(self):
            self.closed = True

    monkeypatch.setattr(pyvirtualcam, "Camera", Camera)
    sink = make_sink("vcam")
    sink.open(64, 48, 25.0)
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255
    sink.write(red)
    sink.write(np.zeros((100, 100, 3), np.uint8))  # a stray size is resized, not refused
    sink.close()
    cam = made[0]
    assert cam.args == (64, 48, 25.0, pyvirtualcam.PixelFormat.RGB)
    assert len(cam.sent) == 2 and cam.sent[0][0, 0].tolist() == [255, 0, 0] and cam.closed


def test_spout_off_windows_is_a_clear_error() -> None:
    if sys.platform == "win32":
        pytest.skip("on Windows Spout is real")
    for make in (
        lambda: open_source("spout:TD").open(64, 64),
        lambda: make_sink("spout:out").open(64, 64, 30),
    ):
        with pytest.raises(BackendMissing, match="Spout exists only on Windows"):
            make()


def _fake_spoutgl() -> types.ModuleType:
    """A SpoutGL module at the import boundary: shared memory replaced by a dict."""
    shared: dict[str, tuple[bytes, int, int]] = {}
    mod = types.ModuleType("SpoutGL")

    class SpoutSender:
        def setSenderName(self, name):
            self.name = name

        def sendImage(self, buf, w, h, fmt, flip, fbo):
            assert fmt == 0x1908 and not flip
            arr = np.asarray(buf)
            assert arr.shape == (h, w, 4)
            shared[self.name] = (arr.tobytes(), w, h)
            return True

        def releaseSender(self):
            shared.pop(self.name, None)

    class SpoutReceiver:
        def __init__(self):
            self.size = (0, 0)

        def setReceiverName(self, name):
            self.name = name

        def receiveImage(self, buf, fmt, flip, fbo):
            if self.name not in shared:
                return False
            data, w, h = shared[self.name]
            if buf is None or (w, h) != self.size:
                self._updated, self.size = True, (w, h)
                return True
            self._updated = False
            np.asarray(buf).reshape(-1)[:] = np.frombuffer(data, np.uint8)
            return True

        def isUpdated(self):
            return getattr(self, "_updated", False)

        def getSenderWidth(self):
            return self.size[0]

        def getSenderHeight(self):
            return self.size[1]

        def waitFrameSync(self, name, ms):
            return False

        def releaseReceiver(self):
            pass

    mod.SpoutSender, mod.SpoutReceiver = SpoutSender, SpoutReceiver
    return mod


def test_spout_sink_to_source_through_spoutgl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "SpoutGL", _fake_spoutgl())
    monkeypatch.setattr("bridge.spout.is_windows", lambda: True)
    sink, src = make_sink("spout:sd-bridge"), open_source("spout:sd-bridge")
    sink.open(32, 16, 30)
    src.open(32, 16)
    img = np.zeros((16, 32, 3), np.uint8)
    img[..., 0], img[..., 2] = 200, 30
    sink.write(img)
    assert src.read() is None  # first call: the receiver learns the size and allocates
    got = src.read()
    assert got is not None and got.shape == (16, 32, 3)
    assert got[0, 0].tolist() == [200, 0, 30]  # no red/blue swap
    sink.close()
    src.close()


def test_a_spout_mask_source_keeps_the_senders_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    spoutgl = _fake_spoutgl()
    monkeypatch.setitem(sys.modules, "SpoutGL", spoutgl)
    monkeypatch.setattr("bridge.spout.is_windows", lambda: True)
    rgba = np.full((16, 32, 4), 255, np.uint8)
    rgba[:, 16:, 3] = 0  # TouchDesigner's TOP with a transparent right half
    sender = spoutgl.SpoutSender()
    sender.setSenderName("td-mask")
    sender.sendImage(rgba, 32, 16, 0x1908, False, 0)
    src = open_source("spout:td-mask", keep_alpha=True)
    src.open(32, 16)
    assert src.read() is None  # the receiver learns the size
    got = src.read()
    assert got is not None and got.shape == (16, 32, 4)
    assert np.array_equal(got, rgba)
    sender.sendImage(np.zeros_like(rgba), 32, 16, 0x1908, False, 0)  # the next frame...
    assert src.read().max() == 0
    assert np.array_equal(got, rgba)  # ...leaves the frame already handed out as it was
    src.close()
