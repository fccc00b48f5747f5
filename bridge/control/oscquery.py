"""OSCQuery: the address space as an HTTP + JSON tree, so controllers can discover it.

Follows the Vidvox OSCQuery proposal: `GET /` gives the whole tree (FULL_PATH, CONTENTS, TYPE,
RANGE, VALUE, ACCESS, CLIPMODE, DESCRIPTION), `GET /sd/guidance` one node, `GET
/sd/guidance?VALUE` one attribute, `GET /?HOST_INFO` the server's name, OSC port and
supported extensions. Values are read live from the ParamStore. The optional WebSocket
LISTEN extension is not offered (HOST_INFO says so); controllers get live values from the OSC
echo instead. The tree is built straight from PARAMS, so it can't disagree with the server.

Why not the `python-oscquery` package: it brings its own OSC server and node tree, which would
be a second copy of the address space to keep in step with PARAMS, and it lacks LISTEN too; what
we need of the spec is one JSON tree over http.server, about a hundred lines here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from . import mdns, osc_map
from .netallow import Networks, allowed
from .osc_wire import shortest_f32
from .params import Kind, Param
from .store import ParamStore
from .throttle import ThrottledLog

log = logging.getLogger("bridge.oscquery")

ACCESS_NONE, ACCESS_READ, ACCESS_WRITE, ACCESS_READ_WRITE = 0, 1, 2, 3

CONNECTION_TIMEOUT = 5.0
"""Seconds a client has to send its request (all of it) before the connection is closed."""
MAX_CONNECTIONS = 32
"""Connections open at once (one thread each); a new one beyond this closes the oldest."""
LISTEN_BACKLOG = 128


EXTENSIONS = {
    "ACCESS": True,
    "VALUE": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "CLIPMODE": True,
    "TAGS": False,
    "EXTENDED_TYPE": False,
    "UNIT": False,
    "CRITICAL": False,
    "OVERLOADS": False,
    "LISTEN": False,
    "PATH_CHANGED": False,
}


def _range(p: Param, value: Any) -> list[Any] | None:
    if p.kind is Kind.BOOL:
        return [{"MIN": 0, "MAX": 1}]
    if (
        p.kind in (Kind.FLOAT, Kind.INT, Kind.INT_LIST, Kind.INT_PAIR, Kind.FLOAT_LIST)
        and p.minimum is not None
    ):
        floats = p.kind in (Kind.FLOAT, Kind.FLOAT_LIST)
        lo: Any = p.minimum if floats else int(p.minimum)
        hi: Any = p.maximum if floats else int(p.maximum or 0)
        ranges = [{"MIN": lo, "MAX": hi} for _ in osc_map.type_tags(p, value)]
        return [ranges] if p.kind in osc_map.VARIABLE else ranges  # an array's ranges sit in one list
    return None


def _shown(args: list[Any]) -> list[Any]:
    """OSC arguments as JSON shows them: each float as the float32 it is sent as, without noise."""
    return [shortest_f32(a) if isinstance(a, float) else a for a in args]


def param_node(p: Param, value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "FULL_PATH": p.address,
        "TYPE": osc_map.query_type(p, value),
        "ACCESS": ACCESS_READ_WRITE,
        "DESCRIPTION": p.doc,
    }
    if value is not None:  # an unset blend (`/sd/prompts`) has no value to show
        args = _shown(osc_map.encode(p, value))
        node["VALUE"] = [args] if p.kind in osc_map.VARIABLE else args
    rng = _range(p, value)
    if rng is not None:
        node["RANGE"] = rng
    if p.kind in (Kind.FLOAT, Kind.INT):
        node["CLIPMODE"] = "both" if p.clamp else "none"
    if p.has_norm:
        node["CONTENTS"] = {
            "norm": {
                "FULL_PATH": p.address + osc_map.NORM,
                "TYPE": "f",
                "ACCESS": ACCESS_READ_WRITE,
                "VALUE": [shortest_f32(p.to_norm(value))],
                "RANGE": [{"MIN": 0.0, "MAX": 1.0}],
                "CLIPMODE": "none",
                "DESCRIPTION": f"{p.address} with 0..1 mapped onto its range.",
            }
        }
    return node


def build_tree(store: ParamStore) -> dict[str, Any]:
    """The whole OSCQuery tree, with current values."""
    root: dict[str, Any] = {"FULL_PATH": "/", "ACCESS": ACCESS_NONE, "CONTENTS": {}}
    values = store.snapshot()
    leaves: list[tuple[str, dict[str, Any]]] = [
        (p.address, param_node(p, values[p.name])) for p in store.params.values()
    ]
    for address, (tags, doc) in osc_map.COMMANDS.items():
        node: dict[str, Any] = {"FULL_PATH": address, "ACCESS": ACCESS_WRITE, "DESCRIPTION": doc}
        if tags:
            node["TYPE"] = tags
        leaves.append((address, node))
    for address, leaf in leaves:
        parent = root
        parts = address.strip("/").split("/")
        for depth, part in enumerate(parts[:-1]):
            contents = parent.setdefault("CONTENTS", {})
            if part not in contents:
                path = "/" + "/".join(parts[: depth + 1])
                contents[part] = {"FULL_PATH": path, "ACCESS": ACCESS_NONE, "CONTENTS": {}}
            parent = contents[part]
        contents = parent.setdefault("CONTENTS", {})
        existing = contents.get(parts[-1], {})
        contents[parts[-1]] = {**existing, **leaf}
    return root


def find_node(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in [p for p in path.strip("/").split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def host_info(name: str, osc_address: tuple[str, int]) -> dict[str, Any]:
    return {
        "NAME": name,
        "EXTENSIONS": EXTENSIONS,
        "OSC_IP": osc_address[0],
        "OSC_PORT": osc_address[1],
        "OSC_TRANSPORT": "UDP",
    }


class OscQueryServer:
    """A small threaded HTTP server for the OSCQuery tree, plus its mDNS advertisement."""

    def __init__(
        self,
        store: ParamStore,
        osc_address: tuple[str, int],
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "sd-bridge",
        allow: Networks | None = None,
        *,
        timeout: float = CONNECTION_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.timeout = timeout
        """Seconds a connection may take to send its request and get the answer, in all."""
        self.max_connections = max_connections
        self.store = store
        self.allow = allow
        """Only these clients get answers (the same list as OSC); None: everyone who can reach us."""
        self.osc_address = osc_address
        self.host = host
        self.port = port
        self.name = name
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._advertisement: mdns.Advertisement | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            return (self.host, self.port)
        host, port = self._httpd.server_address[:2]
        return (str(host), int(port))

    def start(self, advertise: bool = True) -> OscQueryServer:
        """Serve in a thread; with `advertise`, also announce `_oscjson._tcp` over mDNS (best effort)."""
        server = self

        class Handler(_Handler):
            query = server

        try:
            self._httpd = _HTTPServer((self.host, self.port), Handler, self.timeout, self.max_connections)
            self._httpd.allow = self.allow
        except OSError as exc:
            raise OSError(f"cannot serve OSCQuery on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="oscquery-http", daemon=True
        )
        self._thread.start()
        log.info("OSCQuery on http://%s:%d/", *self.address)
        if advertise:
            self._advertisement = mdns.advertise(self.name, self.address[1], self.host)
        return self

    def stop(self) -> None:
        if self._advertisement is not None:
            self._advertisement.close()
            self._advertisement = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


class _HTTPServer(ThreadingHTTPServer):
    """http.server, made safe to leave open on a stage network.

    Every connection gets `timeout` seconds in all to send its request (a per-read timeout alone
    lets a slowloris client that sends a byte a second hold a thread forever); at most
    `max_connections` are open at once, each on its own thread, and a new one beyond that
    closes the oldest (the slowest) so a normal GET still gets in; a client that goes away
    mid-request is one quiet log line, not a traceback.
    """

    allow: Networks | None = None
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type, timeout: float, max_connections: int) -> None:
        self.connection_timeout = timeout
        self.max_connections = max_connections
        self._open: dict[Any, float] = {}
        self._open_lock = threading.Lock()
        self._quiet = ThrottledLog(log, interval=5.0)
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.allow is None or allowed(str(client_address[0]), self.allow)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            while len(self._open) >= self.max_connections:
                oldest = min(self._open, key=self._open.__getitem__)
                self._cut(oldest)
            self._open[request] = time.monotonic()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Called by serve_forever between polls: cut connections past their time."""
        cutoff = time.monotonic() - self.connection_timeout
        with self._open_lock:
            for request, opened in list(self._open.items()):
                if opened < cutoff:
                    self._cut(request)

    def _cut(self, request: Any) -> None:
        """Wake the connection's thread out of its read (it then closes the socket); lock held."""
        self._open.pop(request, None)
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        self._quiet.info("aborted", f"OSCQuery: a request from {client_address[0]} failed: {exc!r}")


class _Handler(BaseHTTPRequestHandler):
    query: OscQueryServer
    server_version = "sd-bridge-oscquery"

    def setup(self) -> None:
        self.timeout = self.server.connection_timeout  # type: ignore[attr-defined]  # each read, at most
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        path = unquote(url.path) or "/"
        attribute = url.query.split("&")[0].split("=")[0].upper()
        q = self.query
        if attribute == "HOST_INFO":
            self._reply(200, host_info(q.name, q.osc_address))
            return
        node = find_node(build_tree(q.store), path)
        if node is None:
            self._reply(404, {"error": f"no such address {path}"})
            return
        if not attribute:
            self._reply(200, node)
        elif attribute in node:
            self._reply(200, {attribute: node[attribute]})
        else:
            self._reply(204, None)

    def _reply(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("oscquery %s - %s", self.address_string(), format % args)
