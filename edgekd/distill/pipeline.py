"""`edgekd distill`: run the configured stages, in order, into a run folder, resumably.

The stages live in `edgekd/distill/stages/` (one module each); the run folder's layout in
`edgekd/run_folder.py`. This file only orders them: a finished stage is skipped, an
interrupted one resumes from its last checkpoint, and the last student is published
as the self-contained `student/` folder that `edgekd export` reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from edgekd.run_folder import read_json
from edgekd.config import CONFIG_FILE, STUDENT_STAGES, ConfigError, DistillConfig
from edgekd.distill.stages import REGISTRY, RunContext
from edgekd.distill.stages.context import Log
from edgekd.distill.train import CHECKPOINT, barrier, rank_world

# Which stage's student becomes the run's student: the latest that finished.
PUBLISH_ORDER = tuple(reversed(STUDENT_STAGES))


def run_stages(ctx: RunContext):
    for name, stage in REGISTRY.items():
        if name not in ctx.cfg.stages:
            continue
        if name in ctx.run.finished():
            ctx.log(f"stage {name}: already finished, skipping")
            continue
        ctx.log(f"stage {name}")
        result = stage.run(ctx)
        if ctx.rank == 0:
            ctx.run.record(name, result)
            ctx.run.mark_finished(name)
            if not ctx.cfg.keep_checkpoints:  # resume state of a finished stage: nothing later reads it
                (ctx.run.stage(name) / CHECKPOINT).unlink(missing_ok=True)
        barrier()
        if getattr(stage, "reports", "dev_accuracy") == "loss" and "loss" in result:
            ctx.log(f"stage {name}: final loss {result['loss']:.4f} ({stage.loss_name}; a fixed schedule: it has no "
                    "dev measure of its own)")
        elif "dev_accuracy" in result:
            f1 = f" (F1 {100 * result['dev_f1']:.2f}%)" if "dev_f1" in result else ""
            ctx.log(f"stage {name}: dev accuracy {100 * result['dev_accuracy']:.2f}%{f1}")
        elif any(k in result for k in ("dev_micro_f1", "dev_pearson")):
            ctx.log(f"stage {name}: dev " + ", ".join(f"{k[4:].replace('_', '-')} {100 * v:.2f}"
                                                      for k, v in result.items() if k.startswith("dev_")))
    below_baseline(ctx)
    if ctx.rank == 0:
        for name in PUBLISH_ORDER:
            if ctx.run.stage_student(name).is_dir():
                ctx.run.publish_student(name, ctx.cfg.data.max_length, ctx.text_pair)
                break
    barrier()
    size = sum(p.stat().st_size for p in ctx.run.root.rglob("*") if p.is_file())
    ctx.log(f"run folder {ctx.run.root}: {size / 1e6:.0f} MB" + ("" if ctx.cfg.keep_checkpoints else
            " (finished stages' resume checkpoints removed; --keep-checkpoints keeps them)"))
    return ctx.run.root


def below_baseline(ctx: RunContext) -> None:
    """Warn when the distilled student ends below the same student trained on cross-entropy alone (the
    baseline stage): distillation hurt, which a user should hear about."""
    metrics = read_json(ctx.run.metrics, {})
    key = f"dev_{ctx.task.main_metric}"
    final = metrics.get("finetune", {}).get(key)
    base = metrics.get("baseline", {}).get(key)
    if final is not None and base is not None and final < base:
        ctx.log(f"warning: the distilled student scores {100 * final:.2f} ({ctx.task.main_metric}, dev) against "
                f"{100 * base:.2f} for the same student trained on cross-entropy alone: distillation hurt here; "
                "check the teacher's dev score, the transfer set and the finetune schedule")


def distill(cfg: DistillConfig, log: Log = print, on_step: Callable[[str, int], None] | None = None,
            overwrite: bool = False, source: str | Path | None = None):
    """Run the configured stages into `cfg.out`; finished stages are skipped, an
    interrupted stage resumes from its last checkpoint. `overwrite` removes an existing
    run folder first; `source` (--from) starts a new run from another run's finished stages that
    this config shares (edgekd.distill.fork). When the run cannot start (bad data, bad flags, a
    teacher that does not load), a folder this call created is removed again: nothing half-made is left."""
    root = Path(cfg.out)
    if overwrite and root.exists():
        if not (root / CONFIG_FILE).is_file() and any(root.iterdir()):
            raise ConfigError([f"{root} is not a run folder (no {CONFIG_FILE}); refusing to remove it for --overwrite"])
        shutil.rmtree(root)
    created = not root.exists()
    try:
        ctx = RunContext(cfg, log, on_step, source)
    except BaseException:
        if created and rank_world()[0] == 0:
            shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        return run_stages(ctx)
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (which says so itself): how to go on
        log(f"interrupted: {root} keeps every finished stage, the transfer set once built and the last checkpoint; "
            "run the same command again to resume")
        raise
