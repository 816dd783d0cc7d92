"""Stage `branches`: every exit head self-distilled from the trunk on unlabelled text, the transfer set's
variants included when the run has one (KL(trunk || head); BCE to the trunk's sigmoids for multi-label; MSE to
its value for regression); backbone and trunk frozen."""

from __future__ import annotations

from edgekd.distill import losses
from edgekd.config import ConfigError
from edgekd.distill.evaluate import segments
from edgekd.distill.train import train_loop
from edgekd.distill.dev import student_dev
from edgekd.distill.transfer import unlabeled_data
from edgekd.distill.stages.context import RunContext


class BranchesStage:
    name = "branches"

    def run(self, ctx: RunContext) -> dict:
        student = ctx.latest_student("branches")
        if student is None:
            raise ConfigError(["the `branches` stage needs a trained student: run `finetune` first"])
        for p in student.parameters():
            p.requires_grad_(False)
        params = [p for head in student.heads[:-1] for p in head.parameters()]
        for p in params:
            p.requires_grad_(True)

        def loss_fn(module, batch):
            out = module(batch.input_ids, batch.mask, **segments(batch))
            return losses.branch_self_distillation(out.exit_logits, ctx.problem, ctx.loss_scale,
                                                   ctx.rule_mask(batch)), {}

        stats = train_loop("branches", student, params, loss_fn, unlabeled_data(ctx), ctx.cfg.branches, ctx.cfg.seed,
                           ctx.device, ctx.run.stage("branches"), ctx.step_hook("branches"), log=ctx.log)
        ctx.save_student("branches", student)
        return {**student_dev(ctx, student), **stats}
