"""A student or a teacher scored on the run's dev set: the problem type's metrics, and for a student every exit's
table over the speeds (what each stage records in metrics.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from edgekd.distill import losses
from edgekd.distill.evaluate import all_exit_logits, classifier_logits, exit_table, main_score, scores
from edgekd.distill.model import EarlyExitStudent
from runtime.exits import default_rule

if TYPE_CHECKING:
    from edgekd.distill.stages.context import RunContext


def student_dev(ctx: RunContext, student: EarlyExitStudent) -> dict:
    exits = all_exit_logits(student, ctx.dev, ctx.device)
    labels = ctx.dev.labels
    per_token = ctx.dev.per_token
    return {**dev_scores(ctx, exits[-1]),
            "exits": exit_table(exits, labels, ctx.cfg.eval_speeds, ctx.problem, ctx.exit_scale,
                                default_rule(ctx.problem).patience, ctx.labels if per_token else None,
                                ctx.dev.rule_mask(ctx.encoder.special_ids) if per_token else None)}


def dev_scores(ctx: RunContext, logits: torch.Tensor) -> dict:
    """Every metric of the problem type on dev, as dev_<metric>: dev_accuracy (and dev_f1, the positive
    class's F1 on a binary task, as GLUE reports for QQP and MRPC); dev_micro_f1, dev_macro_f1;
    dev_pearson, dev_spearman; dev_entity_f1, dev_entity_precision, dev_entity_recall, dev_entity_f1_strict."""
    return {f"dev_{k}": v for k, v in scores(logits, ctx.dev.labels, ctx.problem, ctx.labels).items()}


def dev_score(ctx: RunContext, forward, keep: str = "score") -> float:
    """The best-checkpoint score (higher is better) of `forward(ids, mask, types) -> logits` on dev: its main
    metric (accuracy, micro-F1, Pearson), or with keep="loss" minus its dev loss (cross-entropy, binary
    cross-entropy, MSE in the training units): the best-calibrated checkpoint."""
    logits = classifier_logits(forward, ctx.dev, ctx.device)
    if keep == "loss":
        known = losses.known(ctx.dev.labels, ctx.problem)
        return -float(ctx.gold_loss(logits[known], ctx.dev.labels[known]))
    return main_score(logits, ctx.dev.labels, ctx.problem, ctx.labels)
