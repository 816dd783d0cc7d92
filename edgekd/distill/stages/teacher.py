"""Stage `teacher`: fine-tune the teacher backbone + classifier on the labelled rows
(skipped when the checkpoint already has a task head)."""

from __future__ import annotations

import shutil

import torch

from edgekd.distill.evaluate import classifier_logits
from edgekd.distill.teacher import has_task_head, head_parameters, load_teacher, segment_kwargs
from edgekd.distill.train import barrier, schedule_note, train_loop
from edgekd.distill.dev import dev_score, dev_scores
from edgekd.distill.factory import start_at_mean
from edgekd.distill.stages.context import RunContext, classifier_loss
from runtime.files import atomic_folder


class TeacherStage:
    name = "teacher"

    def run(self, ctx: RunContext) -> dict:
        stats: dict = {}
        has_head = has_task_head(ctx.cfg.teacher, len(ctx.labels), ctx.cfg.offline, ctx.problem)
        if has_head and not ctx.cfg.teacher_stage.force:
            ctx.log("teacher already has a task head; skipping its fine-tuning (teacher_stage.force to redo)")
            model = load_teacher(ctx.cfg.teacher, len(ctx.labels), ctx.cfg.offline, ctx.labels,
                                 ctx.problem).to(ctx.device)
        else:
            torch.manual_seed(ctx.cfg.seed)
            model = load_teacher(ctx.cfg.teacher, len(ctx.labels), ctx.cfg.offline, ctx.labels,
                                 ctx.problem).to(ctx.device)
            if not has_head:
                start_at_mean(ctx, [model.classifier])  # a new head, not one that teacher_stage.force retrains
            rows = ctx.full_train_set.subset(ctx.cfg.teacher_stage.max_train or None)
            data = ctx.train if len(rows) == len(ctx.train_set) else ctx.tokenized(rows)

            stats = train_loop("teacher", model, list(model.parameters()),
                               classifier_loss(ctx.problem, ctx.loss_scale), data, ctx.cfg.teacher_stage,
                               ctx.cfg.seed, ctx.device, ctx.run.stage("teacher"), ctx.step_hook("teacher"),
                               evaluate=lambda: dev_score(ctx, lambda i, m, t: model(
                                   input_ids=i, attention_mask=m, **segment_kwargs(model, t)).logits,
                                   keep=ctx.cfg.teacher_stage.keep),
                               head=head_parameters(model), log=ctx.log)
            ctx.log(schedule_note("teacher", stats, len(data), ctx.cfg.teacher_stage))
        if ctx.rank == 0:
            with atomic_folder(ctx.run.teacher) as tmp:
                model.save_pretrained(str(tmp), safe_serialization=True)
                shutil.copyfile(ctx.run.tokenizer, tmp / ctx.run.tokenizer.name)
        barrier()
        ctx.reset_teacher()
        teacher = ctx.teacher()
        logits = classifier_logits(lambda i, m, t: teacher(i, m, t).logits, ctx.dev, ctx.device)
        return {**dev_scores(ctx, logits), **stats}
