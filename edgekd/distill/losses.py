"""Distillation losses: pure functions of tensors, chosen by name from registries.

Shapes: B batch, T tokens, D width, C classes, R relation heads.
"""

from __future__ import annotations

import enum
import math

import torch
import torch.nn.functional as F

from runtime.exits import TOKENS

_PAD_LOGIT = -10000.0  # finite, so exp() is 0 and 0 * (finite) stays 0 in the KL


def split_relation_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B,T,D) -> (B,R,T,D/R). D must divide by R."""
    batch, length, width = x.shape
    if width % heads:
        raise ValueError(f"width {width} does not divide into {heads} relation heads")
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def relation_log_probs(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """log softmax(A_r B_r^T / sqrt(D/R)) over keys, padded keys excluded.

    a, b (B,T,D), mask (B,T) -> (B,R,T,T).
    """
    a, b = split_relation_heads(a, heads), split_relation_heads(b, heads)
    scores = a @ b.transpose(-1, -2) / math.sqrt(a.shape[-1])
    scores = scores.float().masked_fill(mask[:, None, None, :] == 0, _PAD_LOGIT)
    return scores.log_softmax(-1)


def masked_relation_kl(teacher_log: torch.Tensor, student_log: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per query row, averaged over real query rows and heads.

    teacher_log, student_log (B,R,T,T) log-probs; mask (B,T) -> scalar.
    """
    kl = (teacher_log.exp() * (teacher_log - student_log)).sum(-1)  # (B,R,T)
    rows = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * rows).sum() / rows.sum().clamp(min=1.0)


def attention_kl(q_t, k_t, q_s, k_s, mask, heads: int) -> torch.Tensor:
    """L_AT: KL between teacher and student self-attention distributions
    softmax(QK^T/sqrt(d)), regrouped into `heads` relation heads.
    q_t, k_t (B,T,Dt); q_s, k_s (B,T,Ds); mask (B,T) -> scalar."""
    teacher, student = relation_log_probs(q_t, k_t, mask, heads), relation_log_probs(q_s, k_s, mask, heads)
    return masked_relation_kl(teacher, student, mask)


def value_relation_kl(v_t, v_s, mask, heads: int) -> torch.Tensor:
    """L_VR: KL between value relations softmax(VV^T/sqrt(d)). v_t (B,T,Dt), v_s (B,T,Ds) -> scalar."""
    teacher, student = relation_log_probs(v_t, v_t, mask, heads), relation_log_probs(v_s, v_s, mask, heads)
    return masked_relation_kl(teacher, student, mask)


def self_attention_distillation(teacher_qkv, student_qkv, mask, heads: int, alpha: float = 1.0, beta: float = 1.0):
    """L = alpha * L_AT + beta * L_VR for the LAST layers of teacher and student.
    Returns (loss, {"at": L_AT, "vr": L_VR})."""
    (q_t, k_t, v_t), (q_s, k_s, v_s) = teacher_qkv, student_qkv
    at = attention_kl(q_t, k_t, q_s, k_s, mask, heads)
    vr = value_relation_kl(v_t, v_s, mask, heads)
    return alpha * at + beta * vr, {"at": at.detach(), "vr": vr.detach()}


def qkv_relation_distillation(teacher_qkv, student_qkv, mask, heads: int):
    """MiniLMv2's multi-head self-attention relations: KL between teacher and student softmax(QQ^T/sqrt(d)),
    softmax(KK^T/sqrt(d)) and softmax(VV^T/sqrt(d)), regrouped into `heads` relation heads, summed.
    q, k, v (B,T,D) each; mask (B,T) -> (loss, {"qq", "kk", "vv"})."""
    parts = {}
    for name, t, s in zip(("qq", "kk", "vv"), teacher_qkv, student_qkv):
        parts[name] = masked_relation_kl(relation_log_probs(t, t, mask, heads), relation_log_probs(s, s, mask, heads),
                                         mask)
    return sum(parts.values()), {k: v.detach() for k, v in parts.items()}


def hidden_state_mse(teacher_states, student_states, projection, mask: torch.Tensor) -> torch.Tensor:
    """TinyBERT's hidden-state distillation: the mean over matched layer pairs of the masked MSE between the
    student's hidden states, projected to the teacher's width, and the teacher's.
    teacher_states, student_states: equal-length lists of (B,T,Dt) / (B,T,Ds); projection: Ds -> Dt; mask (B,T)."""
    rows = mask[..., None].float()
    total = mask.new_zeros((), dtype=torch.float32)
    for t, s in zip(teacher_states, student_states):
        diff = (projection(s).float() - t.float()) ** 2 * rows
        total = total + diff.sum() / (rows.sum() * t.shape[-1]).clamp(min=1.0)
    return total / max(len(teacher_states), 1)


def default_relation_heads(teacher_width: int, student_width: int, teacher_heads: int, student_heads: int) -> int:
    """Largest common divisor of both widths that is at most max(head counts)."""
    limit = max(teacher_heads, student_heads)
    g = math.gcd(teacher_width, student_width)
    return max(r for r in range(1, limit + 1) if g % r == 0)


def word_prediction_kl(t_hidden: torch.Tensor, t_embedding: torch.Tensor, s_hidden: torch.Tensor,
                       s_embedding: torch.Tensor, mask: torch.Tensor, temperature: float = 15.0) -> torch.Tensor:
    """GLMD word-prediction distillation: language-model logits f(x) W_vocab^T of teacher
    and student, KL(teacher || student) at temperature T (x T^2) per real token, mean.

    t_hidden (B,T,Ht), t_embedding (K,Ht), s_hidden (B,T,Hs), s_embedding (K,Hs), mask (B,T) -> scalar.
    With a compressed vocabulary both tables hold only the K kept rows."""
    log_t = (t_hidden.float() @ t_embedding.float().T / temperature).log_softmax(-1)  # (B,T,K)
    log_s = (s_hidden.float() @ s_embedding.float().T / temperature).log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (B,T)
    real = mask.to(kl.dtype)
    return temperature**2 * (kl * real).sum() / real.sum().clamp(min=1.0)


def mask_tokens(input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int, share: float,
                keep: list[int] | None = None) -> torch.Tensor:
    """Replace `share` of the real tokens (not those in `keep`, e.g. [CLS]/[SEP]) by `mask_id`."""
    chosen = (torch.rand(input_ids.shape, device=input_ids.device) < share) & (mask == 1)
    for token in keep or []:
        chosen &= input_ids != token
    return input_ids.masked_fill(chosen, mask_id)


# ---------------------------------------------------------------- task distillation
def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """Hinton: T^2 * KL(softmax(t/T) || softmax(s/T)), mean over the batch. (B,C),(B,C) -> scalar."""
    t = temperature
    log_s = F.log_softmax(student_logits.float() / t, -1)
    log_t = F.log_softmax(teacher_logits.float() / t, -1)
    return (t * t) * (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Tang et al.: mean squared error between logits. (B,C),(B,C) -> scalar. Temperature unused."""
    return F.mse_loss(student_logits.float(), teacher_logits.float())


class KDLoss(str, enum.Enum):
    soft = "soft"
    mse = "mse"


KD_LOSSES = {KDLoss.soft.value: soft_target_kl, KDLoss.mse.value: logit_mse}


def soft_target_bce(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """Multi-label soft targets: T^2 * BCE(sigmoid(s/T), sigmoid(t/T)) minus the teacher's own entropy (so 0 at
    s = t, like the KL), mean over rows and labels. (B,C),(B,C) -> scalar."""
    t = temperature
    s, target = student_logits.float() / t, torch.sigmoid(teacher_logits.float() / t)
    return (t * t) * (F.binary_cross_entropy_with_logits(s, target) -
                      F.binary_cross_entropy_with_logits(teacher_logits.float() / t, target))


def known(labels: torch.Tensor, problem: str) -> torch.Tensor:
    """(B,) mask of rows whose gold label is known: transfer rows carry -1 (a row of -1 for multi-label) or
    NaN (regression); a sentence (token classification) whose tokens carry no tag (IGNORE, -100, throughout)."""
    if problem == "regression":
        return ~torch.isnan(labels)
    if problem == TOKENS:
        return (labels >= 0).any(-1)
    return (labels[:, 0] if problem == "multi-label" else labels) >= 0


def gold_loss(logits: torch.Tensor, labels: torch.Tensor, problem: str = "single-label",
              scale: float = 1.0) -> torch.Tensor:
    """The loss transformers uses for the problem type, on gold labels: cross-entropy (labels (B,) class ids);
    binary cross-entropy with logits (labels (B,C) 0/1); mean squared error (labels (B,) values, logits (B,1)),
    in units of `scale` (MSE / scale^2: standardised targets)."""
    if problem == "multi-label":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    if problem == "regression":
        return F.mse_loss(logits.float().reshape(-1), labels.float()) / (scale * scale)
    if problem == TOKENS:  # (B,T,C) against (B,T) tag ids, IGNORE (-100) where no word starts
        tagged = labels >= 0
        if not bool(tagged.any()):
            return logits.new_zeros((), dtype=torch.float32)
        return F.cross_entropy(logits.float()[tagged], labels[tagged])
    return F.cross_entropy(logits.float(), labels)


def task_distillation(student_logits, teacher_logits, labels, kind: str = "soft", temperature: float = 1.0,
                      weight: float = 0.5, problem: str = "single-label", scale: float = 1.0,
                      token_mask: torch.Tensor | None = None):
    """(1 - weight) * gold loss + weight * KD. Returns (loss, parts).

    KD by problem type: single-label `kind` (soft: T^2 KL of softmaxes; mse: logits); multi-label soft: BCE to
    the teacher's sigmoids at temperature T (`soft_target_bce`), mse: logits; regression: MSE to the teacher's
    value (kind and temperature do not apply; both MSEs in units of `scale`). Rows whose gold is unknown
    (transfer rows: `known`) take KD only; the gold loss is the mean over the others. Token classification:
    logits (B,T,C), the gold loss on tagged tokens, KD per token over `token_mask` (B,T) (the tokens the exit
    rule reads: every real token but the special ones), as single-label KD."""
    gold = known(labels, problem)
    ce = gold_loss(student_logits[gold], labels[gold], problem, scale) if bool(gold.any()) \
        else student_logits.new_zeros((), dtype=torch.float32)
    if problem == TOKENS:
        student_logits, teacher_logits = per_token(student_logits, token_mask), per_token(teacher_logits, token_mask)
    if problem == "regression":
        kd = logit_mse(student_logits, teacher_logits) / (scale * scale)
    elif kind == "mse":
        kd = logit_mse(student_logits, teacher_logits)
    elif problem == "multi-label":
        kd = soft_target_bce(student_logits, teacher_logits, temperature)
    else:
        kd = KD_LOSSES[kind](student_logits, teacher_logits, temperature)
    return (1.0 - weight) * ce + weight * kd, {"ce": ce.detach(), "kd": kd.detach()}


def per_token(logits: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """(B,T,C) token outputs -> (N,C), the N tokens of `token_mask` (B,T) (required: which tokens count)."""
    if token_mask is None:
        raise ValueError("token classification distils per token: give the token mask")
    return logits[token_mask.bool()]


def branch_self_distillation(exit_logits: list[torch.Tensor], problem: str = "single-label",
                             scale: float = 1.0, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over exit heads 1..L-1 of the distance to the trunk (last head, a fixed target): KL(trunk || head)
    for single-label and per token for token classification (over `token_mask`), BCE to the trunk's sigmoids
    for multi-label (`soft_target_bce` at T 1), MSE to the trunk's value for regression (in units of `scale`).
    exit_logits: L tensors (B,C) ((B,T,C) per token) -> scalar."""
    if problem == TOKENS:
        exit_logits = [per_token(logits, token_mask) for logits in exit_logits]
    trunk = exit_logits[-1].detach().float()
    total = exit_logits[0].new_zeros((), dtype=torch.float32)
    for logits in exit_logits[:-1]:
        if problem == "multi-label":
            total = total + soft_target_bce(logits, trunk)
        elif problem == "regression":
            total = total + F.mse_loss(logits.float(), trunk) / (scale * scale)
        else:
            log_trunk = F.log_softmax(trunk, -1)
            total = total + (log_trunk.exp() * (log_trunk - F.log_softmax(logits.float(), -1))).sum(-1).mean()
    return total
