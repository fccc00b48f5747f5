"""A real OscServer on a free loopback port, and real UDP clients to talk to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.control import ParamStore
from bridge.control.osc import OscServer

from .osc_helpers import Client

STATS = {
    "fps": 29.5,
    "latency_p50_ms": 41.0,
    "latency_p95_ms": 55.5,
    "latency_p99_ms": 80.0,
    "skip_rate": 0.25,
}


@pytest.fixture
def store() -> ParamStore:
    return ParamStore()


@pytest.fixture
def stats() -> dict:
    return dict(STATS, dropped=3)


@pytest.fixture
def server(store: ParamStore, stats: dict) -> Iterator[OscServer]:
    srv = OscServer(store, port=0, stats=lambda: stats)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def make_client(server: OscServer) -> Iterator:
    clients: list[Client] = []

    def make(target: tuple[str, int] | None = None) -> Client:
        c = Client(target or server.address)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client) -> Client:
    return make_client()
