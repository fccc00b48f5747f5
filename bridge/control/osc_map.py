"""The OSC address space, as data derived from PARAMS: arguments in, values out.

Each parameter answers on `Param.address`; each float with a range also answers on
`<address>/norm` with 0..1 mapped onto that range. `decode` turns an incoming message into a
validated (name, value) pair or raises ParamError naming the address and what it expects;
`encode` turns a stored value back into OSC arguments (for echoes, `/sd/get`, OSCQuery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .params import PARAMS, Kind, Param, ParamError

NORM = "/norm"

COMMANDS: dict[str, tuple[str | None, str]] = {
    "/sd/status": (
        None,
        "Replies `/sd/status f f f f i i`: fps, latency p50 and p95 (ms), skip rate (0..1), dropped frames, "
        "source down (1 while the video source is lost and its last frame is held).",
    ),
    "/sd/get": (
        "s",
        "Replies with the current value of the address given (`/sd/guidance`, `/sd/guidance/norm` or "
        "`guidance`), sent on that address; with no argument, replies with every address.",
    ),
    "/sd/subscribe": (
        "f",
        "Push `/sd/stats/...` to the sender at the given rate in Hz (0.5 to 30, default 4) until "
        "`/sd/unsubscribe`.",
    ),
    "/sd/unsubscribe": (None, "Stop the stats push to the sender."),
}
"""Addresses that ask instead of set: (argument type tags, what it does)."""

SINGLE = (Kind.FLOAT, Kind.INT, Kind.BOOL, Kind.STR)
"""Kinds that take exactly one OSC argument."""


@dataclass(frozen=True)
class Route:
    """One OSC address that writes a parameter."""

    address: str
    param: Param
    norm: bool = False

    def expects(self) -> str:
        if self.norm:
            return "one number in [0, 1]"
        words = self.param.expects()
        return f"one argument, {words}" if self.param.kind in SINGLE else words


def build_routes(params: Sequence[Param] = PARAMS) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for p in params:
        routes[p.address] = Route(p.address, p)
        if p.has_norm:
            routes[p.address + NORM] = Route(p.address + NORM, p, norm=True)
    return routes


ROUTES: dict[str, Route] = build_routes()


@dataclass(frozen=True)
class Decoded:
    name: str
    value: Any


def decode(route: Route, args: Sequence[Any]) -> Decoded:
    """Validate one message's arguments for `route`; raise ParamError (naming the address) if refused."""
    p = route.param
    if not args:
        raise ParamError(f"{route.address} expects {route.expects()}, got no arguments")
    if route.norm or p.kind in SINGLE:
        if len(args) != 1:
            raise ParamError(f"{route.address} expects {route.expects()}, got {len(args)} arguments")
        raw = args[0]
        if route.norm:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise ParamError(f"{route.address} expects {route.expects()}, got {_shown(raw)}")
            return Decoded(p.name, p.coerce(p.from_norm(raw)))
        return Decoded(p.name, p.coerce(raw))
    items = list(args)
    if len(items) == 1 and isinstance(items[0], list):
        items = items[0]  # an OSC array `[...]` carrying the whole list
    return Decoded(p.name, p.coerce(items))


def encode(p: Param, value: Any) -> list[Any]:
    """The OSC arguments that carry `value` (booleans as 0/1, which every controller understands)."""
    if value is None:
        return []
    k = p.kind
    if k is Kind.FLOAT:
        return [float(value)]
    if k is Kind.INT:
        return [int(value)]
    if k is Kind.BOOL:
        return [int(bool(value))]
    if k is Kind.STR:
        return [str(value)]
    if k in (Kind.INT_LIST, Kind.INT_PAIR):
        return [int(v) for v in value]
    if k is Kind.FLOAT_LIST:
        return [float(v) for v in value]
    if k is Kind.WEIGHTED_STR:
        return [x for text, w in value for x in (str(text), float(w))]
    if k is Kind.WEIGHTED_INT:
        return [x for seed, w in value for x in (int(seed), float(w))]
    raise AssertionError(k)


def type_tags(p: Param, value: Any = None) -> str:
    """OSC type tags of the arguments, e.g. `f`, `ii`, `sfsf`, for the value given (or the default)."""
    value = p.default if value is None else value
    k = p.kind
    if k is Kind.FLOAT:
        return "f"
    if k in (Kind.INT, Kind.BOOL):
        return "i"
    if k is Kind.STR:
        return "s"
    if k is Kind.INT_PAIR:
        return "ii"
    if k is Kind.INT_LIST:
        return "i" * max(1, len(value or [0]))
    if k is Kind.FLOAT_LIST:
        return "f" * max(1, len(value or [0]))
    pairs = max(1, len(value or [None]))
    return ("sf" if k is Kind.WEIGHTED_STR else "if") * pairs


def signature(p: Param) -> str:
    """How the arguments look, for people: `f`, `i i`, `s f s f ...`."""
    return {
        Kind.FLOAT: "f",
        Kind.INT: "i",
        Kind.BOOL: "i (0/1)",
        Kind.STR: "s",
        Kind.INT_LIST: "i ...",
        Kind.INT_PAIR: "i i",
        Kind.FLOAT_LIST: "f ...",
        Kind.WEIGHTED_STR: "s f s f ...",
        Kind.WEIGHTED_INT: "i f i f ...",
    }[p.kind]


def resolve(target: str, routes: dict[str, Route] = ROUTES) -> Route | None:
    """The route for an address (`/sd/guidance`, `/sd/guidance/norm`) or a bare name (`guidance`)."""
    if not target.startswith("/"):
        target = "/sd/" + target.replace(".", "/")
    return routes.get(target)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
