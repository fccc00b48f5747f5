"""The stochastic similarity filter: how many UNet calls it skips on a static vs a moving input."""

from __future__ import annotations

from ..context import BenchContext, RowSpec
from ..results import Comparison, Section
from ..stats import ratio
from .columns import LATENCY, SKIPPED

THRESHOLD = 0.98
MAX_SKIP = 10


def run(ctx: BenchContext) -> Section:
    section = Section("filter", "Similarity filter: static vs moving input", [SKIPPED, *LATENCY])
    config = ctx.config(similarity_filter=True, similarity_threshold=THRESHOLD, max_skip_frame=MAX_SKIP)
    kinds = ("static", "moving")
    specs = [RowSpec(f"{inputs} input", config, inputs) for inputs in kinds]
    fps = {}
    for inputs, (row, run_) in zip(kinds, ctx.measure_group(specs), strict=True):
        section.rows.append(row)
        fps[inputs] = run_.fps if run_ else None
    section.comparisons.append(
        Comparison(
            "static / moving fps", ratio(fps["static"], fps["moving"]), explanation="speed-up from skips"
        )
    )
    section.notes.append(
        f"threshold {THRESHOLD}, max_skip_frame {MAX_SKIP}; static = one still frame repeated, "
        "moving = fresh noise every frame (each row has its own engine). A skipped call returns the "
        "previous output without the UNet."
    )
    return section
