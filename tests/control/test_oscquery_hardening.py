"""OSCQuery's HTTP server under hostile clients: slowloris, idle and aborted connections (issue 19.7)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import urllib.request

import pytest

from bridge.control import ParamStore
from bridge.control.oscquery import LISTEN_BACKLOG, OscQueryServer

from .osc_helpers import wait_until

TIMEOUT = 1.5
CAP = 8


@pytest.fixture
def http():
    server = OscQueryServer(
        ParamStore(), osc_address=("127.0.0.1", 7000), port=0, timeout=TIMEOUT, max_connections=CAP
    )
    server.start(advertise=False)
    yield server
    server.stop()


def get(address: tuple[str, int], path: str = "/?HOST_INFO") -> dict:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """True once the server has closed `sock` (EOF or reset) within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slowloris_clients_neither_block_a_get_nor_pile_up_threads(http):
    threads_before = threading.active_count()
    slow: list[socket.socket] = []
    for _ in range(50):
        s = socket.create_connection(http.address, timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    stop = threading.Event()

    def trickle() -> None:  # a header byte now and then, so no single read ever times out
        while not stop.is_set():
            for s in slow:
                with contextlib.suppress(OSError):
                    s.send(b"X")
            stop.wait(0.2)

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        peak = threading.active_count()
        for _ in range(5):
            assert get(http.address)["OSC_PORT"] == 7000  # answered while 50 slow clients hang on
            peak = max(peak, threading.active_count())
        # the feeder, the serve thread, and a handler or two whose connection was just closed to make
        # room for a newer one and that is still finishing: bounded, not one thread per client
        assert peak - threads_before <= CAP + 4, (threads_before, peak)
        # Each slow client is cut within the connection timeout, however it trickles.
        assert all(closed_by_server(s, TIMEOUT * 4) for s in slow)
    finally:
        stop.set()
        feeder.join()
        for s in slow:
            s.close()
    assert wait_until(lambda: threading.active_count() <= threads_before + 1, timeout=TIMEOUT * 4)
    assert get(http.address)["OSC_PORT"] == 7000


def test_idle_connection_is_closed_after_the_timeout(http):
    idle = socket.create_connection(http.address, timeout=5)
    try:
        assert closed_by_server(idle, TIMEOUT * 4)
    finally:
        idle.close()
    assert http.timeout == TIMEOUT


def test_more_connections_than_the_cap_close_the_oldest_not_the_newest(http):
    held = [socket.create_connection(http.address, timeout=5) for _ in range(CAP)]
    assert wait_until(lambda: len(http._httpd._open) == CAP)
    try:
        assert get(http.address)["OSC_PORT"] == 7000  # the cap is full: the oldest gives way
        assert closed_by_server(held[0], TIMEOUT)
    finally:
        for s in held:
            s.close()


def test_aborted_clients_are_one_quiet_line_not_a_traceback(http, capfd, caplog):
    with caplog.at_level(logging.INFO, logger="bridge.oscquery"):
        for _ in range(20):  # ask for the whole tree, then reset the connection under the reply
            s = socket.create_connection(http.address, timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.close()
        get(http.address)
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            http._httpd.handle_error(None, ("127.0.0.1", 1))
    assert "Traceback" not in capfd.readouterr().err
    lines = [r for r in caplog.records if "OSCQuery: a request from 127.0.0.1 failed" in r.getMessage()]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.INFO for r in lines)


def test_listen_backlog_is_big_enough_for_a_burst(http):
    assert http._httpd.request_queue_size == LISTEN_BACKLOG >= 128
    burst = [socket.create_connection(http.address, timeout=5) for _ in range(100)]
    for s in burst:
        s.close()
    assert get(http.address)["OSC_PORT"] == 7000
