"""Stream batch (all denoising steps of consecutive frames in one UNet call) vs one step at a time."""

from __future__ import annotations

from ..context import TWO_STEPS, BenchContext, RowSpec
from ..results import Comparison, Section
from ..stats import ratio
from .columns import LATENCY, PEAK, UNET_ROWS, with_unet_rows


def run(ctx: BenchContext) -> Section:
    section = Section("batch", "Stream batch vs sequential denoising", [*LATENCY, UNET_ROWS, PEAK])
    specs = [
        RowSpec(label, ctx.config(t_index_list=list(TWO_STEPS), use_denoising_batch=batched))
        for label, batched in (("stream batch", True), ("sequential", False))
    ]
    fps = {}
    for spec, (row, run_) in zip(specs, ctx.measure_group(specs), strict=True):
        section.rows.append(with_unet_rows(row))
        fps[spec.label] = run_.fps if run_ else None
    section.comparisons.append(
        Comparison(
            "stream batch / sequential fps",
            ratio(fps["stream batch"], fps["sequential"]),
            explanation="the StreamDiffusion paper reports about 1.5x on a GPU",
        )
    )
    section.notes.append(
        f"t_index_list {TWO_STEPS} for both; stream batch output lags its input by "
        f"{len(TWO_STEPS) - 1} call(s). On a CPU a batch of 2 costs about twice a batch of 1, "
        "so the gain the paper measures on GPUs (idle parallelism) does not appear here."
    )
    return section
