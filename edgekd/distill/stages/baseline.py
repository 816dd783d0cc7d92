"""Stage `baseline`: the same student and schedule as `finetune`, cross-entropy only (for comparison)."""

from __future__ import annotations

from edgekd.distill.factory import new_student
from edgekd.distill.stages.context import RunContext
from edgekd.distill.stages.finetune import train_task


class BaselineStage:
    name = "baseline"

    def run(self, ctx: RunContext) -> dict:
        return train_task(ctx, "baseline", new_student(ctx), kd_weight=0.0)
