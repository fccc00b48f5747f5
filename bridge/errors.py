"""Errors the daemon shows the user as one line (no stack trace)."""

from __future__ import annotations


class BridgeError(RuntimeError):
    """A problem the user can fix; the message is one line that says how."""


class BackendMissing(BridgeError):
    """An optional backend (NDI, Spout, virtual camera, a display) is not available here."""


class SpecError(BridgeError):
    """A `--source`/`--sink` spec that does not parse."""
