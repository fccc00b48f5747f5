"""A real OSC client on a loopback UDP socket, with waits that have timeouts, never fixed sleeps."""

from __future__ import annotations

import socket
import struct
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


# -- hand-built datagrams (struct, not python-osc), so a malformed one is exactly what we wrote --
def osc_str(text: str | bytes) -> bytes:
    """An OSC string: the bytes, a NUL, and NUL padding to a multiple of 4."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return raw + b"\x00" * (4 - len(raw) % 4)


def i32(n: int) -> bytes:
    return struct.pack(">i", n)


def f32(x: float) -> bytes:
    return struct.pack(">f", x)


def blob(data: bytes, size: int | None = None) -> bytes:
    """An OSC blob; `size` overrides the size field (negative, too big) to build broken ones."""
    return i32(len(data) if size is None else size) + data + b"\x00" * (-len(data) % 4)


def raw_message(address: str, tags: str, *payload: bytes) -> bytes:
    """Address, ',' + tags, then the argument bytes exactly as given."""
    return osc_str(address) + osc_str("," + tags) + b"".join(payload)


def raw_bundle(*elements: bytes, sizes: list[int] | None = None) -> bytes:
    """A bundle (timetag 'immediately'); `sizes` overrides each element's size field."""
    out = b"#bundle\x00" + struct.pack(">Q", 1)
    for n, element in enumerate(elements):
        out += i32(len(element) if sizes is None else sizes[n]) + element
    return out
