"""Logging for the daemon: one line per problem, and each repeating problem only once."""

from __future__ import annotations

import logging
import re
import sys
import threading

log = logging.getLogger("sd-bridge")


class OnceLog:
    """Logs a message the first time its key is seen, and counts repeats silently."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, key: str, message: str) -> bool:
        key = re.sub(r"\d+", "#", key)  # "boom on frame 10" and "... 20" are the same problem
        with self._lock:
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
        if n == 0:
            log.warning(message)
        return n == 0

    def forget(self, prefix: str) -> None:
        """Log the next problem of this kind again (after the thing recovered)."""
        with self._lock:
            for k in [k for k in self._seen if k.startswith(prefix)]:
                del self._seen[k]

    def count(self, prefix: str) -> int:
        with self._lock:
            return sum(n for k, n in self._seen.items() if k.startswith(prefix))


class _LineHandler(logging.StreamHandler):
    """Clears a live status line (carriage-return line) before printing a log line."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = self.stream
        if getattr(stream, "isatty", lambda: False)():
            stream.write("\r\x1b[K")
        super().emit(record)


def setup_logging(verbose: bool = False) -> None:
    if any(isinstance(h, _LineHandler) for h in log.handlers):
        return
    handler = _LineHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sd-bridge: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
