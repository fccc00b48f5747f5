"""Live control over OSC: a UDP server that writes the ParamStore and talks back.

Threads, so the frame loop is never blocked: one receives and validates packets and writes the
store (the runtime drains it between frames); one sends feedback (echoes of accepted changes,
coalesced, and the `/sd/stats/...` push). Packets are read strictly by `osc_wire` (every
length and type tag checked before a value is used; python-osc zero-pads a float cut short and
reads a blob of negative size as empty text) and routed from our own address table (`osc_map`),
not python-osc's Dispatcher: the Dispatcher's default `strict_timing=True` sleeps until a
bundle's timetag, and it silently swallows malformed packets. Here bundles are applied at once
whatever their timetag (TouchDesigner timestamps what it sends, and clock skew would withhold
it), all of a bundle's changes in one `ParamStore.update`, and every refusal gets a log line
and an `/sd/error` reply. A flood is read but not parsed packet by packet: see `osc_inbox`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from . import osc_map, osc_stats
from .netallow import allowed, parse_allow
from .osc_inbox import Inbox
from .osc_keys import CoalesceKeys
from .osc_wire import MalformedPacket, parse_packet
from .params import ParamError
from .store import Failure, ParamStore
from .throttle import ThrottledLog, TokenBucket

log = logging.getLogger("bridge.osc")

MAX_PACKET = 16384
"""Bigger datagrams are refused unread (a full 16-prompt blend of long prompts still fits)."""
ECHO_WINDOW = 60.0
"""Seconds a client stays on the echo list after it last sent us something."""
MAX_CLIENTS = 64
MAX_SUBSCRIBERS = 32
STATS_RATE = 4.0
STATS_RATE_RANGE = (0.5, 30.0)
ERROR_REPLIES_PER_S = 50.0
ECHO_PERIOD = 0.02
"""Echoes are coalesced over this many seconds: a flood echoes its newest value, not every one."""
WORK_BUDGET = 0.002
"""Seconds of parsing per turn of the receive loop, at most (what is left waits, coalescing)."""
DUTY = 0.25
"""The share of time the receive thread may spend parsing under a flood."""
PARSE_PERIOD = 0.01
"""Under a flood, parsing starts at most this often (a lone message is parsed at once): what
arrives in between coalesces, so a fader at 20,000 messages a second costs about 100 parses a
second per address, and the frame loop, which needs the GIL between its torch calls, keeps it."""
READ_PAUSE = 0.004
"""Pause after each read of a burst, so a flood is read in bursts rather than one wake-up per
datagram; short enough that reading keeps up (what the kernel drops is lost for good)."""
MAX_BURST = 1024
"""Datagrams read per turn, at most (reading is cheap; falling behind loses datagrams in the kernel)."""
MAX_PENDING = 256
"""Different datagrams (keys) one client may have waiting; more are refused as a flood."""
TURN = 16
"""Datagrams of one client parsed before the next client's turn."""

Client = tuple[str, int]


@dataclass(frozen=True)
class OscOrigin:
    """The `origin` of a change made over OSC (what store listeners see)."""

    client: Client


class OscServer:
    """Serve the parameter store over OSC/UDP. `start()` returns at once; `stop()` joins the threads."""

    def __init__(
        self,
        store: ParamStore,
        host: str = "127.0.0.1",
        port: int = 7000,
        stats: Callable[[], dict] | None = None,
        reply_port: int | None = None,
        allow: list[str] | None = None,
        *,
        stats_rate: float = STATS_RATE,
        query_port: int | None = None,
        advertise: bool = True,
        name: str = "sd-bridge",
        on_quit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.stats = stats
        self.reply_port = reply_port
        self.allow = parse_allow(allow)
        self.stats_rate = stats_rate
        self.query_port = query_port
        """Serve OSCQuery (HTTP + JSON) on this TCP port too; None: don't, 0: any free port."""
        self.advertise = advertise
        self.name = name
        self.on_quit = on_quit
        """What `/sd/quit` calls (the daemon's clean stop); None: `/sd/quit` is refused."""
        self.routes = osc_map.build_routes(store.params.values())
        self._keys = CoalesceKeys(frozenset(address.encode("ascii") for address in self.routes))
        self._inbox: Inbox[Client] = Inbox(MAX_PENDING)
        self._last_touch: tuple[Client | None, float] = (None, 0.0)

        self.accepted = 0
        """Messages that changed a parameter or were answered."""
        self.rejected = 0
        """Messages or packets refused (unknown address, wrong type or arity, malformed, oversized)."""
        self.dropped_not_allowed = 0
        """Packets from addresses not on the allow list, dropped unanswered."""
        self.received = 0
        """Datagrams read from the socket (what the kernel dropped before that is not counted)."""

        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._clients: dict[Client, float] = {}
        self._subscribers: dict[Client, float] = {}
        self._next_push: dict[Client, float] = {}
        self._echo: dict[str, Any] = {}
        self._failures: list[str] = []
        """Why the daemon changed values itself (store `Failure` origins): sent to every client."""
        self._error_buckets: dict[Client, TokenBucket] = {}
        self._throttled = ThrottledLog(log)
        self._unsubscribe: Callable[[], None] | None = None
        self._query: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound (after `start()`; port 0 asks for a free one)."""
        if self._sock is None:
            return (self.host, self.port)
        host, port = self._sock.getsockname()[:2]
        return (host, port)

    @property
    def query_address(self) -> tuple[str, int] | None:
        return None if self._query is None else self._query.address

    def start(self) -> OscServer:
        if self._sock is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            _enlarge_receive_buffer(sock)
            if hasattr(socket, "SIO_UDP_CONNRESET"):  # Windows: a closed client port must not kill recvfrom
                sock.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]
            sock.bind((self.host, self.port))
            sock.setblocking(False)  # the receive loop waits in select() and reads bursts
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for OSC on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self._sock = sock
        self._stop.clear()
        self._unsubscribe = self.store.subscribe(self._on_change)
        if self.query_port is not None:
            from .oscquery import OscQueryServer

            self._query = OscQueryServer(
                self.store,
                osc_address=self.address,
                host=self.host,
                port=self.query_port,
                name=self.name,
                allow=self.allow,
            )
            try:
                self._query.start(advertise=self.advertise)
            except OSError:
                self.stop()
                raise
        for target, label in ((self._receive_loop, "osc-receive"), (self._feedback_loop, "osc-feedback")):
            thread = threading.Thread(target=target, name=label, daemon=True)
            thread.start()
            self._threads.append(thread)
        host, port = self.address
        log.info("OSC listening on %s:%d (udp)", host, port)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._poke_receiver()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        if self._query is not None:
            self._query.stop()
            self._query = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _poke_receiver(self) -> None:
        """Wake the receive thread out of recvfrom with an empty datagram, so stop() is prompt."""
        if self._sock is None:
            return
        host, port = self.address
        if host in ("0.0.0.0", "::", ""):
            host = "::1" if self._sock.family == socket.AF_INET6 else "127.0.0.1"
        with contextlib.suppress(OSError), socket.socket(self._sock.family, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"", (host, port))

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clients(self) -> list[Client]:
        """Reply addresses of the clients heard from in the last minute."""
        cutoff = time.monotonic() - ECHO_WINDOW
        with self._lock:
            return [c for c, seen in self._clients.items() if seen >= cutoff]

    def subscribers(self) -> list[Client]:
        with self._lock:
            return list(self._subscribers)

    # -- receiving ---------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        """Read what arrived and file it in the inbox; parse when due; pause; repeat.

        Reading is cheap (a few microseconds a datagram, no parsing) and always keeps up, so
        the kernel's buffer never overflows and the last value sent is never lost. Parsing is
        what costs: it starts at most every PARSE_PERIOD (or every 1 / DUTY times the parsing
        done, if longer) and lasts at most WORK_BUDGET, so the thread holds the GIL for parsing
        at most about DUTY of the time and the frame loop keeps its rate; datagrams that arrive
        meanwhile are filed, and a newer one with the same address replaces an older one
        unparsed (see `osc_inbox`). A lone message is handled at once (no pause before it).
        """
        sock = self._sock
        assert sock is not None
        next_parse = 0.0
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.0 if len(self._inbox) else 0.2)
            except (OSError, ValueError):  # closed under us by stop()
                return
            if self._stop.is_set():
                return
            if not ready and not len(self._inbox):
                continue
            self._read_burst(sock)
            started = time.monotonic()
            if started >= next_parse:
                self._work(started + WORK_BUDGET)
                next_parse = started + max(PARSE_PERIOD, (time.monotonic() - started) / DUTY)
            self._stop.wait(READ_PAUSE)

    def _read_burst(self, sock: socket.socket) -> None:
        """Read up to MAX_BURST waiting datagrams without blocking and file them."""
        for _ in range(MAX_BURST):
            try:
                data, sender = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError, TimeoutError, ConnectionResetError):
                return
            except OSError:
                return
            self._intake(data, sender[:2])

    def _work(self, deadline: float) -> None:
        """Parse and apply filed datagrams, clients in turns, until the inbox is empty or `deadline`."""
        for client, data in self._inbox.take(TURN):
            self._apply_safely(data, client)
            if time.monotonic() >= deadline:
                return

    def _intake(self, data: bytes, sender: tuple[str, int]) -> None:
        """The cheap checks every datagram gets (allow list, size); then file it unparsed."""
        self.received += 1
        ip = sender[0]
        if self.allow is not None and not allowed(ip, self.allow):
            self.dropped_not_allowed += 1
            self._throttled.warning("not-allowed", f"OSC: dropped a packet from {ip}: not in --osc-allow")
            return
        client = (ip, self.reply_port or sender[1])
        self._touch(client)
        if len(data) > MAX_PACKET:
            message = f"packet of {len(data)} bytes refused: at most {MAX_PACKET}"
            self._refuse(client, message, key="oversized")
            return
        if not self._inbox.put(client, self._coalesce_key(data), data):
            message = f"flood: {MAX_PENDING} different messages already waiting from this client; dropped one"
            self._refuse(client, message, key="flood")

    def _coalesce_key(self, data: bytes) -> Hashable:
        """What a newer datagram must share to replace this one unread: the same parameter
        addresses, type tags and size, so only the values differ (see `osc_keys`)."""
        return self._keys.key(data)

    @property
    def coalesced(self) -> int:
        """Datagrams replaced, unparsed, by a newer one with the same address (a flood's excess)."""
        return self._inbox.coalesced

    def handle_packet(self, data: bytes, sender: tuple[str, int]) -> None:
        """Check, file and apply one datagram from `sender` at once (what the receive thread does).

        For tests and tools driving a server that is not started: the inbox belongs to the
        receive thread and has no lock."""
        self._intake(data, sender)
        self._work(float("inf"))

    def _apply_safely(self, data: bytes, client: Client) -> None:
        try:
            self._apply(data, client)
        except Exception as exc:  # never let one packet end the server
            self.rejected += 1
            self._throttled.warning("internal", f"OSC: internal error on a packet from {client[0]}: {exc!r}")

    def _apply(self, data: bytes, client: Client) -> None:
        """Parse one datagram strictly and apply it: all of a bundle's changes in one update."""
        try:
            messages = parse_packet(data)
        except MalformedPacket as exc:
            self._refuse(client, f"malformed OSC packet ({len(data)} bytes): {exc}", key="malformed")
            return
        changes: dict[str, Any] = {}
        for message in messages:
            address = message.address
            command = _COMMANDS.get(address)
            if command is not None:
                command(self, client, list(message.args))
                continue
            route = self.routes.get(address)
            if route is None:
                self._refuse(client, f"unknown address {_short(address)}; see /sd/get or docs/OSC.md")
                continue
            try:
                osc_map.check_tags(route, message.tags)
                decoded = osc_map.decode(route, list(message.args))
                value = self.store.validate(decoded.name, decoded.value)
            except ParamError as exc:
                self._refuse(client, str(exc))
                continue
            changes[decoded.name] = value
            self.accepted += 1
        if changes:
            try:
                self.store.update(changes, origin=OscOrigin(client))
            except ParamError as exc:  # already validated; kept for safety
                self._refuse(client, str(exc))

    def _refuse(self, client: Client, message: str, key: str = "rejected") -> None:
        self.rejected += 1
        self._throttled.warning(key, f"OSC from {client[0]}: {message}")
        with self._lock:
            bucket = self._error_buckets.get(client)
            if bucket is None:
                bucket = self._error_buckets[client] = TokenBucket(ERROR_REPLIES_PER_S, ERROR_REPLIES_PER_S)
            may_reply = bucket.take()
        if may_reply:  # a flood of bad input must not become a flood of replies
            self._send(client, "/sd/error", [message])

    def _touch(self, client: Client) -> None:
        now = time.monotonic()
        if client == self._last_touch[0] and now - self._last_touch[1] < 0.5:
            return  # a flood from one client: its entry is fresh enough (ECHO_WINDOW is a minute)
        self._last_touch = (client, now)
        with self._lock:
            if client not in self._clients and len(self._clients) >= MAX_CLIENTS:
                oldest = min(self._clients, key=self._clients.__getitem__)
                del self._clients[oldest]
                self._error_buckets.pop(oldest, None)
            self._clients[client] = now

    # -- commands ----------------------------------------------------------------------------
    def _cmd_status(self, client: Client, args: list[Any]) -> None:
        self.accepted += 1
        self._send(client, "/sd/status", osc_stats.status_args(self._read_stats()))

    def _cmd_get(self, client: Client, args: list[Any]) -> None:
        if not args:
            self.accepted += 1
            for route in self.routes.values():
                self._send(client, *self._value_message(route))
            return
        if len(args) != 1 or not isinstance(args[0], str):
            self._refuse(client, "/sd/get expects one address (s), e.g. /sd/guidance, or nothing for all")
            return
        route = osc_map.resolve(args[0], self.routes)
        if route is None:
            self._refuse(client, f"/sd/get: unknown address {_short(args[0])}")
            return
        self.accepted += 1
        self._send(client, *self._value_message(route))

    def _cmd_subscribe(self, client: Client, args: list[Any]) -> None:
        lo, hi = STATS_RATE_RANGE
        rate = self.stats_rate
        if args:
            value = args[0]
            ok = len(args) == 1 and isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not lo <= value <= hi:
                self._refuse(client, f"/sd/subscribe expects nothing or one rate in Hz in [{lo:g}, {hi:g}]")
                return
            rate = float(value)
        with self._lock:
            if client not in self._subscribers and len(self._subscribers) >= MAX_SUBSCRIBERS:
                full = True
            else:
                full = False
                self._subscribers[client] = rate
                self._next_push[client] = time.monotonic()
        if full:
            self._refuse(client, f"/sd/subscribe: already {MAX_SUBSCRIBERS} subscribers")
            return
        self.accepted += 1
        self._wake.set()

    def _cmd_unsubscribe(self, client: Client, args: list[Any]) -> None:
        with self._lock:
            self._subscribers.pop(client, None)
            self._next_push.pop(client, None)
        self.accepted += 1

    def _cmd_quit(self, client: Client, args: list[Any]) -> None:
        if self.on_quit is None:
            self._refuse(client, "/sd/quit: this server cannot stop its daemon")
            return
        self.accepted += 1
        log.warning("OSC: /sd/quit from %s: stopping", client[0])  # visible: who stopped the show
        self.on_quit()

    def _value_message(self, route: osc_map.Route) -> tuple[str, list[Any]]:
        value = self.store.get(route.param.name)
        if route.norm:
            return route.address, [route.param.to_norm(value)]
        return route.address, osc_map.encode(route.param, value)

    # -- feedback ----------------------------------------------------------------------------
    def _on_change(self, name: str, value: Any, origin: Any) -> None:
        """Store listener: runs on the writer's thread (maybe the frame loop), so it only records."""
        with self._lock:
            self._echo[name] = value
            if isinstance(origin, Failure) and origin.message not in self._failures:
                self._failures.append(origin.message)
        self._wake.set()

    def _feedback_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self._seconds_to_next_push())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._flush_echoes()
                self._push_stats()
            except Exception as exc:
                self._throttled.warning("feedback", f"OSC: feedback failed: {exc!r}")
            time.sleep(ECHO_PERIOD)  # coalesce the next burst of changes

    def _seconds_to_next_push(self) -> float:
        with self._lock:
            due = min(self._next_push.values(), default=None)
        return 1.0 if due is None else max(0.0, min(1.0, due - time.monotonic()))

    def _flush_echoes(self) -> None:
        with self._lock:
            pending, self._echo = self._echo, {}
            failures, self._failures = self._failures, []
        if not pending:
            return
        clients = self.clients()
        for message in failures:  # first the why, then the values it put back
            for client in clients:
                self._send(client, "/sd/error", [message])
        for name, value in pending.items():
            route = self.routes.get(self.store.spec(name).address)
            if route is None:
                continue
            messages = [(route.address, osc_map.encode(route.param, value))]
            if route.param.has_norm:
                messages.append((route.address + osc_map.NORM, [route.param.to_norm(value)]))
            for client in clients:  # the sender too: it learns the value used (clamped, coerced)
                for address, args in messages:
                    self._send(client, address, args)

    def _push_stats(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [c for c, t in self._next_push.items() if t <= now]
            for client in due:
                self._next_push[client] = now + 1.0 / self._subscribers[client]
        if not due:
            return
        bundle = OscBundleBuilder(IMMEDIATELY)
        for address, args in osc_stats.stats_messages(self._read_stats()):
            bundle.add_content(_message(address, args))
        dgram = bundle.build().dgram
        for client in due:
            self._send_raw(client, dgram)

    def _read_stats(self) -> dict | None:
        if self.stats is None:
            return None
        try:
            return self.stats()
        except Exception as exc:
            self._throttled.warning("stats", f"OSC: stats() failed: {exc!r}")
            return None

    # -- sending -----------------------------------------------------------------------------
    def _send(self, client: Client, address: str, args: Iterable[Any]) -> None:
        self._send_raw(client, _message(address, args).dgram)

    def _send_raw(self, client: Client, dgram: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(dgram, client)
        except OSError as exc:  # full buffer, unreachable client: feedback is best effort
            self._throttled.warning("send", f"OSC: could not reply to {client[0]}:{client[1]}: {exc}")


_COMMANDS: dict[str, Callable[[OscServer, Client, list[Any]], None]] = {
    "/sd/status": OscServer._cmd_status,
    "/sd/get": OscServer._cmd_get,
    "/sd/subscribe": OscServer._cmd_subscribe,
    "/sd/unsubscribe": OscServer._cmd_unsubscribe,
    "/sd/quit": OscServer._cmd_quit,
}
COMMANDS: tuple[str, ...] = tuple(_COMMANDS)


def _message(address: str, args: Iterable[Any]) -> Any:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build()


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    """Ask for a 4 MiB receive buffer (the OS may cap it) so a burst isn't dropped by the kernel."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
