"""Stand-ins for the host programs at their import boundary only: TouchDesigner's operators and
OBS's `obspython`. Everything behind them (message building, the socket, the daemon) is real."""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

ROOT = Path(__file__).resolve().parents[2]
STATS = {"fps": 24.5, "latency_p50_ms": 41.0, "latency_p95_ms": 55.0, "skip_rate": 0.25, "dropped": 3}
"""What the test daemon's runtime reports."""


def wait_for(
    predicate: Callable[[], object], timeout: float = 3.0, poll: Callable[[], object] | None = None
) -> bool:
    """Poll until `predicate()` is truthy or `timeout` passes (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if poll is not None:
            poll()
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def load_module(relpath: str, name: str) -> types.ModuleType:
    """Load a plugin file the way its host does: as a standalone module from its path."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- TouchDesigner -------------------------------------------------------------------------------
class FakePar:
    def __init__(self, name: str, val: Any) -> None:
        self.name = name
        self.val = val

    def eval(self) -> Any:
        return self.val


class FakeOscOutDAT:
    """An OSC Out DAT: `sendOSC(address, values)` types each value from its Python type, as
    TouchDesigner does, and replies to its socket come back through its callbacks DAT (`pump`)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.sent: list[tuple[str, list[Any]]] = []

    def sendOSC(self, address: str, values: list[Any]) -> int:  # noqa: N802 - TouchDesigner's name
        builder = OscMessageBuilder(address)
        for v in values:
            builder.add_arg(v)
        dgram = builder.build().dgram
        self.sent.append((address, list(values)))
        return self.sock.sendto(dgram, self.target)

    def pump(self, on_receive) -> int:
        """Deliver waiting replies one message at a time (the DAT's Split Bundle into Messages)."""
        n = 0
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except BlockingIOError:
                return n
            for timed in OscPacket(data).messages:
                on_receive(timed.message.address, list(timed.message.params))
                n += 1

    def close(self) -> None:
        self.sock.close()


class FakeTable:
    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    def row(self, name: str) -> Any:
        return [name, self.rows[name]] if name in self.rows else None

    def appendRow(self, cells: list[Any]) -> None:  # noqa: N802
        self.rows[cells[0]] = cells[1]

    def __setitem__(self, key: tuple[str, int], value: Any) -> None:
        self.rows[key[0]] = value


class FakeComp:
    """The sd_bridge COMP as the extension sees it: `.par.<Name>` and `.op(name)`."""

    def __init__(self, ext_module: types.ModuleType, oscout: FakeOscOutDAT, **extra: Any) -> None:
        self.par = types.SimpleNamespace()
        for row in ext_module.PARAMS:
            setattr(self.par, row[7], FakePar(row[7], row[3]))
        for stat, _label in ext_module.STATS:
            name = ext_module.stat_parname(stat)
            setattr(self.par, name, FakePar(name, ""))
        defaults = {
            "Host": "127.0.0.1",
            "Port": oscout.target[1],
            "Route": "ndi",
            "Sendername": "TD-to-sd-bridge",
            "Receivename": "sd-bridge",
            "Daemoncmd": "sd-bridge run",
            "Daemonstate": "",
            "Laststatus": "",
            "Lasterror": "",
        }
        defaults.update(extra)
        for name, val in defaults.items():
            setattr(self.par, name, FakePar(name, val))
        self.ops = {"oscout": oscout, "stats": FakeTable()}

    def op(self, name: str) -> Any:
        return self.ops.get(name)


# -- OBS ------------------------------------------------------------------------------------------
def fake_obspython() -> types.ModuleType:
    """`obspython` with settings as dicts and the property calls recorded."""
    obs = types.ModuleType("obspython")
    obs.OBS_TEXT_DEFAULT, obs.OBS_TEXT_MULTILINE = 0, 2
    obs.OBS_COMBO_TYPE_EDITABLE, obs.OBS_COMBO_TYPE_LIST, obs.OBS_COMBO_FORMAT_STRING = 1, 2, 3
    obs.OBS_FRONTEND_EVENT_EXIT, obs.OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN = 17, 36
    obs.properties = []
    obs.timers = []
    obs.event_callbacks = []

    def data_get(kind):
        return lambda data, name: data.get(name, data.get(("default", name), kind()))

    def data_set_default(data, name, value):
        data[("default", name)] = value

    obs.obs_data_get_string = data_get(str)
    obs.obs_data_get_int = data_get(int)
    obs.obs_data_get_double = data_get(float)
    obs.obs_data_get_bool = data_get(bool)

    def data_set(data, name, value):
        data[name] = value

    for kind in ("string", "int", "double", "bool"):
        setattr(obs, f"obs_data_set_default_{kind}", data_set_default)
        setattr(obs, f"obs_data_set_{kind}", data_set)
    obs.obs_frontend_add_event_callback = obs.event_callbacks.append

    def add(kind):
        def adder(props, name, label, *rest):
            entry = {"kind": kind, "name": name, "label": label, "rest": rest, "items": []}
            props.append(entry)
            return entry

        return adder

    obs.obs_properties_create = list
    for kind in ("text", "float_slider", "int", "bool", "list", "button"):
        setattr(obs, f"obs_properties_add_{kind}", add(kind))
    obs.obs_property_list_add_string = lambda prop, label, value: prop["items"].append((label, value))
    obs.timer_add = lambda fn, ms: obs.timers.append((fn, ms))
    obs.timer_remove = lambda fn: obs.timers.remove(next(t for t in obs.timers if t[0] is fn))
    return obs
