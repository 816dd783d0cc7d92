"""Stage `refine`: two-teacher label refinement of the training rows' KD targets (see edgekd/distill/refine.py)."""

from __future__ import annotations


import torch

from edgekd.distill.evaluate import classifier_logits
from edgekd.distill.refine import merge_targets, score_rows, split_rows
from edgekd.distill.teacher import load_teacher, segment_kwargs
from edgekd.distill.batches import TokenizedData
from edgekd.distill.train import barrier, train_loop
from edgekd.distill.stages.context import RunContext, classifier_ce
from runtime.files import atomic_write


class RefineStage:
    name = "refine"

    def run(self, ctx: RunContext) -> dict:
        """Two-teacher label refinement of the training rows' targets (see edgekd/distill/refine.py)."""
        r = ctx.cfg.refine
        a_logits = ctx.teacher_logits()
        labels = ctx.train.labels
        keep = split_rows(a_logits, labels, r.threshold, r.score)
        failing = (~keep).nonzero()[:, 0]
        ctx.log(f"refine: teacher A keeps {int(keep.sum())} rows, {len(failing)} fail (score {r.score} < "
                f"{r.threshold:g})")
        if len(failing) > len(keep) // 2:
            ctx.log(f"warning: more than half the rows fail: teacher A is rarely that confident (median "
                    f"{r.score} {float(score_rows(a_logits, labels, r.score).median()):.2f}); lower refine.threshold "
                    "or use refine.score ratio")
        result = {"kept": int(keep.sum()), "failing": len(failing)}
        targets = a_logits
        if len(failing):
            torch.manual_seed(ctx.cfg.seed + 1)
            model_b = load_teacher(r.teacher_b or ctx.cfg.teacher, len(ctx.labels), ctx.cfg.offline).to(ctx.device)
            texts = ctx.train_set.texts
            trained_on = failing if r.b_data == "failing" else keep.nonzero()[:, 0]
            data_b = TokenizedData(ctx.encoder, [texts[i] for i in trained_on.tolist()],
                                   [int(labels[i]) for i in trained_on.tolist()])
            stats = train_loop("refine", model_b, list(model_b.parameters()), classifier_ce, data_b, r,
                               ctx.cfg.seed + 1,
                               ctx.device, ctx.run.stage("refine"), ctx.step_hook("refine"), log=ctx.log)
            model_b.eval()
            failing_data = TokenizedData(ctx.encoder, [texts[i] for i in failing.tolist()])
            b_logits = classifier_logits(lambda i, m, t: model_b(input_ids=i, attention_mask=m,
                                                                 **segment_kwargs(model_b, t)).logits, failing_data,
                                         ctx.device)
            targets = merge_targets(a_logits, b_logits, keep)
            result.update(stats, b_data=r.b_data, b_rows=len(trained_on))
            agree = (b_logits.argmax(-1) == labels[failing]).float().mean()
            result["b_agrees_with_given_labels_on_failing"] = float(agree)
        result["targets_agree_with_given_labels"] = float((targets.argmax(-1) == labels).float().mean())
        if ctx.rank == 0:
            atomic_write(ctx.run.refined_logits, lambda tmp: torch.save(targets, tmp))
        barrier()
        return result
