"""The client allow list (`--osc-allow`): addresses or networks that may talk to us over OSC and OSCQuery."""

from __future__ import annotations

import ipaddress

Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]


def parse_allow(allow: list[str] | None) -> Networks | None:
    if allow is None:
        return None
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            message = f"--osc-allow: {entry!r} is not an IP address or network (e.g. 192.168.1.20)"
            raise ValueError(message) from None
    return networks


def allowed(ip: str, networks: Networks) -> bool:
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks if net.version == address.version)
