"""Keep floods of bad input from flooding the log or the network."""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """At most one line per key per `interval` seconds; the next line says how many were held back."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str) -> bool:
        """Log `message` unless a line with this key was logged less than `interval` ago."""
        return self._log(logging.WARNING, key, message)

    def info(self, key: str, message: str) -> bool:
        return self._log(logging.INFO, key, message)

    def _log(self, level: int, key: str, message: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        suffix = f" ({held} similar in the last {self._interval:g}s not logged)" if held else ""
        self._logger.log(level, "%s%s", message, suffix)
        return True


class TokenBucket:
    """Allows `rate` events a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
