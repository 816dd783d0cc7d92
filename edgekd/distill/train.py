"""A small resumable training loop shared by every stage.

The batch order is a pure function of (seed, epoch), so a stage interrupted at
step k and resumed from its checkpoint sees exactly the batches an
uninterrupted run would; optimizer, scheduler and RNG state are restored too.
Under torchrun (WORLD_SIZE > 1) each rank takes its share of every batch and
gradients are averaged by DistributedDataParallel.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from edgekd.distill.batches import Batch, TokenizedData
from edgekd.config import Optim
from edgekd.distill.schedule import (
    CHECKPOINT,
    Checkpoint,
    EarlyStop,
    epoch_steps,
    lr_factor,
    patience_floor,
    steps_per_epoch,
    total_steps,
)

__all__ = ["CHECKPOINT", "barrier", "rank_world", "setup_distributed", "total_steps", "train_loop"]


def rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (no-op outside torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def setup_distributed(device: str) -> torch.device:
    """Pick the device; join the torchrun process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from runtime.errors import DeviceError

        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def plan_note(name: str, opt: Optim, rows: int) -> str:
    """What a stage will do, said before it starts."""
    steps = total_steps(opt, rows)
    per_epoch = steps_per_epoch(opt, rows)
    if opt.max_steps > 0:
        why = f"max_steps {opt.max_steps}"
    elif opt.patience:
        why = (f"until dev stops improving: scored every {opt.eval_every} steps, stop after {opt.patience} "
               f"evaluations without a gain of {opt.min_delta:g}, not before step {patience_floor(opt, rows)}" +
               (f", then anneal over {opt.patience * opt.eval_every} steps from the best" if opt.anneal else "") +
               f"; cap {steps} steps")
    elif opt.min_steps > epoch_steps(opt, rows):
        why = (f"min_steps {opt.min_steps} (the data-size schedule: {opt.epochs:g} epochs would be "
               f"{epoch_steps(opt, rows)})")
    else:
        why = f"{opt.epochs:g} epochs"
    return f"{name}: up to {steps} steps over {rows} rows ({steps / per_epoch:.1f} epochs; {why})"


def schedule_note(name: str, stats: dict, rows: int, opt: Optim) -> str:
    """One line saying what schedule a stage ran, why it stopped and which checkpoint it kept."""
    by_epochs = epoch_steps(opt, rows)
    why = (f"max_steps {opt.max_steps}" if opt.max_steps > 0 else stats.get("stopped") if opt.patience else
           f"min_steps {opt.min_steps} (the data-size schedule: {opt.epochs:g} epochs would be {by_epochs})"
           if opt.min_steps > by_epochs else f"{opt.epochs:g} epochs")
    note = (f"{name}: {stats['steps']} steps over {rows} rows "
            f"({stats['steps'] / steps_per_epoch(opt, rows):.1f} epochs; {why})")
    if "best_step" in stats:
        note += f"; kept step {stats['best_step']} (dev {stats['best_score']:.4f}; last {stats['last_score']:.4f})"
    return note


def train_loop(
    name: str,
    model: nn.Module,
    parameters: list[nn.Parameter],
    loss_fn: Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    data: TokenizedData,
    opt: Optim,
    seed: int,
    device: torch.device,
    checkpoint_dir: Path,
    on_step: Callable[[int], None] | None = None,
    evaluate: Callable[[], float] | None = None,
    head: list[nn.Parameter] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Train `parameters` of `model` for the stage's steps; resumable.

    `loss_fn(module, batch)` gets the (possibly DDP-wrapped) model. Returns
    {"steps", "seconds", "examples_per_s", "loss"}. `on_step(step)` is called
    after each finished step (tests use it to simulate an interruption).
    With `evaluate` (a dev score, higher is better) and opt.eval_every > 0 the
    model is scored every eval_every steps and at the end, and the best state is
    what the model holds on return ("best_step", "best_score" in the result). With opt.patience the stage
    stops once that many evaluations in a row gained less than opt.min_delta over the best, from the fixed
    schedule's length on (patience_floor) ("stopped" says why; the count is in the checkpoint, so a resumed
    stage stops where an uninterrupted one would).
    `head`: the newly initialised parameters among `parameters`, trained at opt.head_lr x opt.lr.
    `log` gets the plan before the first step and an estimate of the time after the first measured steps.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(checkpoint_dir / CHECKPOINT)
    steps = total_steps(opt, len(data))
    head_ids = {id(p) for p in head or []}
    groups = [{"params": [p for p in parameters if id(p) not in head_ids], "lr": opt.lr}]
    if head_ids:
        groups.append({"params": [p for p in parameters if id(p) in head_ids], "lr": opt.lr * opt.head_lr})
    optimizer = torch.optim.AdamW(groups, lr=opt.lr, weight_decay=opt.weight_decay)
    warm = max(1, int(opt.warmup * steps))
    stop = EarlyStop(opt.patience, opt.min_delta, patience_floor(opt, len(data)), steps, opt.anneal,
                     opt.patience * opt.eval_every)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warm, stop.cool))
    start = 0
    tracking = evaluate is not None and opt.eval_every > 0
    # A stage's randomness (dropout) starts from its own seed, not from whatever earlier stages in this
    # process consumed: a run killed before the stage's first checkpoint and resumed in a new process
    # then trains bit-for-bit like one that never stopped.
    torch.manual_seed(seed * 1009 + zlib.crc32(name.encode()) % 1009)
    if checkpoint.exists():  # (a stage interrupted while it cooled down goes on cooling down)
        start = checkpoint.load(model, optimizer, scheduler, stop)
    end = stop.cool.end if stop.cool else steps  # the last step: the cap, or the anneal's end
    if stop.stopped:
        start = end
    rank, world = rank_world()
    module = model
    trained = {id(p) for p in parameters}
    frozen = [p for p in model.parameters() if id(p) not in trained and p.requires_grad]
    for p in frozen:  # only what this stage trains takes gradients (and DDP reduces only those)
        p.requires_grad_(False)
    if world > 1:
        module = nn.parallel.DistributedDataParallel(model,
                                                     device_ids=[device.index] if device.type == "cuda" else None,
                                                     find_unused_parameters=True)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else torch.autocast("cpu", enabled=False))
    micro = opt.batch_size // opt.grad_accum
    model.train()
    say = log if log is not None and rank == 0 else (lambda _: None)
    say(plan_note(name, opt, len(data)) + (f"; resuming at step {start}" if start else ""))
    tty = sys.stderr.isatty()
    bar = tqdm(total=end, initial=start, desc=name, unit="step", disable=rank != 0,
               mininterval=0.5 if tty else 30.0, dynamic_ncols=True)
    began, seen, loss_value = time.perf_counter(), 0, float("nan")
    earlier_seconds, earlier_seen = checkpoint.spent  # what the processes before this one spent on the stage

    def spent() -> tuple[float, int]:  # seconds and examples of every process that trained the stage so far
        return earlier_seconds + time.perf_counter() - began, earlier_seen + seen

    first_losses: list[float] = []  # the first steps' losses (golden tests pin them)
    interrupted = _StopRequests()
    try:
        step = start
        while step < end:
            if step == start + ESTIMATE_AFTER:
                per_step = (time.perf_counter() - began) / ESTIMATE_AFTER
                say(f"{name}: {per_step:.2f} s a step here; the {end - step} steps left take up to "
                    f"{_duration(per_step * (end - step))}")
            index = data.step_rows(step, opt.batch_size, seed)
            index = index[rank::world]
            optimizer.zero_grad(set_to_none=True)
            parts_total: dict[str, float] = {}
            loss_sum = 0.0
            for chunk in index.split(micro) if len(index) else []:
                batch = data.batch(chunk, device)
                with amp:
                    loss, parts = loss_fn(module, batch)
                (loss * len(chunk) / max(1, len(index))).backward()
                loss_sum += float(loss.detach()) * len(chunk) / max(1, len(index))
                for k, v in parts.items():
                    parts_total[k] = parts_total.get(k, 0.0) + float(v) * len(chunk) / max(1, len(index))
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            seen += len(index) * world
            loss_value = loss_sum
            if step < 3:
                first_losses.append(loss_sum)
            bar.set_postfix(loss=f"{loss_sum:.4f}", **{k: f"{v:.3f}" for k, v in parts_total.items()},
                            ex_s=f"{seen / (time.perf_counter() - began):.0f}", refresh=False)
            bar.update(1)
            step = done = step + 1
            decision = "go"
            if tracking and (done % opt.eval_every == 0 or done == end):
                decision = stop.update(evaluate_now(model, evaluate), done, lambda: _state_copy(model),
                                       lr_factor(done, steps, warm))
                say(f"{name}: step {done} dev {stop.last:.4f} (best {stop.score:.4f} at step {stop.step})")
                if decision == "anneal":  # back to the best checkpoint; the learning rate falls from here to 0
                    model.load_state_dict(stop.state)
                    end = bar.total = stop.cool.end
                    say(f"{name}: {stop.patience_stop}; annealing the learning rate to 0 over {stop.cool.steps} "
                        "steps from the best checkpoint")
            if rank == 0 and (done % opt.checkpoint_every == 0 or done == end or decision != "go"):
                checkpoint.save(model, optimizer, scheduler, done, stop, spent())
            if on_step is not None:
                on_step(done)
            if decision == "stop":
                say(f"{name}: stopped at step {done}: {stop.stopped}")
                break
            if interrupted.requested:  # Ctrl-C or SIGTERM during the step: save it, then stop
                if rank == 0:
                    checkpoint.save(model, optimizer, scheduler, done, stop, spent())
                say(f"{name}: interrupted ({interrupted.requested}) after step {done}; its checkpoint is saved: "
                    f"run the same command again to resume from step {done}")
                raise KeyboardInterrupt
    finally:
        interrupted.restore()
    bar.close()
    for p in frozen:
        p.requires_grad_(True)
    model.eval()
    seconds, examples = spent()
    ran = stop.at if stop.seen else end  # the step the stage ended at (stopped on dev, or the last)
    stats = {"steps": ran, "seconds": round(seconds, 2), "examples_per_s": round(examples / max(seconds, 1e-9), 1),
             "loss": loss_value, "first_losses": first_losses}
    if stop.seen:
        if stop.step != ran:
            model.load_state_dict(stop.state)
        stats.update(best_step=stop.step, best_score=stop.score, last_score=stop.last)
        if stop.stopped:
            stats["stopped"] = stop.stopped
    return stats


def evaluate_now(model: nn.Module, evaluate: Callable[[], float]) -> float:
    """The dev score of the model as it is now (in eval mode, without gradients)."""
    model.eval()
    with torch.no_grad():
        score = float(evaluate())
    model.train()
    return score


def _state_copy(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


ESTIMATE_AFTER = 20  # steps measured before the time left is estimated


class _StopRequests:
    """While a stage trains, SIGINT (Ctrl-C) and SIGTERM only ask it to stop: the step in progress finishes,
    its checkpoint is saved, and KeyboardInterrupt is raised, so nothing before the kill is lost and the resume
    is exact. Where handlers cannot be installed (not the main thread) signals act as usual."""

    def __init__(self):
        import signal

        self.requested = ""
        self._saved = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._saved[sig] = signal.signal(sig, self._ask)
            except ValueError:  # not the main thread
                pass

    def _ask(self, signum, frame):
        import signal

        if self.requested:  # a second Ctrl-C: stop now
            self.restore()
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        import signal

        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved = {}


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"
