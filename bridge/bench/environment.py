"""What a figure was measured on: device, versions, load, and the exact command."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import torch


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed, whether run as `sd-bridge bench` or `python -m bridge bench`."""
    argv = list(sys.argv if argv is None else argv)
    head = argv[0] if argv else "sd-bridge"
    if head.endswith("__main__.py") or head == "-m":
        prefix = ["python", "-m", "bridge"]
    else:
        prefix = [os.path.basename(head) or "sd-bridge"]
    return shlex.join([*prefix, *argv[1:]])


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda: {props.name}, {props.total_memory / 2**30:.0f} GiB"
    return f"cpu: {_cpu_name()}, {os.cpu_count()} cores, no GPU used"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe_environment(device: torch.device, argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "device": describe_device(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": _version("diffusers"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "command": command_line(argv),
        "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load_average_start": load_average(),
    }
