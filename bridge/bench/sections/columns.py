"""Table columns the sections share."""

from __future__ import annotations

from ..results import Column, Row

FPS = Column("fps", "fps", "{:.2f}")
P50 = Column("p50_ms", "p50 ms")
P95 = Column("p95_ms", "p95 ms")
P99 = Column("p99_ms", "p99 ms")
MEAN = Column("mean_ms", "mean ms")
SKIPPED = Column("skipped_fraction", "skipped", "{:.0%}")
PEAK = Column("peak_mem_mb", "peak MiB", "{:.0f}")

LATENCY = [FPS, P50, P95, P99]
UNET_ROWS = Column("unet_batch", "UNet rows", "{:d}")


def with_unet_rows(row: Row) -> Row:
    """Show the UNet batch the engine reported (what a configuration costs per call) as a column."""
    if row.error is None and isinstance(row.params.get("unet_batch"), int):
        row.metrics["unet_batch"] = row.params["unet_batch"]
    return row
