"""The issue's speed targets, each with the figure measured in this run written next to it.

They are defined for a GPU running `random:sd-turbo` at 512x512, 1-step img2img. Elsewhere the
figure is still shown, but the verdict says the target is not measurable on this setup.
"""

from __future__ import annotations

from .results import Report, Target

TARGET_MODEL = "random:sd-turbo"
TARGET_SIZE = (512, 512)


def _why_not_measurable(report: Report) -> str | None:
    reasons = []
    if report.environment.get("device_type") != "cuda":
        reasons.append("no GPU")
    if report.options.get("model") != TARGET_MODEL:
        reasons.append(f"model is not {TARGET_MODEL}")
    if tuple(report.options.get("main_size", ())) != TARGET_SIZE:
        reasons.append("size is not 512x512")
    return ", ".join(reasons) or None


def _comparison(report: Report, section: str, label: str) -> float | None:
    found = report.section(section)
    comparison = found.comparison(label) if found else None
    return comparison.value if comparison else None


def _best_img2img_fps(report: Report) -> float | None:
    """The fastest backend's 1-step img2img fps at the run's main size (the target's: 512x512)."""
    found = report.section("throughput")
    main = tuple(report.options.get("main_size", TARGET_SIZE))
    size = f"{main[0]}x{main[1]}"
    rows = found.rows if found else []
    values = [
        r.metrics["fps"]
        for r in rows
        if r.params.get("mode") == "img2img" and r.params.get("size") == size and r.metrics.get("fps")
    ]
    return max(values) if values else None


def evaluate_targets(report: Report) -> list[Target]:
    blocked = _why_not_measurable(report)
    fps = _best_img2img_fps(report)
    pipe = _comparison(report, "pipeline", "pipeline / engine fps")
    e2e = _comparison(report, "pipeline", "e2e p50 latency / engine frame time")
    batch = _comparison(report, "batch", "stream batch / sequential fps")
    rcfg = _comparison(report, "cfg", "self / none fps")
    specs = [
        ("engine fps", "at least 400 fps, 512x512 1-step img2img (H100)", fps, lambda v: v >= 400.0,
         lambda v: f"{v:.0f} fps"),
        ("pipeline fps", "pipeline fps within 5% of engine fps", pipe, lambda v: v >= 0.95,
         lambda v: f"{v:.1%} of engine"),
        ("e2e latency", "capture-to-sink p50 under 2 frame times", e2e, lambda v: v < 2.0,
         lambda v: f"{v:.2f} frame times"),
        ("stream batch", "stream batch faster than sequential", batch, lambda v: v > 1.0,
         lambda v: f"{v:.2f}x sequential"),
        ("self-RCFG", "self-RCFG within 10% of cfg none", rcfg, lambda v: v >= 0.90,
         lambda v: f"{v:.1%} of none"),
    ]  # fmt: skip
    targets = []
    for name, goal, value, met, describe in specs:
        if value is None:
            targets.append(Target(name, goal, "not measured in this run", "not measured"))
            continue
        status = f"not measurable here ({blocked})" if blocked else "met" if met(value) else "not met"
        targets.append(Target(name, goal, describe(value), status))
    return targets
