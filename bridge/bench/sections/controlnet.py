"""ControlNet: fps with 0, 1 and 2 nets in the stream, and what each preprocessor costs per frame."""

from __future__ import annotations

from typing import Any

import torch

from ..clock import DeviceClock
from ..context import BenchContext, RowSpec
from ..results import Column, Comparison, Row, Section
from ..stats import latency_summary, ratio
from .columns import LATENCY, PEAK, UNET_ROWS, with_unet_rows

NET_COUNTS = (0, 1, 2)
PREPROCESSORS = ("passthrough", "canny", "softedge", "depth")
MEAN = Column("mean_ms", "mean ms")


def bench_depth_model(model: str) -> str:
    """The depth model the bench times: the real one next to a real model (a hub id, folder or file),
    random weights in V2 Small's architecture (its real cost) next to a full-size random model, and
    the tiny random one otherwise (random:tiny, test engines)."""
    from pathlib import Path

    from engine.controlnet.depth import DEFAULT_DEPTH, RANDOM_DEPTH, RANDOM_DEPTH_SMALL

    if model.startswith("random:"):
        return RANDOM_DEPTH if model == "random:tiny" else RANDOM_DEPTH_SMALL
    if "/" in model or model.endswith(".safetensors") or Path(model).is_dir():
        return DEFAULT_DEPTH
    return RANDOM_DEPTH


def run(ctx: BenchContext) -> Section:
    from engine.controlnet import ControlNetSpec

    section = Section(
        "controlnet", "ControlNet: 0 to 2 nets, and each preprocessor's cost", [*LATENCY, UNET_ROWS, PEAK]
    )
    net = ControlNetSpec(preprocessor="passthrough")
    specs = [RowSpec(f"{n} nets", ctx.config(controlnets=[net] * n)) for n in NET_COUNTS]
    fps: dict[int, float | None] = {}
    for n, (row, run_) in zip(NET_COUNTS, ctx.measure_group(specs), strict=True):
        row.params["controlnets"] = n
        section.rows.append(with_unet_rows(row))
        fps[n] = run_.fps if run_ else None
    section.comparisons += [
        Comparison(
            f"{n} nets / none fps", ratio(fps[n], fps[0]), explanation="each net is about one UNet encoder"
        )
        for n in NET_COUNTS[1:]
    ]
    section.rows += _preprocessor_rows(ctx)
    section.columns = [*section.columns, MEAN]
    section.notes.append(
        "Net rows: 1-step img2img with passthrough control images (the nets' own cost; random:controlnet on "
        "random models). Preprocessor rows: one call on a frame of the main size, on the engine's device; "
        f"depth runs {bench_depth_model(ctx.options.model)}. A disabled net or one at scale 0 costs nothing."
    )
    return section


def _preprocessor_rows(ctx: BenchContext) -> list[Row]:
    from engine.controlnet import preprocess
    from engine.controlnet.depth import DepthEstimator
    from engine.models import resolve_device, resolve_dtype

    width, height = ctx.options.main_size
    try:
        device = resolve_device(ctx.options.device)
        dtype = resolve_dtype("auto", device)
    except Exception as exc:  # noqa: BLE001 - reported in the rows
        return [Row(f"preprocess {p}", {"preprocessor": p}, error=str(exc)) for p in PREPROCESSORS]
    frames = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(5)).to(device, dtype)
    rows = []
    for name in PREPROCESSORS:
        params: dict[str, Any] = {"preprocessor": name, "size": f"{width}x{height}", "device": str(device)}
        try:
            if name == "depth":
                params["depth_model"] = bench_depth_model(ctx.options.model)
                fn = DepthEstimator(params["depth_model"], device, dtype)
            else:
                fn = {
                    "passthrough": preprocess.passthrough,
                    "canny": preprocess.canny,
                    "softedge": preprocess.softedge,
                }[name]
            samples = _time(fn, frames, ctx.options.warmup, ctx.options.frames, DeviceClock(device))
        except Exception as exc:  # noqa: BLE001 - a missing depth model must not end the run
            rows.append(
                Row(f"preprocess {name}", params, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
            )
            continue
        metrics: dict[str, Any] = dict(latency_summary(samples))
        rows.append(Row(f"preprocess {name}", params, metrics))
        ctx.log(f"preprocess {name}: {metrics['mean_ms']:.2f} ms")
    return rows


@torch.no_grad()
def _time(fn, frames: torch.Tensor, warmup: int, count: int, clock: DeviceClock) -> list[float]:
    for _ in range(max(1, warmup)):
        fn(frames)
    samples = []
    for _ in range(max(1, count)):
        t0 = clock.now()
        fn(frames)
        samples.append((clock.now() - t0) * 1000.0)
    return samples
