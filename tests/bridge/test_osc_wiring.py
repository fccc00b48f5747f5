"""`sd-bridge run`'s OSC wiring: a real OSC server on the runtime's store, real UDP packets."""

from __future__ import annotations

import socket

from daemon_helpers import InvertEngine, ListSink, wait_for

from bridge.cli.run import OscOptions, start_osc
from bridge.control.store import ParamStore
from bridge.runtime import Runtime, RuntimeOptions
from bridge.sources import open_source
from engine import EngineConfig


def test_osc_messages_reach_the_engine_and_status_reads_the_runtime() -> None:
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    engine = InvertEngine()
    store = ParamStore()
    sink = ListSink()
    rt = Runtime(
        open_source("pattern", fps=60),
        [sink],
        engine,
        EngineConfig(width=64, height=64),
        store=store,
        options=RuntimeOptions(fps=60),
    )
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = start_osc(store, rt.stats, port, OscOptions(query_port=0))
    assert server is not None
    rt.start()
    try:
        assert wait_for(lambda: len(sink.frames) > 5)
        for address, value in (("/sd/guidance", 4.5), ("/sd/prompt", "a neon city")):
            b = OscMessageBuilder(address)
            b.add_arg(value)
            client.sendto(b.build().dgram, ("127.0.0.1", port))
        assert wait_for(lambda: engine.params.get("guidance_scale") == 4.5 and "prompt" in engine.params)
        assert engine.params["prompt"] == "a neon city"
        client.sendto(OscMessageBuilder("/sd/status").build().dgram, ("127.0.0.1", port))
        reply = None
        while reply is None or reply.address != "/sd/status":
            data, _ = client.recvfrom(65536)
            reply = OscMessage(data)
        fps = reply.params[0]
        assert fps > 0  # read from Runtime.stats() while frames flow
        # a model that no flag or preset names: refused at once, to the sender, with the allow-list
        b = OscMessageBuilder("/sd/model")
        b.add_arg("/etc/passwd")
        client.sendto(b.build().dgram, ("127.0.0.1", port))
        while reply.address != "/sd/error":
            reply = OscMessage(client.recvfrom(65536)[0])
        assert "'/etc/passwd' is not allowed here; allowed:" in reply.params[0]
        assert store.get("model") == rt.config.model and rt.stats()["rebuilding"] is False
    finally:
        rt.stop()
        server.stop()
        client.close()


def test_osc_port_zero_disables() -> None:
    assert start_osc(ParamStore(), dict, 0, OscOptions()) is None
