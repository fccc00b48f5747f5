"""Announce the OSCQuery server over mDNS as `_oscjson._tcp`, best effort.

Uses the `zeroconf` package (pure Python, works the same on Windows, macOS and Linux, and
beside a running avahi-daemon or Bonjour). Without it, `avahi-publish-service` is used where
installed; with neither, one log line says how to get it and everything else keeps working
(controllers can still be pointed at the HTTP address by hand). Registration runs in a
background thread: mDNS probing takes a second or two and must not delay start-up.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import subprocess
import threading
from typing import Any

log = logging.getLogger("bridge.mdns")

SERVICE_TYPE = "_oscjson._tcp.local."


WITHDRAW_WAIT_S = 0.3
"""How long closing an announcement waits for its withdrawal (the rest goes on in the background)."""


class Advertisement:
    """A running announcement; `close()` withdraws it. `backend` says how it is made."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.registered = threading.Event()
        """Set once the service is announced (never, for the `none` backend)."""
        self.name: str | None = None
        """The instance name announced (zeroconf may add a suffix to resolve a clash)."""
        self.interfaces: list[str] | None = None
        """The interface addresses announced on; None: every interface."""
        self._closers: list[Any] = []
        self._closed = False
        self._thread: threading.Thread | None = None

    def close(self, wait: float = WITHDRAW_WAIT_S) -> None:
        """Withdraw the announcement, waiting at most `wait` seconds for it.

        zeroconf's goodbye (and a registration still probing) takes a second or more; a daemon that
        is stopping must not wait for it (a show's Ctrl-C, or a plugin's clean stop that turns into a
        SIGTERM after 2 s). The withdrawal goes on in the background while the process lives; if it
        exits first, browsers drop the record when its TTL runs out.
        """
        if self._closed:
            return
        self._closed = True
        withdraw = threading.Thread(target=self._withdraw, name="mdns-withdraw", daemon=True)
        withdraw.start()
        withdraw.join(wait)

    def _withdraw(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # withdrawing is best effort too
                log.debug("mDNS: withdrawing failed: %r", exc)


WILDCARDS = ("", "0.0.0.0", "::")


def advertise(name: str, port: int, host: str = "127.0.0.1") -> Advertisement:
    """Announce `name` as an OSCQuery server on TCP `port`, only where `host` listens; never raises.

    A server bound to one address (loopback by default) is announced on that interface only:
    announcing a loopback server on the LAN would invite every machine there to a port they
    cannot reach. A wildcard bind is announced on every interface.
    """
    if ":" in host and host not in WILDCARDS:
        log.info("OSCQuery not advertised over mDNS: announcing an IPv6 address (%s) is not supported", host)
        return Advertisement("none")
    try:
        import zeroconf  # noqa: F401
    except ImportError:
        pass
    else:
        return _with_zeroconf(name, port, host)
    tool = shutil.which("avahi-publish-service")
    if tool and host in WILDCARDS:
        return _with_avahi(tool, name, port)
    if tool:  # avahi-publish-service announces on every interface: not for a server bound to one
        log.info(
            "OSCQuery not advertised over mDNS on %s: `pip install zeroconf` to announce there only", host
        )
        return Advertisement("none")
    log.info("OSCQuery not advertised over mDNS: `pip install zeroconf` or install avahi-utils to enable it")
    return Advertisement("none")


def _addresses(host: str) -> list[str]:
    """The IPv4 addresses to announce for a server bound to `host`."""
    if host not in WILDCARDS:
        return [host]
    import ifaddr  # a dependency of zeroconf

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_link_local:
                found.append(ip.ip)
    return found or ["127.0.0.1"]


def _with_zeroconf(name: str, port: int, host: str) -> Advertisement:
    from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

    ad = Advertisement("zeroconf")
    ad.interfaces = None if host in WILDCARDS else [host]
    addresses = [a for a in _addresses(host) if ipaddress.ip_address(a).version == 4]
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(a) for a in addresses],
        port=port,
        server=f"{socket.gethostname().split('.')[0]}.local.",
    )

    def register() -> None:
        try:
            zc = Zeroconf(interfaces=ad.interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
        except Exception as exc:
            log.info("OSCQuery not advertised over mDNS: %s", exc)
            return
        ad._closers.append(zc.close)
        if ad._closed:
            zc.close()
            return
        try:
            zc.register_service(info, allow_name_change=True)
        except Exception as exc:
            log.info("OSCQuery not advertised over mDNS: %s", exc)
            return
        ad._closers.append(lambda: zc.unregister_service(info))
        ad.name = info.name
        ad.registered.set()
        where = ", ".join(ad.interfaces) if ad.interfaces else "every interface"
        log.info("OSCQuery advertised over mDNS as %s on %s", info.name, where)

    ad._thread = threading.Thread(target=register, name="mdns-register", daemon=True)
    ad._thread.start()
    return ad


def _with_avahi(tool: str, name: str, port: int) -> Advertisement:
    ad = Advertisement("avahi")
    try:
        proc = subprocess.Popen(
            [tool, name, SERVICE_TYPE.removesuffix(".local."), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError as exc:
        log.info("OSCQuery not advertised over mDNS: %s", exc)
        return Advertisement("none")

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()

    ad._closers.append(stop)
    ad.name = f"{name}.{SERVICE_TYPE}"
    ad.registered.set()
    return ad
