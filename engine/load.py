"""`load_engine`: from an `EngineConfig` to a ready `StreamEngine`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .config import EngineConfig
from .errors import EngineError
from .models import load_models
from .stream import StreamEngine

log = logging.getLogger(__name__)


def apply_tome(unet, ratio: float, max_downsample: int = 1) -> None:
    """Token merging (tomesd) on the UNet's attention blocks; ratio in (0, 1)."""
    try:
        import tomesd
    except ImportError:
        raise EngineError(
            "token merging needs tomesd: pip install 'sd-bridge[tome]' (or set tome_ratio 0)"
        ) from None
    tomesd.apply_patch(unet, ratio=ratio, max_downsample=max_downsample)


def load_engine(config: EngineConfig, progress: Callable[[str], None] | None = None) -> StreamEngine:
    """Load the models named by `config` and build a `StreamEngine` on them.

    Raises `ModelNotAvailable` (model missing offline), `EngineError` (a spec or option that cannot
    work, with what to do) or `ValueError` (a bad live value in the config).
    """
    ratio = config.tome_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
        raise ValueError(f"tome_ratio must be a number in [0, 1), got {ratio!r}")
    models = load_models(config, progress)
    if ratio > 0:
        if progress:
            progress(f"token merging at ratio {ratio:g}")
        apply_tome(models.unet, float(ratio), models.tome_max_downsample)
    if progress:
        progress("preparing the stream")
    engine = StreamEngine(models, config)
    if config.controlnets:  # ControlNet (issue 17)
        from .controlnet import build_stack

        engine.set_controlnets(build_stack(models, config, progress))
    from engine import accel  # after the models: TensorRT and CUDA stay unimported until asked for

    accel.apply(engine, config, _fraction_progress(progress) if progress else None)
    why = engine.settle_temporal_backend()  # issue 18: cached attention needs the torch UNet
    if why:
        log.warning("cache_attention is off: %s", why)
    return engine


def _fraction_progress(progress: Callable[[str], None]) -> Callable[[str, float | None], None]:
    """Adapt a one-line progress callback to accel's (message, fraction) one."""
    return lambda message, fraction: progress(message if fraction is None else f"{message} {fraction:.0%}")
