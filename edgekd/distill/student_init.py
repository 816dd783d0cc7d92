"""Student initialisation from a teacher: uniformly selected layers, and when the student is narrower an
evenly spread selection of hidden dims, whole attention heads and FFN units ("weight selection"), with
embeddings carried over in the family's position scheme (and projection, when factorised)."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.distill.families import LAYER_PARTS, TeacherError, family_of
from edgekd.distill.teacher import init_problems


def _spread(total: int, count: int) -> torch.Tensor:
    """`count` evenly spread indices out of `total` (all of them when equal)."""
    return torch.linspace(0, total - 1, count).round().long()


def uniform_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Uniform layer selection ending at the teacher's last layer (6 -> 4: 0, 2, 3, 5)."""
    return [(i + 1) * teacher_layers // student_layers - 1 for i in range(student_layers)]


def student_shape(config) -> dict:
    """StudentConfig fields that must follow the teacher (its transformers `config`) for its layers to be
    copied exactly."""
    family = family_of(config)
    embedding = getattr(config, "embedding_size", None)
    return {"activation": family.activation(config), "layer_norm_eps": family.layer_norm_eps(config),
            "embedding_size": embedding if embedding and embedding != config.hidden_size else 0}


def _slice(part: str, tensor: torch.Tensor, h, a, f) -> torch.Tensor:
    """The student's share of one teacher weight: rows/columns kept by weight selection."""
    rows, cols = {"query": (a, h), "key": (a, h), "value": (a, h), "output": (h, a), "attention_norm": (h, None),
                  "ffn_in": (f, h), "ffn_out": (h, f), "ffn_norm": (h, None)}[part]
    tensor = tensor[rows]
    return tensor[:, cols] if cols is not None and tensor.dim() == 2 else tensor


def init_student_from_teacher(student: nn.Module, teacher: nn.Module, kept_tokens: torch.Tensor | None = None,
                              words: bool = True) -> list[int]:
    """Copy teacher weights into the student: uniformly selected layers, and
    when the student is narrower, an evenly spread selection of hidden dims,
    whole attention heads and FFN units ("weight selection"). Embeddings come
    over with the family's position scheme (and projection, when factorised).
    Returns the teacher layers used. `kept_tokens` picks embedding rows (compressed vocab);
    words=False leaves the word table as it is (another vocabulary's checkpoint).
    """
    tcfg, scfg = teacher.config, student.config
    family = family_of(tcfg)
    problems = init_problems(family, tcfg)
    if problems:
        raise TeacherError(problems[0])
    t_layers, t_ffn = family.num_layers(tcfg), family.ffn_size(tcfg)
    t_head_dim = tcfg.hidden_size // tcfg.num_attention_heads
    s_head_dim = scfg.hidden_size // scfg.num_heads
    wanted = student_shape(tcfg)
    if scfg.hidden_size > tcfg.hidden_size:
        problems.append(f"student hidden {scfg.hidden_size} > teacher {tcfg.hidden_size}")
    if scfg.ffn_size > t_ffn:
        problems.append(f"student ffn {scfg.ffn_size} > teacher {t_ffn}")
    if scfg.num_layers > t_layers:
        problems.append(f"student layers {scfg.num_layers} > teacher {t_layers}")
    if s_head_dim != t_head_dim or scfg.num_heads > tcfg.num_attention_heads:
        problems.append(f"student heads must have the teacher's head size {t_head_dim}: use --heads "
                        f"{scfg.hidden_size // t_head_dim}")
    if scfg.max_position > family.max_positions(tcfg):
        problems.append(f"student max_position {scfg.max_position} > teacher {family.max_positions(tcfg)}")
    for name, value in wanted.items():
        if getattr(scfg, name) != value:
            problems.append(f"student {name} {getattr(scfg, name)!r} must be the teacher's {value!r}")
    if problems:
        raise TeacherError("cannot initialise the student from the teacher: " + "; ".join(problems))
    h = _spread(tcfg.hidden_size, scfg.hidden_size)
    f = _spread(t_ffn, scfg.ffn_size)
    heads = _spread(tcfg.num_attention_heads, scfg.num_heads)
    a = torch.cat([torch.arange(i * t_head_dim, (i + 1) * t_head_dim) for i in heads.tolist()])
    layers = uniform_layers(t_layers, scfg.num_layers)
    emb = family.embeddings(teacher)
    e = torch.arange(emb.word.shape[1]) if emb.project is not None else h  # factorised: all E columns kept
    rows = kept_tokens if kept_tokens is not None else torch.arange(scfg.vocab_size)
    segment = torch.zeros_like(student.embeddings.segment.weight)
    if emb.segment is not None:  # every segment the teacher has (a pair's second text is segment 1 in BERT)
        shared = min(len(segment), len(emb.segment))
        segment[:shared] = emb.segment[:shared][:, e]
    new = {
        "embeddings.position.weight": emb.position[: scfg.max_position][:, e],
        "embeddings.segment.weight": segment,
        "embeddings.norm.weight": emb.norm_weight[e],
        "embeddings.norm.bias": emb.norm_bias[e],
    }
    if words:
        new["embeddings.word.weight"] = emb.word[rows][:, e]
    if emb.project is not None:
        new["embeddings.project.weight"] = emb.project.weight[h]
        new["embeddings.project.bias"] = emb.project.bias[h]
    teacher_layers = family.layers(teacher)
    for s_index, t_index in enumerate(layers):
        parts = family.layer_parts(teacher_layers[t_index])
        for part in LAYER_PARTS:
            target = f"layers.{s_index}." + (f"attention.{part}" if part in ("query", "key", "value", "output")
                                             else part)
            new[target + ".weight"] = _slice(part, parts[part].weight, h, a, f)
            new[target + ".bias"] = _slice(part, parts[part].bias, h, a, f)
    missing, unexpected = student.load_state_dict(new, strict=False)
    assert not unexpected, unexpected
    return layers
