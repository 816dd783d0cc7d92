"""Calibration: simulated speeds equal the runtime's decisions; the rule picks as documented."""

from __future__ import annotations

import numpy as np
import pytest

import runtime
from edgekd.calibrate import GRID, calibrate
from edgekd.data import read_labelled
from runtime.errors import EdgeKDError
from runtime.manifest import read_manifest


def test_simulated_points_equal_real_runs(bundle_copy, tiny_data):
    result = calibrate(bundle_copy, tiny_data["dev"], max_drop=1.0, latency_texts=8)
    model = runtime.load(bundle_copy)
    dev = read_labelled(tiny_data["dev"], label_names=model.labels)
    for point in result.points[::4]:
        got = model.classify(dev.texts, speed=point.speed)
        acc = np.mean([model.labels.index(r.label) == y for r, y in zip(got, dev.labels)])
        assert point.accuracy == pytest.approx(acc)
        assert point.average_layers == pytest.approx(np.mean([r.exit_layer for r in got]))
    assert [p.speed for p in result.points] == GRID
    latencies = [p.latency_ms for p in result.points]
    assert all(lat > 0 for lat in latencies)
    layers = [p.average_layers for p in result.points]
    assert layers == sorted(layers, reverse=True), "more speed never runs more layers"


def test_max_drop_rule_and_manifest_update(bundle_copy, tiny_data):
    result = calibrate(bundle_copy, tiny_data["dev"], max_drop=2.0, latency_texts=8)
    chosen = next(p for p in result.points if p.speed == result.chosen)
    assert 100 * (result.full_accuracy - chosen.accuracy) <= 2.0 + 1e-9
    for p in result.points:
        if p.speed > result.chosen:
            assert 100 * (result.full_accuracy - p.accuracy) > 2.0
    manifest = read_manifest(bundle_copy)
    assert manifest.default_speed == result.chosen
    assert manifest.calibration.rule == "max_drop=2 points" and len(manifest.calibration.points) == len(GRID)
    runtime.load(bundle_copy)  # still verifies: graphs untouched


def test_latency_rule(bundle_copy, tiny_data, monkeypatch):
    # fixed stage times (0.1 ms front, 1 ms a layer) so the test does not depend on this machine's noise
    monkeypatch.setattr("edgekd.calibrate.layer_times", lambda model, texts, repeats=3: (1e-4, np.full(3, 1e-3)))
    probe = calibrate(bundle_copy, tiny_data["dev"], max_drop=100.0, latency_texts=48, write=False)
    for p in probe.points:  # latency = front + the layers each sampled text runs
        assert p.latency_ms == pytest.approx(0.1 + p.average_layers)
    budget = float(np.median([p.latency_ms for p in probe.points]))
    result = calibrate(bundle_copy, tiny_data["dev"], latency_ms=budget, latency_texts=48)
    chosen = next(p for p in result.points if p.speed == result.chosen)
    # the rule: the most accurate speed whose latency fits the budget; every more accurate speed missed it
    fits = [p for p in result.points if p.latency_ms <= budget]
    assert 0 < len(fits) < len(result.points), "the budget must rule some speeds out for this test to mean anything"
    assert chosen in fits and chosen.accuracy == max(p.accuracy for p in fits)
    assert all(p.latency_ms > budget for p in result.points if p.accuracy > chosen.accuracy)
    with pytest.raises(EdgeKDError, match="no speed meets"):
        calibrate(bundle_copy, tiny_data["dev"], latency_ms=0.05, latency_texts=4)


def test_needs_exactly_one_budget(bundle_copy, tiny_data):
    with pytest.raises(EdgeKDError, match="exactly one"):
        calibrate(bundle_copy, tiny_data["dev"])
    with pytest.raises(EdgeKDError, match="exactly one"):
        calibrate(bundle_copy, tiny_data["dev"], max_drop=1, latency_ms=3)


def test_thread_use_is_measured_per_batch_size_and_recorded(bundle_copy, tiny_data, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    calibrate(bundle_copy, tiny_data["dev"], max_drop=1.0, latency_texts=8)
    policy = read_manifest(bundle_copy).calibration.threads
    assert policy["cores"] == 2
    b1, b32 = policy["batch_1"], policy["batch_32"]
    assert b1["chosen"] == min(b1["ms"], key=b1["ms"].get) and all(v > 0 for v in b1["ms"].values())
    assert b32["chosen"] == max(b32["texts_per_s"], key=b32["texts_per_s"].get)
    from typer.testing import CliRunner

    from edgekd.cli import app

    shown = CliRunner().invoke(app, ["inspect", str(bundle_copy)]).output
    assert "threads (2 cores): batch 1 on " + ("one thread" if b1["chosen"] == "one" else "default threads") in shown
    assert ("split across cores" if b32["chosen"] == "split" else "large batches whole") in shown


def _with_policy(bundle, b1: str, large: str):
    import json

    from runtime.manifest import Calibration, write_manifest

    manifest = read_manifest(bundle)
    manifest.calibration = Calibration(data="t", machine="m", threads={
        "cores": 2, "batch_1": {"ms": {"default": 1.0, "one": 0.5}, "chosen": b1},
        "batch_32": {"texts_per_s": {"whole": 1.0, "split": 2.0}, "chosen": large}})
    write_manifest(bundle, manifest)
    return json.loads((bundle / "manifest.json").read_text())["calibration"]["threads"]


@pytest.mark.parametrize("engine", ["graph", "staged"])
def test_runtime_follows_the_recorded_thread_use_with_the_same_answers(bundle_copy, engine):
    texts = [f"{'good ' * (i % 7)}film {'bad ' * (i % 3)}plot" for i in range(40)]
    want = runtime.load(bundle_copy, engine=engine, threads=0).classify(texts, speed=0.3)
    assert _with_policy(bundle_copy, "one", "split")["batch_32"]["chosen"] == "split"
    model = runtime.load(bundle_copy, engine=engine)
    assert model.thread_policy is not None and "_one_thread" not in model.__dict__
    got = model.classify(texts, speed=0.3, batch_size=32)  # 32 rows split across cores, 8 rows on one thread
    assert "_one_thread" in model.__dict__ and "_pool" in model.__dict__
    for a, b in zip(want, got):
        assert a.label == b.label and a.exit_layer == b.exit_layer
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
    explicit = runtime.load(bundle_copy, engine=engine, threads=2)  # an explicit thread count wins
    assert explicit.thread_policy is None
    explicit.classify(texts, speed=0.3)
    assert "_one_thread" not in explicit.__dict__


def test_split_batches_match_whole_ones(bundle):
    model = runtime.load(bundle, engine="staged")
    ids, mask = model.encoder(["good film", "bad plot", "a long and very dull story", "fine"] * 5)
    whole = model.run_ids(ids, mask, 0.4)
    for workers in (1, 2, 3, 64):
        split = model.run_split(ids, mask, 0.4, workers=workers)
        np.testing.assert_allclose(split[0], whole[0], atol=1e-5)
        np.testing.assert_array_equal(split[1], whole[1])


def test_calibrate_and_inspect_say_which_engine_and_why(bundle_copy, tiny_data):
    from typer.testing import CliRunner

    from edgekd.cli import app

    result = CliRunner().invoke(app, ["calibrate", str(bundle_copy), "--data", str(tiny_data["dev"]), "--max-drop", "5"])
    assert result.exit_code == 0, result.output
    manifest = runtime.read_manifest(bundle_copy)
    chosen, ms = manifest.calibration.engine, manifest.calibration.engine_latency_ms
    assert f"engine: {chosen} (measured faster here" in result.output
    assert f"{ms[chosen]:.3f} ms per text" in result.output
    shown = CliRunner().invoke(app, ["inspect", str(bundle_copy)]).output
    assert f"engine: {chosen} (measured faster here" in shown


def test_calibrate_and_bench_take_the_column_flags_and_check_the_files_shape_first(bundle_copy, tmp_path):
    """Issue 43, items 5 and 7: no column flags existed (the message named one), and a pair file on a single-text
    bundle was measured before it failed."""
    from typer.testing import CliRunner

    from edgekd.cli import app
    from tests.conftest import TEXTS

    runner = CliRunner()
    named = tmp_path / "named.tsv"
    named.write_text("review\tstars\n" + "".join(f"{t}\t{'positive' if i % 2 else 'negative'}\n"
                                                  for i, t in enumerate(TEXTS[:12])))
    out = runner.invoke(app, ["calibrate", str(bundle_copy), "--data", str(named), "--max-drop", "5",
                              "--text-column", "review", "--label-column", "stars"])
    assert out.exit_code == 0, out.output
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{t}\t{t}\t{'positive' if i % 2 else 'negative'}\n"
                                                               for i, t in enumerate(TEXTS[:12])))
    for command in (["calibrate", str(bundle_copy), "--data", str(pairs), "--max-drop", "5"],
                    ["bench", str(bundle_copy), "--data", str(pairs), "--out", str(tmp_path / "r"), "--no-js"]):
        out = runner.invoke(app, command)
        assert out.exit_code == 2, (command[0], out.output)
        assert f"{pairs}: the file holds pairs (text columns 'sentence1' + 'sentence2'" in out.output
        assert "but the bundle classifies single texts; name its one text column with --text-column" in out.output
    assert not (tmp_path / "r").exists()  # nothing measured, no folder left behind
    out = runner.invoke(app, ["calibrate", str(bundle_copy), "--data", str(pairs), "--max-drop", "5",
                              "--text-column", "sentence1"])
    assert out.exit_code == 0, out.output


def test_a_chance_level_bundle_is_warned_about(bundle_copy, tmp_path):
    """Issue 43, item 16: a model no better than guessing calibrated to the top of the grid without a word."""
    from typer.testing import CliRunner

    from edgekd.cli import app
    from tests.conftest import TEXTS

    same = tmp_path / "same.tsv"
    same.write_text("sentence\tlabel\n" + "".join(f"{t}\tpositive\n" for t in TEXTS[:12]))  # guessing: 100%
    out = CliRunner().invoke(app, ["calibrate", str(bundle_copy), "--data", str(same), "--max-drop", "1"])
    assert out.exit_code == 0 and "warning: the bundle scores" in out.output and "guessing" in out.output


def test_a_student_below_its_cross_entropy_baseline_is_warned_about(tmp_path):
    """Issue 43, item 16."""
    import json
    from types import SimpleNamespace

    from edgekd.distill.pipeline import below_baseline
    from edgekd.run_folder import RunFolder
    from runtime.task import Task

    run = RunFolder(tmp_path)
    logs: list[str] = []
    ctx = SimpleNamespace(run=run, task=Task("single-label", ["a", "b"]), log=logs.append)
    run.metrics.write_text(json.dumps({"baseline": {"dev_accuracy": 0.84}, "finetune": {"dev_accuracy": 0.80}}))
    below_baseline(ctx)
    assert logs and "80.00" in logs[0] and "84.00" in logs[0] and "distillation hurt" in logs[0]
    run.metrics.write_text(json.dumps({"baseline": {"dev_accuracy": 0.84}, "finetune": {"dev_accuracy": 0.88}}))
    below_baseline(ctx)
    assert len(logs) == 1
