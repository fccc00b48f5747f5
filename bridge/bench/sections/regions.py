"""Regional prompts: how the frame rate falls as brushes are added (they share one UNet call)."""

from __future__ import annotations

from ..context import BenchContext, RowSpec
from ..results import Comparison, Section
from ..stats import ratio
from .columns import LATENCY, PEAK, UNET_ROWS, with_unet_rows

BRUSH_COUNTS = (0, 1, 2, 4, 8)


def run(ctx: BenchContext) -> Section:
    section = Section("regions", "Regional prompts: 0 to 8 brushes", [*LATENCY, UNET_ROWS, PEAK])
    specs = [RowSpec(f"{n} brushes", ctx.config(), brushes=n) for n in BRUSH_COUNTS]
    fps: dict[int, float | None] = {}
    for n, (row, run_) in zip(BRUSH_COUNTS, ctx.measure_group(specs), strict=True):
        section.rows.append(with_unet_rows(row))
        fps[n] = run_.fps if run_ else None
    section.comparisons += [
        Comparison(f"{n} brushes / none fps", ratio(fps[n], fps[0]), explanation="1/(1+n) if UNet-bound")
        for n in BRUSH_COUNTS[1:]
    ]
    section.notes.append(
        "Brushes are vertical stripes with a prompt each; the background and every brush share one "
        "batched UNet call, so its rows grow as 1 + brushes while the VAE passes stay the same."
    )
    return section
