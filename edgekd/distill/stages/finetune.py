"""Stage `finetune`: student backbone + trunk classifier on the labelled rows,
(1 - lambda) * gold loss + lambda * KD from the teacher's (or refined) logits, both by problem type
(edgekd.distill.losses.task_distillation)."""

from __future__ import annotations

from dataclasses import replace

import torch

from edgekd.config import FinetuneOptions
from edgekd.distill import losses
from edgekd.distill.dev import dev_score, student_dev
from edgekd.distill.factory import new_student
from edgekd.distill.transfer import transfer_set
from edgekd.distill.stages.context import RunContext
from edgekd.distill.batches import TokenizedData
from edgekd.distill.evaluate import segments
from edgekd.distill.train import schedule_note, train_loop


def finetune_options(ctx: RunContext) -> FinetuneOptions:
    """The finetune options this run trains with: at finetune.copied_lr (when set) for a transformer student whose
    layers start as a trained model's, a fine-tuning rate rather than the from-scratch finetune.lr."""
    f, s = ctx.cfg.finetune, ctx.cfg.student
    copied = s.kind == "transformer" and (bool(s.init_from) or ctx.init == "teacher")
    return replace(f, lr=f.copied_lr) if copied and f.copied_lr > 0 else f


def train_task(ctx: RunContext, name: str, student, kd_weight: float) -> dict:
    """Train `student` on the labelled rows: CE alone (kd_weight 0) or mixed with task distillation; with a
    transfer set (data.augment), KD on every row and CE on the labelled rows only (label -1 marks the rest)."""
    f = finetune_options(ctx)
    if f.lr != ctx.cfg.finetune.lr:
        ctx.log(f"{name}: learning rate {f.lr:g} (finetune.copied_lr: the student's layers are copied from a "
                f"trained model; finetune.lr {ctx.cfg.finetune.lr:g} is for students that start at random)")
    targets = ctx.train_targets() if kd_weight > 0 else None
    transfer = transfer_set(ctx) if kd_weight > 0 else None
    data = ctx.train
    if transfer is not None:
        labels = torch.cat([ctx.train.labels, ctx.label_tensor([None] * len(transfer.texts))])
        data = TokenizedData(ctx.encoder, ctx.train_set.texts + transfer.texts, labels,
                             torch.cat([targets.float().cpu(), transfer.logits.float()]))
        ctx.log(f"{name}: {len(ctx.train)} labelled rows (CE + KD) and {len(transfer.texts)} transfer rows (KD)")
    else:
        data.targets = targets

    def loss_fn(module, batch):
        logits = module(batch.input_ids, batch.mask, exits=False, **segments(batch)).logits
        if batch.targets is None:
            return ctx.gold_loss(logits, batch.labels), {}
        return losses.task_distillation(logits, batch.targets, batch.labels, f.kd, f.temperature, kd_weight,
                                        ctx.problem, ctx.loss_scale, ctx.rule_mask(batch))

    params = (student.backbone_parameters() + list(student.heads[-1].parameters()) if hasattr(student, "heads")
              else list(student.parameters()))
    try:
        head = list(student.heads[-1].parameters()) if hasattr(student, "heads") else None
        def trunk(i, m, t):
            return student(i, m, exits=False, **({} if t is None else {"token_type_ids": t})).logits

        stats = train_loop(name, student, params, loss_fn, data, f, ctx.cfg.seed, ctx.device, ctx.run.stage(name),
                           ctx.step_hook(name), evaluate=lambda: dev_score(ctx, trunk), head=head, log=ctx.log)
    finally:
        ctx.train.targets = None
    ctx.log(schedule_note(name, stats, len(data), f))
    ctx.save_student(name, student)
    return {**student_dev(ctx, student), **stats, "transfer_rows": 0 if transfer is None else len(transfer.texts)}


class FinetuneStage:
    name = "finetune"

    def run(self, ctx: RunContext) -> dict:
        student = ctx.latest_student("finetune") or new_student(ctx)
        return train_task(ctx, "finetune", student, ctx.cfg.finetune.kd_weight)
