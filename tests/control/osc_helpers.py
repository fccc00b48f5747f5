"""A real OSC client on a loopback UDP socket, with waits that have timeouts, never fixed sleeps."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

TIMEOUT = 5.0


def message(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(timetag: float, *dgrams: bytes) -> bytes:
    from pythonosc.osc_message import OscMessage

    builder = OscBundleBuilder(timetag)
    for dgram in dgrams:
        builder.add_content(OscMessage(dgram))
    return builder.build().dgram


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


class Client:
    """Sends to the server and collects every message it gets back (bundles unpacked)."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.inbox: list[tuple[str, list[Any]]] = []

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(message(address, *args), self.server)

    def send_raw(self, dgram: bytes) -> None:
        self.sock.sendto(dgram, self.server)

    def _pump(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except TimeoutError:
            return False
        for timed in OscPacket(data).messages:
            self.inbox.append((timed.message.address, list(timed.message.params)))
        return True

    def drain_socket(self) -> None:
        while self._pump(0.0001):
            pass

    def wait_for(self, address: str, timeout: float = TIMEOUT) -> list[Any]:
        """Wait for (and remove from the inbox) the first message on `address`; return its arguments."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (addr, args) in enumerate(self.inbox):
                if addr == address:
                    del self.inbox[i]
                    return args
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {address} within {timeout}s; got {[a for a, _ in self.inbox][:20]}")
            self._pump(min(left, 0.1))

    def sync(self, timeout: float = TIMEOUT) -> list[Any]:
        """Round trip `/sd/status`: the server handles packets in order, so all sent before are applied."""
        self.send("/sd/status")
        return self.wait_for("/sd/status", timeout)

    def received(self, address: str) -> list[list[Any]]:
        self.drain_socket()
        return [args for addr, args in self.inbox if addr == address]

    def errors(self) -> list[str]:
        return [args[0] for args in self.received("/sd/error")]


def send_all(client: Client, dgrams: Iterable[bytes], chunk: int = 50) -> int:
    """Send fast, syncing every `chunk` packets so the kernel's socket buffer never overflows."""
    n = 0
    for dgram in dgrams:
        client.send_raw(dgram)
        n += 1
        if n % chunk == 0:
            client.sync()
    client.sync()
    return n
