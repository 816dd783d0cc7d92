"""The schedule as records (edgekd/distill/schedule.py): a pure learning-rate schedule, one early-stop decision per
evaluation, and a checkpoint that carries both across an interruption."""

from __future__ import annotations

import pytest
import torch

from edgekd.distill.schedule import Checkpoint, Cooldown, EarlyStop, lr_factor


def test_the_learning_rate_warms_up_falls_to_zero_and_cools_down_from_the_stop():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1) and lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5) and lr_factor(100, 100, 10) == 0.0
    cool = Cooldown(start=40, steps=20, scale=0.6)
    assert lr_factor(40, 100, 10, cool) == pytest.approx(0.6) and lr_factor(50, 100, 10, cool) == pytest.approx(0.3)
    assert lr_factor(60, 100, 10, cool) == 0.0 and cool.end == 60


def test_patience_stops_only_after_the_floor_and_anneals_from_the_best():
    stop = EarlyStop(patience=2, min_delta=0.01, floor=30, cap=100, anneal=True, anneal_steps=20)
    states = iter(range(100))
    copy = lambda: {"at": next(states)}  # noqa: E731
    assert stop.update(0.50, 10, copy) == "go" and stop.step == 10
    assert stop.update(0.505, 20, copy) == "go" and stop.stale == 1 and stop.step == 20  # better, but < min_delta
    assert stop.update(0.40, 30, copy, lr_now=0.7) == "anneal"  # stale 2 at the floor
    assert stop.cool == Cooldown(30, 20, 0.7) and stop.score == 0.505 and stop.state == {"at": 1}
    assert stop.update(0.51, 40, copy) == "go"
    assert stop.update(0.49, 50, copy) == "stop"
    assert "annealed over 20 steps: dev 0.5100 at step 40, kept" in stop.stopped and stop.step == 40


def test_without_anneal_patience_stops_and_the_cap_is_named():
    stop = EarlyStop(patience=1, floor=0, cap=30, anneal=False)
    stop.update(0.5, 10, dict)
    assert stop.update(0.4, 20, dict) == "stop" and "no dev gain" in stop.stopped
    capped = EarlyStop(patience=3, floor=0, cap=20)
    capped.update(0.5, 10, dict)
    assert capped.update(0.6, 20, dict) == "go" and capped.stopped == "reached the cap of 20 steps"


def test_the_checkpoint_round_trips_the_early_stop_record(tmp_path):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    stop = EarlyStop(patience=2, floor=0, cap=50, anneal_steps=10)
    stop.update(0.3, 5, lambda: {"w": torch.ones(1)})
    stop.cool, stop.patience_stop = Cooldown(5, 10, 0.5), "why"
    Checkpoint(tmp_path / "c.pt").save(model, optimizer, scheduler, 7, stop, spent=(12.5, 112))
    again = EarlyStop(patience=2, floor=0, cap=50, anneal_steps=10)
    loaded = Checkpoint(tmp_path / "c.pt")
    assert loaded.load(model, optimizer, scheduler, again) == 7 and loaded.spent == (12.5, 112)
    assert (again.score, again.step, again.cool, again.patience_stop) == (0.3, 5, Cooldown(5, 10, 0.5), "why")
    assert torch.equal(again.state["w"], torch.ones(1))
    older = torch.load(tmp_path / "c.pt", weights_only=True)  # a checkpoint from before the cost was kept
    del older["spent"]
    torch.save(older, tmp_path / "old.pt")
    kept = Checkpoint(tmp_path / "old.pt")
    assert kept.load(model, optimizer, scheduler, EarlyStop()) == 7 and kept.spent == (0.0, 0)


def test_the_teacher_checkpoint_can_be_kept_by_its_dev_loss(tiny_teacher_dir, tiny_data, tmp_path):
    """Issue 41's lever: teacher_stage.keep "loss" keeps the checkpoint with the lowest dev loss (scored as minus
    the loss, so higher is still better)."""
    import json

    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher"],
                              teacher_stage={"keep": "loss", "eval_every": 2}), log=lambda _: None)
    teacher = json.loads((run / "metrics.json").read_text())["teacher"]
    assert teacher["best_score"] < 0 and teacher["best_step"] in (2, 4)
    assert json.loads((run / "config.json").read_text())["teacher_stage"]["keep"] == "loss"
