"""A real daemon OSC socket on loopback for the plugin tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plugin_fakes import STATS

from bridge.control.osc import OscServer
from bridge.control.store import ParamStore


@pytest.fixture
def daemon() -> Iterator[tuple[ParamStore, OscServer]]:
    """The daemon's parameter store behind its real OSC server on a free loopback port."""
    store = ParamStore()
    server = OscServer(store, host="127.0.0.1", port=0, stats=lambda: dict(STATS), advertise=False)
    server.start()
    try:
        yield store, server
    finally:
        server.stop()
