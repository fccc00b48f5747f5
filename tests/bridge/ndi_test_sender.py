"""A test NDI sender (run as a subprocess): frames with a counter in the top-left pixels.

usage: python ndi_test_sender.py NAME WIDTH HEIGHT SECONDS [FIRST_COUNTER] [split-alpha]

With `split-alpha` the left half is opaque and the right half transparent (a mask in the alpha).
"""

from __future__ import annotations

import sys
import time
from fractions import Fraction

import numpy as np
from cyndilib.sender import Sender
from cyndilib.video_frame import VideoSendFrame
from cyndilib.wrapper.ndi_structs import FourCC

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from bridge.sources.pattern import encode_counter  # noqa: E402


def main() -> None:
    name, w, h, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    frame = VideoSendFrame()
    frame.set_resolution(w, h)
    frame.set_frame_rate(Fraction(30, 1))
    frame.set_fourcc(FourCC.BGRA)
    sender = Sender(name, clock_video=False)
    sender.set_video_frame(frame)
    sender.open()
    end = time.monotonic() + seconds
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    split_alpha = len(sys.argv) > 6 and sys.argv[6] == "split-alpha"
    try:
        while time.monotonic() < end:
            bgra = np.full((h, w, 4), 255, np.uint8)
            bgra[..., 0] = 40  # blue, so that a red/blue swap would show
            bgra[..., 1] = 120
            bgra[..., 2] = 200
            rgb = bgra[..., :3].copy()
            encode_counter(rgb, n)
            bgra[..., :3] = rgb
            if split_alpha:
                bgra[:, w // 2 :, 3] = 0
            sender.write_video_async(bgra.ravel())
            n += 1
            time.sleep(1 / 30)
    finally:
        sender.close()


if __name__ == "__main__":
    main()
