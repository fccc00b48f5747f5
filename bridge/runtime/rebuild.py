"""Rebuild: new engines are built on a background thread while the current one keeps serving.

The engine loop swaps a finished engine in between frames (a pointer change) and the old one is
released at once: its last reference is dropped, cycles are collected, the CUDA cache emptied and
the C heap trimmed, and the memory that came back is logged. A failed build leaves the serving
engine alone and puts the store back to what is serving, telling OSC clients why (`/sd/error`).
A preset that needs the rebuild applies its live values only when the new engine swaps in.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.control.store import Failure
from bridge.errors import BridgeError
from bridge.frames import TensorBridge
from engine import EngineConfig, FrameEngine

from .engines import one_line
from .log import log

if TYPE_CHECKING:
    from .daemon import Runtime

Deferred = tuple[str, Callable[[], None]]
"""(preset name, apply its live values): run when the rebuild it asked for swaps in."""
MIB = 1024 * 1024


class RebuildRoom:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.target: EngineConfig = rt.config
        """The configuration asked for (serving, or being built)."""
        self.rebuilds = 0
        self.last_freed: dict[str, Any] = {}
        """What releasing the last replaced engine gave back (MiB), and whether it was collected."""
        self._lock = threading.Lock()
        self._request: EngineConfig | None = None
        self._deferred: list[Deferred] = []
        self._thread: threading.Thread | None = None
        self._ready: tuple[FrameEngine, EngineConfig, list[Deferred]] | None = None
        self._freeing: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A build is under way (the worker clears this under the lock as it decides to exit, so a
        request that comes in meanwhile starts a new worker instead of being lost)."""
        return self._thread is not None

    def request(self, then: Deferred | None = None, **changes: Any) -> None:
        """Build a new engine in the background; the current one serves until it is ready."""
        if self.rt.factory is None:
            raise BridgeError("this runtime cannot rebuild its engine (no engine factory)")
        with self._lock:
            self.target = self.target.with_changes(**changes)
            self._request = self.target
            if then is not None:
                self._deferred.append(then)
            if not self.busy:
                self._thread = threading.Thread(target=self._worker, name="sd-bridge-rebuild", daemon=True)
                self._thread.start()
        log.info("rebuilding the engine for %s", ", ".join(f"{k}={v}" for k, v in changes.items()))

    def _worker(self) -> None:
        rt = self.rt
        assert rt.factory is not None
        while not rt.stop_event.is_set():
            with self._lock:
                cfg, self._request = self._request, None
                if cfg is None:
                    self._thread = None
                    return
            try:
                engine = rt.factory(cfg)
            except Exception as exc:
                rt.faults["rebuild"] += 1
                log.warning("rebuild failed (%s); the current engine keeps serving", one_line(exc))
                with self._lock:
                    settled = self._request is None
                    dropped: list[Deferred] = []
                    if settled:
                        self.target = rt.config
                        dropped, self._deferred = self._deferred, []
                if settled:
                    self._show_serving_config(exc, [name for name, _ in dropped])
                continue
            with self._lock:
                if self._request is None:
                    self._ready, self._deferred = (engine, cfg, self._deferred), []
            del engine  # a build overtaken by a newer request is freed here
        with self._lock:  # stopped
            self._thread = None

    def _show_serving_config(self, exc: BaseException, presets: list[str]) -> None:
        """After a failed rebuild the store goes back to the model and resolution actually serving
        (and the preset last applied whole), so `/sd/get` and faders never show a wish; OSC clients
        get why as `/sd/error` and the serving values as echoes."""
        rt = self.rt
        cfg = rt.config
        why = f"rebuild failed: {one_line(exc)}; the current engine keeps serving"
        serving: dict[str, Any] = {"model": cfg.model, "resolution": [cfg.width, cfg.height]}
        if presets:
            why += f"; preset {', '.join(presets)} not applied"
            serving["preset"] = rt.control.serving_preset
            log.warning("preset %s not applied: its rebuild failed", ", ".join(presets))
        rt.control.write_back(serving, Failure(why))

    # -- engine thread ----------------------------------------------------------------------
    def swap_if_ready(self) -> bool:
        """Between frames: put a finished engine in service, then release the old one."""
        rt = self.rt
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return False
        engine, cfg, deferred = ready
        del ready
        rt.control.carry_over(engine)
        rt._prepare_engine(engine)
        before = memory_now()
        old = weakref.ref(rt.engine) if _weakrefable(rt.engine) else None
        rt.engine, rt.config = engine, cfg
        rt._bridge = TensorBridge(engine.device, engine.dtype)
        rt._size = (cfg.width, cfg.height)
        rt._regions.size = (cfg.height, cfg.width)
        rt.control.t_index = list(rt.control.live.get("t_index_list", cfg.t_index_list))
        self.rebuilds += 1
        log.info("engine ready: %s %dx%d", cfg.model, cfg.width, cfg.height)
        for _, apply_live in deferred:
            apply_live()
        freeing = threading.Thread(
            target=self._release, args=(old, before), name="sd-bridge-free", daemon=True
        )
        freeing.start()
        self._freeing = freeing  # started before anyone can join it
        return True

    def _release(self, old: weakref.ref | None, before: dict[str, float]) -> None:
        """Collect what the old engine left (cycles, the CUDA cache, the C heap) and log the figure."""
        gc.collect()
        empty_cuda_cache()
        trim_heap()
        after = memory_now()
        freed = {k: round((before[k] - after.get(k, 0.0)) / MIB, 1) for k in before}
        collected = old is None or old() is None
        self.last_freed = {**{f"{k}_freed_mib": v for k, v in freed.items()}, "collected": collected}
        both = [k for k in before if k in after]
        figures = ", ".join(f"{k} {before[k] / MIB:.0f} -> {after[k] / MIB:.0f} MiB" for k in both)
        if collected:
            log.info("released the replaced engine%s", f": {figures}" if figures else "")
        else:
            log.warning("the replaced engine is still referenced somewhere; its memory is not freed")

    def wait_released(self, timeout: float) -> bool:
        """For tests and the bench: wait for the last release to finish."""
        t = self._freeing
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()


def _weakrefable(obj: object) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


def memory_now() -> dict[str, float]:
    """Bytes in use: process RSS (Linux, or with psutil) and, once CUDA is in use, its allocation."""
    out: dict[str, float] = {}
    rss = rss_bytes()
    if rss is not None:
        out["rss"] = float(rss)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = float(torch.cuda.memory_reserved())
    return out


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def trim_heap() -> None:
    """glibc keeps freed memory in its arenas; malloc_trim hands it back to the system."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
