"""The schedule of one training stage, as records a reader can hold: how many steps (pure functions of the options
and the rows), the learning rate at each step (a pure function), when to stop on dev (`EarlyStop.update`, one
decision per evaluation) and the checkpoint that carries all of it across an interruption."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgekd.config import Optim
from runtime.files import atomic_write

CHECKPOINT = "checkpoint.pt"


def steps_per_epoch(opt: Optim, rows: int) -> int:
    return max(1, math.ceil(rows / opt.batch_size))


def epoch_steps(opt: Optim, rows: int) -> int:
    """The steps opt.epochs make over `rows` rows (before min_steps / max_steps)."""
    return max(1, math.ceil(opt.epochs * steps_per_epoch(opt, rows)))


def total_steps(opt: Optim, rows: int) -> int:
    """max_steps when given; else the epochs' steps (the cap, max_epochs, when patience decides), at least
    min_steps (the data-size schedule)."""
    if opt.max_steps > 0:
        return opt.max_steps
    epochs = opt.max_epochs if opt.patience and opt.max_epochs else opt.epochs
    return max(max(1, math.ceil(epochs * steps_per_epoch(opt, rows))), opt.min_steps)


def patience_floor(opt: Optim, rows: int) -> int:
    """The step before which patience does not stop a stage: the fixed schedule's length (`epochs`, at least
    min_steps), so a stage that stops on dev trains at least as long as it would without patience
    (benchmarks/results/qqp_schedule.md)."""
    return min(max(epoch_steps(opt, rows), opt.min_steps), total_steps(opt, rows))


@dataclass
class Cooldown:
    """The anneal after patience stopped a stage: from step `start` the learning rate falls linearly from
    `scale` (the schedule's factor at the stop) to 0 over `steps` steps."""

    start: int
    steps: int
    scale: float

    @property
    def end(self) -> int:
        return self.start + self.steps

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start, "steps": self.steps, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict | None) -> Cooldown | None:
        return cls(data["from"], data["steps"], data["scale"]) if data else None


def lr_factor(step: int, total: int, warm: int, cool: Cooldown | None = None) -> float:
    """The learning rate at `step` as a multiple of the stage's: a linear warm-up over `warm` steps, then a
    linear fall to 0 at `total`; during a cooldown, from its scale to 0 at its end."""
    if cool is not None:
        return cool.scale * max(0.0, (cool.end - step) / cool.steps)
    return min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))


@dataclass
class EarlyStop:
    """The best dev score so far and its model state, and the patience that stops a stage: `update(score, step)`
    after each evaluation says whether to go on, stop, or anneal from the best checkpoint."""

    patience: int = 0
    min_delta: float = 0.0
    floor: int = 0  # patience waits for this step (patience_floor)
    cap: int = 0  # the schedule's last step (total_steps)
    anneal: bool = True
    anneal_steps: int = 0  # patience x eval_every
    # the record (what the checkpoint keeps)
    score: float | None = None  # the best dev score
    step: int = 0  # where it was reached
    state: dict | None = field(default=None, repr=False)  # a CPU copy of the model's state there
    last: float | None = None  # the latest score
    stale: int = 0  # evaluations in a row that gained less than min_delta over the best
    at: int = 0  # the step of the latest evaluation
    stopped: str = ""  # why the stage stopped on dev
    patience_stop: str = ""  # why patience stopped it, while it anneals
    cool: Cooldown | None = None

    @property
    def seen(self) -> bool:
        return self.score is not None

    def record(self, score: float, step: int, state_fn) -> None:
        """A new dev score at `step`; `state_fn()` copies the model's state when it is the best so far."""
        if not self.seen or score > self.score:
            self.stale = 0 if not self.seen or score >= self.score + self.min_delta else self.stale + 1
            self.score, self.step, self.state = score, step, state_fn()
        else:
            self.stale += 1
        self.last, self.at = score, step

    def update(self, score: float, step: int, state_fn, lr_now: float = 1.0) -> str:
        """Record `score` at `step` and decide: "go" on, "stop" (the stage is done), or "anneal" (patience ran
        out: go back to the best state, `self.cool` says how the learning rate falls from `lr_now` to 0)."""
        self.record(score, step, state_fn)
        if self.cool is not None:
            if step == self.cool.end:
                kept = (f"dev {self.score:.4f} at step {self.step}, kept" if self.step > self.cool.start
                        else f"dev {self.last:.4f} at the end, no gain: kept step {self.step}")
                self.stopped = f"{self.patience_stop}; then annealed over {self.cool.steps} steps: {kept}"
                self.patience_stop = ""
                return "stop"
            return "go"
        if step == self.cap and self.patience:
            self.stopped = f"reached the cap of {self.cap} steps"
            return "go"
        if self.patience and self.stale >= self.patience and step >= self.floor:
            why = (f"no dev gain of {self.min_delta:g} in {self.patience} evaluations (best {self.score:.4f} at "
                   f"step {self.step})")
            if self.anneal:
                self.cool, self.patience_stop = Cooldown(step, self.anneal_steps, lr_now), why
                return "anneal"
            self.stopped = why
            return "stop"
        return "go"

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's "best" entry ({} before the first evaluation)."""
        if not self.seen:
            return {}
        out = {"score": self.score, "step": self.step, "state": self.state, "last": self.last, "stale": self.stale,
               "at": self.at}
        if self.cool is not None:
            out["cool"] = self.cool.to_dict()
        if self.patience_stop:
            out["patience_stop"] = self.patience_stop
        if self.stopped:
            out["stopped"] = self.stopped
        return out

    def restore(self, data: dict | None) -> None:
        """Take back what `to_dict` saved."""
        data = data or {}
        if not data:
            return
        self.score, self.step, self.state = data["score"], data["step"], data["state"]
        self.last, self.stale, self.at = data["last"], data.get("stale", 0), data.get("at", data["step"])
        self.cool = Cooldown.from_dict(data.get("cool"))
        self.patience_stop, self.stopped = data.get("patience_stop", ""), data.get("stopped", "")


@dataclass
class Checkpoint:
    """What a stage saves to resume exactly: the model, optimizer, scheduler and RNG state, the step reached, the
    early-stop record and what the stage has cost so far (`stages/<name>/checkpoint.pt`). `spent` is that cost,
    (seconds, examples), as the last `load` found it: a resumed stage reports the time of every process that
    trained it, not only the last one's."""

    path: Path
    spent: tuple[float, int] = (0.0, 0)

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, model, optimizer, scheduler, step: int, stop: EarlyStop,
             spent: tuple[float, int] = (0.0, 0)) -> None:
        state = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "rng": torch.get_rng_state(),
            "best": stop.to_dict() or None,
            "spent": {"seconds": float(spent[0]), "examples": int(spent[1])},
        }
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))

    def load(self, model, optimizer, scheduler, stop: EarlyStop) -> int:
        """Restore everything into the given objects; returns the step to go on from."""
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        stop.restore(state.get("best"))
        spent = state.get("spent") or {}  # (checkpoints written before it was kept: nothing known)
        self.spent = (spent.get("seconds", 0.0), spent.get("examples", 0))
        return state["step"]
