"""Stage `attention`: last-layer self-attention distillation (attention distributions + value
relations, KL) and/or GLMD word prediction, into a fresh student, on unlabelled text."""

from __future__ import annotations

import torch

from edgekd.distill import losses
from edgekd.distill.evaluate import segments
from edgekd.distill.student_init import uniform_layers
from edgekd.distill.train import train_loop
from edgekd.distill.vocab import MASK_TOKENS, first_token
from edgekd.distill.dev import student_dev
from edgekd.distill.factory import new_student
from edgekd.distill.transfer import unlabeled_data
from edgekd.distill.stages.context import RunContext


class AttentionStage:
    name = "attention"
    # what the log reports at the end: its own loss (the exit heads are untrained until `branches`, so a dev
    # accuracy here would read as broken)
    reports = "loss"
    loss_name = "attention + value-relation KL to the teacher's last layer, and/or GLMD word KL"

    def run(self, ctx: RunContext) -> dict:
        """Last-layer self-attention distillation (relations) and/or GLMD word prediction, on unlabelled text."""
        teacher = ctx.teacher()
        student = new_student(ctx)
        a = ctx.cfg.attention
        relations, word = a.objective in ("relations", "both"), a.objective in ("word", "both")
        heads = a.relation_heads or losses.default_relation_heads(
            teacher.hidden_size, student.config.hidden_size, teacher.num_heads, student.config.num_heads)
        ctx.log(f"attention stage: objective {a.objective}" +
                (f", {a.relations} relations from teacher layer {teacher.relation_layer % teacher_layers(teacher) + 1}"
                 f" of {teacher_layers(teacher)}, {heads} relation heads" if relations else ""))
        t_embedding = teacher.word_vectors.detach()
        if student.config.original_vocab_size:  # word logits over the kept tokens only
            t_embedding = t_embedding[torch.from_numpy(ctx.vocab_map().kept).to(t_embedding.device)]
        vocab = ctx.encoder.tokenizer
        mask = first_token(vocab, MASK_TOKENS)
        mask_id = None if mask is None else vocab.token_to_id(mask)
        keep_ids = [i for i in map(vocab.token_to_id, ("[CLS]", "[SEP]", "<s>", "</s>")) if i is not None]
        matched = a.hidden_weight > 0  # TinyBERT: every student layer's output against its teacher layer's
        if matched:  # a submodule while the stage trains (so checkpoints resume it), dropped before saving
            student.hidden_projection = torch.nn.Linear(student.config.hidden_size, teacher.hidden_size).to(ctx.device)
            mapping = [t + 1 for t in uniform_layers(teacher_layers(teacher), student.config.num_layers)]

        def loss_fn(module, batch):
            ids = batch.input_ids
            if word and a.word_mask > 0 and mask_id is not None:
                ids = losses.mask_tokens(ids, batch.mask, mask_id, a.word_mask, keep_ids)
            with torch.no_grad():
                t = teacher(ids, batch.mask, batch.token_type_ids, hidden=word or matched)
            s = module(ids, batch.mask, exits=False, all_hidden=matched, **segments(batch))
            total, parts = ids.new_zeros((), dtype=torch.float32), {}
            if relations and a.relations == "qkv":
                loss, parts = losses.qkv_relation_distillation(t.last_qkv, s.last_qkv, batch.mask, heads)
                total = total + loss
            elif relations:
                loss, parts = losses.self_attention_distillation(t.last_qkv, s.last_qkv, batch.mask, heads, a.alpha,
                                                                 a.beta)
                total = total + loss
            if matched:
                hm = losses.hidden_state_mse([t.hidden_states[i] for i in mapping], s.hidden_states,
                                             student.hidden_projection, batch.mask)
                total, parts = total + a.hidden_weight * hm, {**parts, "hm": hm.detach()}
            if word:
                wp = losses.word_prediction_kl(t.hidden, t_embedding, s.hidden, student.embeddings.word_vectors(),
                                               batch.mask, a.word_temperature)
                total, parts = total + a.word_weight * wp, {**parts, "wp": wp.detach()}
            return total, parts

        params = student.backbone_parameters()  # (the projection, not a head, is among them when matched)
        if not word and not matched:  # the relations read the last layer's q, k, v: what follows gets no gradient
            last = student.layers[-1]
            after = {id(p) for m in (last.attention.output, last.attention_norm, last.ffn_in, last.ffn_out,
                                     last.ffn_norm) for p in m.parameters()}
            params = [p for p in params if id(p) not in after]
        stats = train_loop("attention", student, params, loss_fn, unlabeled_data(ctx), a, ctx.cfg.seed, ctx.device,
                           ctx.run.stage("attention"), ctx.step_hook("attention"), log=ctx.log)
        if matched:
            del student.hidden_projection  # a training aid: the exported student has none
        ctx.save_student("attention", student)
        return {**student_dev(ctx, student), **stats, "objective": a.objective,
                **({"hidden_weight": a.hidden_weight, "teacher_layers_matched": mapping} if matched else {}),
                **({"relation_heads": heads, "relations": a.relations,
                    "teacher_layer": teacher.relation_layer % teacher_layers(teacher) + 1} if relations else {})}


def teacher_layers(teacher) -> int:
    return teacher.family.num_layers(teacher.model.config)
