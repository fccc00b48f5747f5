"""OSC addresses of the ControlNet slots, and how their values become the engine's live ControlNet values.

Four slots N = 0..3 (the nets themselves come from ``--controlnet`` or a preset's ``[[controlnets]]``;
a slot without a net ignores its values), each with ``/sd/controlnet/N/...``:

============  =========  =============================================================
address       args       meaning
============  =========  =============================================================
scale         f 0..2     conditioning scale (0: the net is not called at all)
enabled       i          1 steers, 0 leaves the net out (not called)
preprocessor  s          canny, depth, softedge or passthrough (the image as it comes)
start / end   f 0..1     the part of the denoising schedule the net steers
canny_low     f 0..1     Canny's low threshold (gradient magnitude of a 0..1 image)
canny_high    f 0..1     Canny's high threshold
source        s          auto, input (the video) or control (the --control-source)
============  =========  =============================================================

`CONTROLNET_PARAMS` is appended to the parameter table; `ControlNetFeed` turns a snapshot of the
store into the ``controlnets=[...]`` list that `FrameEngine.update` takes. None of these rebuilds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.controlnet.spec import (
    LIVE_FIELDS,
    MAX_CONTROLNETS,
    PREPROCESSORS,
    SOURCES,
    ControlNetSpec,
    spec_from_dict,
)

from .params import Cost, Kind, Param, ParamError

PREFIX = "controlnet."
CONTROL_SOURCE = "control"
"""The runtime's aux-source name for `--control-source` (`Runtime(aux_sources={CONTROL_SOURCE: src})`)."""
_DEFAULTS = ControlNetSpec()


@dataclass(frozen=True)
class ChoiceParam(Param):
    """A STR that must be one of `choices`."""

    choices: tuple[str, ...] = ()

    def expects(self) -> str:
        return "one of " + ", ".join(self.choices)

    def coerce(self, value: Any) -> str:
        text = self._text(value).strip()
        if text not in self.choices:
            raise self._error(value)
        return text


def _ranged(name: str, default: float, hi: float, doc: str) -> Param:
    return Param(name, Kind.FLOAT, default, Cost.FRAME, doc, 0.0, hi, clamp=True)


def _slot_params(n: int) -> tuple[Param, ...]:
    base = f"{PREFIX}{n}."
    return (
        _ranged(base + "scale", _DEFAULTS.scale, 2.0, f"ControlNet {n}: conditioning scale (0: not called)."),
        Param(
            base + "enabled", Kind.BOOL, True, Cost.FRAME, f"ControlNet {n} steers (1) or is left out (0)."
        ),
        ChoiceParam(
            base + "preprocessor",
            Kind.STR,
            _DEFAULTS.preprocessor,
            Cost.FRAME,
            f"ControlNet {n}: control image from {', '.join(PREPROCESSORS)} (no rebuild).",
            choices=PREPROCESSORS,
        ),
        _ranged(base + "start", 0.0, 1.0, f"ControlNet {n}: fraction of the schedule before it steers."),
        _ranged(base + "end", 1.0, 1.0, f"ControlNet {n}: fraction of the schedule after which it stops."),
        _ranged(base + "canny_low", _DEFAULTS.canny_low, 1.0, f"ControlNet {n}: Canny low threshold."),
        _ranged(base + "canny_high", _DEFAULTS.canny_high, 1.0, f"ControlNet {n}: Canny high threshold."),
        ChoiceParam(
            base + "source",
            Kind.STR,
            _DEFAULTS.source,
            Cost.FRAME,
            f"ControlNet {n}: image from the video (input), the control source (control) or auto.",
            choices=SOURCES,
        ),
    )


CONTROLNET_PARAMS: tuple[Param, ...] = tuple(p for n in range(MAX_CONTROLNETS) for p in _slot_params(n))


def is_controlnet_param(name: str) -> bool:
    return name.startswith(PREFIX)


def slot_values(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every slot's live values from a snapshot of the store, for `engine.update(controlnets=...)`."""
    return [
        {k: values.get(f"{PREFIX}{n}.{k}", getattr(_DEFAULTS, k)) for k in LIVE_FIELDS}
        for n in range(MAX_CONTROLNETS)
    ]


class ControlNetFeed:
    """``slots = feed.poll(changes, store.snapshot())``: the list for ``engine.update(controlnets=...)``
    when a ControlNet parameter changed, else None."""

    def poll(self, changes: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        if not any(is_controlnet_param(n) for n in changes):
            return None
        return slot_values(values)


def controlnet_store_values(specs: list[Any]) -> dict[str, Any]:
    """Store values of all four slots for these specs (slot i <- spec i, the rest get defaults)."""
    values: dict[str, Any] = {p.name: p.default for p in CONTROLNET_PARAMS}
    for i, spec in enumerate(specs):
        live = spec.live() if isinstance(spec, ControlNetSpec) else spec_from_dict(dict(spec)).live()
        values.update({f"{PREFIX}{i}.{k}": v for k, v in live.items()})
    return values


def controlnets_from_preset(entries: Any, where: str = "controlnets") -> list[ControlNetSpec]:
    """A preset's ``[[controlnets]]`` tables (or ``--controlnet`` strings) as specs; ParamError if bad."""
    from engine.controlnet.spec import parse_cli_spec

    if not isinstance(entries, list):
        raise ParamError(f"{where} expects a list of tables ([[controlnets]] in TOML)")
    if len(entries) > MAX_CONTROLNETS:
        raise ParamError(f"{where} holds at most {MAX_CONTROLNETS} nets, got {len(entries)}")
    specs = []
    for i, entry in enumerate(entries):
        try:
            if isinstance(entry, str):
                specs.append(parse_cli_spec(entry))
            elif isinstance(entry, Mapping):
                specs.append(spec_from_dict(dict(entry), f"{where}[{i}]"))
            else:
                raise ValueError(f"{where}[{i}] must be a table, got {type(entry).__name__}")
        except ValueError as exc:
            raise ParamError(str(exc)) from None
    return specs
