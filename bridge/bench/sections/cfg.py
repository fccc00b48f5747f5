"""Guidance variants: none, self (RCFG), initialize (RCFG), full CFG."""

from __future__ import annotations

from ..context import BenchContext, RowSpec
from ..results import Comparison, Section
from ..stats import ratio
from .columns import LATENCY, PEAK, UNET_ROWS, with_unet_rows

CFG_TYPES = ("none", "self", "initialize", "full")


def run(ctx: BenchContext) -> Section:
    section = Section("cfg", "Classifier-free guidance variants", [*LATENCY, UNET_ROWS, PEAK])
    specs = [RowSpec(f"cfg {c}", ctx.config(cfg_type=c, guidance_scale=1.2)) for c in CFG_TYPES]
    fps: dict[str, float | None] = {}
    for cfg_type, (row, run_) in zip(CFG_TYPES, ctx.measure_group(specs), strict=True):
        section.rows.append(with_unet_rows(row))
        fps[cfg_type] = run_.fps if run_ else None
    section.comparisons += [
        Comparison("self / none fps", ratio(fps["self"], fps["none"]), explanation="target: at least 0.90"),
        Comparison(
            "self / full fps",
            ratio(fps["self"], fps["full"]),
            explanation="the paper reports up to 2.05x for RCFG over full CFG",
        ),
        Comparison("initialize / full fps", ratio(fps["initialize"], fps["full"])),
    ]
    section.notes.append(
        "1-step img2img, guidance_scale 1.2. With one step, initialize and full both add a negative "
        "(unconditional) pass to the single step, so they cost about the same; they differ with more steps."
    )
    return section
