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
        lambda: check_module("ndi", "cyndilib", f'{pip()} install "sd-bridge[ndi]"', "NDI source and sink"),
        check_mdns,
        check_opencv,
        check_vcam,
        check_window,
        check_file_sink,
        lambda: check_osc_port(osc_port),
        lambda: check_model_cache(model),
        check_presets,
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


CUDA_MIN_DRIVER = {13: 580, 12: 525}
"""The oldest NVIDIA driver (Linux major version) each CUDA major version runs on."""


def pip() -> str:
    """The pip of the Python running sd-bridge (the project's .venv, not the system's)."""
    exe = Path(sys.executable)
    try:
        shown = exe.relative_to(Path.cwd())
        return f"{shown} -m pip"
    except ValueError:
        return f"{exe} -m pip"


def installer(build: str = "") -> str:
    """The command that installs (or switches) torch builds: install.bat, or sd-bridge.sh."""
    if sys.platform == "win32":
        return f"install.bat {build}".strip()
    return f"SD_BRIDGE_TORCH={build} ./sd-bridge.sh doctor" if build else "./sd-bridge.sh doctor"


def nvidia_driver() -> tuple[str | None, str]:
    """(driver version or None, why none): what `nvidia-smi` reports about this machine."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, "no NVIDIA driver (nvidia-smi is not installed)"
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"nvidia-smi failed: {exc}"
    version = out.stdout.strip().splitlines()[0].strip() if out.stdout.strip() else ""
    if out.returncode != 0 or not version[:1].isdigit():
        why = (out.stderr or out.stdout).strip().splitlines()
        return None, f"nvidia-smi sees no GPU ({why[0] if why else 'no output'})"
    return version, ""


def check_torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check(
            FAIL, "torch", "not installed", f"{installer()} (it picks the torch build for this machine)"
        )
    cuda = torch.version.cuda
    build = f"CUDA {cuda} build" if cuda else "CPU build"
    return Check(OK, "torch", f"{torch.__version__} ({build})")


def check_cuda() -> Check:
    try:
        import torch
    except ImportError:
        return Check(FAIL, "cuda", "no torch")
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # torch says why CUDA is unusable as a warning
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return Check(OK, "cuda", f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    if sys.platform == "darwin":
        return Check(WARN, "cuda", "macOS has no CUDA: the engine runs on the CPU or MPS (slow)")
    driver, no_driver = nvidia_driver()
    cuda = torch.version.cuda
    if cuda:  # a CUDA build that cannot use CUDA: say why
        major = int(cuda.split(".")[0])
        need = CUDA_MIN_DRIVER.get(major)
        if driver is None:
            why = no_driver
            fix = f"install the NVIDIA driver, or the CPU build: {installer('cpu')}"
        elif need and int(driver.split(".")[0]) < need:
            why = f"NVIDIA driver {driver} is too old for CUDA {cuda} (needs {need} or newer)"
            fix = f"update the driver, or install the CUDA 12.8 build: {installer('cu128')}"
            if major < 13:
                fix = f"update the NVIDIA driver to {need} or newer"
        else:
            torch_says = next(
                (str(w.message).splitlines()[0] for w in caught), "torch cannot initialise CUDA"
            )
            why = f"driver {driver}: {torch_says}"
            fix = "check `nvidia-smi`; reboot after a driver update"
        return Check(
            FAIL,
            "cuda",
            f"torch is a CUDA {cuda} build but CUDA is unusable: {why}; the engine runs on the CPU",
            fix,
        )
    if driver is not None:
        build = "cu130" if int(driver.split(".")[0]) >= CUDA_MIN_DRIVER[13] else "cu128"
        return Check(
            WARN,
            "cuda",
            f"torch is the CPU build, but an NVIDIA driver ({driver}) is here: the engine runs on the CPU",
            f"install the CUDA build: {installer(build)}",
        )
    return Check(WARN, "cuda", f"not available ({no_driver}): the engine runs on the CPU (slow)")


def check_tensorrt() -> Check:
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        try:
            import torch

            cuda = torch.version.cuda
        except ImportError:
            cuda = None
        if not cuda:
            return Check(WARN, "tensorrt", "not installed (PyTorch path only; TensorRT needs an NVIDIA GPU)")
        extra = "tensorrt" if cuda.startswith("13") else "tensorrt-cu12"
        return Check(
            WARN, "tensorrt", "not installed (PyTorch path only)", f'{pip()} install "sd-bridge[{extra}]"'
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
        return Check(WARN, "screen", "mss is not installed", f"{pip()} install mss")
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
        return Check(FAIL, "opencv", "not installed", f"{pip()} install opencv-python")
    return Check(OK, "opencv", f"{cv2.__version__} (camera, file and image sources)")


def check_vcam() -> Check:
    from bridge.sinks.vcam import install_hint

    try:
        import pyvirtualcam
    except ImportError:
        return Check(WARN, "vcam", "pyvirtualcam is not installed", f'{pip()} install "sd-bridge[vcam]"')
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


def check_file_sink(folder: str | None = None) -> Check:
    """Records two frames with the file sink itself (PyAV, as `--sink file:` and `auto` do) into
    `folder` (a scratch folder by default) and removes them."""
    from bridge.errors import BackendMissing, BridgeError
    from bridge.sinks.file import probe

    with tempfile.TemporaryDirectory() as tmp:
        try:
            size = probe(folder or tmp)
        except BackendMissing:
            return Check(FAIL, "file", "recording needs PyAV (`av`), which is missing", f"{pip()} install av")
        except BridgeError as exc:
            return Check(FAIL, "file", f"cannot record here: {exc}", f"{pip()} install --force-reinstall av")
    return Check(OK, "file", f"recording works (.mp4, .mkv, .mov, .avi; a 2-frame probe: {size} bytes)")


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
        import huggingface_hub  # noqa: F401
    except ImportError:
        return Check(FAIL, "model", "huggingface_hub is not installed", f"{pip()} install huggingface_hub")
    from bridge.fetch import is_cached, needs
    from engine import EngineConfig

    wanted = needs(EngineConfig(model=model))
    missing = [n.repo for n in wanted if not is_cached(n)]
    if not missing:
        return Check(
            OK, "model", f"{model} and what it needs ({', '.join(n.repo for n in wanted)}) are cached"
        )
    offline = os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")
    detail = f"not cached: {', '.join(missing)}" + (
        " and HF_HUB_OFFLINE is set" if offline else " (downloaded on first run)"
    )
    return Check(
        FAIL if offline else WARN,
        "model",
        detail,
        f"sd-bridge fetch {model} while online, or without it: sd-bridge run --model random:{_arch(model)}",
    )


def check_presets() -> Check:
    """Which shipped presets run offline: everything they need from the hub is in the cache."""
    from bridge.fetch import presets_cached

    status = presets_cached()
    ready = [name for name, ok in status.items() if ok]
    missing = [name for name, ok in status.items() if not ok]
    if not missing:
        return Check(OK, "presets", f"every preset's models are cached: {', '.join(ready)}")
    detail = f"models cached for: {', '.join(ready) or 'none'}; not cached: {', '.join(missing)}"
    return Check(WARN, "presets", detail, "sd-bridge fetch --preset NAME (while online)")


def _arch(model: str) -> str:
    return "sd-turbo" if "turbo" in model.lower() else "sd15"
