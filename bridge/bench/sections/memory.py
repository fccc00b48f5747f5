"""Peak memory: CUDA max allocated when on a GPU, else the process's peak resident set."""

from __future__ import annotations

from ..context import BenchContext
from ..results import Row, Section
from .columns import PEAK


def run(ctx: BenchContext) -> Section:
    section = Section("memory", "Peak memory", [PEAK])
    if not ctx.cuda and ctx.baseline_rss_mb is not None:
        section.rows.append(
            Row(
                "process before any model",
                {"measure": "process_peak_rss"},
                {"peak_mem_mb": ctx.baseline_rss_mb},
            )
        )
    row, run_ = ctx.measure("main config", ctx.config())
    if run_ is not None:
        row.params["measure"] = run_.memory_kind
        row.metrics["peak_mem_mb"] = run_.peak_memory_mb
        if run_.memory_kind == "process_peak_rss":
            section.notes.append(
                "CPU: process peak RSS (resource.getrusage) over the whole run so far, which cannot be "
                "reset per configuration, so it is the peak of every section run before this one."
            )
        else:
            section.notes.append(
                "CUDA: torch.cuda.max_memory_allocated during this configuration's timed calls."
            )
    section.rows.append(row)
    return section
