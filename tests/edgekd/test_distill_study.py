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
