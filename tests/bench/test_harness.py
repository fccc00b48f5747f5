"""The bench's harness, statistics and output, on a scaffold engine (fast, no model)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.bench import BenchOptions, run_bench
from bridge.bench.engines import EngineBuildError, EngineCache
from bridge.bench.environment import command_line
from bridge.bench.options import SECTIONS, OptionError, build_options, parse_sections, parse_sizes
from bridge.bench.render import print_report, to_markdown
from bridge.bench.stats import _t975, bracketed_ratios, latency_summary, percentile, ratio, spread

from .scaffold_engine import ScaffoldEngine


@given(st.lists(st.floats(min_value=0, max_value=1e4), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_bounded(samples):
    s = latency_summary(samples)
    assert min(samples) <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"] == max(samples)


def test_percentile_matches_linear_interpolation():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10.0], 99) == 10.0
    assert percentile(list(range(101)), 95) == 95
    with pytest.raises(ValueError):
        percentile([], 50)


def test_ratio_handles_missing_values():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None


@given(
    st.floats(min_value=1, max_value=100),
    st.floats(min_value=-0.5, max_value=0.5),
    st.floats(min_value=0.5, max_value=1.5),
    st.integers(min_value=1, max_value=20),
)
def test_round_ratios_cancel_a_machine_drifting_during_the_run(start, drift, true_ratio, rounds):
    """The engine alone speeds up or slows down linearly across the rounds; a pipeline that keeps
    `true_ratio` of the engine's speed at its own time gets exactly that ratio in every round."""
    engine = [start * (1 + drift * i / rounds) for i in range(rounds + 1)]
    pipeline = [true_ratio * (engine[i] + engine[i + 1]) / 2 for i in range(rounds)]
    assert bracketed_ratios(pipeline, engine) == pytest.approx([true_ratio] * rounds)


def test_round_ratios_use_the_rounds_there_are():
    assert bracketed_ratios([15.0, 25.0, 30.0], [10.0, 20.0, 30.0]) == [1.0, 1.0, 1.0]  # last: one side
    assert bracketed_ratios([10.0], [0.0, 20.0]) == [0.5]  # a round without a speed is left out
    assert bracketed_ratios([10.0], [0.0]) == []


def test_spread_of_round_values():
    s = spread([5.0, 1.0, 4.0, 2.0, 3.0])
    assert s is not None and (s.count, s.median, s.low_quartile, s.high_quartile, s.mean) == (5, 3, 2, 4, 3)
    assert s.half_width == pytest.approx(2.776 * (2.5 / 5) ** 0.5, rel=1e-3)  # Student's t, 4 dof
    assert s.describe() == "5 rounds: median 3.000, middle half 2.000-4.000, mean 3.000 +- 1.963 (95%)"
    assert spread([]) is None and spread([0.9]).half_width == 0.0
    for dof, t in ((11, 2.201), (14, 2.145), (29, 2.045), (59, 2.001), (120, 1.980)):
        assert _t975(dof) == pytest.approx(t, rel=1e-3), dof


def test_option_parsing_and_errors():
    assert parse_sizes("512x512, 768X512,512x512") == [(512, 512), (768, 512)]
    assert parse_sections("memory,cfg") == ["cfg", "memory"]
    for bad in ("512", "512x0", "500x512", "axb"):
        with pytest.raises(OptionError, match="size"):
            parse_sizes(bad)
    with pytest.raises(OptionError, match="--only takes"):
        parse_sections("cfg,speed")
    quick = build_options(
        model="random:tiny", frames=None, warmup=None, sizes=None, accel="torch", only=None,
        device="cpu", quick=True,
    )  # fmt: skip
    assert quick.frames < BenchOptions.frames and quick.main_size[0] < 512
    with pytest.raises(OptionError, match="--frames"):
        build_options(
            model="m", frames=1, warmup=0, sizes=None, accel="torch", only=None, device="cpu", quick=False
        )


def test_command_line_reconstructs_module_invocation():
    assert command_line(["/x/bridge/__main__.py", "bench", "--json", "a b.json"]) == (
        "python -m bridge bench --json 'a b.json'"
    )
    assert command_line(["/usr/bin/sd-bridge", "bench"]) == "sd-bridge bench"


def test_cache_reuses_same_config_and_reports_build_errors():
    built = []

    def factory(config):
        if config.model == "broken":
            raise RuntimeError("no such model: broken\nlong traceback text")
        built.append(config)
        return ScaffoldEngine(config)

    from engine import EngineConfig

    cache = EngineCache(factory)
    a = EngineConfig(model="x", width=64, height=64)
    assert cache.get(a) is cache.get(EngineConfig(model="x", width=64, height=64))
    cache.get(EngineConfig(model="x", width=96, height=64))
    assert len(built) == 2
    with pytest.raises(EngineBuildError, match=r"^no such model: broken$"):
        cache.get(EngineConfig(model="broken"))


@pytest.fixture(scope="module")
def scaffold_report():
    options = BenchOptions(
        model="scaffold", frames=12, warmup=2, sizes=[(64, 64), (96, 64)], accels=["torch"]
    )
    return run_bench(options, factory=ScaffoldEngine, argv=["sd-bridge", "bench", "--quick"])


def test_every_section_runs_in_order(scaffold_report):
    assert [s.name for s in scaffold_report.sections] == list(SECTIONS)
    throughput = scaffold_report.section("throughput")
    assert [r.label for r in throughput.rows] == [
        "torch img2img 64x64", "torch img2img 96x64", "torch txt2img 64x64", "torch txt2img 96x64",
    ]  # fmt: skip
    for row in throughput.rows:
        assert row.error is None
        assert row.metrics["fps"] > 0 and row.metrics["frames"] == 12
        assert row.metrics["p50_ms"] <= row.metrics["p95_ms"] <= row.metrics["p99_ms"]


def test_filter_skips_static_more_than_moving(scaffold_report):
    rows = {r.label: r.metrics for r in scaffold_report.section("filter").rows}
    assert rows["static input"]["skipped_fraction"] > 0.5
    assert rows["moving input"]["skipped_fraction"] == 0


def test_comparisons_are_ratios_of_rows(scaffold_report):
    cfg = scaffold_report.section("cfg")
    fps = {r.label: r.metrics["fps"] for r in cfg.rows}
    assert cfg.comparison("self / none fps").value == pytest.approx(fps["cfg self"] / fps["cfg none"])


def test_pipeline_runs_through_the_daemon_runtime(scaffold_report):
    pipeline = scaffold_report.section("pipeline")
    row = pipeline.row("pipeline")
    assert row.error is None and row.metrics["fps"] > 0 and row.metrics["frames"] == 12
    assert row.metrics["p50_ms"] <= row.metrics["p95_ms"] <= row.metrics["p99_ms"]
    assert pipeline.comparison("pipeline / engine fps").value > 0
    per_round = pipeline.comparison("pipeline / engine fps, per round")
    assert per_round.value > 0 and "12 rounds: median" in per_round.explanation
    assert len(per_round.samples) == 12  # rounded to 4 decimals in the JSON
    assert per_round.value == pytest.approx(percentile(per_round.samples, 50), abs=1e-4)
    assert per_round.to_dict()["samples"] == per_round.samples
    assert "samples" not in pipeline.comparison("pipeline / engine fps").to_dict()
    stages = {r.params["stage"]: r for r in scaffold_report.section("stages").rows}
    for key in ("capture", "queue", "preprocess", "encode", "unet", "decode", "postprocess", "output"):
        assert stages[key].error is None and stages[key].metrics["mean_ms"] >= 0, key
    assert sum(r.metrics["share"] for r in stages.values()) == pytest.approx(1.0)


def test_failing_pipeline_becomes_an_error_row_not_a_crash():
    def broken_runner(*_args, **_kwargs):
        raise RuntimeError("no source today")

    options = BenchOptions(
        model="scaffold",
        frames=3,
        warmup=1,
        sizes=[(64, 64)],
        accels=["torch"],
        sections=["pipeline", "stages"],
    )
    report = run_bench(options, factory=ScaffoldEngine, pipeline_runner=broken_runner)
    pipeline = report.section("pipeline")
    assert pipeline.row("engine alone").error is None
    assert pipeline.row("pipeline").error == "RuntimeError: no source today"
    assert pipeline.comparison("pipeline / engine fps").value is None
    stages = {r.params["stage"]: r for r in report.section("stages").rows}
    assert stages["unet"].metrics["p50_ms"] > 0 and stages["capture"].error == "RuntimeError: no source today"


def test_targets_say_not_measurable_on_cpu(scaffold_report):
    by_name = {t.name: t for t in scaffold_report.targets}
    assert set(by_name) == {"engine fps", "pipeline fps", "e2e latency", "stream batch", "self-RCFG"}
    assert by_name["self-RCFG"].status.startswith("not measurable here (no GPU")
    assert "% of none" in by_name["self-RCFG"].measured


def test_json_and_markdown_output(scaffold_report, capsys):
    data = json.loads(json.dumps(scaffold_report.to_dict()))
    assert set(data["sections"]) == set(SECTIONS)
    assert data["environment"]["command"] == "sd-bridge bench --quick"
    assert data["environment"]["torch"]
    md = to_markdown(scaffold_report)
    assert "| torch img2img 64x64 |" in md and "`sd-bridge bench --quick`" in md
    print_report(scaffold_report)
    out = capsys.readouterr().out
    assert "Engine throughput and latency" in out and "torch:" in out


def test_failing_build_is_a_row_error_and_the_run_goes_on():
    def factory(config):
        if config.mode == "txt2img":
            raise RuntimeError("txt2img is broken here")
        return ScaffoldEngine(config)

    options = BenchOptions(
        model="scaffold", frames=3, warmup=0, sizes=[(64, 64)], accels=["torch"], sections=["throughput"]
    )
    report = run_bench(options, factory=factory)
    rows = {r.label: r for r in report.section("throughput").rows}
    assert rows["torch txt2img 64x64"].error == "could not build: txt2img is broken here"
    assert rows["torch img2img 64x64"].metrics["fps"] > 0


def test_split_spreads_calls_over_rounds():
    from bridge.bench.measure import split

    assert split(10, 3) == [4, 3, 3]
    assert split(2, 3) == [1, 1]
    assert sum(split(31, 3)) == 31


def test_comparison_rows_take_turns_call_by_call():
    """After every engine's warm-up, the timed calls take turns between the rows (A B C D A B C D ...)."""
    calls: list[str] = []

    class Recording(ScaffoldEngine):
        def __call__(self, frames=None):
            calls.append(self.config.cfg_type)
            return super().__call__(frames)

    options = BenchOptions(
        model="scaffold", frames=6, warmup=1, sizes=[(64, 64)], accels=["torch"], sections=["cfg"]
    )
    report = run_bench(options, factory=Recording)
    assert calls[:4] == ["none", "self", "initialize", "full"]  # warm-ups
    timed = calls[4:]
    assert timed == [c for _ in range(6) for c in ("none", "self", "initialize", "full")]
    assert all(r.metrics["frames"] == 6 for r in report.section("cfg").rows)


def test_a_figure_is_never_labelled_with_a_backend_the_engine_does_not_serve():
    from types import SimpleNamespace

    from bridge.bench.engines import ensure_accel

    def engine_serving(active, error=None):
        status = SimpleNamespace(active=active, building=False, error=error)
        return SimpleNamespace(accel_status=status)

    assert ensure_accel(engine_serving("tensorrt"), SimpleNamespace(accel="tensorrt")) == "tensorrt"
    assert ensure_accel(engine_serving("torch"), SimpleNamespace(accel="auto")) == "torch"
    with pytest.raises(
        EngineBuildError, match="asked for accel 'compile' but the engine serves with 'torch'"
    ):
        ensure_accel(engine_serving("torch"), SimpleNamespace(accel="compile"))
    with pytest.raises(EngineBuildError, match="^TensorRT build failed$"):
        ensure_accel(
            engine_serving("torch", "TensorRT build failed\ntraceback"), SimpleNamespace(accel="tensorrt")
        )


def test_tensorrt_without_a_gpu_is_a_row_error_on_the_real_engine():
    """The real engine and accel backends: asking for TensorRT here fails its rows, one line each."""
    options = BenchOptions(
        model="random:tiny",
        frames=2,
        warmup=0,
        sizes=[(64, 64)],
        accels=["tensorrt"],
        sections=["throughput"],
    )
    report = run_bench(options)
    rows = report.section("throughput").rows
    assert len(rows) == 2 and all(r.error and r.error.startswith("could not build: ") for r in rows)
    assert all("\n" not in r.error for r in rows)
