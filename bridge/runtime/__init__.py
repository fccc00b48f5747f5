"""The frame runtime: threads, queues, stats, faults and live control around an engine."""

from .daemon import Runtime, RuntimeOptions
from .engines import ENGINE_KINDS, ModelUnavailable, build_engine, factory_for
from .passthrough import PassthroughEngine

__all__ = [
    "ENGINE_KINDS",
    "ModelUnavailable",
    "PassthroughEngine",
    "Runtime",
    "RuntimeOptions",
    "build_engine",
    "factory_for",
]
