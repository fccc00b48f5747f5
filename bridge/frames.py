"""Frame conversion, done once and vectorised.

Between the stages of the daemon a frame is a uint8 numpy array shaped (H, W, 3), RGB. Sources
convert into that once (from BGRA, BGR, RGBA), sinks convert out of it once. Only the engine loop
crosses into tensors: `TensorBridge.to_tensor` stacks a batch, uploads it (on CUDA through one of
two pinned staging buffers with a non-blocking copy, so the upload overlaps the previous frame's
compute) and scales to [0, 1]; `TensorBridge.download` starts the way back without waiting and
hands a `PendingFrames` to whoever needs the pixels (a sink's thread), which waits for them.
`to_uint8` is the synchronous way back (download + wait), kept for callers without threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

Fit = Literal["crop", "letterbox", "stretch"]
FITS: tuple[str, ...] = ("crop", "letterbox", "stretch")


class Frame:
    """An RGB uint8 image plus the times it passed each stage (time.perf_counter seconds).

    `image` may be given as a `PendingImage` (engine output still on its way to the host): the first
    read of `frame.image` waits for it, so that wait happens in the thread that uses the pixels.
    """

    __slots__ = ("_image", "index", "t_capture", "times")

    def __init__(
        self,
        image: np.ndarray | PendingImage,
        index: int,
        t_capture: float,
        times: dict[str, float] | None = None,
    ) -> None:
        self._image = image
        self.index = index
        self.t_capture = t_capture
        self.times: dict[str, float] = {} if times is None else times

    @property
    def image(self) -> np.ndarray:
        if isinstance(self._image, PendingImage):
            self._image = self._image.get()
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image = value

    @property
    def pending(self) -> bool:
        """True while the pixels are still being downloaded (reading `image` would wait)."""
        return isinstance(self._image, PendingImage)

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, t_capture={self.t_capture:.3f}, pending={self.pending})"


def to_rgb(image: np.ndarray, order: str) -> np.ndarray:
    """Convert a HxWxC uint8 image in channel order `order` (BGRA, RGBA, BGR, RGB, GRAY) to RGB."""
    order = order.upper()
    if image.ndim == 2 or order == "GRAY":
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    codes = {
        "BGRA": cv2.COLOR_BGRA2RGB,
        "BGRX": cv2.COLOR_BGRA2RGB,
        "RGBA": cv2.COLOR_RGBA2RGB,
        "RGBX": cv2.COLOR_RGBA2RGB,
        "BGR": cv2.COLOR_BGR2RGB,
    }
    if order == "RGB":
        return np.ascontiguousarray(image)
    try:
        return cv2.cvtColor(image, codes[order])
    except KeyError:
        raise ValueError(f"unknown channel order {order!r}") from None


def from_rgb(image: np.ndarray, order: str) -> np.ndarray:
    """Convert an RGB uint8 image to `order` (BGRA, RGBA, BGR, RGB) for a sink."""
    order = order.upper()
    codes = {"BGRA": cv2.COLOR_RGB2BGRA, "RGBA": cv2.COLOR_RGB2RGBA, "BGR": cv2.COLOR_RGB2BGR}
    if order == "RGB":
        return image
    try:
        return cv2.cvtColor(image, codes[order])
    except KeyError:
        raise ValueError(f"unknown channel order {order!r}") from None


def fit(image: np.ndarray, width: int, height: int, mode: Fit = "crop") -> np.ndarray:
    """Scale an image to width x height keeping its aspect: crop the overflow, letterbox, or stretch."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if mode == "stretch":
        return _resize(image, width, height)
    scale = max(width / w, height / h) if mode == "crop" else min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = _resize(image, sw, sh)
    if mode == "crop":
        x, y = (sw - width) // 2, (sh - height) // 2
        return np.ascontiguousarray(scaled[y : y + height, x : x + width])
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    x, y = (width - sw) // 2, (height - sh) // 2
    out[y : y + sh, x : x + sw] = scaled
    return out


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


class PendingFrames:
    """A batch of engine output on its way to the host, plus its "all finite" flag.

    `ready()` says whether it has landed (never waits); `images()` waits for it and returns the N
    (H, W, 3) uint8 images, or raises FloatingPointError if the engine output had a NaN or inf (a
    black frame is worse than the unprocessed input, which the runtime then sends). Call it from the
    thread that uses the pixels: on CUDA the wait is an event, on the CPU the conversion itself.
    """

    def __init__(self, convert: Callable[[], tuple[np.ndarray, bool]], count: int, shape, event=None):
        self._convert = convert
        self._event = event
        self._lock = threading.Lock()
        self._result: tuple[list[np.ndarray], bool] | None = None
        self._reported = False
        self.count = count
        self.shape: tuple[int, int, int] = tuple(shape)  # (H, W, 3) of each image

    def claim_report(self) -> bool:
        """True for the first caller only: who reports this batch's fault."""
        with self._lock:
            first, self._reported = not self._reported, True
        return first

    def ready(self) -> bool:
        return self._result is not None or self._event is None or bool(self._event.query())

    def images(self) -> list[np.ndarray]:
        with self._lock:
            if self._result is None:
                if self._event is not None:
                    self._event.synchronize()
                host, finite = self._convert()
                self._result = ([host[i] for i in range(host.shape[0])], finite)
                self._convert = None  # type: ignore[assignment]  # drop the device tensors
        images, finite = self._result
        if not finite:
            raise FloatingPointError("the engine returned NaN or inf values")
        return images

    def lazy(
        self, fallbacks: list[np.ndarray], on_error: Callable[[BaseException], None]
    ) -> list[PendingImage]:
        """One `PendingImage` per image, for `Frame`s: a non-finite batch resolves to `fallbacks`
        (the inputs) after calling `on_error` once."""
        return [PendingImage(self, i, fallbacks[i], on_error) for i in range(self.count)]


class PendingImage:
    """Image `i` of a `PendingFrames`; `shape`/`ndim` are known before the pixels arrive."""

    __slots__ = ("_pending", "_i", "_fallback", "_on_error")

    def __init__(self, pending: PendingFrames, i: int, fallback: np.ndarray, on_error) -> None:
        self._pending, self._i, self._fallback, self._on_error = pending, i, fallback, on_error

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._pending.shape

    @property
    def ndim(self) -> int:
        return len(self._pending.shape)

    def get(self) -> np.ndarray:
        try:
            return self._pending.images()[self._i]
        except FloatingPointError as exc:
            if self._pending.claim_report():  # a bad batch is reported once, whoever reads it
                self._on_error(exc)
            return self._fallback


class TensorBridge:
    """Moves batches of RGB uint8 frames to (N, 3, H, W) float tensors in [0, 1] and back.

    On CUDA, uint8 crosses the bus (a quarter of the float size).
    Up (`to_tensor`): one memcpy into one of two pinned staging buffers, each reused only once its
    previous upload has completed (an event, only queried, never waited for: a buffer still busy is
    replaced), one non-blocking copy, then the cast-and-scale on the device.
    Down (`download`): the scale-and-cast to uint8 writes straight into an NHWC device buffer whose
    last byte is the "all finite" flag, then one non-blocking copy on a copy stream into pinned
    memory, and an event; nothing waits on the engine thread. Each download gets its own pinned
    block from torch's caching host allocator, so with the runtime's one-slot hand-off two or three
    blocks alternate, and a reader that fell behind never sees its pixels overwritten.
    On the CPU the conversion is done in numpy, single-threaded, by `PendingFrames.images()` (i.e.
    in a sink's thread): torch's intra-op thread pool contends with the capture and sink
    threads and made these small ops ~30x slower on a busy 2-core machine.
    """

    def __init__(self, device: torch.device | str, dtype: torch.dtype | None = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self._cuda = self.device.type == "cuda"
        self._staging: list[torch.Tensor] = []
        self._staged: list = [None, None]  # the event of each staging buffer's last upload
        self._turn = 0
        self._copy_stream = torch.cuda.Stream(self.device) if self._cuda else None

    def to_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        torch = self.torch
        batch = np.stack(images) if len(images) > 1 else images[0][None]
        if not self._cuda:
            out = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), np.float32)
            np.multiply(batch.transpose(0, 3, 1, 2), np.float32(1 / 255), out=out)
            t = torch.from_numpy(out)
            return (
                t
                if self.dtype == torch.float32 and self.device.type == "cpu"
                else t.to(self.device, self.dtype)
            )
        host = torch.from_numpy(batch)
        if not self._staging or self._staging[0].shape != host.shape:
            self._staging = [torch.empty(host.shape, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
            self._staged = [None, None]
        turn, self._turn = self._turn, 1 - self._turn
        if self._staged[turn] is not None and not self._staged[turn].query():
            # The upload of two frames ago is still in flight (rare): never wait for it, take a
            # fresh buffer (the caching host allocator keeps the old one until its copy is done).
            self._staging[turn] = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        self._staging[turn].copy_(host)
        dev = self._staging[turn].to(self.device, non_blocking=True)
        self._staged[turn] = torch.cuda.Event()
        self._staged[turn].record()
        return dev.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)

    def download(self, frames: torch.Tensor) -> PendingFrames:
        """Start moving engine output (N, 3, H, W) in [0, 1] to the host; never waits."""
        n, _, h, w = frames.shape
        if frames.device.type == "cpu":
            a = frames.detach()
            return PendingFrames(lambda: _numpy_uint8(a), n, (h, w, 3))
        torch = self.torch
        size = n * h * w * 3
        dev = torch.empty(size + 1, dtype=torch.uint8, device=frames.device)
        scaled = frames.detach().mul(255.0).clamp_(0.0, 255.0).add_(0.5)
        dev[:size].view(n, h, w, 3).copy_(scaled.permute(0, 2, 3, 1))  # cast + NCHW -> NHWC at once
        dev[size:].copy_(torch.isfinite(frames).all().view(1))
        copy = self._copy_stream
        copy.wait_stream(torch.cuda.current_stream(frames.device))
        with torch.cuda.stream(copy):
            host = torch.empty(size + 1, dtype=torch.uint8, pin_memory=True)
            host.copy_(dev, non_blocking=True)
            dev.record_stream(copy)  # the allocator must not reuse `dev` before the copy ran
            done = torch.cuda.Event()
            done.record(copy)

        def convert() -> tuple[np.ndarray, bool]:
            flat = host.numpy()
            return flat[:size].reshape(n, h, w, 3), bool(flat[size])

        return PendingFrames(convert, n, (h, w, 3), event=done)

    def to_uint8(self, frames: torch.Tensor) -> list[np.ndarray]:
        """`download(frames).images()`: the synchronous way back."""
        return self.download(frames).images()


def _numpy_uint8(frames: torch.Tensor) -> tuple[np.ndarray, bool]:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8, as `(x * 255).clamp(0, 255) + 0.5`
    truncated. No torch op: in a sink's thread each one would hand the GIL to the engine thread and
    wait for it back. Clamping after the +0.5 to [0.5, 255.5] gives the same bytes."""
    import torch

    a = (frames if frames.dtype == torch.float32 else frames.float()).numpy().transpose(0, 2, 3, 1)
    if not np.isfinite(a).all():
        return np.zeros(a.shape, np.uint8), False
    out = np.multiply(a, np.float32(255.0), out=np.empty(a.shape, np.float32))
    np.add(out, np.float32(0.5), out=out)
    np.clip(out, np.float32(0.5), np.float32(255.5), out=out)
    return out.astype(np.uint8), True
