"""`sd-bridge bench --only controlnet`: rows for 0, 1, 2 nets and each preprocessor, on random:tiny."""

from __future__ import annotations

import pytest

from bridge.bench import BenchOptions, run_bench
from bridge.bench.sections.controlnet import bench_depth_model


def test_the_controlnet_section_times_nets_and_preprocessors():
    options = BenchOptions(
        model="random:tiny", frames=3, warmup=1, sizes=[(64, 64)], accels=["torch"], sections=["controlnet"]
    )
    report = run_bench(options, argv=["sd-bridge", "bench", "--only", "controlnet"])
    section = report.section("controlnet")
    rows = {r.label: r for r in section.rows}
    assert list(rows) == [
        "0 nets", "1 nets", "2 nets",
        "preprocess passthrough", "preprocess canny", "preprocess softedge", "preprocess depth",
    ]  # fmt: skip
    assert all(r.error is None for r in section.rows), [(r.label, r.error) for r in section.rows]
    assert [rows[f"{n} nets"].params["controlnets"] for n in (0, 1, 2)] == [0, 1, 2]
    for n in (1, 2):
        ratio = section.comparison(f"{n} nets / none fps").value
        assert ratio == pytest.approx(rows[f"{n} nets"].metrics["fps"] / rows["0 nets"].metrics["fps"])
    for name in ("canny", "softedge", "depth"):
        m = rows[f"preprocess {name}"].metrics
        assert 0 < m["p50_ms"] <= m["p95_ms"] <= m["max_ms"]
    assert rows["preprocess depth"].params["depth_model"] == "random:depth"


def test_the_bench_never_downloads_a_depth_model_for_random_or_test_models():
    assert bench_depth_model("random:tiny") == "random:depth"
    assert bench_depth_model("random:sd-turbo") == "random:depth-small"
    assert bench_depth_model("scaffold") == "random:depth"
    assert bench_depth_model("stabilityai/sd-turbo") == "depth-anything/Depth-Anything-V2-Small-hf"
