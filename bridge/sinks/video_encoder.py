"""Encodes RGB frames into a container that stays playable up to the last frame written (PyAV).

Why these containers and options: a recording must survive the process being killed or the disk filling
up. A plain MP4 is only readable once its index (`moov`) is written at close, so it is written
fragmented instead: an empty `moov` up front and one small fragment per frame (`frag_every_frame`),
flushed to the OS at every packet (`flush_packets`). Matroska gets one cluster per frame for the same
reason; AVI (MJPEG) has its chunks in the order they were written anyway. A cut-off file of any of them
decodes up to the frame before the cut.

Each frame's timestamp is the wall time it was written, so a file plays back as long as
the run took, whatever the real frame rate was; `fps` is only the nominal rate in the header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO, Any

import numpy as np

from bridge.errors import BackendMissing, SpecError

AV_HINT = 'recording needs PyAV: pip install av (or reinstall sd-bridge: pip install -e ".")'


@dataclass(frozen=True)
class Container:
    """How one file extension is written: libavformat muxer, codec, pixel format and their options."""

    muxer: str
    codec: str
    pix_fmt: str
    muxer_options: dict[str, str] = field(default_factory=dict)
    codec_options: dict[str, str] = field(default_factory=dict)
    ticks_per_s: int | None = 1000
    """Timestamp resolution; None: the nominal fps. AVI has one constant rate, which players (and our
    own `file:` source) take as the clip's rate, and fills each empty tick with a stub chunk, so its
    tick is one frame at `fps`: a slower run repeats frames, a faster one stretches. The others store
    real timestamps, in milliseconds."""


_X264 = {"preset": "ultrafast", "tune": "zerolatency"}
FALLBACK_CODEC = "mpeg4"
"""FFmpeg's own MPEG-4 part 2 encoder, for a PyAV build without libx264 (no options, yuv420p)."""
_FRAGMENTED = {"movflags": "empty_moov+default_base_moof+frag_keyframe+frag_every_frame"}
_FLUSH = {"flush_packets": "1"}
CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", "libx264", "yuv420p", {**_FRAGMENTED, **_FLUSH}, _X264),
    ".mov": Container("mov", "libx264", "yuv420p", {**_FRAGMENTED, **_FLUSH}, _X264),
    ".mkv": Container("matroska", "libx264", "yuv420p", {"cluster_time_limit": "0", **_FLUSH}, _X264),
    ".avi": Container("avi", "mjpeg", "yuvj420p", dict(_FLUSH), ticks_per_s=None),
}


def container_for(path: str) -> Container:
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        kinds = ", ".join(CONTAINERS)
        raise SpecError(f"file:{path}: cannot record {ext or 'a file without an extension'}; use {kinds}")
    return CONTAINERS[ext]


def import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise BackendMissing(AV_HINT) from exc
    av.logging.set_level(None)  # libav's own messages never reach the console; our errors are one line
    return av


class VideoEncoder:
    """One open recording: `encode(image, seconds)` per frame, then `close()`. Not thread-safe."""

    def __init__(self, out: IO[bytes], container: Container, width: int, height: int, fps: float) -> None:
        av = import_av()
        self._av = av
        self._out = av.open(out, "w", format=container.muxer, options=dict(container.muxer_options))
        codec, options, pix_fmt = container.codec, dict(container.codec_options), container.pix_fmt
        if codec not in av.codecs_available:
            codec, options, pix_fmt = FALLBACK_CODEC, {}, "yuv420p"
        try:
            stream = self._out.add_stream(codec, rate=max(1, round(fps)), options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            self._ticks_per_s = container.ticks_per_s or max(1, round(fps))
            self._tick = Fraction(1, self._ticks_per_s)
            stream.time_base = self._tick
            stream.codec_context.time_base = self._tick
            stream.codec_context.gop_size = max(1, round(fps))  # a keyframe about every second
        except Exception:
            self._out.close()
            raise
        self._stream = stream
        self._last_pts = -1
        self._nominal = max(1, round(self._ticks_per_s / max(fps, 1e-3)))

    def encode(self, image: np.ndarray, seconds: float) -> None:
        """Encode one RGB uint8 (H, W, 3) frame shown `seconds` after the recording started."""
        pts = max(round(seconds * self._ticks_per_s), self._last_pts + 1)  # strictly increasing
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, self._tick
        duration = pts - self._last_pts if self._last_pts >= 0 else self._nominal
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            packet.duration = duration  # the last frame lasts as long as the one before it
            self._out.mux(packet)

    def close(self) -> None:
        """Flush the encoder and write the trailer. Raises what the disk says; closes in any case."""
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
        finally:
            self._out.close()
