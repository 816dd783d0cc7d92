"""The distillation study's table is built from run folders (benchmarks/distill_study.py): a tiny study of two
recipes, one still running."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_a_tiny_study_of_two_recipes_from_their_run_folders(finished_run, bundle, tmp_path):
    import distill_study

    running = tmp_path / "running"
    shutil.copytree(finished_run, running)
    state = json.loads((running / "state.json").read_text())
    (running / "state.json").write_text(json.dumps({"finished": state["finished"][:2]}))
    metrics = json.loads((finished_run / "metrics.json").read_text())
    spec = {"reference": {"tiny": 90.0}, "runs": [
        {"task": "tiny", "recipe": "today", "run": str(finished_run), "int8": str(bundle)},
        {"task": "tiny", "recipe": "other", "run": str(running), "chosen": True},
        {"task": "tiny", "recipe": "later", "run": str(tmp_path / "none")}]}
    texts = tmp_path / "texts.tsv"  # a task's own texts time its bundles
    texts.write_text("sentence\tlabel\na superb film\tpositive\nbad plot\tnegative\n")
    spec["texts"] = {"tiny": str(texts)}
    rows = distill_study.study(spec, texts=None, latency_texts=2)
    today, other, later = rows
    want = round(100 * metrics["branches"]["dev_accuracy"], 2)
    assert (today["student"], today["teacher"], today["gap"]) == (want, 90.0, round(90.0 - want, 2))
    assert today["status"] == "finished" and other["status"].startswith("running") and later["status"] == "not started"
    assert today["wall_s"] == pytest.approx(sum(m["seconds"] for m in metrics.values()), abs=0.2)
    assert today["student_int8_b1_ms"] > 0 and other["student_int8_b1_ms"] is None
    manifest = json.loads((bundle / "manifest.json").read_text())  # the speed the time was taken at
    assert today["int8_speed"] == manifest["default_speed"] and today["int8_layers"] is None  # not calibrated
    calibrated = tmp_path / "calibrated"  # a calibrated bundle: the layers its texts ran at that speed
    calibrated.mkdir()
    points = [{"speed": 0.0, "average_layers": 4.0}, {"speed": 0.45, "average_layers": 1.0133}]
    (calibrated / "manifest.json").write_text(json.dumps({"default_speed": 0.45, "calibration": {"points": points}}))
    assert distill_study.calibrated(calibrated) == {"int8_speed": 0.45, "int8_layers": 1.01}
    assert other["chosen"] and not today["chosen"] and today["metric"] == "accuracy"
    assert set(today) >= {"task", "split", "recipe", "metric", "teacher", "student", "gap", "student_int8_b1_ms",
                          "wall_s", "chosen"}
    assert "| tiny | other |" in distill_study.table(rows)


@pytest.mark.slow
def test_training_cost_on_equal_terms_probes_forks_and_leaves_the_runs_alone(finished_run, tmp_path):
    import train_cost

    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*")}
    train_cost.main([str(finished_run), str(finished_run), "--names", "a,b", "--steps", "2", 
                     "--out", str(tmp_path), "--stem", "cost"])
    assert {p: p.stat().st_mtime_ns for p in finished_run.rglob("*")} == before  # probes train in forks
    result = json.loads((tmp_path / "cost.json").read_text())
    metrics = json.loads((finished_run / "metrics.json").read_text())
    config = json.loads((finished_run / "config.json").read_text())
    assert result["steps"] == [2, 6] and [r["name"] for r in result["runs"]] == ["a", "b"]
    for row in result["runs"]:  # the tiny run trained its own teacher: probed like the student's stages
        assert set(row["stages"]) == {"teacher", "attention", "finetune", "branches"} and row["teacher_s"] == 0.0
        for stage, cost in row["stages"].items():
            options = config["teacher_stage" if stage == "teacher" else stage]
            assert cost["steps"] == metrics[stage]["steps"] and cost["s_per_step"] >= 0 and cost["fixed_s"] >= 0
            assert cost["projected_s"] == pytest.approx(cost["steps"] * cost["s_per_step"] + train_cost.evaluations(
                options, cost["steps"]) * cost["fixed_s"], abs=0.1)
        assert row["total_s"] == pytest.approx(sum(c["projected_s"] for c in row["stages"].values()), abs=0.2)
    assert result["runs"][0]["ratio"] in (1.0, None)  # None: a tiny run's seconds may round to 0
    assert "| a |" in (tmp_path / "cost.md").read_text()
    with pytest.raises(SystemExit):
        train_cost.main([str(finished_run), "--names", "a,b", "--out", str(tmp_path)])


def test_a_run_not_on_this_machine_keeps_its_row_from_the_earlier_table(tmp_path):
    import distill_study

    run = tmp_path / "trained-here"  # a finished run folder as distill leaves it (the files the table reads)
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"finetune": {"dev_accuracy": 0.9, "seconds": 10.0}}))
    (run / "state.json").write_text(json.dumps({"finished": ["finetune"]}))
    (run / "config.json").write_text(json.dumps({"stages": ["finetune"]}))
    (run / "task.json").write_text(json.dumps({"problem": "single-label"}))
    row = {"split": "dev", "metric": "accuracy", "teacher": 91.0, "gap": None, "wall_s": 5.0, "chosen": False}
    earlier = [{**row, "task": "t", "recipe": "gone", "student": 88.1, "student_int8_b1_ms": 0.8,
                "status": "finished", "chosen": True},
               {**row, "task": "t", "recipe": "here", "student": 70.0, "status": "finished"},
               {**row, "task": "t", "recipe": "never", "student": None, "status": "not started"},
               {**row, "task": "t", "recipe": "again", "student": 89.9, "status": "finished"}]
    again = tmp_path / "trained-again"  # trained once more here, not finished yet: the finished row stays
    shutil.copytree(run, again)
    (again / "state.json").write_text(json.dumps({"finished": []}))
    spec = {"reference": {"t": 91.0}, "runs": [
        {"task": "t", "recipe": "gone", "run": str(tmp_path / "gone")},
        {"task": "t", "recipe": "here", "run": str(run), "chosen": True},
        {"task": "t", "recipe": "never", "run": str(tmp_path / "never")},
        {"task": "t", "recipe": "new", "run": str(tmp_path / "new")},
        {"task": "t", "recipe": "again", "run": str(again)}]}
    gone, here, never, new, retrained = distill_study.study(spec, previous=earlier)
    assert gone["measured"] == "earlier" and (gone["student"], gone["student_int8_b1_ms"]) == (88.1, 0.8)
    assert not gone["chosen"] and here["chosen"]  # the spec decides which run is chosen, not the earlier table
    assert here["measured"] == "here" and (here["student"], here["gap"]) == (90.0, 1.0)
    assert never["measured"] == new["measured"] == "here"  # nothing started earlier: nothing to keep
    assert never["status"] == new["status"] == "not started"
    assert (retrained["measured"], retrained["student"], retrained["status"]) == ("earlier", 89.9, "finished")
    assert "| earlier |" in distill_study.table([gone]) and "| here |" in distill_study.table([here])
