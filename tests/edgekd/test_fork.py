"""`edgekd distill --from RUN`: a variant takes over the source's stages it shares and trains the rest."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.config import ConfigError, DistillConfig
from edgekd.distill.fork import stages_to_take
from edgekd.distill.model import EarlyExitStudent
from edgekd.distill.pipeline import distill
from tests.conftest import tiny_config

STEPS = dict(stages=["teacher", "finetune", "branches"], seed=3, teacher_stage={"max_steps": 4},
             finetune={"max_steps": 4}, branches={"max_steps": 3})


def _weights(run):
    return EarlyExitStudent.load(run / "student").state_dict()


def test_a_variant_trains_only_what_changed_and_equals_the_same_run_from_scratch(tiny_teacher_dir, tiny_data,
                                                                                  tmp_path):
    source = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "source", **STEPS), log=lambda _: None)
    before = {f: (source / f).read_text() for f in ("state.json", "metrics.json", "config.json")}
    longer = {**STEPS, "branches": {"max_steps": 7}}
    logs = []
    variant = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "variant", **longer), log=logs.append,
                      source=source)
    fresh = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "fresh", **longer), log=lambda _: None)

    said = "\n".join(logs)
    assert "took over teacher, finetune" in said and "branches.max_steps 3 -> 7" in said, said
    assert "stage finetune: already finished, skipping" in logs and "stage branches" in logs
    # the stages taken over are the source's files, not copies
    for path in ("teacher/model.safetensors", "stages/finetune/student/model.safetensors"):
        assert (variant / path).stat().st_ino == (source / path).stat().st_ino, path
    a, b = _weights(variant), _weights(fresh)
    assert all(torch.equal(a[k], b[k]) for k in a), "the variant must equal the same config run from scratch"
    assert not all(torch.equal(a[k], v) for k, v in _weights(source).items()), "longer branches changed nothing"
    assert json.loads((variant / "config.json").read_text())["branches"]["max_steps"] == 7
    assert json.loads((variant / "state.json").read_text())["finished"] == ["teacher", "finetune", "branches"]
    assert {f: (source / f).read_text() for f in before} == before, "the source run must stay as it was"

    again = []  # the same command again resumes the variant: nothing retrains
    distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "variant", **longer), log=again.append, source=source)
    assert any("already a run" in line for line in again)
    assert all("already finished" in line for line in again if line.startswith("stage"))


def test_a_variant_with_other_data_or_student_is_refused_and_writes_nothing(finished_run, tmp_path):
    cfg = DistillConfig.load(finished_run / "config.json")
    cfg.out = str(tmp_path / "v")
    cfg.student.hidden, cfg.student.heads, cfg.seed = 48, 2, 7
    with pytest.raises(ConfigError, match=r"student.hidden 32 -> 48.*seed 42 -> 7|seed.*student.hidden") as err:
        distill(cfg, log=lambda _: None, source=finished_run)
    assert "Only the stages' options" in str(err.value)
    assert not (tmp_path / "v").exists()
    cfg = DistillConfig.load(finished_run / "config.json")
    cfg.out = str(tmp_path / "w")
    with pytest.raises(ConfigError, match="not a run folder"):
        distill(cfg, log=lambda _: None, source=tmp_path)
    assert not (tmp_path / "w").exists()


def test_the_take_over_stops_at_the_first_stage_that_differs():
    cfg = DistillConfig().to_dict()
    new = {**cfg, "stages": ["teacher", "attention", "finetune", "branches"]}
    done = ["teacher", "attention", "finetune", "branches"]
    assert stages_to_take(cfg, new, done) == (done, "")
    other = {**new, "attention": {**cfg["attention"], "relations": "qkv"}}
    kept, why = stages_to_take(cfg, other, done)
    assert kept == ["teacher"] and why.startswith("the attention stage's settings differ (attention.relations")
    assert stages_to_take(cfg, {**new, "teacher_stage": {**cfg["teacher_stage"], "keep": "loss"}}, done)[0] == []
    # a stage the source has not finished, or one it ran and the variant leaves out, ends the take-over
    assert stages_to_take(cfg, new, ["teacher", "attention"]) == (["teacher", "attention"],
                                                                   "the source run has not finished finetune")
    kept, why = stages_to_take(cfg, new, ["teacher", "refine", "attention", "finetune"])
    assert kept == ["teacher"] and "leaves out refine" in why


def test_the_command_line_makes_a_variant_from_a_copy_of_the_runs_config(finished_run, tmp_path):
    config = json.loads((finished_run / "config.json").read_text())
    config["branches"]["lr"] = config["branches"]["lr"] * 2
    (tmp_path / "variant.json").write_text(json.dumps(config))
    out = tmp_path / "heads"
    result = CliRunner().invoke(app, ["distill", "--config", str(tmp_path / "variant.json"), "--out", str(out),
                                      "--from", str(finished_run)])
    assert result.exit_code == 0, result.output
    assert "took over teacher, attention, baseline, finetune" in result.output
    assert json.loads((out / "metrics.json").read_text()).keys() == json.loads(
        (finished_run / "metrics.json").read_text()).keys()
    assert (out / "student" / "model.safetensors").is_file()


def test_the_take_over_copies_the_teachers_work_only_with_the_teacher_and_writes_the_new_state(tmp_path):
    from edgekd.run_folder import RunFolder, write_json

    src = RunFolder(tmp_path / "src")
    for path in (src.labels, src.task, src.tokenizer, src.teacher_logits, src.refined_logits,
                 src.teacher / "model.safetensors", src.transfer / "logits.pt",
                 src.stage("teacher") / "x", src.stage("refine") / "x", src.stage("finetune") / "student" / "w"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    write_json(src.state, {"finished": ["teacher", "refine", "finetune"]})
    write_json(src.metrics, {"teacher": {"s": 1}, "refine": {"s": 2}, "finetune": {"s": 3}})

    def names(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    fresh_teacher = RunFolder(tmp_path / "a")
    fresh_teacher.take_over(src, [], teacher=False, save_config=lambda p: p.write_text("{}"))
    assert names(fresh_teacher.root) == ["config.json", "labels.json", "metrics.json", "state.json", "task.json",
                                         "tokenizer.json"]
    assert fresh_teacher.finished() == [] and json.loads(fresh_teacher.metrics.read_text()) == {}

    kept = RunFolder(tmp_path / "b")
    kept.take_over(src, ["teacher", "refine"], teacher=True, save_config=lambda p: p.write_text("{}"))
    assert "refined_logits.pt" in names(kept.root) and "transfer/logits.pt" in names(kept.root)
    assert "teacher/model.safetensors" in names(kept.root) and "stages/refine/x" in names(kept.root)
    assert not kept.stage("finetune").exists() and not kept.student.exists()
    assert kept.finished() == ["teacher", "refine"]
    assert json.loads(kept.metrics.read_text()) == {"teacher": {"s": 1}, "refine": {"s": 2}}
