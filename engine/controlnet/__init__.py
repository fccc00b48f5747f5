"""ControlNet in the stream: nets, on-device preprocessors, and the stack the engine calls.

    from engine import EngineConfig, load_engine
    from engine.controlnet import ControlNetSpec
    eng = load_engine(EngineConfig(model="random:tiny", width=64, height=64,
                                   controlnets=[ControlNetSpec(preprocessor="canny")]))
    eng.update(controlnets=[{"scale": 0.6}])       # live: scale, enabled, preprocessor, start, end, canny_*
    eng.update(control_image=depth_frame)          # an external control image (held until the next)

See `stack.py` for which control image each in-flight row sees, and docs/CONTROLNET.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .spec import (
    DEFAULT_NETS,
    LIVE_FIELDS,
    MAX_CONTROLNETS,
    PREPROCESSORS,
    RANDOM_NET,
    ControlNetSpec,
    check_live,
    parse_cli_spec,
    spec_from_dict,
)

if TYPE_CHECKING:
    from ..config import EngineConfig
    from ..models import Models
    from .stack import ControlNetStack

__all__ = [
    "DEFAULT_NETS",
    "LIVE_FIELDS",
    "MAX_CONTROLNETS",
    "PREPROCESSORS",
    "RANDOM_NET",
    "ControlNetSpec",
    "build_stack",
    "check_live",
    "parse_cli_spec",
    "spec_from_dict",
]


def build_stack(models: Models, config: EngineConfig, progress=None) -> ControlNetStack:
    """Load every net of `config.controlnets` (and the depth model if a slot uses it) for `models`."""
    from ..errors import EngineError
    from .depth import DepthEstimator, resolve_depth_model
    from .hub import resolve_slots
    from .nets import load_controlnet
    from .stack import ControlNetStack, ControlUnit

    try:
        slots = resolve_slots(config, models.spec, models.family)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    units = []
    for i, (spec, name) in enumerate(slots):
        if progress:
            progress(f"loading ControlNet {i}: {name}")
        units.append(ControlUnit(model=name, net=load_controlnet(name, models), live=spec.live()))
    depth_spec = resolve_depth_model(config.depth_model, models.spec)

    def depth_factory() -> DepthEstimator:
        if progress:
            progress(f"loading depth model {depth_spec}")
        return DepthEstimator(depth_spec, models.device, models.dtype)

    return ControlNetStack(units, config.height, config.width, models.device, models.dtype, depth_factory)
