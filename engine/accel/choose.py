"""Which backend `--accel auto` means on this machine, and clear errors for the ones that can't run.

Probing never imports TensorRT: `importlib.util.find_spec` only looks for it on the path, so
`sd-bridge doctor` and the CPU path stay free of it.
"""

from __future__ import annotations

import importlib.util

import torch

BACKENDS = ("auto", "torch", "compile", "tensorrt")
TRT_INSTALL_HINT = (
    'pip install "sd-bridge[tensorrt]" (torch built for CUDA 13) or "sd-bridge[tensorrt-cu12]" (CUDA 12)'
)


class AccelUnavailable(RuntimeError):
    """The asked-for backend cannot run here; the message is one line that says how to get it."""


def tensorrt_importable() -> bool:
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):  # a broken or half-installed package
        return False


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_backend(requested: str, *, trt_importable: bool, cuda: bool) -> str:
    """The backend to use for `requested` given what the machine has.

    `auto`: tensorrt when importable and a GPU is present, else compile on CUDA, else torch.
    An explicit `tensorrt` without TensorRT or without a GPU is an `AccelUnavailable` error;
    an explicit `compile` is allowed on the CPU (torch.compile works there, without CUDA graphs).
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown accel backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested == "auto":
        if cuda and trt_importable:
            return "tensorrt"
        return "compile" if cuda else "torch"
    if requested == "tensorrt":
        if not trt_importable:
            raise AccelUnavailable(f"TensorRT is not installed: {TRT_INSTALL_HINT}")
        if not cuda:
            raise AccelUnavailable(
                "TensorRT needs an NVIDIA GPU with a CUDA build of torch; use --accel torch"
            )
    return requested


def import_tensorrt():
    """Import TensorRT on first use, or raise `AccelUnavailable` with the install command."""
    try:
        import tensorrt  # noqa: PLC0415 - optional and heavy, imported only when asked for
    except ImportError as exc:
        raise AccelUnavailable(f"TensorRT is not installed ({exc}): {TRT_INSTALL_HINT}") from None
    return tensorrt
