"""The frame runtime: capture thread -> engine loop -> output thread, joined by latest-wins slots.

Every frame carries its capture time; each stage stamps it, so fps and per-stage and end-to-end
latency percentiles come from the frames themselves. Live parameters are drained from the
ParamStore between frames. Faults never stop the show:

- the source fails or stops: the last frame keeps going out while the source is reopened;
- the engine raises on a frame: logged once, the input goes out instead, the loop carries on;
- a sink fails: logged once, closed, reopened (with a back-off) while the other sinks carry on;
- a rebuild (model, resolution, preset) fails: logged, the old engine keeps serving.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.control.params import PARAMS, ParamError
from bridge.control.region_params import RegionFeed
from bridge.control.store import Failure, ParamStore
from bridge.errors import BridgeError
from bridge.frames import Fit, Frame, TensorBridge, fit
from bridge.presets import presets_dir
from bridge.sinks.base import Sink
from bridge.sources.base import Source
from engine import EngineConfig, FrameEngine

from .engines import EngineFactory, one_line
from .log import OnceLog, log
from .slot import LatestSlot
from .stats import RollingStats

ENGINE_FIELD_TO_PARAM: dict[str, str] = {
    p.engine_key: p.name for p in PARAMS if p.engine_key and p.name not in ("prompts", "seeds", "strength")
}
"""EngineConfig field -> the live parameter that carries it (guidance_scale -> guidance, ...)."""

_PARAM_FROM_CONFIG: dict[str, Callable[[EngineConfig], Any]] = {
    name: (lambda c, f=f: getattr(c, f)) for f, name in ENGINE_FIELD_TO_PARAM.items()
}


@dataclass
class RuntimeOptions:
    fps: float = 30.0
    """Pace of on-demand sources (pattern, image, file, screen) and the rate sinks advertise."""
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
    ) -> None:
        self.source = source
        self.mask_source = mask_source
        """A second source whose frames feed brush masks (`/sd/region/N/mask source:<channel>`)."""
        self.sinks = list(sinks)
        self.engine = engine
        self.config = config
        self.store = store or ParamStore()
        self.factory = factory
        self.options = options or RuntimeOptions()
        self.engine_name = engine_name or type(engine).__name__
        self.once = OnceLog()
        self.stop_event = threading.Event()
        self._in: LatestSlot[Frame] = LatestSlot()
        self._mask_in: LatestSlot[np.ndarray] = LatestSlot()
        self._mask_frame: np.ndarray | None = None
        self._next_index = 0
        self._out: LatestSlot[list[Frame]] = LatestSlot()
        self._stats = RollingStats()
        self._lock = threading.Lock()
        self._size = (config.width, config.height)
        self._fit: Fit = self.options.fit
        self._bridge = TensorBridge(engine.device, engine.dtype)
        self._t_index = list(config.t_index_list)
        self._pending_meta: deque[Frame] = deque()
        self._live: dict[str, Any] = {}
        masks = (self.options.presets_folder or presets_dir()) / "masks"
        self._regions = RegionFeed((config.height, config.width), masks_dir=str(masks))
        self._transition_s = float(self.store.get("transition"))
        self.bypass = False
        self.pause = False
        self._last_out: list[Frame] | None = None
        # rebuilds
        self._target = config
        self._rebuild_request: EngineConfig | None = None
        self._rebuild_thread: threading.Thread | None = None
        self._ready: tuple[FrameEngine, EngineConfig] | None = None
        self.rebuilds = 0
        # counters
        self.frames_in = 0
        self.frames_out = 0
        self.faults = {"source": 0, "engine": 0, "sink": 0, "rebuild": 0}
        self._t_start = time.perf_counter()
        self._source_down_logged = False
        self._threads: list[threading.Thread] = []
        self._sync_store_from_config(config)
        self.store.add_check("model", self._check_model)
        self.store.add_check("preset", self._check_preset)
        self._set_profile(engine)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._t_start = time.perf_counter()
        loops: list[tuple[str, Callable[[], None]]] = [
            ("capture", lambda: self._capture_loop(self.source, self._put_frame)),
            ("engine", self._engine_loop),
            ("output", self._output_loop),
        ]
        if self.mask_source is not None:
            mask_src = self.mask_source
            loops.append(("mask", lambda: self._capture_loop(mask_src, self._put_mask)))
        for name, target in loops:
            t = threading.Thread(target=target, name=f"sd-bridge-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop all threads; sinks and the source are closed by their threads. Returns within ~timeout."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

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

    # -- stats ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Everything the status line and OSC status replies show. Safe from any thread."""
        lat = self._stats.percentiles()
        try:
            eng = dict(self.engine.stats())
        except Exception:  # an engine's stats must never break a status reply
            eng = {}
        frames, skipped = int(eng.get("frames", 0) or 0), int(eng.get("skipped", 0) or 0)
        dropped = {"capture": self._in.dropped, "output": self._out.dropped}
        return {
            "fps": round(self._stats.fps(), 2),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": sum(dropped.values()),
            "dropped_by_stage": dropped,
            "skip_rate": round(skipped / frames, 4) if frames else 0.0,
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
            "bypass": self.bypass,
            "pause": self.pause,
            "rebuilding": self._rebuild_thread is not None and self._rebuild_thread.is_alive(),
            "rebuilds": self.rebuilds,
            "uptime_s": round(time.perf_counter() - self._t_start, 2),
        }

    def status_line(self) -> str:
        s = self.stats()
        flags = "".join(f" [{f}]" for f in ("bypass", "pause", "rebuilding") if s[f])
        return (
            f"{s['fps']:5.1f} fps | e2e p50 {s['latency_p50_ms']:.0f} ms p95 {s['latency_p95_ms']:.0f} ms"
            f" | skip {s['skip_rate'] * 100:.0f}% | dropped {s['dropped']} | out {s['frames_out']}"
            f" | {s['engine']} {s['width']}x{s['height']}{flags}"
        )

    # -- capture thread -------------------------------------------------------------------
    def _capture_loop(self, src: Source, deliver: Callable[[np.ndarray, float], None]) -> None:
        """Open, pace, read and fit `src`, handing each frame to `deliver(image, t_capture)`.

        A source that fails is reopened with a back-off while its last frame keeps being delivered.
        """
        opened = False
        backoff = self.options.retry_s
        retry_at = 0.0
        last: np.ndarray | None = None
        next_tick = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                pace = src.fps or 0.0
                if not opened:
                    if time.monotonic() >= retry_at:
                        try:
                            src.open(*self._size)
                            opened, backoff = True, self.options.retry_s
                            if self._source_down_logged:
                                log.info("source %s is back", src.name)
                                self._source_down_logged = False
                            continue
                        except Exception as exc:
                            self._source_fault(src, exc, "open")
                            retry_at = time.monotonic() + backoff
                            backoff = min(backoff * 2, 5.0)
                    if last is not None:  # keep the last frame going out meanwhile
                        deliver(last, time.perf_counter())
                    self.stop_event.wait(1.0 / max(self.options.fps, 1.0))
                    continue
                if pace:
                    delay = next_tick - time.perf_counter()
                    if delay > 0 and self.stop_event.wait(delay):
                        break
                    next_tick = max(next_tick + 1.0 / pace, time.perf_counter() - 1.0 / pace)
                t0 = time.perf_counter()
                try:
                    img = src.read()
                except Exception as exc:
                    self._source_fault(src, exc, "read")
                    self._close_quietly(src)
                    opened, retry_at = False, time.monotonic() + backoff
                    continue
                if img is None:
                    continue
                w, h = self._size
                try:
                    last = fit(img, w, h, self._fit)
                except Exception as exc:  # e.g. a frame of an unexpected shape: skip it
                    self._source_fault(src, exc, "frame")
                    continue
                deliver(last, t0)
        finally:
            if opened:
                self._close_quietly(src)

    def _put_frame(self, image: np.ndarray, t0: float) -> None:
        now = time.perf_counter()
        frame = Frame(image=image, index=self._next_index, t_capture=t0, times={"captured": now})
        self._next_index += 1
        self._stats.add("capture", now - t0)
        self.frames_in += 1
        self._in.put(frame)

    def _put_mask(self, image: np.ndarray, t0: float) -> None:
        self._mask_in.put(image)

    def _source_fault(self, src: Source, exc: BaseException, what: str) -> None:
        self.faults["source"] += 1
        self._source_down_logged |= self.once.warn(
            f"source:{src.name}:{what}:{one_line(exc)}", f"source {src.name}: {one_line(exc)} (retrying)"
        )

    def _close_quietly(self, thing: Source | Sink) -> None:
        try:
            thing.close()
        except Exception as exc:
            log.debug("closing %s: %s", thing.name, exc)

    # -- engine loop ----------------------------------------------------------------------
    def _engine_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._engine_step()
            except Exception as exc:  # a bug here must not end the show: log it and go on
                self.once.warn(
                    f"loop:engine:{one_line(exc)}", f"engine loop: {type(exc).__name__}: {one_line(exc)}"
                )
                self.stop_event.wait(0.01)

    def _engine_step(self) -> None:
        self._apply_control()
        self._swap_if_ready()
        batch = self._take_batch()
        if batch is None:
            return
        t0 = time.perf_counter()
        for f in batch:
            self._stats.add("queue", t0 - f.times["captured"])
        outputs = self._process(batch)
        t1 = time.perf_counter()
        self._stats.add("engine", t1 - t0)
        self._record_engine_timings()
        for f in outputs:
            f.times["engine"] = t1
        self._last_out = outputs
        self._out.put(outputs)

    def _record_engine_timings(self) -> None:
        """With `options.profile`, the engine's own stages (encode, unet, decode) join the stats."""
        if not self.options.profile:
            return
        timings = getattr(self.engine, "last_timings", None) or {}
        for name in ("encode", "unet", "decode"):
            ms = timings.get(name)
            if isinstance(ms, (int, float)):
                self._stats.add(f"engine.{name}", ms / 1000.0)

    def _take_batch(self) -> list[Frame] | None:
        n = max(1, int(self.engine.frame_buffer_size))
        first = self._in.get(0.1)
        if first is None:
            return None
        batch = [first]
        while len(batch) < n and not self.stop_event.is_set():
            nxt = self._in.get(0.1)
            if nxt is not None:
                batch.append(nxt)
        return batch if len(batch) == n else None

    def _process(self, batch: list[Frame]) -> list[Frame]:
        if self.pause and self._last_out is not None:
            held = self._last_out
            pairs = zip(held, batch, strict=False)
            return [Frame(f.image, b.index, b.t_capture, dict(b.times)) for f, b in pairs]
        if self.bypass:
            return batch
        w, h = self._size
        images = [b.image if b.image.shape[:2] == (h, w) else fit(b.image, w, h, self._fit) for b in batch]
        try:
            result = self.engine(self._bridge.to_tensor(images))
            # The pixels arrive in the output thread (its first `frame.image` waits for them).
            out_images = self._bridge.download(result).lazy(images, self._engine_output_fault)
            if len(out_images) != len(batch) or out_images[0].ndim != 3 or out_images[0].shape[2] != 3:
                raise BridgeError(
                    f"the engine returned shape {tuple(result.shape)}, expected {len(batch)}x3x{h}x{w}"
                )
        except Exception as exc:
            self.faults["engine"] += 1
            self.once.warn(
                f"engine:{type(exc).__name__}:{one_line(exc)}",
                f"engine error ({type(exc).__name__}: {one_line(exc)}); sending the input through meanwhile",
            )
            return batch
        # In stream-batch mode the output belongs to the input of `lag` calls ago: attribute it so.
        metas = self._lagged(batch)
        pairs = zip(out_images, metas, strict=True)
        return [Frame(img, m.index, m.t_capture, dict(m.times)) for img, m in pairs]

    def _engine_output_fault(self, exc: BaseException) -> None:
        """Non-finite engine output, found by the output thread: it sends the inputs instead."""
        self.faults["engine"] += 1
        self.once.warn(
            f"engine:{type(exc).__name__}:{one_line(exc)}",
            f"engine error ({type(exc).__name__}: {one_line(exc)}); sending the input through meanwhile",
        )

    def _lagged(self, batch: list[Frame]) -> list[Frame]:
        lag = getattr(self.engine, "lag", None)
        if lag is None:
            lag = len(self._t_index) - 1 if self.config.use_denoising_batch else 0
        self._pending_meta.append(batch)  # type: ignore[arg-type]
        while len(self._pending_meta) > lag + 1:
            self._pending_meta.popleft()
        return self._pending_meta[0]  # type: ignore[return-value]

    # -- control --------------------------------------------------------------------------
    def _apply_control(self) -> None:
        changes = self.store.drain()
        fresh_mask = self._mask_in.get(0) if self.mask_source is not None else None
        if fresh_mask is not None:
            self._mask_frame = fresh_mask
        if not changes and fresh_mask is None:
            return
        updates: dict[str, Any] = {}
        for name, value in changes.items():
            try:
                self._apply_one(name, value, updates)
            except Exception as exc:  # one bad control message never stops the loop
                self.once.warn(f"control:{name}:{one_line(exc)}", f"/sd/{name}: {one_line(exc)}")
        self._poll_regions(changes, fresh_mask is not None, updates)
        self._update_engine(updates)

    def _poll_regions(self, changes: dict[str, Any], fresh_mask: bool, updates: dict[str, Any]) -> None:
        """Region parameters and mask-source frames become one `regions=[...]` engine update."""
        if not hasattr(self.engine, "set_conditioning"):  # passthrough: nothing to paint with
            return
        try:
            regions = self._regions.poll(changes, self.store.snapshot(), self._mask_frame, fresh_mask)
        except Exception as exc:
            self.once.warn(f"regions:{one_line(exc)}", f"regions: {one_line(exc)}")
            return
        for problem in self._regions.problems:
            self.once.warn(f"regions:{problem}", f"regions: {problem}")
        if regions is not None:
            updates["regions"] = regions

    def _apply_one(self, name: str, value: Any, updates: dict[str, Any]) -> None:
        if name == "bypass":
            self.bypass = bool(value)
        elif name == "pause":
            self.pause = bool(value)
        elif name == "transition":
            self._transition_s = float(value)
        elif name == "preset":
            if value:
                self.load_preset(value)
        elif name == "resolution":
            w, h = value
            if (w, h) != (self._target.width, self._target.height):
                self.request_rebuild(width=w, height=h)
        elif name == "model":
            if value and value != self._target.model:  # the store's check allowed it
                self.request_rebuild(model=value)
        else:
            key = next(p.engine_key for p in PARAMS if p.name == name)
            if key is None:
                return
            if key == "prompt":
                fps = self._stats.fps() or self.options.fps
                updates["transition_frames"] = int(round(self._transition_s * fps))
            updates[key] = value

    def _update_engine(self, updates: dict[str, Any]) -> None:
        if not updates:
            return
        try:
            self.engine.update(**updates)
            accepted = updates
        except ValueError:
            accepted = {}
            for k, v in updates.items():  # apply what is valid, report what is not
                try:
                    self.engine.update(**{k: v})
                    accepted[k] = v
                except ValueError as exc:
                    self.once.warn(
                        f"update:{k}:{one_line(exc)}", f"engine refused {k}={v!r}: {one_line(exc)}"
                    )
        except Exception as exc:
            self.once.warn(f"update:{one_line(exc)}", f"engine update failed: {one_line(exc)}")
            return
        self._live.update(accepted)
        if "t_index_list" in accepted:
            self._t_index = list(accepted["t_index_list"])

    def _check_model(self, value: str) -> None:
        """`/sd/model` switches among the models the configuration and the presets name, nothing else."""
        allowed = self.allowed_models()
        if value and value not in allowed:
            raise ParamError(f"model {value!r} is not allowed here; allowed: {', '.join(sorted(allowed))}")

    def _check_preset(self, name: str) -> None:
        """`/sd/preset` names a preset that exists and reads cleanly, or the sender hears why at once."""
        from bridge.presets import load_preset

        if name:
            try:
                load_preset(name, self.options.presets_folder)
            except BridgeError as exc:
                raise ParamError(str(exc)) from None

    def allowed_models(self) -> set[str]:
        from bridge.presets import preset_models

        return {self.config.model, *self.options.allowed_models, *preset_models(self.options.presets_folder)}

    def load_preset(self, name: str) -> None:
        """Apply presets/NAME.toml live: live values through the store, the rest by a rebuild."""
        from bridge.presets import load_preset

        preset = load_preset(name, self.options.presets_folder)
        live = {ENGINE_FIELD_TO_PARAM[f]: v for f, v in preset.engine.items() if f in ENGINE_FIELD_TO_PARAM}
        if "transition" in preset.run:
            live["transition"] = preset.run["transition"]
        live.update(preset.run.get("regions", {}))
        if "fit" in preset.run:
            self._fit = preset.run["fit"]
        rebuild = {
            f: v
            for f, v in preset.engine.items()
            if f not in ENGINE_FIELD_TO_PARAM and getattr(self._target, f) != v
        }
        self.store.update(live, origin="preset")
        if rebuild:
            self.request_rebuild(**rebuild)
        start_only = [k for k in ("source", "sinks", "osc_port", "engine") if k in preset.run]
        log.info(
            "preset %s loaded%s%s",
            preset.name,
            f"; rebuilding for {', '.join(sorted(rebuild))}" if rebuild else "",
            f"; {', '.join(start_only)} apply at start only" if start_only else "",
        )

    # -- rebuilds -------------------------------------------------------------------------
    def request_rebuild(self, **changes: Any) -> None:
        """Build a new engine in the background; the current one serves until it is ready."""
        if self.factory is None:
            raise BridgeError("this runtime cannot rebuild its engine (no engine factory)")
        with self._lock:
            self._target = self._target.with_changes(**changes)
            self._rebuild_request = self._target
            if self._rebuild_thread is None or not self._rebuild_thread.is_alive():
                self._rebuild_thread = threading.Thread(
                    target=self._rebuild_worker, name="sd-bridge-rebuild", daemon=True
                )
                self._rebuild_thread.start()
        log.info("rebuilding the engine for %s", ", ".join(f"{k}={v}" for k, v in changes.items()))

    def _rebuild_worker(self) -> None:
        assert self.factory is not None
        while not self.stop_event.is_set():
            with self._lock:
                cfg, self._rebuild_request = self._rebuild_request, None
            if cfg is None:
                return
            try:
                engine = self.factory(cfg)
            except Exception as exc:
                self.faults["rebuild"] += 1
                log.warning("rebuild failed (%s); the current engine keeps serving", one_line(exc))
                with self._lock:
                    settled = self._rebuild_request is None
                    if settled:
                        self._target = self.config
                if settled:
                    self._show_serving_config(
                        f"rebuild failed: {one_line(exc)}; the current engine keeps serving"
                    )
                continue
            with self._lock:
                if self._rebuild_request is None:
                    self._ready = (engine, cfg)

    def _show_serving_config(self, why: str) -> None:
        """After a failed rebuild the store goes back to the model and resolution actually serving,
        so `/sd/get` and faders never show a wish; OSC clients get `why` as `/sd/error` and the
        serving values as echoes."""
        cfg = self.config
        serving = {"model": cfg.model, "resolution": [cfg.width, cfg.height]}
        self.store.update(serving, origin=Failure(why))

    def _swap_if_ready(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return
        engine, cfg = ready
        self._update_engine_on(engine)
        self._set_profile(engine)
        self.engine, self.config = engine, cfg
        self._bridge = TensorBridge(engine.device, engine.dtype)
        self._size = (cfg.width, cfg.height)
        self._regions.size = (cfg.height, cfg.width)
        self._t_index = list(self._live.get("t_index_list", cfg.t_index_list))
        self._pending_meta.clear()
        self.rebuilds += 1
        log.info("engine ready: %s %dx%d", cfg.model, cfg.width, cfg.height)

    def _set_profile(self, engine: FrameEngine) -> None:
        if self.options.profile and hasattr(engine, "profile"):
            engine.profile = True  # type: ignore[attr-defined]

    def _update_engine_on(self, engine: FrameEngine) -> None:
        """Carry the live values over to a freshly built engine."""
        for k, v in self._live.items():
            if k == "transition_frames":
                continue
            try:
                engine.update(**{k: v})
            except Exception as exc:
                self.once.warn(f"carry:{k}", f"the new engine refused {k}={v!r}: {one_line(exc)}")

    def _sync_store_from_config(self, config: EngineConfig) -> None:
        values: dict[str, Any] = {name: get(config) for name, get in _PARAM_FROM_CONFIG.items()}
        values["resolution"] = [config.width, config.height]
        values["model"] = config.model
        for name, v in values.items():
            with contextlib.suppress(ValueError):
                self.store.set(name, v, origin="config")
        self.store.drain()

    # -- output thread --------------------------------------------------------------------
    def _output_loop(self) -> None:
        opened: dict[int, tuple[int, int] | None] = {id(s): None for s in self.sinks}
        retry_at: dict[int, float] = {}
        backoff: dict[int, float] = {}
        try:
            while not self.stop_event.is_set():
                batch = self._out.get(0.1)
                if batch is None:
                    continue
                try:
                    status = self.status_line()
                except Exception:  # the overlay is cosmetic
                    status = ""
                for frame in batch:
                    self._write_all(frame, status, opened, retry_at, backoff)
                    done = time.perf_counter()
                    self._stats.add("output", done - frame.times.get("engine", done))
                    self._stats.add("e2e", done - frame.t_capture)
                    self._stats.frame_out(done)
                    self.frames_out += 1
                    if self.frames_out == 1:
                        log.info("first frame out, %.0f ms after start", (done - self._t_start) * 1000)
                    if self.options.max_frames is not None and self.frames_out >= self.options.max_frames:
                        self.stop_event.set()
                        break
        finally:
            for s in self.sinks:
                if opened.get(id(s)) is not None:
                    self._close_quietly(s)

    def _write_all(
        self,
        frame: Frame,
        status: str,
        opened: dict[int, tuple[int, int] | None],
        retry_at: dict[int, float],
        backoff: dict[int, float],
    ) -> None:
        h, w = frame.image.shape[:2]
        for sink in self.sinks:
            key = id(sink)
            size = opened[key]
            if size is not None and size != (w, h) and not sink.fixed_size:
                self._close_quietly(sink)
                opened[key] = size = None
            if size is None:
                if time.monotonic() < retry_at.get(key, 0.0):
                    continue
                try:
                    sink.open(w, h, self.options.fps)
                except Exception as exc:
                    self._sink_fault(sink, exc, "open", retry_at, backoff)
                    continue
                opened[key] = (w, h)
                if self.once.count(f"sink:{sink.name}:"):
                    log.info("sink %s is back", sink.name)
                    self.once.forget(f"sink:{sink.name}:")
            try:
                sink.write(frame.image, status)
            except Exception as exc:
                self._sink_fault(sink, exc, "write", retry_at, backoff)
                self._close_quietly(sink)
                opened[key] = None
                continue
            backoff.pop(key, None)

    def _sink_fault(
        self, sink: Sink, exc: BaseException, what: str, retry_at: dict[int, float], backoff: dict[int, float]
    ) -> None:
        self.faults["sink"] += 1
        key = id(sink)
        delay = backoff.get(key, self.options.retry_s)
        backoff[key] = min(delay * 2, 5.0)
        retry_at[key] = time.monotonic() + delay
        self.once.warn(
            f"sink:{sink.name}:{what}:{one_line(exc)}", f"sink {sink.name}: {one_line(exc)} (reopening)"
        )
