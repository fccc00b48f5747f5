"""The frame runtime: capture -> engine loop -> output, joined by latest-wins slots.

Each stage is a small room of its own: `capture.py` (a source on its reader thread, plus a hold
timer), `engine_loop.py` (the only thread that calls the engine), `control.py` (live parameters
and presets, applied between frames), `rebuild.py` (new engines built in the background, swapped
in, the old ones freed) and `output.py` (one thread and one slot per sink). This class wires them
together and answers for the whole: start/stop, stats and the status line.

Every frame carries its capture time; each stage stamps it, so fps and per-stage and end-to-end
latency percentiles come from the frames themselves. Faults never stop the show:

- the source fails, stops or is searching: the last frame keeps going out at the runtime's rate;
- the engine raises on a frame: logged once, the input goes out instead, the loop carries on;
- a sink fails: logged once, closed, reopened (with a back-off) while the other sinks carry on;
- a rebuild (model, resolution, preset) fails: logged, the old engine keeps serving.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.control.controlnet_params import CONTROL_SOURCE
from bridge.control.region_params import RegionFeed
from bridge.control.store import ParamStore
from bridge.frames import Fit, Frame, TensorBridge
from bridge.presets import presets_dir
from bridge.sinks.base import Sink
from bridge.sources.base import Source
from engine import EngineConfig, FrameEngine

from .capture import CaptureRoom, Deliver
from .control import PARAM_FROM_CONFIG, ControlRoom
from .engine_loop import EngineLoop
from .engines import EngineFactory, one_line
from .log import OnceLog, log
from .output import OutputRoom
from .pacing import Need
from .rebuild import RebuildRoom
from .slot import LatestSlot
from .stats import RollingStats


@dataclass
class RuntimeOptions:
    fps: float = 30.0
    """Pace of on-demand sources (pattern, image, file, screen), of the hold-last-frame timer while
    a source is down, and the rate sinks advertise."""
    fit: Fit = "crop"
    max_frames: int | None = None
    """Stop after writing this many frames (`--frames`)."""
    allowed_models: set[str] = field(default_factory=set)
    """Models a live `model` change may switch to (plus the config's and the presets')."""
    presets_folder: Path | None = None
    profile: bool = False
    """Ask the engine for its per-stage timings (encode/unet/decode; on CUDA this adds syncs)."""
    retry_s: float = 0.5
    """First back-off before reopening a failed source or sink (doubles up to 5 s)."""
    read_when_needed: bool = True
    """An on-demand source (pattern, image, screen) is read once per engine frame, just before the
    engine needs it, when the engine is slower than `fps` (bridge/runtime/pacing.py); False: at `fps`."""


class Runtime:
    def __init__(
        self,
        source: Source,
        sinks: list[Sink],
        engine: FrameEngine,
        config: EngineConfig,
        *,
        store: ParamStore | None = None,
        factory: EngineFactory | None = None,
        options: RuntimeOptions | None = None,
        engine_name: str = "",
        mask_source: Source | None = None,
        aux_sources: dict[str, Source] | None = None,
    ) -> None:
        self.source = source
        self.sinks = list(sinks)
        self.engine = engine
        self.config = config
        self.store = store or ParamStore()
        self.factory = factory
        self.options = options or RuntimeOptions()
        self.engine_name = engine_name or type(engine).__name__
        self.once = OnceLog()
        self.stop_event = threading.Event()
        self.aux_sources = dict(aux_sources or {})
        """Named auxiliary sources (`mask` feeds brush masks, `control` is the ControlNet control
        image): their newest frame is read between frames with `aux_frame(name)`."""
        if mask_source is not None:
            self.aux_sources["mask"] = mask_source
        self._in: LatestSlot[Frame] = LatestSlot()
        self._aux_in: dict[str, LatestSlot[np.ndarray]] = {n: LatestSlot() for n in self.aux_sources}
        self._next_index = 0
        self._stats = RollingStats()
        self._size = (config.width, config.height)
        self._fit: Fit = self.options.fit
        self._bridge = TensorBridge(engine.device, engine.dtype)
        masks = (self.options.presets_folder or presets_dir()) / "masks"
        self._regions = RegionFeed((config.height, config.width), masks_dir=str(masks))
        self._regions.check_masks(self.store)  # a missing mask PNG is an /sd/error, never an echo
        self.bypass = False
        self.pause = False
        self.frames_in = 0
        self.faults = {"source": 0, "engine": 0, "sink": 0, "rebuild": 0}
        self._t_start = time.perf_counter()
        self._threads: list[threading.Thread] = []
        self._sync_store_from_config(config)
        self.control = ControlRoom(self)
        self.rebuild = RebuildRoom(self)
        self.engine_loop = EngineLoop(self)
        self.output = OutputRoom(self)
        self.capture = self._capture_room("capture", source, self._put_frame, hold=True)
        self.aux_capture = {
            name: self._capture_room(f"aux-{name}", src, _to_slot(self._aux_in[name]), hold=False)
            for name, src in self.aux_sources.items()
        }
        self.store.add_check("model", self.control.check_model)
        self.store.add_check("preset", self.control.check_preset)
        self._prepare_engine(engine)

    def _capture_room(self, role: str, src: Source, deliver: Deliver, *, hold: bool) -> CaptureRoom:
        return CaptureRoom(
            role,
            src,
            deliver,
            size=lambda: self._size,
            fit_mode=lambda: self._fit,
            stop=self.stop_event,
            on_fault=self._source_fault,
            on_back=self._source_back,
            retry_s=self.options.retry_s,
            hold_fps=self.options.fps if hold else None,
            need=self._need if hold and self.options.read_when_needed else None,
        )

    def _need(self) -> Need | None:
        """The engine loop's next need for a frame not captured yet; None while it takes batches of
        several frames (each batch wants them all at once) or has no estimate yet."""
        if int(getattr(self.engine, "frame_buffer_size", 1) or 1) != 1:
            return None
        return self.engine_loop.demand.need(time.perf_counter(), self._in.waiting)

    @property
    def mask_source(self) -> Source | None:
        """The source whose frames feed brush masks (`/sd/region/N/mask source:<channel>`)."""
        return self.aux_sources.get("mask")

    @property
    def control_source(self) -> Source | None:
        """The source whose frames are the ControlNet control image (`--control-source`)."""
        return self.aux_sources.get(CONTROL_SOURCE)

    def aux_frame(self, name: str) -> np.ndarray | None:
        """The newest frame of aux source `name` since the last call (None: nothing new, or no such aux)."""
        slot = self._aux_in.get(name)
        return slot.get(0) if slot is not None else None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._t_start = time.perf_counter()
        self._stats.mark_start(self._t_start)
        self.capture.start()
        for room in self.aux_capture.values():
            room.start()
        loop = threading.Thread(target=self.engine_loop.run, name="sd-bridge-engine", daemon=True)
        loop.start()
        self._threads = [
            *self.capture.threads,
            *(t for room in self.aux_capture.values() for t in room.threads),
            loop,
            *self.output.start(),
        ]

    def stop(self, timeout: float = 1.0, engine_timeout: float | None = None) -> None:
        """Stop all threads; sinks and the source are closed by their threads. Returns within ~timeout.
        `engine_timeout`: wait at most this long for an engine call in flight (joined last)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in sorted(self._threads, key=lambda t: t.name.endswith("-engine")):
            left = max(0.0, deadline - time.monotonic())
            if engine_timeout is not None and t.name.endswith("-engine"):
                left = min(left, engine_timeout)
            t.join(left)

    @property
    def needs_pump(self) -> bool:
        """Whether some sink (a preview window) must be pumped from the main thread."""
        return any(hasattr(s, "pump") for s in self.sinks)

    def pump(self) -> None:
        """Main thread: let window sinks draw and read keys. A failing window is logged and dropped."""
        for sink in [s for s in self.sinks if hasattr(s, "pump")]:
            try:
                sink.pump()  # type: ignore[attr-defined]
            except Exception as exc:
                self.faults["sink"] += 1
                log.warning("sink %s: %s (preview off; the other sinks carry on)", sink.name, one_line(exc))
                self.sinks = [s for s in self.sinks if s is not sink]
                self.output.remove(sink)
            if getattr(sink, "stop_requested", False):
                log.info("stop requested from the preview window")
                self.stop_event.set()

    def close_windows(self) -> None:
        """Main thread, after stop(): close preview windows."""
        for sink in self.sinks:
            destroy = getattr(sink, "destroy", None)
            if destroy is not None:
                destroy()

    @property
    def running(self) -> bool:
        return not self.stop_event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait until stopped (True) or timeout (False)."""
        return self.stop_event.wait(timeout)

    # -- what other parts ask of the whole --------------------------------------------------
    @property
    def frames_out(self) -> int:
        return self.output.frames_out

    @property
    def rebuilds(self) -> int:
        return self.rebuild.rebuilds

    def request_rebuild(self, **changes: Any) -> None:
        """Build a new engine in the background; the current one serves until it is ready."""
        self.rebuild.request(**changes)

    def load_preset(self, name: str) -> None:
        """Apply presets/NAME.toml live, whole or not at all (see ControlRoom.load_preset)."""
        self.control.load_preset(name)

    def allowed_models(self) -> set[str]:
        return self.control.allowed_models()

    # -- stats ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Everything the status line and OSC status replies show. Safe from any thread."""
        lat = self._stats.percentiles()
        eng = self._engine_stats()
        dropped = self._dropped()
        source = self.capture.health()
        return {
            "fps": round(self._stats.fps(), 2),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": sum(dropped.values()),
            "dropped_by_stage": dropped,
            "skip_rate": _skip_rate(eng),
            "latency_ms": lat,
            "latency_p50_ms": lat["e2e"]["p50"],
            "latency_p95_ms": lat["e2e"]["p95"],
            "latency_p99_ms": lat["e2e"]["p99"],
            "faults": dict(self.faults),
            "engine": self.engine_name,
            "engine_stats": eng,
            "model": self.config.model,
            "width": self.config.width,
            "height": self.config.height,
            **self._flags(),
            "rebuilds": self.rebuilds,
            "source": source,
            "source_down": 0 if source["up"] else 1,
            "aux_sources": {n: room.health() for n, room in self.aux_capture.items()},
            "sinks": self.output.stats(),
            "engine_freed": dict(self.rebuild.last_freed),
            "uptime_s": round(time.perf_counter() - self._t_start, 2),
        }

    def _engine_stats(self) -> dict[str, Any]:
        try:
            return dict(self.engine.stats())
        except Exception:  # an engine's stats must never break a status reply
            return {}

    def _dropped(self) -> dict[str, int]:
        return {"capture": self._in.dropped, "output": self.output.dropped}

    def status_line(self) -> str:
        """The one-line summary the console and the preview show. It reads only what it prints (not
        `stats()`): the sinks' threads build it up to 10 times a second while the engine runs."""
        flags = "".join(f" [{name}]" for name, on in self._flags().items() if on)
        source = self.capture.health()
        if not source["up"]:
            flags += f" [source down {source['down_s']:.0f} s]"
        size = f"{self.config.width}x{self.config.height}"
        if not self.frames_out:  # a slow engine on a CPU takes seconds: say so rather than look dead
            uptime = time.perf_counter() - self._t_start
            return f"computing the first frame... ({uptime:.0f} s) | {self.engine_name} {size}{flags}"
        p50, p95 = self._stats.quantiles("e2e", (0.5, 0.95))
        skip = _skip_rate(self._engine_stats())
        return (
            f"{self._stats.fps():5.1f} fps | e2e p50 {p50:.0f} ms p95 {p95:.0f} ms"
            f" | skip {skip * 100:.0f}% | dropped {sum(self._dropped().values())} | out {self.frames_out}"
            f" | {self.engine_name} {size}{flags}"
        )

    def _flags(self) -> dict[str, bool]:
        return {"bypass": self.bypass, "pause": self.pause, "rebuilding": self.rebuild.busy}

    # -- capture ----------------------------------------------------------------------------
    def _put_frame(self, image: np.ndarray, t0: float) -> None:
        now = time.perf_counter()
        frame = Frame(image=image, index=self._next_index, t_capture=t0, times={"captured": now})
        self._next_index += 1
        self._stats.add("capture", now - t0)
        self.frames_in += 1
        self._in.put(frame)

    def _source_fault(self, src: Source, exc: BaseException, what: str) -> bool:
        self.faults["source"] += 1
        why = one_line(exc).removeprefix(f"{src.name}: ")  # sources often name themselves already
        return self.once.warn(f"source:{src.name}:{what}:{why}", f"source {src.name}: {why} (retrying)")

    def _source_back(self, src: Source) -> None:
        log.info("source %s is back", src.name)
        self.once.forget(f"source:{src.name}:")  # the next outage is logged again

    def _close_quietly(self, thing: Source | Sink) -> None:
        try:
            thing.close()
        except Exception as exc:
            log.debug("closing %s: %s", thing.name, exc)

    # -- engine ---------------------------------------------------------------------------
    def _prepare_engine(self, engine: FrameEngine) -> None:
        """Set up an engine about to serve: profiling when asked, and prompts encoded on the engine's
        own worker thread (issue 16.6), so a new prompt never costs the engine loop a frame."""
        if self.options.profile and hasattr(engine, "profile"):
            engine.profile = True  # type: ignore[attr-defined]
        if hasattr(engine, "encode_in_background"):
            engine.encode_in_background = True  # type: ignore[attr-defined]

    def _sync_store_from_config(self, config: EngineConfig) -> None:
        values: dict[str, Any] = {name: get(config) for name, get in PARAM_FROM_CONFIG.items()}
        values["resolution"] = [config.width, config.height]
        values["model"] = config.model
        for name, v in values.items():
            with contextlib.suppress(ValueError):
                self.store.set(name, v, origin="config")
        self.store.drain()


def _skip_rate(engine_stats: dict[str, Any]) -> float:
    """The share of frames the similarity filter skipped, from an engine's counters."""
    frames = int(engine_stats.get("frames", 0) or 0)
    skipped = int(engine_stats.get("skipped", 0) or 0)
    return round(skipped / frames, 4) if frames else 0.0


def _to_slot(slot: LatestSlot[np.ndarray]) -> Deliver:
    """An aux source's frames go to its slot (their capture time is not needed)."""
    return lambda image, t0: slot.put(image)
