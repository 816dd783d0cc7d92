"""A new student for a run: the configured shape, initialised from the teacher's layers (or another checkpoint,
or at random), its heads started where the task wants them, its vocabulary compressed when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgekd.distill import losses
from edgekd.distill.model import EarlyExitStudent, StudentConfig
from edgekd.distill.student_init import init_student_from_teacher, student_shape
from edgekd.distill.students import SmallStudentConfig, build_small_student, project_teacher_embeddings
from edgekd.distill.teacher import load_encoder, output_layer
from edgekd.distill.vocab import compress_student

if TYPE_CHECKING:
    from edgekd.distill.stages.context import RunContext


def start_at_mean(ctx: RunContext, heads) -> None:
    """With data.standardize (regression), new heads' last linear layers start at the training targets'
    mean (their bias), so the first steps learn the text, not the offset."""
    if not ctx.cfg.data.standardize:
        return
    with torch.no_grad():
        for head in heads:
            output_layer(head).bias.fill_(ctx.task.target_mean)


def start_student_heads(ctx: RunContext, heads) -> None:
    """A new student's heads: start_at_mean; with student.head_bias "prior", a multi-label head's bias is
    each label's log-odds of its frequency in the training rows (GoEmotions: 28 labels at 0.2-9%, so a zero
    bias starts every label at p 0.5 and the first steps only push them down). The teacher's head starts as
    transformers makes it."""
    start_at_mean(ctx, heads)
    if ctx.problem != "multi-label" or ctx.cfg.student.head_bias != "prior":
        return
    known = ctx.train.labels[losses.known(ctx.train.labels, ctx.problem)]
    bias = torch.logit(known.mean(0), eps=1e-4) if len(known) else torch.zeros(ctx.num_outputs)
    with torch.no_grad():
        for head in heads:
            output_layer(head).bias.copy_(bias)


def new_student(ctx: RunContext) -> torch.nn.Module:
    """A fresh student of the configured shape, initialised as configured (seeded)."""
    s = ctx.cfg.student
    torch.manual_seed(ctx.cfg.seed)
    if s.kind != "transformer":
        return _new_small_student(ctx)
    teacher_cfg = ctx.teacher().model.config
    source = None  # the checkpoint whose layers the student copies
    if s.init_from:
        source = load_encoder(s.init_from, ctx.cfg.offline)
    elif ctx.init == "teacher":
        source = ctx.teacher().model
    cfg = StudentConfig(
        vocab_size=ctx.encoder.vocab_size, hidden_size=s.hidden, num_layers=s.layers, num_heads=s.heads,
        ffn_size=s.ffn, num_labels=len(ctx.labels), problem=ctx.problem, head_type=s.head_type, dropout=s.dropout,
        max_position=min(512, ctx.teacher().family.max_positions(teacher_cfg)), pad_token_id=ctx.encoder.pad_id,
        **(student_shape(source.config) if source is not None else {}),
    )
    student = EarlyExitStudent(cfg)
    start_student_heads(ctx, student.heads)
    if source is not None:
        words = source is ctx.teacher().model or _same_vocabulary(ctx, s.init_from)
        used = init_student_from_teacher(student, source, words=words)
        where = s.init_from if s.init_from else "teacher"
        ctx.log(f"student initialised from {where} layers {used}" +
                ("" if words else " (word embeddings random: its vocabulary is not the teacher's)"))
    if s.vocab_keep or s.vocab_size:
        student = compress_student(student, ctx.vocab_map())
    return student.to(ctx.device)


def _same_vocabulary(ctx: RunContext, folder: str) -> bool:
    """True when `folder`'s tokenizer.json is byte for byte the run's (its word rows then mean the same)."""
    theirs = Path(folder) / "tokenizer.json"
    return theirs.is_file() and theirs.read_bytes() == ctx.run.tokenizer.read_bytes()


def _new_small_student(ctx: RunContext):
    s = ctx.cfg.student
    cfg = SmallStudentConfig(kind=s.kind, vocab_size=ctx.encoder.vocab_size, embed_size=s.embed,
                             hidden_size=s.hidden, num_labels=len(ctx.labels), problem=ctx.problem,
                             dropout=s.dropout,
                             pad_token_id=ctx.encoder.pad_id)
    student = build_small_student(cfg)
    start_student_heads(ctx, [student.classifier])
    if ctx.init == "teacher":
        embedding = ctx.teacher().word_embeddings
        with torch.no_grad():
            student.embeddings.word.weight.copy_(project_teacher_embeddings(embedding, s.embed))
        ctx.log(f"{s.kind} embeddings projected from the teacher's (PCA to {s.embed})")
    if s.vocab_keep or s.vocab_size:
        student = compress_student(student, ctx.vocab_map())
    return student.to(ctx.device)
