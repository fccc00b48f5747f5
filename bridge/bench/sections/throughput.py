"""Engine throughput and latency: img2img and txt2img, every size, every backend measured."""

from __future__ import annotations

from ..context import BenchContext, RowSpec
from ..results import Section
from .columns import LATENCY, PEAK

TXT2IMG_STEPS = [0]
"""1-step txt2img starts from pure noise: the first (largest) timestep."""


def run(ctx: BenchContext) -> Section:
    section = Section("throughput", "Engine throughput and latency", [*LATENCY, PEAK])
    specs = []
    for accel in ctx.accels:
        for mode in ("img2img", "txt2img"):
            for width, height in ctx.options.sizes:
                steps = [35] if mode == "img2img" else TXT2IMG_STEPS
                config = ctx.config(accel=accel, mode=mode, width=width, height=height, t_index_list=steps)
                specs.append(RowSpec(f"{accel} {mode} {width}x{height}", config))
    section.rows = [row for row, _ in ctx.measure_group(specs)]
    section.notes.append(
        "1 denoising step, cfg_type self, frame_buffer_size 1, the daemon's test card as input; "
        "latency is per engine call."
    )
    return section
