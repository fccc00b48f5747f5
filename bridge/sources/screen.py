"""Screen capture with mss: a whole monitor or a region x,y,w,h."""

from __future__ import annotations

import os
import sys

import numpy as np

from bridge.errors import BackendMissing, BridgeError, SpecError
from bridge.frames import to_rgb


class ScreenSource:
    on_demand = True
    """A read grabs the screen as it is then: reading less often loses nothing."""

    def __init__(self, arg: str = "", fps: float = 30.0) -> None:
        self.name = f"screen:{arg}" if arg else "screen"
        self.fps = fps
        self.monitor, self.region = parse_screen_arg(arg)
        self._mss = None
        self._area: dict[str, int] | None = None

    def preflight(self) -> None:
        """Raise BackendMissing now if screen capture cannot work here at all."""
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise BackendMissing("screen capture needs a display: DISPLAY is not set")
        try:
            import mss  # noqa: F401
        except ImportError as exc:
            raise BackendMissing("screen capture needs mss: pip install mss") from exc

    def open(self, width: int, height: int) -> None:
        self.preflight()
        import mss

        factory = getattr(mss, "MSS", None) or mss.mss
        try:
            self._mss = factory()
        except Exception as exc:  # mss raises ScreenShotError subclasses with long messages
            raise BackendMissing(f"screen capture cannot open the display: {_first_line(exc)}") from exc
        monitors = self._mss.monitors
        if self.region is not None:
            x, y, w, h = self.region
            self._area = {"left": x, "top": y, "width": w, "height": h}
        else:
            if not 0 <= self.monitor < len(monitors):
                raise SpecError(f"screen:{self.monitor}: no such monitor (there are {len(monitors) - 1})")
            self._area = dict(monitors[self.monitor])

    def read(self) -> np.ndarray:
        assert self._mss is not None and self._area is not None
        try:
            shot = self._mss.grab(self._area)
        except Exception as exc:  # mss raises a bare AssertionError when the X connection is lost
            raise BridgeError(
                f"{self.name}: screen grab failed ({_first_line(exc)}); is the display still there?"
            ) from exc
        return to_rgb(np.asarray(shot), "BGRA")

    def close(self) -> None:
        if self._mss is not None:
            self._mss.close()
            self._mss = None


def parse_screen_arg(arg: str) -> tuple[int, tuple[int, int, int, int] | None]:
    """'' -> monitor 1; 'N' -> monitor N (0 = all); 'x,y,w,h' -> a region."""
    if not arg:
        return 1, None
    parts = arg.split(",")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise SpecError(f"screen:{arg}: expected a monitor number or a region x,y,w,h") from None
    if len(nums) == 1:
        return nums[0], None
    if len(nums) == 4 and nums[2] > 0 and nums[3] > 0:
        return 1, (nums[0], nums[1], nums[2], nums[3])
    raise SpecError(f"screen:{arg}: expected a monitor number or a region x,y,w,h with w, h > 0")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
