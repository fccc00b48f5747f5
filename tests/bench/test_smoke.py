"""The CI smoke run: the real command on the real `random:tiny` engine and the real pipeline.

Benchmarks are not tests: nothing here asserts a speed. It asserts that every section ran and
that its numbers are sane (positive rates, ordered percentiles, a static input skipped more than
a moving one, ratios that are the ratios of their rows).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.bench import SECTIONS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    md = out.with_suffix(".md")
    cmd = [sys.executable, "-m", "bridge", "bench", "--model", "random:tiny", "--quick", "--json", str(out)]
    proc = subprocess.run(
        [*cmd, "--markdown", str(md)], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout, md.read_text()


def _rows(data, section):
    return {row["label"]: row for row in data["sections"][section]["rows"]}


def test_every_section_ran_without_errors(smoke):
    data, _, _ = smoke
    assert list(data["sections"]) == list(SECTIONS)
    errors = [
        (s, r["label"], r["error"]) for s, sec in data["sections"].items() for r in sec["rows"] if r["error"]
    ]
    assert errors == []


def test_timed_rows_have_sane_numbers(smoke):
    data, _, _ = smoke
    frames = data["options"]["frames"]
    for name in ("throughput", "batch", "cfg", "filter", "pipeline"):
        for label, row in _rows(data, name).items():
            m = row["metrics"]
            assert m["fps"] > 0, (name, label)
            assert m["frames"] == frames, (name, label)
            if label == "engine stream":  # synchronised once per round: no per-call latency
                assert "p50_ms" not in m
                continue
            assert 0 <= m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"] <= m["max_ms"], (name, label)
    throughput = _rows(data, "throughput")
    sizes = data["options"]["sizes"]
    assert {f"torch {mode} {size}" for mode in ("img2img", "txt2img") for size in sizes} == set(throughput)


def test_similarity_filter_skips_static_more_than_moving(smoke):
    data, _, _ = smoke
    rows = _rows(data, "filter")
    static, moving = rows["static input"]["metrics"], rows["moving input"]["metrics"]
    assert 0 <= moving["skipped_fraction"] < static["skipped_fraction"] <= 1


def test_comparisons_are_ratios_of_their_rows(smoke):
    data, _, _ = smoke
    comparisons = {c["label"]: c["value"] for c in data["sections"]["batch"]["comparisons"]}
    batch = _rows(data, "batch")
    expected = batch["stream batch"]["metrics"]["fps"] / batch["sequential"]["metrics"]["fps"]
    assert comparisons["stream batch / sequential fps"] == pytest.approx(expected)
    cfg = {c["label"]: c["value"] for c in data["sections"]["cfg"]["comparisons"]}
    assert set(cfg) == {"self / none fps", "self / full fps", "initialize / full fps"}
    assert all(v > 0 for v in cfg.values())
    pipe = {c["label"]: c["value"] for c in data["sections"]["pipeline"]["comparisons"]}
    rows = _rows(data, "pipeline")
    assert pipe["pipeline / engine fps"] == pytest.approx(
        rows["pipeline"]["metrics"]["fps"] / rows["engine alone"]["metrics"]["fps"]
    )
    assert pipe["pipeline / engine stream fps"] == pytest.approx(
        rows["pipeline"]["metrics"]["fps"] / rows["engine stream"]["metrics"]["fps"]
    )
    assert pipe["e2e p50 latency / engine frame time"] > 0


def test_stages_cover_the_whole_path(smoke):
    data, _, _ = smoke
    stages = {row["params"]["stage"]: row["metrics"] for row in data["sections"]["stages"]["rows"]}
    assert set(stages) == {
        "capture",
        "queue",
        "preprocess",
        "encode",
        "unet",
        "decode",
        "postprocess",
        "output",
    }
    assert (
        stages["unet"]["mean_ms"] > 0 and stages["encode"]["mean_ms"] > 0 and stages["decode"]["mean_ms"] > 0
    )
    assert sum(m["share"] for m in stages.values()) == pytest.approx(1.0)


def test_memory_and_environment_are_reported(smoke):
    data, stdout, markdown = smoke
    memory = _rows(data, "memory")
    assert memory["main config"]["params"]["measure"] == "process_peak_rss"
    assert (
        memory["main config"]["metrics"]["peak_mem_mb"]
        >= memory["process before any model"]["metrics"]["peak_mem_mb"]
        > 0
    )
    env = data["environment"]
    assert (
        env["device"].startswith("cpu")
        and env["torch"]
        and "bench --model random:tiny --quick" in env["command"]
    )
    assert "torch:" in stdout and "command:" in stdout and "Per-stage time" in stdout
    assert "| static input |" in markdown


def test_targets_are_recorded_as_not_measurable_on_cpu(smoke):
    data, _, _ = smoke
    targets = {t["name"]: t for t in data["targets"]}
    assert set(targets) == {"engine fps", "pipeline fps", "e2e latency", "stream batch", "self-RCFG"}
    for target in targets.values():
        assert target["status"].startswith("not measurable here (no GPU")
        assert target["measured"] and target["measured"] != "not measured in this run"


def test_brushes_widen_the_one_unet_call(smoke):
    data, _, _ = smoke
    rows = _rows(data, "regions")
    plain = rows["0 brushes"]["metrics"]["unet_batch"]
    for n in (1, 2, 4, 8):
        assert rows[f"{n} brushes"]["metrics"]["unet_batch"] == (1 + n) * plain
        assert rows[f"{n} brushes"]["metrics"]["fps"] > 0
    comparisons = {c["label"]: c["value"] for c in data["sections"]["regions"]["comparisons"]}
    assert comparisons["8 brushes / none fps"] == pytest.approx(
        rows["8 brushes"]["metrics"]["fps"] / rows["0 brushes"]["metrics"]["fps"]
    )


def test_gpu_script_summarises_a_real_run_and_rewrites_only_its_table(smoke, tmp_path):
    """`python -m bridge.bench.gpu`'s CPU-runnable parts, on the smoke run's real JSON."""
    from bridge.bench import gpu

    data, _, _ = smoke
    summary = gpu.summarize(data, "torch")
    main = "x".join(str(v) for v in data["options"]["main_size"])
    assert summary["fps"] == _rows(data, "throughput")[f"torch img2img {main}"]["metrics"]["fps"]
    assert summary["stream_fps"] == _rows(data, "pipeline")["engine stream"]["metrics"]["fps"]
    results = {"device": "GPU-X", "tests": {"summary": "9 passed"}, "bench": {"torch": summary}}
    results["bench"]["tensorrt"] = {"error": "tensorrt is not installed"}
    table = gpu.render_table(results)
    assert (
        f"| torch | {summary['fps']:.0f} |" in table and "| tensorrt | tensorrt is not installed |" in table
    )
    doc = tmp_path / "BENCH.md"
    doc.write_text(f"intro\n{gpu.START}\nold\n{gpu.END}\noutro\n")
    gpu.write_table(doc, table)
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old" not in text and "GPU-X" in text
    doc.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        gpu.write_table(doc, table)


def test_gpu_script_without_cuda_changes_nothing():
    before = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.bench.gpu"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "no CUDA device here" in proc.stdout
    assert (ROOT / "docs" / "BENCHMARKS.md").read_text() == before
