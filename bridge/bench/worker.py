"""Running a timed loop on a worker thread, as the daemon's runtime runs its engine loop.

Engine-alone figures must be comparable with the pipeline's, whose engine runs on the runtime's
engine thread. On a small, busy CPU the same engine was measured ten times slower from the
main thread than from a worker thread here (torch's intra-op pool contending with other
processes), so every timed loop of the bench runs on a worker thread too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_in_worker(fn: Callable[[], T], name: str = "sd-bridge-bench") -> T:
    """Call `fn` on a fresh thread, wait for it, and return its result or raise its exception."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
