"""Live control: the parameter store and the ways to write to it (OSC, presets, CLI)."""

from .params import (
    PARAMS,
    PARAMS_BY_ADDRESS,
    PARAMS_BY_NAME,
    Cost,
    Kind,
    Param,
    ParamError,
    is_safe_name,
    param,
    safe_name,
)
from .store import ParamStore

__all__ = [
    "PARAMS",
    "PARAMS_BY_ADDRESS",
    "PARAMS_BY_NAME",
    "Cost",
    "Kind",
    "Param",
    "ParamError",
    "ParamStore",
    "is_safe_name",
    "param",
    "safe_name",
]
