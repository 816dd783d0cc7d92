"""The side-by-side benchmark: every system measured, ratios computed in the run, nothing measured lost
(a failing system is named and the rest written; a killed run resumes where it stopped)."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekd.bench import BenchOptions, run_bench
from edgekd.bench import measure as measure_module
from edgekd.bench import registry
from edgekd.bench.measure import Row
from edgekd.bench.report import add_ratios, pareto
from edgekd.cli import app
from edgekd.distill.export import export_run
from runtime.errors import EdgeKDError
from tests.conftest import TEXTS

QUIET = dict(log=lambda _: None)


def row(name, p50, thr):
    return Row(name, "x", None, 0.9, 2.0, None, p50, p50, thr, None, None, None)


def test_ratios_are_baseline_over_row():
    rows = [row("base", 10.0, 100.0), row("fast", 2.5, 300.0)]
    add_ratios(rows, {"b": "base", "missing": "nope"})
    assert rows[1].ratios == {"b1_speedup_vs_b": 4.0, "b32_throughput_vs_b": 3.0}
    assert rows[0].ratios["b1_speedup_vs_b"] == 1.0


def test_pareto_names_the_frontier_and_who_beats_an_edgekd_point():
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


def test_cli_help_names_every_system_group():
    from edgekd.cli import _bench_systems_help

    assert _bench_systems_help().split(", ") == list(registry.GROUPS)


@pytest.fixture
def dev_file(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{'positive' if i % 3 else 'negative'}\n"
                                                  for i, t in enumerate(TEXTS)))
    return path


def options(bundle, data, out, **kw):
    base = dict(speeds=[0.0, 0.5], latency_texts=4, js=False, thread_study=False)
    return BenchOptions(bundle, data, out, **{**base, **kw})


@pytest.mark.slow
def test_systems_and_skip_choose_the_rows_and_unknown_names_are_refused(bundle, dev_file, tmp_path):
    payload = run_bench(options(bundle, dev_file, tmp_path / "a", systems=["edgekd-graph"]), **QUIET)
    assert [r["name"] for r in payload["rows"]] == ["edgekd graph, speed 0", "edgekd graph, speed 0.5"]
    payload = run_bench(options(bundle, dev_file, tmp_path / "b", skip=["edgekd-graph"]), **QUIET)
    assert [r["name"] for r in payload["rows"]] == ["edgekd staged, speed 0", "edgekd staged, speed 0.5"]
    with pytest.raises(EdgeKDError, match="unknown system.*nonsense.*the systems are: teacher-torch"):
        run_bench(options(bundle, dev_file, tmp_path / "c", systems=["nonsense"]), **QUIET)
    with pytest.raises(EdgeKDError, match="teacher-torch need the run folder"):
        run_bench(options(bundle, dev_file, tmp_path / "d", systems=["teacher-torch"]), **QUIET)
    # a finished run leaves no scratch behind: no state file, no hidden work folder
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["bench.json", "bench.md", "bench.png"]


@pytest.mark.slow
def test_a_failing_system_is_named_and_the_others_are_written(bundle, dev_file, tmp_path, monkeypatch):
    real = registry.KINDS["edgekd"]

    def flaky(recipe, ctx):
        system = real(recipe, ctx)
        if recipe["engine"] == "graph" and recipe["speed"] == 0.5:
            def broken(texts):
                raise RuntimeError("the graph session died\nwith a second line")
            system.predict = broken
        return system

    monkeypatch.setitem(registry.KINDS, "edgekd", flaky)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", str(bundle), "--data", str(dev_file), "--out", str(out), "--speeds",
                                      "0,0.5", "--latency-texts", "4", "--no-js"])
    assert result.exit_code == 2
    assert "1 system(s) failed: 'edgekd graph, speed 0.5'" in result.output  # quoted: names hold commas
    data = json.loads((out / "bench.json").read_text())
    names = [r["name"] for r in data["rows"]]
    assert "edgekd graph, speed 0.5" not in names
    assert {"edgekd staged, speed 0", "edgekd staged, speed 0.5", "edgekd graph, speed 0"} <= set(names)
    assert data["failed"] == {"edgekd graph, speed 0.5": "RuntimeError: with a second line"}
    assert "| edgekd graph, speed 0.5 | failed: RuntimeError: with a second line |" in (out / "bench.md").read_text()
    assert (out / "bench.state.json").is_file()  # kept: --resume retries only the failed system
    monkeypatch.setitem(registry.KINDS, "edgekd", real)
    calls = []
    monkeypatch.setattr("edgekd.bench.run.quality", lambda s, *a, **k: calls.append(s.name) or
                        measure_module.quality(s, *a, **k))
    payload = run_bench(options(bundle, dev_file, out, thread_study=True, speeds=[0.0, 0.5], latency_texts=4,
                                resume=True), **QUIET)
    assert calls == ["edgekd graph, speed 0.5"]
    assert payload["failed"] == {} and "edgekd graph, speed 0.5" in [r["name"] for r in payload["rows"]]
    assert not (out / "bench.state.json").exists()


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_a_killed_run_resumes_without_measuring_again(bundle, dev_file, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_latency = measure_module.latency_b1
    timed = []

    def killed_midway(system, texts, warmup=10):
        timed.append(system.name)
        if len(timed) == 3:
            raise KeyboardInterrupt
        return real_latency(system, texts, warmup)

    monkeypatch.setattr("edgekd.bench.run.latency_b1", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run_bench(options(bundle, dev_file, out), **QUIET)
    state = json.loads((out / "bench.state.json").read_text())
    assert all("quality" in s for s in state["systems"].values()) and len(state["systems"]) == 4
    assert sum("b1_0" in s for s in state["systems"].values()) == 2
    # other settings are refused, naming what differs
    with pytest.raises(EdgeKDError, match="other settings \\(latency_texts, speeds\\)"):
        run_bench(options(bundle, dev_file, out, speeds=[0.0], latency_texts=5, resume=True), **QUIET)
    monkeypatch.setattr("edgekd.bench.run.latency_b1", real_latency)
    measured = []
    monkeypatch.setattr("edgekd.bench.run.quality", lambda s, *a, **k: measured.append(s.name))
    payload = run_bench(options(bundle, dev_file, out, resume=True), **QUIET)
    assert measured == []  # accuracy was recorded before the kill
    assert len(payload["rows"]) == 4 and all(r["p50_ms_b1"] > 0 and r["throughput_b32"] > 0 for r in payload["rows"])
    assert not (out / "bench.state.json").exists()


def _texts(n, seed=0):
    from edgekd.testing.fixtures import WORDS

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = ""
        target = rng.randint(40, 200)
        while len(text) < target:
            text += rng.choice(WORDS) + " "
        out.append(text[:target].strip())
    return out


@pytest.mark.slow
def test_js_rows_take_5000_texts_through_a_file(tmp_path):
    """Node and Chromium get the texts in a job file: 5,000 texts of 40-200 characters (about 600 kB, past the
    kernel's 128 kB limit for one argument) reach both runners and come back as rows."""
    from tests.js.test_browser import FIXTURES, _skip_reason

    if _skip_reason():
        pytest.skip(_skip_reason())
    texts = _texts(5000)
    assert sum(map(len, texts)) > 200_000
    data = tmp_path / "big.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{'positive' if i % 2 else 'negative'}\n"
                                                  for i, t in enumerate(texts)))
    bundle = tmp_path / "fp32"
    shutil.copytree(FIXTURES / "fp32", bundle)
    payload = run_bench(BenchOptions(bundle, data, tmp_path / "out", speeds=[0.0], latency_texts=20,
                                     systems=["node", "browser"]), **QUIET)
    by = {r["name"]: r for r in payload["rows"]}
    for runner in ("Node", "Chromium (wasm)"):
        row = by[f"edgekd graph in {runner}, speed 0"]
        assert 0.0 <= row["accuracy"] <= 1.0 and row["p50_ms_b1"] > 0 and row["throughput_b32"] > 0
        assert row["average_layers"] == 3.0
    assert payload["failed"] == {}


@pytest.mark.slow
def test_js_rows_of_a_pair_bundle_type_both_texts_into_the_page(tmp_path):
    """A pair bundle in Node and Chromium: the demo driver types the first pair into both boxes, and every pair
    reaches the bench in the page (a pair first item once crashed the driver: page.type got a list)."""
    from edgekd.bench.js import drive_job
    from tests.js.test_browser import FIXTURES, _skip_reason

    job = {"texts": [["a", "b"], ["c", ""]], "gold": ["positive", "negative"], "speeds": [0.0], "latencyTexts": 2}
    assert drive_job(job, "u")["text"] == "a" and drive_job(job, "u")["textPair"] == "b"
    assert "textPair" not in drive_job({**job, "texts": ["a"]}, "u")
    if _skip_reason():
        pytest.skip(_skip_reason())
    texts = _texts(40)
    data = tmp_path / "pairs.tsv"
    data.write_text("question1\tquestion2\tlabel\n" + "".join(
        f"{a}\t{b}\t{'positive' if i % 2 else 'negative'}\n" for i, (a, b) in enumerate(zip(texts, texts[1:] + [""]))))
    bundle = tmp_path / "pair"
    shutil.copytree(FIXTURES / "pair", bundle)
    payload = run_bench(BenchOptions(bundle, data, tmp_path / "out", speeds=[0.0], latency_texts=5,
                                     systems=["edgekd-graph", "node", "browser"]), **QUIET)
    assert payload["failed"] == {}
    by = {r["name"]: r for r in payload["rows"]}
    python = by["edgekd graph, speed 0"]
    for runner in ("Node", "Chromium (wasm)"):
        row = by[f"edgekd graph in {runner}, speed 0"]
        assert row["accuracy"] == pytest.approx(python["accuracy"]) and row["average_layers"] == python["average_layers"]


@pytest.mark.slow
def test_bench_command_writes_json_markdown_and_plot(finished_run, tiny_data, tmp_path):
    bundle = export_run(finished_run, tmp_path / "b").path
    int8 = export_run(finished_run, tmp_path / "b8", precision="int8").path
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["bench", str(bundle), "--data", str(tiny_data["dev"]), "--run",
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
    assert "wrote " in result.output and str(out / "bench.png") in result.output
    assert not list(out.glob(".*"))  # the scratch folder is cleaned after a complete run


@pytest.mark.slow
def test_competitors_and_profile_sit_beside_edgekd_in_one_run(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "finetune"]),
                  log=lambda _: None)
    bundle = export_run(run, tmp_path / "bundle").path
    run_bench(BenchOptions(bundle, tiny_data["dev"], tmp_path / "out", run_dir=run, latency_texts=5, speeds=[0.0],
                           thread_study=False, js=False, competitors=True, profile=True, stem="bench_t",
                           large_batch=True, rss=True), **QUIET)
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
    assert payload["kernels_per_text"] > 0 and payload["kernels_per_layer"] == pytest.approx(
        payload["kernels_per_text"] / 2, abs=0.01)  # the tiny student has 2 layers


@pytest.mark.slow
def test_peak_rss_runs_each_system_alone_and_reports_failures(bundle):
    from edgekd.bench import rss

    texts = ["good film", "bad plot and a long dull story"] * 40
    got = rss.measure({"edgekd": {"kind": "edgekd", "bundle": str(bundle), "engine": "graph", "speed": 0.0},
                       "broken": {"kind": "nonsense", "bundle": str(bundle)}}, texts, log=lambda _: None)
    assert got["broken"] is None
    assert got["edgekd"]["peak_rss_mb"] >= got["edgekd"]["after_load_mb"] > 10
    assert got["edgekd"]["torch_imported"] is False  # what an app embedding the runtime pays
    assert np.isfinite(got["edgekd"]["peak_rss_mb"])


@pytest.mark.slow
def test_the_default_results_folder_is_named_after_the_bundle(bundle, dev_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = []
    run_bench(BenchOptions(bundle, dev_file, None, speeds=[0.0], latency_texts=3, js=False, thread_study=False,
                           systems=["edgekd-graph"]), log=lines.append)
    folder = tmp_path / f"{bundle.name}-bench"
    assert sorted(p.name for p in folder.iterdir()) == ["bench.json", "bench.md", "bench.png"]
    assert lines[-1] == f"wrote {folder.relative_to(tmp_path) / 'bench.json'}, " \
                        f"{folder.relative_to(tmp_path) / 'bench.md'}, {folder.relative_to(tmp_path) / 'bench.png'}"


def test_tables_speak_words_rows_keep_speed_order_and_failures_are_listed_apart():
    """Issue 43, item 18: raw ratio keys as headers, the default speed's rows after the others, failed names
    with commas joined by commas."""
    from edgekd.bench.plan import Unit, _in_speed_order
    from edgekd.bench.report import ratio_head

    assert ratio_head("b1_speedup_vs_teacher_torch") == "x faster than teacher torch (b1)"
    assert ratio_head("b32_throughput_vs_student_onnx") == "x throughput of student onnx (b32)"

    def unit(name, kind, **recipe):
        return Unit(name, "g", {"kind": kind, **recipe})

    units = [unit("teacher", "teacher-torch")] + [unit(f"staged {s:g}", "edgekd", system_bundle="a", engine="staged",
                                                       speed=s) for s in (0.0, 0.3, 0.6)] + \
        [unit(f"graph {s:g}", "edgekd", system_bundle="a", engine="graph", speed=s) for s in (0.0, 0.6)] + \
        [unit("staged 0.45", "edgekd", system_bundle="a", engine="staged", speed=0.45),
         unit("graph 0.45", "edgekd", system_bundle="a", engine="graph", speed=0.45)]
    assert [u.name for u in _in_speed_order(units)] == ["teacher", "staged 0", "staged 0.3", "staged 0.45",
                                                        "staged 0.6", "graph 0", "graph 0.45", "graph 0.6"]


def test_an_errored_bench_leaves_no_folder(bundle, tmp_path):
    """Issue 43, item 18."""
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\na superb film\tpositive\na dull plot\tnegative\n")
    out = CliRunner().invoke(app, ["bench", str(bundle), "--data", str(data), "--out", str(tmp_path / "r"),
                              "--systems", "nope"])
    assert out.exit_code == 2 and "unknown system(s) nope" in out.output and not (tmp_path / "r").exists()
