"""sd-bridge: the daemon around the StreamDiffusion engine (sources, sinks, runtime, control, CLI)."""

__version__ = "0.1.0"
