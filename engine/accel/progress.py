"""Progress of long builds (TensorRT takes minutes per engine), as a plain callback.

`Progress` is `callable(message: str, fraction: float | None)`: fraction in [0, 1] when the
amount of work is known, None for "still busy". The CLI renders it with tqdm (`TqdmProgress`);
the daemon can forward it to its stats or log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Progress = Callable[[str, "float | None"], None]


def silent(message: str, fraction: float | None) -> None:
    """The default: no output."""


class TqdmProgress:
    """One tqdm bar in percent; None fractions just refresh the text (a spinner-like status)."""

    def __init__(self, **tqdm_args: Any) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}", **tqdm_args)

    def __call__(self, message: str, fraction: float | None) -> None:
        self.bar.set_description_str(message, refresh=False)
        if fraction is not None:
            self.bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class Heartbeat:
    """Calls `progress(message, None)` every `interval` seconds while a blocking call runs;
    used when TensorRT has no IProgressMonitor to report through."""

    def __init__(self, progress: Progress, message: str, interval: float = 0.5) -> None:
        self.progress, self.message, self.interval = progress, message, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.progress(self.message, None)

    def __enter__(self) -> Heartbeat:
        self.progress(self.message, None)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
