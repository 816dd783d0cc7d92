"""`edgekd distill`: run the configured stages, in order, into a run folder, resumably.

The stages live in `edgekd/stages/` (one module each); the run folder's layout in
`edgekd/run_folder.py`. This file only orders them: a finished stage is skipped, an
interrupted one resumes from its last checkpoint, and the last student is published
as the self-contained `student/` folder that `edgekd export` reads.
"""

from __future__ import annotations

from typing import Callable

from edgekd.config import DistillConfig
from edgekd.stages import REGISTRY, RunContext
from edgekd.stages.context import Log
from edgekd.train import barrier

# Which stage's student becomes the run's student, in order of preference.
PUBLISH_ORDER = ("branches", "finetune", "attention")


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
        barrier()
        if "dev_accuracy" in result:
            ctx.log(f"stage {name}: dev accuracy {100 * result['dev_accuracy']:.2f}%")
    if ctx.rank == 0:
        for name in PUBLISH_ORDER:
            if ctx.run.stage_student(name).is_dir():
                ctx.run.publish_student(name, ctx.cfg.data.max_length)
                break
    barrier()
    return ctx.run.root


def distill(cfg: DistillConfig, log: Log = print, on_step: Callable[[str, int], None] | None = None):
    """Run the configured stages into `cfg.out`; finished stages are skipped, an
    interrupted stage resumes from its last checkpoint."""
    return run_stages(RunContext(cfg, log, on_step))
