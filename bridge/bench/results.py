"""The result model: rows of metrics grouped in sections, plus comparisons, targets and the environment.

Plain data with a `to_dict()` that is the `--json` output; the renderers read only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Metric = float | int | None


@dataclass(frozen=True)
class Column:
    """A metric shown in a section's table: key in `Row.metrics`, header, and number format."""

    key: str
    header: str
    fmt: str = "ms"
    """A format string, or `ms`: two decimals under 10, one above (sub-millisecond stages stay readable)."""

    def format(self, value: Metric) -> str:
        if value is None:
            return "-"
        if self.fmt == "ms":
            return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        return self.fmt.format(value)


@dataclass
class Row:
    """One measured configuration. `params` say what was run, `metrics` what came out."""

    label: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    error: str | None = None
    """Why this row could not be measured (a missing backend, say); the run goes on without it."""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "params": self.params, "metrics": self.metrics, "error": self.error}


@dataclass
class Comparison:
    """A ratio between two rows of one run, e.g. stream batch fps / sequential fps."""

    label: str
    value: float | None
    unit: str = "x"
    explanation: str = ""
    samples: list[float] | None = None
    """The per-round values `value` sums up (in the JSON, so that runs can be pooled)."""

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "value": self.value, "unit": self.unit, "explanation": self.explanation}
        if self.samples is not None:
            out["samples"] = self.samples
        return out


@dataclass
class Section:
    name: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time the section took, builds included."""

    def row(self, label: str) -> Row | None:
        return next((r for r in self.rows if r.label == label), None)

    def comparison(self, label: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.label == label), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [r.to_dict() for r in self.rows],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "notes": self.notes,
            "seconds": self.seconds,
        }


@dataclass
class Target:
    """A speed target from the issue, with the figure measured in this run next to it."""

    name: str
    goal: str
    measured: str
    status: str
    """`met`, `not met`, or `not measurable here (...)`."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "goal": self.goal, "measured": self.measured, "status": self.status}


@dataclass
class Report:
    environment: dict[str, Any]
    options: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "options": self.options,
            "sections": {s.name: s.to_dict() for s in self.sections},
            "targets": [t.to_dict() for t in self.targets],
        }
