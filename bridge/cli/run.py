"""`sd-bridge run`: source -> engine -> sinks, until Ctrl-C, --frames or --seconds."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command(help="Run the daemon: capture, diffuse, send, steered live over OSC.")(run)


def run(
    preset: str = typer.Option(
        None, "--preset", "-p", help="A preset NAME from presets/ or a PATH to a .toml."
    ),
    source: str = typer.Option(
        None,
        "--source",
        "-s",
        help="pattern | screen[:N|:x,y,w,h] | spout:NAME | ndi:NAME | camera:N | file:PATH | image:PATH",
    ),
    mask_source: str = typer.Option(
        None,
        "--mask-source",
        help="A second source whose frames paint brush masks (/sd/region/N/mask source:<channel>).",
    ),
    controlnet: list[str] = typer.Option(
        None,
        "--controlnet",
        help="A ControlNet: PREPROCESSOR[=NET][@SCALE], e.g. canny, depth=random:controlnet@0.8 "
        "(canny | depth | softedge | passthrough; repeatable, up to 4).",
    ),
    control_source: str = typer.Option(
        None,
        "--control-source",
        help="A second source whose frames are the ControlNet image (ndi:NAME, spout:NAME, file:, image:).",
    ),
    sink: list[str] = typer.Option(
        None,
        "--sink",
        "-o",
        help="auto | vcam | spout:NAME | ndi:NAME | window | file:PATH | null (repeatable)",
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="HF id, folder, .safetensors, or random:tiny|sd15|sd-turbo"
    ),
    engine: str = typer.Option(
        None, "--engine", help="stream (StreamDiffusion) or passthrough (output = input)."
    ),
    fallback: bool = typer.Option(
        False, "--fallback-passthrough", help="If the model cannot load, run passthrough instead of exiting."
    ),
    width: int = typer.Option(None, "--width"),
    height: int = typer.Option(None, "--height"),
    t_index: str = typer.Option(None, "--t-index", help="Denoising steps, e.g. 35 or 32,45."),
    cfg_type: str = typer.Option(None, "--cfg-type", help="none | full | self | initialize"),
    guidance: float = typer.Option(None, "--guidance"),
    delta: float = typer.Option(None, "--delta"),
    prompt: str = typer.Option(None, "--prompt"),
    negative_prompt: str = typer.Option(None, "--negative-prompt"),
    seed: int = typer.Option(None, "--seed"),
    similarity_filter: bool = typer.Option(
        None, "--filter/--no-filter", help="Stochastic similarity filter."
    ),
    accel: str = typer.Option(None, "--accel", help="auto | torch | compile | tensorrt"),
    fps: float = typer.Option(None, "--fps", help="Capture pace for pattern/screen/file/image; sinks' rate."),
    fit: str = typer.Option(
        None, "--fit", help="crop | letterbox | stretch (keep aspect when scaling the input)."
    ),
    frames: int = typer.Option(None, "--frames", help="Stop after this many output frames."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this many seconds."),
    osc_port: int = typer.Option(None, "--osc-port", help="OSC port (default 7000; 0 disables OSC)."),
    osc_host: str = typer.Option(
        "127.0.0.1", "--osc-host", help="Address OSC listens on (0.0.0.0: the LAN)."
    ),
    osc_allow: list[str] = typer.Option(
        None, "--osc-allow", help="Client addresses allowed to send (repeatable)."
    ),
    osc_reply_port: int = typer.Option(None, "--osc-reply-port", help="Send status replies to this port."),
    osc_query_port: int = typer.Option(
        None,
        "--osc-query-port",
        help="TCP port of the OSCQuery server (HTTP + JSON; default: the OSC port + 1; 0 disables it).",
    ),
    osc_optional: bool = typer.Option(
        False,
        "--osc-optional",
        help="If the OSC (or OSCQuery) port is taken, run without OSC instead of refusing to start.",
    ),
    profile: bool = typer.Option(
        False, "--profile", help="Time the engine's encode/unet/decode in the stats."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status line."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    from bridge.errors import BridgeError
    from bridge.runtime.log import log, setup_logging

    setup_logging(verbose)
    overrides: dict[str, Any] = {
        "source": source,
        "sinks": list(sink) if sink else None,
        "model": model,
        "engine": engine,
        "width": width,
        "height": height,
        "t_index_list": _int_list(t_index),
        "cfg_type": cfg_type,
        "guidance": guidance,
        "delta": delta,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "filter": similarity_filter,
        "accel": accel,
        "fps": fps,
        "fit": fit,
        "osc_port": osc_port,
        "controlnets": list(controlnet) if controlnet else None,
    }
    signals = StopSignals()
    try:
        with signals:
            code = _run(
                overrides,
                preset,
                fallback,
                frames,
                seconds,
                quiet,
                OscOptions(osc_host, osc_allow, osc_reply_port, osc_query_port, osc_optional),
                profile,
                mask_source,
                control_source,
                signals,
            )
    except BridgeError as exc:
        log.error("%s", exc)
        raise typer.Exit(1) from None
    except (StopRequested, KeyboardInterrupt):  # a signal before anything was running (model load)
        name = signals.received_name or "SIGINT"
        log.info("stopped by %s before the daemon was running (nothing to close)", name)
        _fast_exit(signals.exit_code())
        raise typer.Exit(signals.exit_code()) from None
    code = code or signals.exit_code()
    _fast_exit(code)
    raise typer.Exit(code)


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived while starting up (loading the model): stop there. A BaseException,
    like KeyboardInterrupt, so the `except Exception` around a model load lets it through."""


class StopSignals:
    """SIGINT/SIGTERM handling for the whole life of `run`, installed before anything slow.

    While starting up (`starting` is True) a signal raises StopRequested in the main thread, which
    interrupts a model load; once running it only sets `stop` (the runtime's stop event), so the main
    loop closes the sinks and leaves without waiting for an engine call in flight. SIGINT exits 130
    (the shell's convention for Ctrl-C), SIGTERM exits 0 (a requested, clean stop)."""

    REDELIVER_S = 0.2
    """How long a StopRequested may go unseen before the signal is delivered again."""

    def __init__(self) -> None:
        self.starting = True
        self.stop: threading.Event | None = None
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._closed = threading.Event()
        self._redelivering = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()  # from here a late redelivery finds a handler that does nothing
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self._closed.is_set():
            return
        self.received = signum
        if self.stop is not None:
            self.stop.set()
        if self.starting:
            self._redeliver_until_seen(signum)
            raise StopRequested(signal.Signals(signum).name)

    def _redeliver_until_seen(self, signum: int) -> None:
        """Python drops an exception raised where it cannot propagate: a signal that lands in a
        weakref callback or a __del__ (importlib runs one on every import) prints "Exception ignored"
        and the model load goes on. So until `run` has left (`__exit__`), or is running and stops
        through the event, the signal is delivered to the main thread again every REDELIVER_S."""
        if self._redelivering:
            return
        self._redelivering = True

        def again() -> None:
            while not self._closed.wait(self.REDELIVER_S) and self.starting:
                _thread.interrupt_main(signum)

        threading.Thread(target=again, name="stop-signal", daemon=True).start()

    @property
    def received_name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    def exit_code(self) -> int:
        return 130 if self.received == signal.SIGINT else 0


@dataclass(frozen=True)
class OscOptions:
    host: str = "127.0.0.1"
    allow: list[str] | None = None
    reply_port: int | None = None
    query_port: int | None = None
    """None: the OSC port + 1; 0: no OSCQuery."""
    optional: bool = False
    """Run without OSC when a port is taken, instead of refusing to start."""

    def query_port_for(self, osc_port: int) -> int | None:
        if not osc_port or self.query_port == 0:
            return None
        return osc_port + 1 if self.query_port is None else self.query_port


def _fast_exit(code: int) -> None:
    """Leave at once after a clean shutdown: everything we opened is closed and flushed by now, and
    torch's own interpreter teardown takes most of a second, which a show's Ctrl-C should not wait.
    (Not inside pytest, where `run` may be invoked in-process.)"""
    if "pytest" in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _int_list(text: str | None) -> list[int] | str | None:
    if text is None:
        return None
    try:
        return [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        return text  # the preset checker reports it with what is expected


def _run(
    overrides: dict[str, Any],
    preset_arg: str | None,
    fallback: bool,
    frames: int | None,
    seconds: float | None,
    quiet: bool,
    osc_options: OscOptions,
    profile: bool = False,
    mask_source: str | None = None,
    control_source: str | None = None,
    signals: StopSignals | None = None,
) -> int:
    from bridge.control.controlnet_params import CONTROL_SOURCE, controlnet_store_values
    from bridge.control.store import ParamStore
    from bridge.runtime import ModelUnavailable, PassthroughEngine, Runtime, RuntimeOptions, build_engine
    from bridge.runtime.engines import factory_for, one_line
    from bridge.runtime.log import log
    from bridge.runtime.settings import DEFAULT_MODEL, OFFLINE_MODEL, resolve_settings
    from bridge.sinks import make_sink, resolve_auto
    from bridge.sources import open_source

    signals = signals or StopSignals()
    settings = resolve_settings(preset_arg, overrides)
    config = settings.config
    osc_port = settings.osc_port
    if osc_port and not osc_options.optional:  # before the model loads: a taken port fails in a second
        check_ports_free(osc_options.host, osc_port, osc_options.query_port_for(osc_port))
    src = open_source(settings.source, fps=settings.fps)
    mask_src = open_source(mask_source, fps=settings.fps, keep_alpha=True) if mask_source else None
    control_src = open_source(control_source, fps=settings.fps) if control_source else None
    sinks = [make_sink(s) for s in settings.sinks]
    aux = {name: a for name, a in (("mask", mask_src), (CONTROL_SOURCE, control_src)) if a is not None}
    for part in (src, *aux.values(), *sinks):
        # A backend that cannot work here at all (no Spout off Windows, no v4l2loopback, no display)
        # is a one-line error now, before the model loads; anything else is retried while running.
        check = getattr(part, "preflight", None)
        if check is not None:
            check()
    kind = settings.engine
    if kind == "stream":
        log.info("loading %s (%dx%d)...", config.model, config.width, config.height)
        try:
            eng = build_engine(config, "stream")
        except Exception as exc:  # ModelUnavailable, or anything a broken model throws at load time
            why = one_line(exc)
            if isinstance(exc, ModelUnavailable) and config.model == DEFAULT_MODEL and not fallback:
                if DEFAULT_MODEL not in why:
                    why = f"model {DEFAULT_MODEL} is not available: {why}"
                log.error(
                    "%s Run it now without a download: sd-bridge run --model %s", why.rstrip(), OFFLINE_MODEL
                )
                return 1
            if not fallback:
                log.error(
                    "cannot load model %s: %s (add --fallback-passthrough to run without it)",
                    config.model,
                    why,
                )
                return 1
            log.warning("cannot load model %s: %s; running passthrough (output = input)", config.model, why)
            eng, kind = (
                PassthroughEngine(config.width, config.height, config.frame_buffer_size),
                "passthrough",
            )
    else:
        eng = PassthroughEngine(config.width, config.height, config.frame_buffer_size)
    for i, unit in enumerate(getattr(getattr(eng, "controlnets", None), "units", [])):  # ControlNet
        log.info(
            "ControlNet %d: %s, %s, scale %g", i, unit.model, unit.live["preprocessor"], unit.live["scale"]
        )
    store = ParamStore()
    options = RuntimeOptions(
        fps=settings.fps,
        fit=settings.fit,  # type: ignore[arg-type]
        max_frames=frames,
        profile=profile,
        allowed_models={config.model},
    )
    runtime = Runtime(
        src,
        sinks,
        eng,
        config,
        store=store,
        factory=factory_for(settings.engine),  # after a fallback, a live model switch may still load
        options=options,
        engine_name=kind,
        aux_sources=aux,
    )
    if settings.transition is not None:
        store.set("transition", settings.transition, origin="preset")
    if settings.preset is not None and settings.preset.run.get("regions"):
        store.update(settings.preset.run["regions"], origin="preset")
    if config.controlnets:  # ControlNet: the store (and OSC /sd/get) start from the nets' values
        store.update(controlnet_store_values(config.controlnets), origin="preset")
    osc = start_osc(store, runtime.stats, osc_port, osc_options, runtime.stop_event.set)
    outs = ", ".join(resolve_auto(s) for s in settings.sinks)
    what = f"{kind} {config.model}" if kind == "stream" else kind
    signals.stop = runtime.stop_event
    signals.starting = False
    if signals.received is not None:  # a signal during start-up that the model load did not see
        if osc is not None:
            osc.stop()
        raise StopRequested()  # nothing is running yet: leave as a signal during the load does
    log.info("running: %s -> %s -> %s (Ctrl-C stops)", src.name, what, outs)
    runtime.start()
    try:
        _main_loop(runtime, seconds, quiet)
    finally:
        # Sinks are closed by their own threads; an engine call in flight (a second or more on a CPU)
        # holds nothing to close, so it is not waited for.
        runtime.stop(timeout=1.0, engine_timeout=0.05)
        runtime.close_windows()
        if osc is not None:
            osc.stop()
    s = runtime.stats()
    _clear_line(quiet)
    log.info(
        "stopped: %d frames out, %.1f fps, e2e p50 %.0f ms p95 %.0f ms, dropped %d, faults %s",
        s["frames_out"],
        s["fps"],
        s["latency_p50_ms"],
        s["latency_p95_ms"],
        s["dropped"],
        ", ".join(f"{k} {v}" for k, v in s["faults"].items() if v) or "none",
    )
    return 0


def start_osc(
    store: Any,
    stats: Callable[[], dict],
    port: int,
    options: OscOptions,
    on_quit: Callable[[], None] | None = None,
) -> Any:
    """Start the OSC server (and OSCQuery beside it); None when OSC is off (port 0). A port that
    cannot be had refuses the start (BridgeError), or with `options.optional` runs without OSC.
    `on_quit` is what `/sd/quit` calls: the daemon's clean stop."""
    from bridge.errors import BridgeError
    from bridge.runtime.log import log

    if not port:
        return None
    from bridge.control.osc import OscServer

    server = OscServer(
        store,
        host=options.host,
        port=port,
        stats=stats,
        reply_port=options.reply_port,
        allow=options.allow or None,
        query_port=options.query_port_for(port),
        on_quit=on_quit,
    )
    try:
        server.start()
    except OSError as exc:
        if not options.optional:
            raise BridgeError(f"{exc}: {PORT_FIX}") from None
        log.warning("OSC: %s; running without OSC (--osc-optional)", exc)
        return None
    host, bound = server.address
    query = server.query_address
    log.info(
        "OSC listening on %s:%d%s",
        host,
        bound,
        f", OSCQuery on http://{query[0]}:{query[1]}/" if query else "",
    )
    return server


PORT_FIX = (
    "close the program that holds it, or pick free ports with --osc-port N (OSCQuery takes N+1, "
    "or --osc-query-port M), or add --osc-optional to run without OSC"
)


def check_ports_free(host: str, osc_port: int, query_port: int | None) -> None:
    """Raise BridgeError naming the port and the fix if the OSC (UDP) or OSCQuery (TCP) port is taken.
    (Port 7000 is a common default of other OSC software.)"""
    import socket

    from bridge.errors import BridgeError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    wanted = [(socket.SOCK_DGRAM, osc_port, "OSC", "UDP")]
    if query_port:
        wanted.append((socket.SOCK_STREAM, query_port, "OSCQuery", "TCP"))
    for kind, port, what, proto in wanted:
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:  # as http.server binds: a port in TIME_WAIT is free
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise BridgeError(
                    f"{what} port {port} ({proto} on {host}) is taken ({exc.strerror or exc}): {PORT_FIX}"
                ) from None


def _main_loop(runtime: Any, seconds: float | None, quiet: bool) -> None:
    """Wait in the main thread (signals arrive here), drawing the status line."""
    stop = runtime.stop_event
    tty = sys.stderr.isatty()
    start = time.monotonic()
    last_print = start
    tick = 1 / 60 if runtime.needs_pump else (0.25 if tty else 0.5)
    last_status = start
    while not stop.wait(tick):
        runtime.pump()
        now = time.monotonic()
        if seconds is not None and now - start >= seconds:
            stop.set()
            break
        if quiet:
            continue
        if tty and now - last_status >= 0.25:
            last_status = now
            sys.stderr.write("\r\x1b[K" + runtime.status_line())
            sys.stderr.flush()
        elif not tty and now - last_print >= 10.0:
            sys.stderr.write("sd-bridge: " + runtime.status_line() + "\n")
            last_print = now


def _clear_line(quiet: bool) -> None:
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
