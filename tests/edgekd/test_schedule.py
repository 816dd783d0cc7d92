"""Schedules that stop on the data: patience over dev evaluations, a cap, the best checkpoint kept, resume
bit-exact from a kill between evaluations, explicit steps winning, and the head's own learning rate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgekd.distill.batches import TokenizedData
from edgekd.config import ConfigError, Optim, optim_overrides, resolve_config
from edgekd.testing.fixtures import tiny_sentiment, tiny_tokenizer
from edgekd.distill.train import plan_note, train_loop
from runtime.tokenize import TextEncoder
from tests.conftest import make_student


@pytest.fixture
def data(tmp_path):
    encoder = TextEncoder.from_file(tiny_tokenizer(tmp_path / "tok.json"), 24)
    rows = tiny_sentiment(64, seed=3)
    return TokenizedData(encoder, [t for t, _ in rows], [int(l == "positive") for _, l in rows])


def loss_fn(module, batch):
    return F.cross_entropy(module(batch.input_ids, batch.mask, exits=False).logits, batch.labels), {}


def scripted(scores):
    """An `evaluate` that returns the scripted dev scores in turn (and records how often it was called)."""
    calls = []

    def evaluate():
        calls.append(len(calls))
        return scores[len(calls) - 1]

    evaluate.calls = calls
    return evaluate


class Killed(Exception):
    """What a test's on_step raises to stop a stage the way a kill would."""


def run(student, data, tmp_path, opt, evaluate, **kw):
    return train_loop("t", student, list(student.parameters()), loss_fn, data, opt, 0, torch.device("cpu"),
                      tmp_path, evaluate=evaluate, **kw)


def test_patience_stops_after_exactly_patience_evaluations_without_gain(data, tmp_path):
    # evaluations at steps 2, 4, ...: a gain at 4, then 0.005 (< min_delta 0.01: no gain), two flat -> stop at 10
    scores = [0.50, 0.60, 0.605, 0.60, 0.59, 0.99, 0.99]
    evaluate = scripted(scores)
    opt = Optim(lr=1e-3, max_epochs=50, epochs=1, batch_size=16, eval_every=2, patience=3, min_delta=0.01,
                checkpoint_every=100, anneal=False)
    stats = run(make_student(seed=1), data, tmp_path / "a", opt, evaluate)
    assert len(evaluate.calls) == 5 and stats["steps"] == 10
    assert stats["stopped"] == "no dev gain of 0.01 in 3 evaluations (best 0.6050 at step 6)"
    assert stats["best_step"] == 6 and stats["best_score"] == 0.605  # the best checkpoint, though below delta
    # one evaluation fewer without gain does not stop
    evaluate = scripted([0.50, 0.60, 0.60, 0.60, 0.70, 0.70, 0.70, 0.70, 0.70])
    stats = run(make_student(seed=1), data, tmp_path / "b", Optim(**{**opt.__dict__, "patience": 4}), evaluate)
    assert stats["steps"] == 18 and stats["best_step"] == 10


def test_patience_does_not_stop_before_the_fixed_schedule_is_done(data, tmp_path):
    # 4 steps an epoch; epochs 3 -> patience may stop from step 12 on. Flat from the start: without the floor
    # patience 2 would stop at step 6; with it the first evaluation at or after step 12 stops the stage
    evaluate = scripted([0.5] * 20)
    opt = Optim(lr=1e-3, max_epochs=50, epochs=3, batch_size=16, eval_every=2, patience=2, checkpoint_every=100,
                anneal=False)
    stats = run(make_student(seed=1), data, tmp_path / "a", opt, evaluate)
    assert stats["steps"] == 12 and len(evaluate.calls) == 6 and stats["best_step"] == 2
    assert stats["stopped"] == "no dev gain of 0.001 in 2 evaluations (best 0.5000 at step 2)"
    # min_steps raises the floor like epochs does; the plan says it
    opt = Optim(**{**opt.__dict__, "min_steps": 16})
    stats = run(make_student(seed=1), data, tmp_path / "b", opt, scripted([0.5] * 20))
    assert stats["steps"] == 16
    assert "not before step 16" in plan_note("t", opt, len(data))


def test_the_cap_stops_a_run_that_keeps_improving(data, tmp_path):
    evaluate = scripted([0.1 * i for i in range(1, 50)])
    opt = Optim(lr=1e-3, max_epochs=2, batch_size=16, eval_every=2, patience=2, checkpoint_every=100)
    stats = run(make_student(seed=1), data, tmp_path, opt, evaluate)
    assert stats["steps"] == 8 and stats["stopped"] == "reached the cap of 8 steps"  # 64 rows / 16 x 2 epochs
    assert stats["best_step"] == 8


def test_the_best_checkpoint_is_what_the_model_holds(data, tmp_path):
    states = []
    student = make_student(seed=1)
    scores = iter([0.5, 0.9, 0.4, 0.3])

    def evaluate():
        states.append({k: v.clone() for k, v in student.state_dict().items()})
        return next(scores)

    run(student, data, tmp_path, Optim(lr=1e-2, max_epochs=50, batch_size=16, eval_every=2, patience=2,
                                        checkpoint_every=100, anneal=False), evaluate)
    for key, value in student.state_dict().items():
        assert torch.equal(value, states[1][key]), key


# (anneal, scripted dev scores, kill point, steps): patience stops at 8 without the anneal (kills between
# evaluations); with it, at 8 patience hands over to 4 annealing steps (kills during the anneal). One kill of each
# kind runs in the fast tier, the second of each in the full one.
SLOW = pytest.mark.slow
RESUMES = [pytest.param(False, [0.5, 0.6, 0.6, 0.6, 0.6, 0.6], k, 8, marks=m) for k, m in ((3, ()), (7, SLOW))] + \
          [pytest.param(True, [0.5, 0.6, 0.55, 0.58, 0.61, 0.7], k, 12, marks=m) for k, m in ((9, ()), (11, SLOW))]


@pytest.mark.parametrize("anneal,scores,kill_at,steps", RESUMES)
def test_resume_from_a_kill_is_bit_exact(data, tmp_path, anneal, scores, kill_at, steps):
    opt = Optim(lr=1e-2 if anneal else 1e-3, max_epochs=50, batch_size=16, eval_every=2, patience=2,
                checkpoint_every=1 if anneal else 2, anneal=anneal)
    straight = make_student(seed=2)
    stats = run(straight, data, tmp_path / "a", opt, scripted(scores))

    def kill(step):
        if step == kill_at:
            raise Killed

    with pytest.raises(Killed):
        run(make_student(seed=2), data, tmp_path / "b", opt, scripted(scores), on_step=kill)
    resumed = make_student(seed=2)
    again = run(resumed, data, tmp_path / "b", opt, scripted(scores[kill_at // 2:]))  # evaluations not yet held
    assert again["steps"] == stats["steps"] == steps and again["stopped"] == stats["stopped"]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_stage_that_stopped_does_not_train_on_when_resumed(data, tmp_path):
    opt = Optim(lr=1e-3, max_epochs=50, batch_size=16, eval_every=2, patience=1, checkpoint_every=100, anneal=False)
    run(make_student(seed=1), data, tmp_path, opt, scripted([0.5, 0.4]))
    evaluate = scripted([0.9])
    student = make_student(seed=1)
    stats = run(student, data, tmp_path, opt, evaluate)
    assert evaluate.calls == [] and stats["steps"] == 4 and stats["stopped"].startswith("no dev gain")


def lr_trace(monkeypatch):
    """The backbone's learning rate used at each step (read after the step from the optimizer)."""
    seen, real = {}, torch.optim.AdamW

    def spy(groups, **kwargs):
        seen["optimizer"] = real(groups, **kwargs)
        return seen["optimizer"]

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    lrs = []
    return lrs, lambda step: lrs.append(seen["optimizer"].param_groups[0]["lr"])


def test_patience_then_anneals_from_the_best_checkpoint_to_zero(data, tmp_path, monkeypatch):
    # evaluations at 2, 4, 6, 8: best at 4, patience 2 runs out at 8 -> back to step 4's weights, then 2 x 2 steps
    # with the learning rate falling linearly to 0; a gain there (0.7 at step 12) is kept
    states, student = [], make_student(seed=1)
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.7])

    def evaluate():
        states.append({k: v.clone() for k, v in student.state_dict().items()})
        return next(scores)

    lrs, on_step = lr_trace(monkeypatch)
    at_anneal = {}

    def watch(step):
        on_step(step)
        if step == 8:  # the checkpoint written when the anneal begins holds the best (step 4) weights
            at_anneal.update(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"])

    opt = Optim(lr=1e-2, max_epochs=50, batch_size=16, eval_every=2, patience=2, checkpoint_every=100)
    lines = []
    stats = run(student, data, tmp_path, opt, evaluate, on_step=watch, log=lines.append)
    assert lines[0] == ("t: up to 200 steps over 64 rows (50.0 epochs; until dev stops improving: scored every 2 "
                        "steps, stop after 2 evaluations without a gain of 0.001, not before step 4, then anneal "
                        "over 4 steps from the best; cap 200 steps)")
    assert "t: no dev gain of 0.001 in 2 evaluations (best 0.6000 at step 4); annealing the learning rate to 0 over " \
           "4 steps from the best checkpoint" in lines
    for key, value in at_anneal.items():
        assert torch.equal(value, states[1][key]), key
    assert stats["steps"] == 12 and stats["best_step"] == 12 and stats["best_score"] == 0.7
    assert stats["stopped"] == ("no dev gain of 0.001 in 2 evaluations (best 0.6000 at step 4); then annealed over "
                                "4 steps: dev 0.7000 at step 12, kept")
    at_stop = lrs[7]  # the rate the schedule had when patience ran out (step 8)
    assert lrs[8:] == pytest.approx([at_stop * k / 4 for k in (3, 2, 1, 0)])
    for key, value in student.state_dict().items():
        assert torch.equal(value, states[-1][key]), key


def test_an_anneal_without_gain_keeps_the_best_checkpoint(data, tmp_path):
    states, student = [], make_student(seed=1)
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.6])

    def evaluate():
        states.append({k: v.clone() for k, v in student.state_dict().items()})
        return next(scores)

    opt = Optim(lr=1e-2, max_epochs=50, batch_size=16, eval_every=2, patience=2, checkpoint_every=100)
    stats = run(student, data, tmp_path, opt, evaluate)
    assert stats["steps"] == 12 and stats["best_step"] == 4 and stats["stopped"].endswith(
        "then annealed over 4 steps: dev 0.6000 at the end, no gain: kept step 4")
    for key, value in student.state_dict().items():
        assert torch.equal(value, states[1][key]), key


def test_explicit_steps_override_patience_and_presets_say_what_they_do():
    cfg = resolve_config(None, "quick",
                         {"teacher": "t", "out": "o", "data": {"train": "a", "dev": "b"}})
    assert cfg.teacher_stage.patience > 0 and cfg.teacher_stage.max_epochs > cfg.teacher_stage.epochs
    assert cfg.finetune.patience > 0
    flags = optim_overrides(None, 100, None)
    cfg = resolve_config(None, "quick", {"teacher": "t", "out": "o", "data": {"train": "a", "dev": "b"}, **flags})
    assert cfg.teacher_stage.patience == 0 and cfg.teacher_stage.max_steps == 100
    assert cfg.finetune.patience == 0 and cfg.finetune.max_epochs == 0


def test_the_head_learning_rate_reaches_the_optimizer(data, tmp_path, monkeypatch):
    seen = {}
    real = torch.optim.AdamW

    def spy(groups, **kwargs):
        optimizer = real(groups, **kwargs)
        seen["lrs"] = [g["lr"] for g in optimizer.param_groups]
        seen["sizes"] = [len(g["params"]) for g in optimizer.param_groups]
        return optimizer

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    student = make_student(seed=1)
    head = list(student.heads[-1].parameters())
    run(student, data, tmp_path, Optim(lr=1e-3, max_steps=1, batch_size=16, head_lr=10.0), None, head=head)
    assert seen["sizes"] == [len(list(student.parameters())) - len(head), len(head)]
    assert seen["lrs"][0] == pytest.approx(1e-3) and seen["lrs"][1] == pytest.approx(1e-2)


def test_the_log_says_the_plan_and_an_estimate(data, tmp_path):
    lines = []
    run(make_student(seed=1), data, tmp_path, Optim(lr=1e-3, max_steps=25, batch_size=16), None, log=lines.append)
    assert lines[0] == "t: up to 25 steps over 64 rows (6.2 epochs; max_steps 25)"
    assert lines[1].startswith("t: ") and "s a step here; the 5 steps left take up to" in lines[1]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_kill_saves_the_step_in_progress_and_resumes_exactly(data, tmp_path, sig):
    import os
    import signal

    opt = Optim(lr=1e-3, max_steps=6, batch_size=16, checkpoint_every=100)  # no checkpoint before the end
    straight = make_student(seed=4)
    run(straight, data, tmp_path / "a", opt, None)
    lines = []

    def kill(step):
        if step == 3:
            os.kill(os.getpid(), getattr(signal, sig))

    with pytest.raises(KeyboardInterrupt):
        run(make_student(seed=4), data, tmp_path / "b", opt, None, on_step=kill, log=lines.append)
    assert f"t: interrupted ({sig}) after step 3; its checkpoint is saved" in lines[-1]
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back
    resumed = make_student(seed=4)
    run(resumed, data, tmp_path / "b", opt, None)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_finished_stages_drop_their_resume_checkpoints_unless_kept(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    lines = []
    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "a", stages=["teacher", "finetune"]),
                  log=lines.append)
    assert not list(run.glob("stages/*/checkpoint.pt")) and (run / "student" / "model.safetensors").is_file()
    assert any(line.startswith(f"run folder {run}: ") and " MB" in line for line in lines)
    kept = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "b", stages=["teacher", "finetune"],
                               keep_checkpoints=True), log=lambda _: None)
    assert sorted(p.parent.name for p in kept.glob("stages/*/checkpoint.pt")) == ["finetune", "teacher"]


def test_the_schedule_table_puts_runs_side_by_side(tmp_path):
    import json

    from benchmarks.schedule_table import build, columns

    def stage(acc, steps, seconds, stopped=None):
        return {"dev_accuracy": acc, "steps": steps, "seconds": seconds, **({"stopped": stopped} if stopped else {})}

    old = {"teacher": stage(0.8, 100, 60.0), "finetune": stage(0.7, 200, 40.0)}
    (tmp_path / "old.json").write_text(json.dumps(old))
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"teacher": stage(0.9, 300, 120.0, "no dev gain"),
                                                  "finetune": stage(0.75, 200, 30.0, "no dev gain")}))
    md, data = build(columns([f"old={tmp_path / 'old.json'}", f"new={run}"]), {"new": "stops on dev"}, "t")
    assert "| teacher | 80.00 | 100 | 60 | 90.00 | 300 | 120 | new: no dev gain |" in md
    assert "| finetune | 70.00 | 200 | 40 | 75.00 | 200 | 30 | new: no dev gain |" in md
    assert data["total_seconds"] == {"old": 100.0, "new": 150.0} and data["wall_ratio"]["new"] == 1.5
    assert "- new: stops on dev" in md
    with pytest.raises(SystemExit, match="NAME=RUN_FOLDER"):
        columns(["just-a-path"])
    with pytest.raises(SystemExit, match="no run folder"):
        columns([f"x={tmp_path / 'missing'}"])


def test_the_quick_presets_transformer_shape_leaves_small_students_and_flags_alone(tmp_path):
    base = {"teacher": "t", "out": "o", "data": {"train": "a", "dev": "b"}}
    shape = lambda s: (s.kind, s.layers, s.hidden, s.heads, s.ffn)  # noqa: E731
    assert shape(resolve_config(None, "quick", base).student) == ("transformer", 4, 384, 12, 1536)
    quick = resolve_config(None, "quick", base).finetune  # copied layers at a fine-tuning rate, random ones at 1e-4
    assert (quick.copied_lr, quick.lr) == (3e-5, 1e-4) and resolve_config(None, None, base).finetune.copied_lr == 0
    assert shape(resolve_config(None, None, base).student) == ("transformer", 4, 256, 8, 1024)  # no preset
    flags = {**base, "student": {"hidden": 256, "heads": 8, "ffn": 1024}}  # the 4x256 student of earlier versions
    assert shape(resolve_config(None, "quick", flags).student) == ("transformer", 4, 256, 8, 1024)
    small = {**base, "stages": ["teacher", "baseline", "finetune"]}
    for kind in ("bilstm", "textcnn"):  # hidden is their LSTM units / filters: the dataclass's, or what is given
        assert resolve_config(None, "quick", {**small, "student": {"kind": kind}}).student.hidden == 256
        assert resolve_config(None, "quick", {**small, "student": {"kind": kind, "hidden": 128}}).student.hidden == 128
    config = tmp_path / "c.json"  # a config file counts as given
    config.write_text('{"student": {"kind": "bilstm", "hidden": 64}}')
    assert resolve_config(str(config), "quick", small).student.hidden == 64
    with pytest.raises(ConfigError, match="student.hidden 100 must divide by student.heads 12"):  # a transformer's
        resolve_config(None, "quick", {**base, "student": {"hidden": 100}})


def test_a_resumed_stage_reports_the_time_of_every_process_that_trained_it(data, tmp_path):
    """metrics.json's `seconds` is what the stage cost: a stage killed and resumed counts the killed process's
    time too (the study's wall times were short by it), and its examples a second over every step."""
    import time

    opt = Optim(lr=1e-3, max_steps=6, batch_size=16, checkpoint_every=1)

    def slow_then_kill(step):
        time.sleep(0.1)
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run(make_student(seed=4), data, tmp_path, opt, None, on_step=slow_then_kill)
    stats = run(make_student(seed=4), data, tmp_path, opt, None)
    # steps 1 and 2 slept before step 3's checkpoint (saved before on_step ran): at least 0.2 s were spent earlier
    assert stats["seconds"] >= 0.2 and stats["steps"] == 6
    assert stats["examples_per_s"] * stats["seconds"] == pytest.approx(6 * 16, rel=0.03)  # both are rounded
