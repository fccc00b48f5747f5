"""Wall-clock timing that waits for the accelerator, and peak-memory readings.

On CUDA, kernels run asynchronously: a timer read without synchronising measures the launch,
not the work. Every timing here synchronises first when the device is CUDA.
"""

from __future__ import annotations

import resource
import sys
import time

import torch


class DeviceClock:
    """`now()` in seconds, after the device has finished everything queued so far."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        self.sync()
        return time.perf_counter()


def process_peak_rss_mb() -> float:
    """The process's peak resident set size so far (it never goes down), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh CUDA peak window; on the CPU the process peak cannot be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> tuple[str, float]:
    """(what was measured, MiB): CUDA max allocated since the last reset, else process peak RSS."""
    if device.type == "cuda":
        return "cuda_max_allocated", torch.cuda.max_memory_allocated(device) / (1024 * 1024)
    return "process_peak_rss", process_peak_rss_mb()
