"""Table columns the sections share."""

from __future__ import annotations

from ..results import Column

FPS = Column("fps", "fps", "{:.2f}")
P50 = Column("p50_ms", "p50 ms")
P95 = Column("p95_ms", "p95 ms")
P99 = Column("p99_ms", "p99 ms")
MEAN = Column("mean_ms", "mean ms")
SKIPPED = Column("skipped_fraction", "skipped", "{:.0%}")
PEAK = Column("peak_mem_mb", "peak MiB", "{:.0f}")

LATENCY = [FPS, P50, P95, P99]
