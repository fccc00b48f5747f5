"""Temporal stability (issue 18): how strongly each mechanism ties consecutive frames together.

The flicker figure is the warp error: the optical flow between consecutive *inputs* (OpenCV's
DIS) warps the previous output onto the current one, and the mean absolute difference of the
two (0..255 per channel) is what a viewer sees as flicker on top of the motion. Lower is calmer.
With random weights the pictures are noise, but the figure still shows how strongly each
mechanism carries one frame into the next; a real model's absolute numbers differ.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from ..context import BenchContext, RowSpec
from ..results import Column, Comparison, Section
from ..stats import ratio
from ..worker import run_in_worker
from .columns import LATENCY, PEAK

FEEDBACK = 0.4
"""The anchors' usual ceiling for latent feedback (StreamDiffusionTD, the Daydream fork)."""
CACHE = {"cache_attention": True, "cache_frames": 4, "cache_interval": 1}
"""StreamV2V's published setting: four cached frames."""
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("off", {}),
    ("feedback", {"feedback": FEEDBACK}),
    ("cache", dict(CACHE)),
    ("both", {"feedback": FEEDBACK, **CACHE}),
)
DRIFT = (2, 1)
"""Pixels the test texture moves per frame (x, y)."""
SETTLE = 6
"""Frames run before the warp error counts (the cache fills, the feedback loop settles)."""
MEASURED = 24
"""Frame pairs the warp error averages over."""

SETTING = {"t_index_list": [49], "vae": "full"}
"""The section's engine setting. The last timestep (the lowest strength) keeps the output close
to the moving input, so that motion is there to be followed; the full VAE because a random TAESD's
output hardly depends on its input (with random:tiny it is nearly one still picture whatever
comes in, which leaves no flicker to measure)."""

WARP = Column("warp_error", "warp err", "{:.2f}")
CACHE_MB = Column("cache_mb", "cache MiB", "{:.2f}")


def drifting_frames(count: int, width: int, height: int, step: tuple[int, int] = DRIFT, seed: int = 0):
    """`count` RGB frames (H, W, 3) float32 in [0, 1]: a blurred-noise texture sliding by `step`.

    Smooth texture with detail at every scale gives optical flow something to lock on to at any
    size, and a pure translation makes the flow's answer known.
    """
    dx, dy = step
    rng = np.random.default_rng(seed)
    big_h, big_w = height + dy * count + 16, width + dx * count + 16
    noise = rng.random((big_h, big_w, 3), dtype=np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(1.5, width / 48))
    texture = (texture - texture.min()) / max(float(texture.max() - texture.min()), 1e-6)
    return [
        np.ascontiguousarray(texture[i * dy : i * dy + height, i * dx : i * dx + width]) for i in range(count)
    ]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def warp_error(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Mean |output_t - warp(output_{t-1})| (0..255), the warp from the flow between the inputs.

    DIS flow from input t to input t-1 says where each pixel of frame t was one frame earlier;
    sampling the previous output there lines it up with the current one, so what remains is
    change the motion does not explain: flicker.
    """
    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise ValueError("warp_error needs matching input and output sequences of two frames or more")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = inputs[0].shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    errors = []
    for t in range(1, len(inputs)):
        flow = dis.calc(_gray(inputs[t]), _gray(inputs[t - 1]), None)
        warped = cv2.remap(
            outputs[t - 1],
            grid_x + flow[..., 0],
            grid_y + flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        errors.append(float(np.abs(outputs[t] - warped).mean()) * 255.0)
    return float(np.mean(errors))


def engine_warp_error(engine: Any, frames: list[np.ndarray], settle: int = SETTLE) -> float:
    """Run `engine` over `frames` from an empty stream and return the warp error after `settle`."""
    reset = getattr(engine, "reset", None)
    if callable(reset):  # from an empty stream: nothing of the timed calls carries over
        reset()
    device, dtype = torch.device(engine.device), engine.dtype
    lag = int(getattr(engine, "lag", 0) or 0)
    outputs: list[np.ndarray] = []
    with torch.no_grad():
        for image in frames:
            tensor = torch.from_numpy(image).permute(2, 0, 1)[None].to(device=device, dtype=dtype)
            out = engine(tensor)
            outputs.append(out[0].permute(1, 2, 0).float().cpu().numpy())
    # call c outputs the frame that went in at c - lag
    pairs_in, pairs_out = frames[: len(frames) - lag], outputs[lag:]
    return warp_error(pairs_in[settle:], pairs_out[settle:])


def run(ctx: BenchContext) -> Section:
    section = Section(
        "temporal", "Temporal stability: warp error on a moving input", [WARP, *LATENCY, CACHE_MB, PEAK]
    )
    specs = [RowSpec(label, ctx.config(**SETTING, **changes)) for label, changes in VARIANTS]
    width, height = ctx.options.main_size
    frames = drifting_frames(SETTLE + MEASURED + 1, width, height)
    errors: dict[str, float | None] = {}
    for (label, _changes), (row, run_) in zip(VARIANTS, ctx.measure_group(specs), strict=True):
        section.rows.append(row)
        errors[label] = None
        if run_ is None:
            continue
        engine = ctx.engine(row_config(specs, label), key=label)
        try:
            # on a worker thread, as the timed calls: the main thread runs far slower under load here
            errors[label] = run_in_worker(lambda e=engine: engine_warp_error(e, frames))
        except Exception as exc:  # noqa: BLE001 - a failing row must not end the run
            row.error = f"warp error: {type(exc).__name__}: {exc}".splitlines()[0]
            continue
        row.metrics["warp_error"] = errors[label]
        row.metrics["cache_mb"] = float(engine.stats().get("cache_bytes", 0)) / 2**20
    section.comparisons += [
        Comparison(
            f"{label} / off warp error", ratio(errors[label], errors["off"]), explanation="< 1: calmer"
        )
        for label, _ in VARIANTS[1:]
    ]
    section.notes.append(
        f"Input: a blurred-noise texture drifting {DRIFT[0]} px right and {DRIFT[1]} px down per frame; "
        f"warp error = mean |out_t - warp(out_t-1)| in 0..255 over {MEASURED} frame pairs after "
        f"{SETTLE} settling frames, the warp from OpenCV DIS flow between the inputs. feedback = "
        f"{FEEDBACK}; cache = {CACHE['cache_frames']} frames, interval {CACHE['cache_interval']}; "
        f"t_index_list {SETTING['t_index_list']}, vae {SETTING['vae']}. "
        "With random weights the pictures are noise: the figure shows how strongly each mechanism ties "
        "frames together, not how good they look; random self-attention is nearly uniform, so the cache "
        "row stays near off there (docs/TEMPORAL.md). fps rows are timed on the pattern input, interleaved."
    )
    return section


def row_config(specs: list[RowSpec], label: str) -> Any:
    return next(s.config for s in specs if s.label == label)
