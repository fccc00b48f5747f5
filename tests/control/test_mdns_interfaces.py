"""mDNS announces a server only where it listens: a loopback-bound one never on the LAN (issue 19.7)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time

import pytest

from bridge.control import ParamStore, mdns
from bridge.control.oscquery import OscQueryServer

zeroconf = pytest.importorskip("zeroconf", reason="zeroconf not installed: mDNS advertisement is off")

MDNS_GROUP, MDNS_PORT = "224.0.0.251", 5353


def _lan_addresses() -> list[str]:
    import ifaddr

    return [
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str)
        and not ipaddress.ip_address(ip.ip).is_loopback
        and not ipaddress.ip_address(ip.ip).is_link_local
    ]


class Sniffer:
    """Collects the source address of every mDNS datagram that mentions `needle`."""

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.sources: set[str] = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("", MDNS_PORT))
        for iface in ["127.0.0.1", *_lan_addresses()]:
            mreq = struct.pack("4s4s", socket.inet_aton(MDNS_GROUP), socket.inet_aton(iface))
            with contextlib.suppress(OSError):  # already a member through another interface
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, (source, _) = self.sock.recvfrom(9000)
            except (TimeoutError, OSError):
                continue
            if self.needle in data:
                self.sources.add(source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _announce_and_sniff(host: str) -> tuple[set[str], object]:
    """The source addresses our announcement came from, and the interfaces it says it used."""
    name = f"sdb-if-{time.monotonic_ns() % 10**9}"
    sniffer = Sniffer(name.encode())
    server = OscQueryServer(ParamStore(), osc_address=(host, 7000), host=host, port=0, name=name)
    try:
        server.start(advertise=True)
        ad = server._advertisement
        assert ad is not None and ad.registered.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not sniffer.sources:
            time.sleep(0.05)
        time.sleep(1.0)  # the announcements repeat: let every interface's copy arrive
        interfaces = getattr(ad, "interfaces", "unknown")
    finally:
        server.stop()
        sniffer.close()
    assert sniffer.sources, "no announcement seen at all"
    return sniffer.sources, interfaces


def test_a_loopback_server_is_announced_on_loopback_only():
    sources, interfaces = _announce_and_sniff("127.0.0.1")
    assert sources == {"127.0.0.1"}, sources
    assert interfaces == ["127.0.0.1"]


def test_a_wildcard_server_is_announced_on_the_lan_too():
    """The contrast that shows the sniffer sees LAN announcements when there are any."""
    lan = _lan_addresses()
    sources, interfaces = _announce_and_sniff("0.0.0.0")
    assert interfaces is None and "0.0.0.0" in mdns.WILDCARDS
    if lan:
        assert sources & set(lan), (sources, lan)
