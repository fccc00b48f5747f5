"""A second process that floods an OSC server: `python osc_flood_sender.py HOST PORT RATE SECONDS`.

Sends a mix of parameter messages and bundles at RATE datagrams a second (paced in 2 ms
slices) for SECONDS, then one last, known value per address. It prints `flooding` when it
starts (after its own start-up, which would otherwise load the CPU in the window) and then a JSON line:
{"sent": N, "seconds": S, "last": {address: [args]}}. Messages are pre-built, so the
sender costs little CPU and the rate is what the server really gets offered.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder


def message(address: str, *args: object):
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build()


def bundle(*messages) -> bytes:
    builder = OscBundleBuilder(IMMEDIATELY)
    for m in messages:
        builder.add_content(m)
    return builder.build().dgram


def mixed(n: int) -> list[bytes]:
    """`n` different datagrams over several addresses, values changing as a fader's would.

    Faders, not prompts: a new prompt every frame costs the engine a text-encoder pass per
    frame whoever sends it; this measures what the OSC side costs the frame loop.
    """
    out: list[bytes] = []
    for i in range(n):
        k = i % 6
        if k == 0:
            out.append(message("/sd/guidance", (i % 2000) / 100.0).dgram)
        elif k == 1:
            out.append(message("/sd/delta/norm", (i % 1000) / 1000.0).dgram)
        elif k == 2:
            out.append(message("/sd/seed", i % 100_000).dgram)
        elif k == 3:
            out.append(message("/sd/region/1/rect", 0.0, 0.0, (i % 100) / 100.0, 1.0).dgram)
        elif k == 4:
            out.append(
                bundle(message("/sd/filter/threshold", (i % 100) / 100.0), message("/sd/strength", 0.5))
            )
        else:
            out.append(message("/sd/transition", (i % 100) / 10.0).dgram)
    return out


FINAL = [
    ("/sd/guidance", [7.25]),
    ("/sd/delta/norm", [0.25]),
    ("/sd/seed", [4242]),
    ("/sd/region/1/rect", [0.125, 0.25, 0.5, 0.75]),
    ("/sd/filter/threshold", [0.875]),
    ("/sd/strength", [0.625]),
    ("/sd/transition", [2.5]),
    ("/sd/prompt", ["the last prompt"]),
]


def main(host: str, port: int, rate: float, seconds: float) -> None:
    packets = mixed(6000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = (host, port)
    sent = 0
    print("flooding", flush=True)  # started up: the measuring window may open now
    start = time.perf_counter()
    while True:
        now = time.perf_counter() - start
        if now >= seconds:
            break
        due = int(now * rate) - sent
        for _ in range(due):
            with contextlib.suppress(OSError):  # a full buffer: counted as offered all the same
                sock.sendto(packets[sent % len(packets)], target)
            sent += 1
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    time.sleep(0.05)
    for address, args in FINAL:
        sock.sendto(message(address, *args).dgram, target)
    print(json.dumps({"sent": sent, "seconds": elapsed, "last": dict(FINAL)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
