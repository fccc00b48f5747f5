"""The live parameter store: validated values, coalesced pending changes, change listeners.

Writers (OSC, presets, the CLI) call `set`; the runtime calls `drain` once between frames and
gets only the newest value of each parameter changed since the last drain, so a flood of
messages never makes the engine fall behind its controller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .params import PARAMS, Param, ParamError

Listener = Callable[[str, Any, Any], None]
"""Called as listener(name, value, origin) after an accepted change."""


@dataclass(frozen=True)
class Failure:
    """The origin of a change the daemon made because something failed (a model switch that did
    not build): listeners learn why, and OSC tells every client with `/sd/error`."""

    message: str


Check = Callable[[Any], None]
"""A check added by the owner of the store (`add_check`): raises ParamError to refuse a value."""


class ParamStore:
    def __init__(self, params: Iterable[Param] = PARAMS, values: Mapping[str, Any] | None = None) -> None:
        self._params = {p.name: p for p in params}
        self._values: dict[str, Any] = {p.name: p.default for p in self._params.values()}
        self._pending: dict[str, Any] = {}
        self._listeners: list[Listener] = []
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        if values:
            self.update(values)
            self.drain()

    @property
    def params(self) -> dict[str, Param]:
        return dict(self._params)

    def spec(self, name: str) -> Param:
        try:
            return self._params[name]
        except KeyError:
            raise ParamError(f"unknown parameter {name!r}") from None

    def get(self, name: str) -> Any:
        self.spec(name)
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def add_check(self, name: str, check: Check) -> None:
        """Refuse values of `name` that the table allows but this daemon does not (e.g. a model
        that no preset or flag names): `check(value)` raises ParamError, and nothing changes."""
        self.spec(name)
        self._checks[name] = check

    def validate(self, name: str, value: Any) -> Any:
        """The value as it would be stored, or ParamError naming what is wrong; stores nothing."""
        coerced = self.spec(name).coerce(value)
        check = self._checks.get(name)
        if check is not None:
            check(coerced)
        return coerced

    def set(self, name: str, value: Any, origin: Any = None) -> Any:
        """Validate and store one value; raise ParamError (state unchanged) if refused."""
        coerced = self.validate(name, value)
        with self._lock:
            self._values[name] = coerced
            self._pending[name] = coerced
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name, coerced, origin)
        return coerced

    def update(self, values: Mapping[str, Any], origin: Any = None) -> dict[str, Any]:
        """Set several values at once: all are validated first, so one bad value changes nothing."""
        coerced = {name: self.validate(name, v) for name, v in values.items()}
        with self._lock:
            self._values.update(coerced)
            self._pending.update(coerced)
            listeners = list(self._listeners)
        for name, v in coerced.items():
            for listener in listeners:
                listener(name, v, origin)
        return coerced

    def drain(self) -> dict[str, Any]:
        """The newest value of each parameter changed since the last drain."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe
