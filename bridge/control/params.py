"""Every live parameter, declared once.

OSC, presets, the CLI and the plugins all read this table; validation happens here and
nowhere else. A parameter's `cost` says what a change costs the engine:

- ``frame``: applied on the next frame (guidance, delta, seed, filter settings);
- ``encode``: needs a text-encoder pass, done off the hot path (prompts);
- ``rebuild``: builds a new engine in the background while the old one keeps serving;
- ``runtime``: handled by the daemon around the engine (bypass, pause, presets).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Cost(str, Enum):
    FRAME = "frame"
    ENCODE = "encode"
    REBUILD = "rebuild"
    RUNTIME = "runtime"


class Kind(str, Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STR = "str"
    INT_LIST = "int_list"
    INT_PAIR = "int_pair"
    FLOAT_LIST = "float_list"
    """1 to MAX_LIST numbers, each in the range (a region's rect: x y w h)."""
    WEIGHTED_STR = "weighted_str"
    """A list of (text, weight) pairs; on OSC: s f s f ..."""
    WEIGHTED_INT = "weighted_int"
    """A list of (int, weight) pairs; on OSC: i f i f ..."""


class ParamError(ValueError):
    """A value a parameter refuses. The message names the parameter and what it expects."""


MAX_TEXT = 2000
MAX_LIST = 16


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    default: Any
    cost: Cost
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    clamp: bool = False
    """Out-of-range numbers are clamped instead of refused."""
    engine_key: str | None = None
    """The keyword of `FrameEngine.update` this parameter feeds, if any."""
    multiple_of: int | None = None
    """Integers must be multiples of this (resolutions: 8)."""
    name_only: bool = False
    """Text must be a bare name (see `safe_name`): what it names is looked up, never opened as a path."""
    nonempty: bool = False
    """Text must not be empty (a model: "" names nothing to switch to)."""
    increasing: bool = False
    """List entries must be strictly increasing (t_index: the noisiest step first, as the engine's
    `engine.schedule.validate_t_index_list` requires)."""

    @property
    def address(self) -> str:
        return "/sd/" + self.name.replace(".", "/")

    @property
    def has_norm(self) -> bool:
        """Float parameters with a range also answer on `<address>/norm` with 0..1."""
        return self.kind is Kind.FLOAT and self.minimum is not None and self.maximum is not None

    def expects(self) -> str:
        """What this parameter takes, in words, for error messages and docs."""
        rng = ""
        if self.minimum is not None and self.maximum is not None:
            rng = f" in [{_fmt(self.minimum)}, {_fmt(self.maximum)}]"
        return {
            Kind.FLOAT: f"a number{rng}",
            Kind.INT: f"an integer{rng}",
            Kind.BOOL: "0 or 1",
            Kind.STR: (
                f"a bare name (letters, digits, space, _ - ., at most {MAX_NAME} characters, no path)"
                if self.name_only
                else f"text (at most {MAX_TEXT} characters)"
            ),
            Kind.INT_LIST: f"1 to {MAX_LIST} integers{rng}",
            Kind.INT_PAIR: f"two integers{rng}",
            Kind.FLOAT_LIST: f"1 to {MAX_LIST} numbers{rng}",
            Kind.WEIGHTED_STR: f"pairs of text and weight (s f s f ...), 1 to {MAX_LIST} pairs",
            Kind.WEIGHTED_INT: f"pairs of seed and weight (i f i f ...), 1 to {MAX_LIST} pairs",
        }[self.kind]

    def from_norm(self, x: float) -> float:
        """Map 0..1 onto the range (for faders on `<address>/norm`)."""
        if not self.has_norm:
            raise ParamError(f"{self.address} has no /norm form")
        x = self._number(x, integral=False)
        if not 0.0 <= x <= 1.0:
            raise ParamError(f"{self.address}/norm expects a number in [0, 1], got {_fmt(x)}")
        assert self.minimum is not None and self.maximum is not None
        return self.minimum + x * (self.maximum - self.minimum)

    def to_norm(self, value: float) -> float:
        assert self.minimum is not None and self.maximum is not None
        span = self.maximum - self.minimum
        return 0.0 if span == 0 else (float(value) - self.minimum) / span

    def coerce(self, value: Any) -> Any:
        """Return the validated value or raise ParamError. Accepts ints for floats and vice versa."""
        k = self.kind
        if k is Kind.FLOAT:
            return self._ranged(self._number(value, integral=False), value)
        if k is Kind.INT:
            return int(self._ranged(self._number(value, integral=True), value))
        if k is Kind.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "on", "off"):
                return value.strip().lower() in ("true", "on")
            n = self._number(value, integral=False)
            if n not in (0.0, 1.0):
                raise self._error(value)
            return bool(n)
        if k is Kind.STR:
            text = self._text(value)
            if self.name_only and text and not is_safe_name(text):
                raise self._error(value)
            if self.nonempty and not text.strip():
                raise ParamError(f"{self.address} expects a name, got an empty one")
            return text
        if k in (Kind.INT_LIST, Kind.INT_PAIR):
            items = self._sequence(value)
            if k is Kind.INT_PAIR and len(items) != 2:
                raise self._error(value)
            ints = [int(self._ranged(self._number(v, integral=True), v)) for v in items]
            if self.multiple_of and any(n % self.multiple_of for n in ints):
                raise ParamError(f"{self.address} expects multiples of {self.multiple_of}, got {ints}")
            if self.increasing and any(b <= a for a, b in zip(ints, ints[1:], strict=False)):
                raise ParamError(
                    f"{self.address} expects strictly increasing steps (the noisiest first), got {ints}"
                )
            return ints
        if k is Kind.FLOAT_LIST:
            return [self._ranged(self._number(v, integral=False), v) for v in self._sequence(value)]
        if k in (Kind.WEIGHTED_STR, Kind.WEIGHTED_INT):
            return self._weighted(value)
        raise AssertionError(k)

    # -- helpers -------------------------------------------------------------------------
    def _error(self, value: Any) -> ParamError:
        shown = shown_value(value)
        return ParamError(f"{self.address} expects {self.expects()}, got {shown}")

    def _number(self, value: Any, *, integral: bool) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error(value)
        f = float(value)
        if not math.isfinite(f):
            raise self._error(value)
        if integral and f != int(f):
            raise self._error(value)
        return f

    def _ranged(self, f: float, raw: Any) -> float:
        """`f` (the number `raw` as a float) within the range: clamped, or refused showing `raw`."""
        lo, hi = self.minimum, self.maximum
        if (lo is not None and f < lo) or (hi is not None and f > hi):
            if not self.clamp:
                raise self._error(raw)
            f = min(max(f, lo if lo is not None else f), hi if hi is not None else f)
        return f

    def _text(self, value: Any) -> str:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._error(value) from exc
        if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
            raise self._error(value)
        return value

    def _sequence(self, value: Any, most: int = MAX_LIST) -> list[Any]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise self._error(value)
        if not 1 <= len(value) <= most:
            raise self._error(value)
        return list(value)

    def _weighted(self, value: Any) -> list[tuple[Any, float]]:
        items = self._sequence(value, 2 * MAX_LIST)  # the flat form holds two items a pair
        # Accept both [(a, w), ...] and the flat OSC form [a, w, a, w, ...].
        if all(isinstance(it, (list, tuple)) for it in items):
            pairs = [tuple(it) for it in items]
        elif len(items) % 2 == 0:
            pairs = [(items[i], items[i + 1]) for i in range(0, len(items), 2)]
        else:
            raise self._error(value)
        if len(pairs) > MAX_LIST:
            raise self._error(value)
        out: list[tuple[Any, float]] = []
        for pair in pairs:
            if len(pair) != 2:
                raise self._error(value)
            key, weight = pair
            w = self._number(weight, integral=False)
            if w < 0:
                raise self._error(value)
            if self.kind is Kind.WEIGHTED_STR:
                out.append((self._text(key), w))
            else:
                n = self._number(key, integral=True)
                if not 0 <= n <= SEED_MAX:
                    raise self._error(value)
                out.append((int(n), w))
        if sum(w for _, w in out) <= 0:
            raise self._error(value)
        return out


MAX_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9 _.\-]*")
_WINDOWS_DEVICES = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


def is_safe_name(text: str) -> bool:
    """True for a bare name that can't leave its folder: no separators, no `..`, not absolute.

    Windows device names (CON, NUL, COM1...) are refused too: opening `presets/CON.toml` on
    Windows opens the console. Presets, the CLI and OSC all check names here, so
    `/sd/preset ../../etc/passwd` or `C:\\evil` is refused before anything looks at the disk.
    """
    return (
        isinstance(text, str)
        and len(text) <= MAX_NAME
        and _NAME.fullmatch(text) is not None
        and ".." not in text
        and not text.endswith((" ", "."))
        and _WINDOWS_DEVICES.fullmatch(text) is None
    )


def safe_name(text: str) -> str:
    """Return `text` if it is a safe bare name, else raise ParamError saying why."""
    if not is_safe_name(text):
        shown = repr(text)[:80]
        raise ParamError(f"expected a bare name (no path, no '..', at most {MAX_NAME} chars), got {shown}")
    return text


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def shown_value(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: as sent (an int as `60`, never `60.0`), cut short."""
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(shown_value(v, limit) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


SEED_MAX = 2**31 - 1

PARAMS: tuple[Param, ...] = (
    Param(
        "prompt",
        Kind.STR,
        "a psychedelic painting, vivid colours",
        Cost.ENCODE,
        "What to draw. Morphs over `transition` seconds.",
        engine_key="prompt",
    ),
    Param(
        "negative_prompt",
        Kind.STR,
        "",
        Cost.ENCODE,
        "What to avoid (used by cfg_type full/initialize/self).",
        engine_key="negative_prompt",
    ),
    Param(
        "prompts",
        Kind.WEIGHTED_STR,
        None,
        Cost.ENCODE,
        "A weighted blend of prompts, replacing `prompt`: s f s f ...",
        engine_key="prompt",
    ),
    Param(
        "transition",
        Kind.FLOAT,
        0.5,
        Cost.FRAME,
        "Seconds a prompt change takes to morph instead of cutting.",
        0.0,
        10.0,
        clamp=True,
    ),
    Param(
        "guidance",
        Kind.FLOAT,
        1.2,
        Cost.FRAME,
        "Guidance scale (classifier-free guidance strength).",
        0.0,
        20.0,
        clamp=True,
        engine_key="guidance_scale",
    ),
    Param(
        "delta",
        Kind.FLOAT,
        1.0,
        Cost.FRAME,
        "Residual CFG delta: how much of the virtual negative to subtract.",
        0.0,
        2.0,
        clamp=True,
        engine_key="delta",
    ),
    Param("seed", Kind.INT, 2, Cost.FRAME, "Noise seed.", 0, SEED_MAX, engine_key="seed"),
    Param(
        "seeds",
        Kind.WEIGHTED_INT,
        None,
        Cost.FRAME,
        "A weighted blend of seeds' noise: i f i f ...",
        engine_key="seed",
    ),
    Param(
        "t_index",
        Kind.INT_LIST,
        [35],
        Cost.FRAME,
        "Denoising steps as indices into the 50-step LCM schedule, strictly increasing "
        "(another count rebuilds buffers).",
        0,
        49,
        engine_key="t_index_list",
        increasing=True,
    ),
    Param(
        "strength",
        Kind.FLOAT,
        0.3,
        Cost.FRAME,
        "How far the output departs from the input (0..1), mapped onto t_index.",
        0.0,
        1.0,
        clamp=True,
        engine_key="strength",
    ),
    Param(
        "filter.enabled",
        Kind.BOOL,
        False,
        Cost.FRAME,
        "Stochastic similarity filter: skip the UNet when the input barely changes.",
        engine_key="similarity_filter",
    ),
    Param(
        "filter.threshold",
        Kind.FLOAT,
        0.98,
        Cost.FRAME,
        "Cosine similarity above which frames may be skipped.",
        0.0,
        1.0,
        clamp=True,
        engine_key="similarity_threshold",
    ),
    Param(
        "filter.max_skip",
        Kind.INT,
        10,
        Cost.FRAME,
        "At most this many skipped frames in a row.",
        0,
        1000,
        clamp=True,
        engine_key="max_skip_frame",
    ),
    Param("bypass", Kind.BOOL, False, Cost.RUNTIME, "Show the input unprocessed."),
    Param("pause", Kind.BOOL, False, Cost.RUNTIME, "Hold the last output."),
    Param(
        "preset",
        Kind.STR,
        "",
        Cost.RUNTIME,
        "Load a preset from presets/ by name (never a path: `..`, separators, absolute paths are refused).",
        name_only=True,
    ),
    Param(
        "resolution",
        Kind.INT_PAIR,
        [512, 512],
        Cost.REBUILD,
        "Width and height, multiples of 8 (rebuilds in the background).",
        64,
        2048,
        multiple_of=8,
    ),
    Param(
        "model",
        Kind.STR,
        "",
        Cost.REBUILD,
        "Switch to a model listed by the configuration or presets (rebuilds in the background). "
        "The runtime refuses any name not on that list: a path or hub id sent over OSC is never loaded.",
        nonempty=True,
    ),
    # -- temporal stability (issue 18, engine/temporal, docs/TEMPORAL.md) --
    Param(
        "feedback",
        Kind.FLOAT,
        0.0,
        Cost.FRAME,
        "Latent feedback: how much of the previous output enters each new frame (0 off, ~0.4 calm). "
        "With regional prompts on, the background's value.",
        0.0,
        1.0,
        clamp=True,
        engine_key="feedback",
    ),
    Param(
        "cache_attention",
        Kind.BOOL,
        False,
        Cost.FRAME,
        "Cached attention: self-attention also attends to earlier frames' keys/values (StreamV2V).",
        engine_key="cache_attention",
    ),
    Param(
        "cache_frames",
        Kind.INT,
        4,
        Cost.FRAME,
        "Earlier frames the attention cache holds (1..8; a change empties the cache).",
        1,
        8,
        clamp=True,
        engine_key="cache_frames",
    ),
    Param(
        "cache_interval",
        Kind.INT,
        1,
        Cost.FRAME,
        "Every how many frames the attention cache takes a new frame.",
        1,
        1000,
        clamp=True,
        engine_key="cache_interval",
    ),
)

from .controlnet_params import CONTROLNET_PARAMS  # noqa: E402  (ControlNet slots, issue 17)
from .region_params import REGION_PARAMS  # noqa: E402  (it builds on Param and Kind above)

PARAMS = PARAMS + REGION_PARAMS + CONTROLNET_PARAMS

PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
PARAMS_BY_ADDRESS: dict[str, Param] = {p.address: p for p in PARAMS}


def param(name: str) -> Param:
    try:
        return PARAMS_BY_NAME[name]
    except KeyError:
        raise ParamError(f"unknown parameter {name!r}") from None
