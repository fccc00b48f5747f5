"""`sd-bridge doctor`: one line per thing the daemon may need, green (ok), yellow (optional, missing)
or red (broken), each with the fix."""

from __future__ import annotations

import glob
import importlib
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    status: str
    name: str
    detail: str
    fix: str = ""


def register(app: typer.Typer) -> None:
    app.command(
        help="Check Python, torch/CUDA, TensorRT, every source and sink, the OSC port and the model cache."
    )(doctor)


def doctor(
    osc_port: int = typer.Option(7000, "--osc-port", help="The OSC port to check."),
    model: str = typer.Option("stabilityai/sd-turbo", "--model", help="The model whose cache to check."),
) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    colours = {OK: "green", WARN: "yellow", FAIL: "red"}
    marks = {OK: "ok  ", WARN: "--  ", FAIL: "FAIL"}
    results = run_checks(osc_port, model)
    for c in results:
        fix = f"  -> {c.fix}" if c.fix and c.status != OK else ""
        line = escape(f"{c.name:<10} {c.detail}{fix}")
        console.print(f"[{colours[c.status]}]{marks[c.status]}[/] {line}", markup=True)
    raise typer.Exit(1 if any(c.status == FAIL for c in results) else 0)


def run_checks(osc_port: int = 7000, model: str = "stabilityai/sd-turbo") -> list[Check]:
    checks: list[Callable[[], Check]] = [
        check_python,
        check_torch,
        check_cuda,
        check_tensorrt,
        check_screen,
        lambda: check_spout("spout"),
        lambda: check_module("ndi", "cyndilib", 'pip install "sd-bridge[ndi]"', "NDI source and sink"),
        check_mdns,
        check_opencv,
        check_vcam,
        check_window,
        check_file_sink,
        lambda: check_osc_port(osc_port),
        lambda: check_model_cache(model),
    ]
    results = []
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # a doctor must never crash on the thing it diagnoses
            results.append(Check(FAIL, getattr(check, "__name__", "check"), f"check crashed: {exc}"))
    return results


def check_python() -> Check:
    v = sys.version_info
    ok = v >= (3, 10)
    return Check(
        OK if ok else FAIL, "python", f"{v.major}.{v.minor}.{v.micro}", "install Python 3.10 or newer"
    )


def check_torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check(FAIL, "torch", "not installed", "pip install torch (see the README for the CUDA build)")
    return Check(OK, "torch", torch.__version__)


def check_cuda() -> Check:
    try:
        import torch
    except ImportError:
        return Check(FAIL, "cuda", "no torch")
    if torch.cuda.is_available():
        return Check(OK, "cuda", f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    fix = "install the CUDA build of torch: pip install torch --index-url https://download.pytorch.org/whl/cu128"
    if sys.platform == "darwin":
        fix = "macOS has no CUDA; the engine runs on the CPU or MPS (slow)"
    return Check(WARN, "cuda", "not available: the engine runs on the CPU (slow)", fix)


def check_tensorrt() -> Check:
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        return Check(
            WARN, "tensorrt", "not installed (PyTorch path only)", 'pip install "sd-bridge[tensorrt]"'
        )
    return Check(OK, "tensorrt", getattr(trt, "__version__", "installed"))


def check_module(name: str, module: str, fix: str, what: str) -> Check:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return Check(WARN, name, f"{module} is not installed ({what} unavailable)", fix)
    return Check(OK, name, f"{module} {getattr(mod, '__version__', '')}".strip() + f" ({what})")


def check_mdns() -> Check:
    from bridge.mdns_status import AVAHI_FIX, mdns_problem

    problem = mdns_problem()
    if problem:
        return Check(WARN, "mdns", f"{problem}: NDI sources will not be found", AVAHI_FIX)
    return Check(OK, "mdns", "discovery available (NDI sources can be found)")


def check_screen() -> Check:
    try:
        import mss
    except ImportError:
        return Check(WARN, "screen", "mss is not installed", "pip install mss")
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return Check(
            WARN, "screen", "no display (DISPLAY is not set)", "run on a desktop session or under Xvfb"
        )
    factory = getattr(mss, "MSS", None) or mss.mss
    try:
        with factory() as sct:
            n = len(sct.monitors) - 1
    except Exception as exc:
        return Check(FAIL, "screen", f"cannot open the display: {str(exc).splitlines()[0]}", "check DISPLAY")
    return Check(OK, "screen", f"mss {mss.__version__}, {n} monitor(s)")


def check_spout(name: str) -> Check:
    from bridge.errors import BackendMissing
    from bridge.spout import import_spoutgl

    try:
        import_spoutgl()
    except BackendMissing as exc:
        status = WARN
        return Check(
            status, name, str(exc).split(";")[0], str(exc).split(";")[-1].strip() if ";" in str(exc) else ""
        )
    return Check(OK, name, "SpoutGL (Spout source and sink)")


def check_opencv() -> Check:
    try:
        import cv2
    except ImportError:
        return Check(FAIL, "opencv", "not installed", "pip install opencv-python")
    return Check(OK, "opencv", f"{cv2.__version__} (camera, file and image sources)")


def check_vcam() -> Check:
    from bridge.sinks.vcam import install_hint

    try:
        import pyvirtualcam
    except ImportError:
        return Check(WARN, "vcam", "pyvirtualcam is not installed", 'pip install "sd-bridge[vcam]"')
    if sys.platform.startswith("linux"):
        loopbacks = [
            p
            for p in glob.glob("/sys/devices/virtual/video4linux/video*/name")
            if "loopback" in Path(p).read_text(encoding="utf-8", errors="replace").lower()
        ]
        if not loopbacks:
            return Check(WARN, "vcam", "no v4l2loopback device", install_hint())
        return Check(
            OK, "vcam", f"pyvirtualcam {pyvirtualcam.__version__}, {len(loopbacks)} loopback device(s)"
        )
    return Check(OK, "vcam", f"pyvirtualcam {pyvirtualcam.__version__} (needs: {install_hint()})")


def check_window() -> Check:
    from bridge.sinks.window import has_display

    if not has_display():
        return Check(
            WARN, "window", "no display: `auto` records to out/sd-bridge.mp4", "run on a desktop session"
        )
    return Check(OK, "window", "preview window available")


def check_file_sink() -> Check:
    import cv2
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.mp4")
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 64))
        ok = w.isOpened()
        if ok:
            w.write(np.zeros((64, 64, 3), np.uint8))
        w.release()
        ok = ok and os.path.getsize(path) > 0
    if not ok:
        return Check(
            FAIL, "file", "OpenCV cannot write mp4 here", "pip install --force-reinstall opencv-python"
        )
    return Check(OK, "file", "mp4 recording works")


def check_osc_port(port: int) -> Check:
    if port == 0:
        return Check(OK, "osc", "disabled")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as exc:
        return Check(
            FAIL,
            "osc",
            f"UDP port {port} is taken ({exc.strerror})",
            "close the other program or use --osc-port N",
        )
    finally:
        s.close()
    return Check(OK, "osc", f"UDP port {port} is free")


def check_model_cache(model: str) -> Check:
    if model.startswith("random:"):
        return Check(OK, "model", f"{model} (built in, no download)")
    if os.path.exists(model):
        return Check(OK, "model", f"{model} (local)")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return Check(FAIL, "model", "huggingface_hub is not installed", "pip install huggingface_hub")
    cached = try_to_load_from_cache(model, "model_index.json")
    if isinstance(cached, str):
        return Check(OK, "model", f"{model} is cached")
    offline = os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")
    detail = f"{model} is not cached" + (
        " and HF_HUB_OFFLINE is set" if offline else " (downloads on first run)"
    )
    return Check(
        FAIL if offline else WARN,
        "model",
        detail,
        f"go online once for `sd-bridge run`, or run without it: sd-bridge run --model random:{_arch(model)}",
    )


def _arch(model: str) -> str:
    return "sd-turbo" if "turbo" in model.lower() else "sd15"
