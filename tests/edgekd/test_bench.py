"""The side-by-side benchmark on a tiny run: every system measured, ratios computed in the run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekd.bench import Row, add_ratios
from edgekd.cli import app
from edgekd.export import export_run


def row(name, p50, thr):
    return Row(name, "x", None, 0.9, 2.0, None, p50, p50, thr, None, None, None)


def test_ratios_are_baseline_over_row():
    rows = [row("base", 10.0, 100.0), row("fast", 2.5, 300.0)]
    add_ratios(rows, {"b": "base", "missing": "nope"})
    assert rows[1].ratios == {"b1_speedup_vs_b": 4.0, "b32_throughput_vs_b": 3.0}
    assert rows[0].ratios["b1_speedup_vs_b"] == 1.0


@pytest.mark.slow
def test_bench_command_writes_json_markdown_and_plot(finished_run, tiny_data, tmp_path):
    bundle = export_run(finished_run, tmp_path / "b").path
    int8 = export_run(finished_run, tmp_path / "b8", precision="int8").path
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["bench", str(bundle), "--data", str(tiny_data["dev"]), "--teacher",
                                      str(finished_run), "--out", str(out), "--speeds", "0,0.5",
                                      "--latency-texts", "6", "--also", str(int8), "--no-js"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "bench.json").read_text())
    names = [r["name"] for r in data["rows"]]
    assert names[:4] == ["teacher, PyTorch eager", "teacher, one ONNX graph", "student, one ONNX graph",
                         "student, PyTorch per-sample exit b1, speed 0.3"]
    assert "edgekd staged, speed 0" in names and "edgekd staged, speed 0.5" in names
    by = {r["name"]: r for r in data["rows"]}
    staged0, full = by["edgekd staged, speed 0"], by["student, one ONNX graph"]
    assert staged0["accuracy"] == full["accuracy"] and staged0["average_layers"] == 2.0
    assert staged0["ratios"]["b1_speedup_vs_student_onnx"] > 0
    assert by["teacher, PyTorch eager"]["accuracy"] == by["teacher, one ONNX graph"]["accuracy"]
    assert "edgekd int8 staged, speed 0" in names
    assert data["precision_pairs"][0]["fp32"] == "edgekd staged, speed 0"
    assert data["precision_pairs"][0]["other"] == "edgekd int8 staged, speed 0"
    assert data["staged_overhead"]["b1_ratio"] > 0
    graph0 = by["edgekd graph, speed 0"]
    assert graph0["accuracy"] == staged0["accuracy"] and graph0["average_layers"] == staged0["average_layers"]
    assert "edgekd int8 graph, speed 0" in names
    eff = {e["system"]: e for e in data["exit_efficiency"]}
    assert eff["edgekd graph, speed 0"]["b1"] == full["p50_ms_b1"] / graph0["p50_ms_b1"]
    assert (out / "bench.md").read_text().count("\n|") >= 8
    assert (out / "bench.png").stat().st_size > 1000


def test_pareto_names_the_frontier_and_who_beats_an_edgekd_point():
    from edgekd.baselines import pareto
    from edgekd.bench import Row

    def row(name, kind, acc, ms):
        return Row(name, kind, 0.0, acc, 1.0, None, ms, ms, 1.0, None, None, None)

    rows = [row("edgekd graph, speed 0", "edgekd-graph", 0.88, 2.0), row("edgekd graph, speed 0.5", "edgekd-graph", 0.87, 1.0),
            row("teacher", "teacher-optimum", 0.875, 1.5), row("fastText", "fasttext", 0.80, 0.01)]
    result = pareto(rows)
    assert set(result["frontier"]) == {"edgekd graph, speed 0", "edgekd graph, speed 0.5", "teacher", "fastText"}
    assert result["edgekd_dominated_by"] == {"edgekd graph, speed 0": [], "edgekd graph, speed 0.5": []}
    rows.append(row("magic", "tfidf-lr", 0.90, 0.5))
    result = pareto(rows)
    assert result["edgekd_dominated_by"]["edgekd graph, speed 0.5"] == ["magic"]
    assert "beaten on both axes" in result["markdown"]


@pytest.mark.slow
def test_competitors_and_profile_sit_beside_edgekd_in_one_run(tiny_teacher_dir, tiny_data, tmp_path):
    import json

    from edgekd.baselines import run_bench
    from edgekd.export import export_run
    from edgekd.pipeline import distill
    from tests.conftest import tiny_config

    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "finetune"]),
                  log=lambda _: None)
    bundle = export_run(run, tmp_path / "bundle").path
    run_bench(bundle, tiny_data["dev"], tmp_path / "out", run_dir=run, latency_texts=5, speeds=[0.0],
              thread_study=False, js=False, log=lambda _: None, competitors=True, profile=True, stem="bench_t",
              large_batch=True, rss=True)
    payload = json.loads((tmp_path / "out" / "bench_t.json").read_text())
    rows = {r["kind"]: r for r in payload["rows"]}
    for kind in ("teacher-optimum", "fasttext", "tfidf-lr", "model2vec"):
        assert 0.0 <= rows[kind]["accuracy"] <= 1.0 and rows[kind]["p50_ms_b1"] > 0, kind
    for kind in ("teacher-torch", "teacher-onnx", "teacher-optimum", "student-onnx", "fasttext", "tfidf-lr",
                 "model2vec", "edgekd"):
        assert rows[kind]["throughput_b256"] > 0 and rows[kind]["peak_rss_mb"] > 0, kind
    # each system alone: the runtime's process never loads torch, so it holds far less than the torch teacher's
    assert rows["edgekd"]["peak_rss_mb"] < rows["teacher-torch"]["peak_rss_mb"] - 100
    assert "peak RSS MB" in (tmp_path / "out" / "bench_t.md").read_text()
    assert (tmp_path / "out" / "pareto_t.png").stat().st_size > 10_000
    assert payload["pareto"]["frontier"]
    profile = payload["profile"]
    assert (tmp_path / "out" / profile["file"]).is_file() and profile["kernel_ms"] > 0
    assert "MatMul" in "".join(profile["ms_by_op"]) and "If" not in profile["ms_by_op"]


@pytest.mark.slow
def test_peak_rss_runs_each_system_alone_and_reports_failures(bundle):
    from edgekd import rss

    texts = ["good film", "bad plot and a long dull story"] * 40
    got = rss.measure({"edgekd": {"kind": "edgekd", "bundle": str(bundle), "engine": "graph", "speed": 0.0},
                       "broken": {"kind": "nonsense", "bundle": str(bundle)}}, texts, log=lambda _: None)
    assert got["broken"] is None
    assert got["edgekd"]["peak_rss_mb"] >= got["edgekd"]["after_load_mb"] > 10
    assert got["edgekd"]["torch_imported"] is False  # what an app embedding the runtime pays
