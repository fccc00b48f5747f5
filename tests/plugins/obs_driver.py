"""A test driver that runs INSIDE a real OBS, next to sd_bridge_obs.py (tests/plugins/test_obs_real.py).

OBS loads it as a second script (from the generated scene collection). It does to the sd-bridge
script what OBS's Scripts window does, through the same libobs-scripting calls that window makes:
`obs_script_update` after a property edit, `obs_property_button_clicked` for a button,
`obs_script_reload` for the Reload button, `obs_frontend_set_current_scene_collection` for a
collection switch. Each runs as a task on OBS's UI thread (`obs_queue_task(OBS_TASK_UI)`), where
the Scripts window runs them.

The test talks to it through files in the folder named by its `dir` setting: it writes
`<n>.json` ({"op": ..., ...}); a thread of the driver's own picks the next one up, and the UI
task writes `<n>.done.json` ({"ok": bool, "result": ...}). Standard library and obspython only.

Why a thread and not an OBS timer: OBS 29 keeps "the script being called" in one global
(`cur_python_script`) that a timer callback on the graphics thread saves and restores around
itself. When a timer of one script runs while the UI thread reloads another (the Python lock
changes hands mid-load), the reloaded script's `timer_add` is filed under no script and OBS
crashes. A plain Python thread is no OBS callback and leaves that global alone.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import traceback

import obspython as obs

TARGET = "sd_bridge_obs"
"""The module name of the script driven (its file name without .py); the `target` setting changes it."""
_target = TARGET
_dir = ""
_next = 0
_busy = False
_active = False
_thread: threading.Thread | None = None
_keep: list = []  # ctypes callbacks must outlive the task they were queued for

_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_libs = [ctypes.CDLL(name) for name in ("libobs.so.0", "libobs-scripting.so.1", "libobs-frontend-api.so.0")]
"""Already loaded by OBS: this only finds them (Linux names; the real-OBS test runs on Linux).
A call through ctypes lets go of the GIL while it runs, as OBS's own windows and menus hold no
Python lock when they make these calls."""


class _Lib:
    def __getattr__(self, name: str):
        for lib in _libs:
            if hasattr(lib, name):
                return getattr(lib, name)
        raise AttributeError(name)


_lib = _Lib()
for _name, _res, _args in (
    ("obs_queue_task", None, [ctypes.c_int, _TASK, ctypes.c_void_p, ctypes.c_bool]),
    ("obs_script_update", None, [ctypes.c_void_p, ctypes.c_void_p]),
    ("obs_script_reload", ctypes.c_bool, [ctypes.c_void_p]),
    ("obs_script_get_properties", ctypes.c_void_p, [ctypes.c_void_p]),
    ("obs_script_get_settings", ctypes.c_void_p, [ctypes.c_void_p]),
    ("obs_properties_get", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    ("obs_properties_destroy", None, [ctypes.c_void_p]),
    ("obs_property_button_clicked", ctypes.c_bool, [ctypes.c_void_p, ctypes.c_void_p]),
    ("obs_property_get_type", ctypes.c_int, [ctypes.c_void_p]),
    ("obs_property_list_type", ctypes.c_int, [ctypes.c_void_p]),
    ("obs_property_list_item_count", ctypes.c_size_t, [ctypes.c_void_p]),
    ("obs_property_list_item_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
    ("obs_property_list_item_string", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
    ("obs_data_create_from_json", ctypes.c_void_p, [ctypes.c_char_p]),
    ("obs_data_get_json", ctypes.c_char_p, [ctypes.c_void_p]),
    ("obs_data_release", None, [ctypes.c_void_p]),
    ("obs_frontend_set_current_scene_collection", None, [ctypes.c_char_p]),
):
    _fn = getattr(_lib, _name)
    _fn.restype, _fn.argtypes = _res, _args
    setattr(_Lib, _name, _fn)
ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
OBS_TASK_UI = 0


# -- every host-name lookup made in OBS's Python, with the thread it ran on ----------------------
_lookups: list[list[str]] = []


def _is_ip(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host))
        return True
    except ValueError:
        return False


def _watch_lookups() -> None:
    if getattr(socket, "_sd_bridge_watched", False):
        return
    socket._sd_bridge_watched = True  # type: ignore[attr-defined]
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        real = getattr(socket, name)

        def watched(host, *args, _real=real, **kwargs):
            if not _is_ip(host):
                _lookups.append([threading.current_thread().name, str(host)])
            return _real(host, *args, **kwargs)

        setattr(socket, name, watched)
    real_sendto = socket.socket.sendto

    def sendto(self, data, *args):  # sendto((name, port)) resolves the name, in C, every time
        address = args[-1]
        if isinstance(address, tuple) and not _is_ip(address[0]):
            _lookups.append([threading.current_thread().name, str(address[0])])
        return real_sendto(self, data, *args)

    socket.socket.sendto = sendto


_watch_lookups()


def _script() -> int:
    """The sd-bridge script's obs_script_t (OBS keeps it in the module's `__script_data__`)."""
    module = sys.modules[_target]
    return ctypes.pythonapi.PyCapsule_GetPointer(module.__script_data__, None)


def _settings_json(script: int) -> dict:
    data = _lib.obs_script_get_settings(script)
    try:
        return json.loads(_lib.obs_data_get_json(data).decode("utf-8"))
    finally:
        _lib.obs_data_release(data)


def _properties(script: int) -> dict:
    props = _lib.obs_script_get_properties(script)
    out = {}
    try:
        for name in ("preset",):
            p = _lib.obs_properties_get(props, name.encode())
            n = _lib.obs_property_list_item_count(p)
            out[name] = {
                "list_type": _lib.obs_property_list_type(p),
                "items": [
                    [
                        _lib.obs_property_list_item_name(p, i).decode(),
                        (_lib.obs_property_list_item_string(p, i) or b"").decode(),
                    ]
                    for i in range(n)
                ],
            }
    finally:
        _lib.obs_properties_destroy(props)
    out["OBS_COMBO_TYPE_LIST"] = obs.OBS_COMBO_TYPE_LIST
    out["OBS_COMBO_TYPE_EDITABLE"] = obs.OBS_COMBO_TYPE_EDITABLE
    return out


def _run(command: dict) -> object:
    op = command["op"]
    if op == "collection":
        # Not obspython's wrapper: it keeps the GIL through the switch, which waits for OBS's graphics
        # thread, where a script's timer waits for the GIL (OBS hung so, once, in CI). The
        # Scene Collection menu makes this call holding no Python lock; ctypes does the same.
        _lib.obs_frontend_set_current_scene_collection(command["name"].encode("utf-8"))
        return obs.obs_frontend_get_current_scene_collection()
    if op == "lookups":
        return list(_lookups)
    script = _script()
    if op == "update":  # a property edit in the Scripts window
        data = _lib.obs_data_create_from_json(json.dumps(command["values"]).encode("utf-8"))
        try:
            _lib.obs_script_update(script, data)
        finally:
            _lib.obs_data_release(data)
        return _settings_json(script)
    if op == "click":  # a button in the Scripts window
        props = _lib.obs_script_get_properties(script)
        try:
            prop = _lib.obs_properties_get(props, command["button"].encode())
            return bool(_lib.obs_property_button_clicked(prop, script))
        finally:
            _lib.obs_properties_destroy(props)
    if op == "reload":  # the Scripts window's Reload button
        return bool(_lib.obs_script_reload(script))
    if op == "settings":
        return _settings_json(script)
    if op == "properties":
        return _properties(script)
    raise ValueError(f"unknown op {op!r}")


def _on_ui(n: int, command: dict) -> None:
    global _busy
    try:
        reply = {"ok": True, "result": _run(command)}
    except Exception:
        reply = {"ok": False, "result": traceback.format_exc()}
    path = os.path.join(_dir, f"{n}.done.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(reply, f)
    os.replace(path + ".tmp", path)
    _busy = False


_active = False
_thread: threading.Thread | None = None


def _next_command() -> None:
    global _next, _busy
    if _busy or not _dir:
        return
    path = os.path.join(_dir, f"{_next}.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        command = json.load(f)
    n, _next, _busy = _next, _next + 1, True
    task = _TASK(lambda _param, n=n, command=command: _on_ui(n, command))
    _keep.append(task)
    _lib.obs_queue_task(OBS_TASK_UI, task, None, False)


def _watch() -> None:
    while _active:
        _next_command()
        time.sleep(0.05)


def script_description() -> str:
    return "sd-bridge test driver (tests/plugins/test_obs_real.py); not for shows."


def script_load(settings) -> None:
    global _dir, _target
    _dir = obs.obs_data_get_string(settings, "dir")
    _target = obs.obs_data_get_string(settings, "target") or TARGET
    global _active, _thread
    _active = True
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_watch, name="sd-bridge-test-driver", daemon=True)
        _thread.start()
    print(f"sd-bridge test driver ready: {_dir}")


def script_unload() -> None:
    global _active
    _active = False  # a collection switch loads the driver again, which starts it again
