"""The teacher: a BERT-family Hugging Face classifier behind a small adaptor.

The distillation code never touches model classes: `TeacherAdaptor` turns a
forward pass into `TeacherOutput(logits, last_qkv)`. New families plug in here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from runtime.errors import EdgeKDError

# Families whose layers expose attention.self.{query,key,value} like BERT.
SUPPORTED_FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "camembert")
# Families whose weights map onto the student for --init teacher (absolute positions from 0).
INIT_FAMILIES = ("bert", "electra")


class TeacherError(EdgeKDError):
    """The teacher checkpoint cannot be used."""


@dataclass
class TeacherOutput:
    logits: torch.Tensor  # (B,C)
    last_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # last layer q, k, v (B,T,H)
    hidden: torch.Tensor | None = None  # last layer output (B,T,H), when asked for


def _config(source: str, offline: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=offline)
    except OSError as exc:
        where = "folder" if Path(source).exists() else "hub id (offline?)"
        raise TeacherError(f"cannot read a Hugging Face config from {source!r} ({where}): {exc}") from exc


def head_names(source: str | os.PathLike, offline: bool = True) -> list[str] | None:
    """The class names of the checkpoint's classification head, in output order; None when it has no
    head or only transformers' placeholders (LABEL_0 ... LABEL_{n-1}, what a config without id2label gets)."""
    config = _config(str(source), offline)
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        return None
    names = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
    if not names or names == [f"LABEL_{i}" for i in range(len(names))]:
        return None
    return names


def check_teacher(source: str | os.PathLike, offline: bool, init: str) -> None:
    """Refuse, before anything is written, a teacher folder edgekd cannot use, naming why and what to do."""
    config = _config(str(source), offline)
    problems = []
    if getattr(config, "auto_map", None):
        problems.append("its config.json asks for remote code (auto_map); edgekd never runs code from a model "
                        "folder: use a checkpoint of a built-in transformers family")
    if config.model_type not in SUPPORTED_FAMILIES:
        problems.append(f"teacher family {config.model_type!r} is not supported; edgekd distils from "
                        f"{', '.join(SUPPORTED_FAMILIES)} encoders")
    folder = Path(source)
    if folder.is_dir():
        weights = sorted(p.name for p in folder.glob("*.safetensors"))
        index = (folder / "model.safetensors.index.json").is_file()
        if weights and "model.safetensors" not in weights and not index:
            problems.append(f"its weights must be model.safetensors (or sharded with model.safetensors.index.json); "
                            f"found only {', '.join(weights)}: is a file from another model in the folder?")
    emb = getattr(config, "embedding_size", None)
    if init == "teacher" and emb is not None and emb != config.hidden_size:
        problems.append(f"--init teacher copies the teacher's embeddings, but its embedding size {emb} differs "
                        f"from its hidden size {config.hidden_size} (factorised embeddings); use --init random")
    if problems:
        raise TeacherError(f"teacher {source}: " + "; ".join(problems))


def check_tokenizer(encoder, source: str | os.PathLike, offline: bool, texts: list[str], log=print,
                    sample: int = 5000, max_unknown: float = 0.05) -> float:
    """The tokenizer must fit the teacher: no id beyond its embedding rows (refused), and few unknown
    tokens on the training texts (a warning above `max_unknown`). Returns the unknown share."""
    import warnings

    rows = _config(str(source), offline).vocab_size
    if encoder.vocab_size > rows:
        raise TeacherError(f"the tokenizer has {encoder.vocab_size} tokens but the teacher's embedding only {rows} "
                           f"rows: tokenizer.json is not this teacher's (wrong folder?)")
    unk = next((encoder.tokenizer.token_to_id(t) for t in ("[UNK]", "<unk>", "<UNK>")
                if encoder.tokenizer.token_to_id(t) is not None), None)
    if unk is None or not texts:
        return 0.0
    ids = encoder.token_ids(texts[:sample])
    total = sum(len(row) for row in ids)
    share = sum(row.count(unk) for row in ids) / max(total, 1)
    if share > max_unknown:
        warnings.warn(f"{100 * share:.1f}% of the training tokens are unknown to the teacher's tokenizer; is it "
                      "the right tokenizer for this teacher and this language?", stacklevel=2)
    return share


def head_order(names: list[str], labels: list[str]) -> list[int] | None:
    """For a head predicting `names`, the head output to use for each of `labels` (None when identical);
    TeacherError when the names cannot be matched one to one (case and spacing ignored)."""
    key = [n.strip().lower() for n in names]
    want = [n.strip().lower() for n in labels]
    if key == want:
        return None
    if sorted(key) != sorted(want) or len(set(key)) != len(key):
        raise TeacherError(f"the teacher's classifier predicts {names}, but the data's labels are {labels}; they "
                           "cannot be matched by name. Give --label-names in the head's terms, or retrain the head "
                           "(config teacher_stage.force = true)")
    return [key.index(w) for w in want]


def reorder_head(model: nn.Module, order: list[int]) -> None:
    """Permute the classification head's outputs so that output k predicts label k."""
    last = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)][-1] \
        if hasattr(model, "classifier") else None
    if last is None or last.out_features != len(order):
        raise TeacherError(f"cannot find the classification head of {type(model).__name__} to reorder its outputs")
    index = torch.tensor(order)
    with torch.no_grad():
        last.weight.copy_(last.weight[index])
        if last.bias is not None:
            last.bias.copy_(last.bias[index])


def has_task_head(source: str | os.PathLike, num_labels: int, offline: bool = True) -> bool:
    """True when the checkpoint already is a sequence classifier with `num_labels` outputs."""
    config = _config(str(source), offline)
    archs = config.architectures or []
    return any(a.endswith("ForSequenceClassification") for a in archs) and config.num_labels == num_labels


def load_teacher(source: str | os.PathLike, num_labels: int, offline: bool = True,
                 labels: list[str] | None = None) -> nn.Module:
    """A BERT-family sequence classifier from a local folder (or hub id when online).

    Safetensors weights only; no remote code. A checkpoint without a task head
    gets a freshly initialised classifier (the `teacher` stage trains it).
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    source = str(source)
    check_teacher(source, offline, init="random")
    folder = Path(source)
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        raise TeacherError(f"{folder} has no .safetensors weights; edgekd loads no pickled checkpoints. Convert "
                           "it with `model.save_pretrained(dir, safe_serialization=True)`")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights were newly initialised" is expected for a fresh head
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, use_safetensors=True, local_files_only=offline,
            trust_remote_code=False, ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise TeacherError(f"cannot load the teacher from {source}: {str(exc).splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    names = head_names(source, offline)
    if labels is not None:
        if names is not None and len(names) == num_labels:
            order = head_order(names, labels)
            if order is not None:
                reorder_head(model, order)
        # the saved teacher names its outputs in our order, so a reload maps them one to one
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    return model


def teacher_tokenizer_json(source: str | os.PathLike, target: str | os.PathLike, offline: bool = True) -> Path:
    """Write the teacher's fast tokenizer as a single tokenizer.json at `target`."""
    source_path = Path(source) / "tokenizer.json"
    target = Path(target)
    if source_path.is_file():
        target.write_bytes(source_path.read_bytes())
        return target
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=offline, use_fast=True)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"cannot load a fast tokenizer from {source}: {exc}") from exc
    tokenizer.backend_tokenizer.save(str(target))
    return target


def last_attention(model: nn.Module) -> nn.Module:
    """The last layer's self-attention module (with .query, .key, .value)."""
    try:
        return model.base_model.encoder.layer[-1].attention.self
    except AttributeError as exc:
        raise TeacherError(f"cannot find the last self-attention of {type(model).__name__}") from exc


class TeacherAdaptor(nn.Module):
    """Runs the teacher and returns logits plus the last layer's q, k, v."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        attention = last_attention(model)
        self._captured: dict[str, torch.Tensor] = {}
        for name in ("query", "key", "value"):
            getattr(attention, name).register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = output

        return hook

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_heads(self) -> int:
        return self.model.config.num_attention_heads

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, hidden: bool = False) -> TeacherOutput:
        self._captured.clear()
        out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=hidden)
        qkv = tuple(self._captured[n] for n in ("query", "key", "value")) if self._captured else None
        return TeacherOutput(out.logits, qkv, out.hidden_states[-1] if hidden else None)

    @property
    def input_embedding(self) -> torch.Tensor:
        return self.model.base_model.embeddings.word_embeddings.weight


# ----------------------------------------------------------- student initialisation
def _spread(total: int, count: int) -> torch.Tensor:
    """`count` evenly spread indices out of `total` (all of them when equal)."""
    return torch.linspace(0, total - 1, count).round().long()


def uniform_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Uniform layer selection ending at the teacher's last layer (6 -> 4: 0, 2, 3, 5)."""
    return [(i + 1) * teacher_layers // student_layers - 1 for i in range(student_layers)]


def init_student_from_teacher(student: nn.Module, teacher: nn.Module, kept_tokens: torch.Tensor | None = None) -> list[int]:
    """Copy teacher weights into the student: uniformly selected layers, and
    when the student is narrower, an evenly spread selection of hidden dims,
    whole attention heads and FFN units ("weight selection"). Returns the
    teacher layers used. `kept_tokens` picks embedding rows (compressed vocab).
    """
    tcfg, scfg = teacher.config, student.config
    if tcfg.model_type not in INIT_FAMILIES:
        raise TeacherError(f"--init teacher supports {', '.join(INIT_FAMILIES)} teachers, not {tcfg.model_type!r}; "
                           "use --init random")
    t_head_dim = tcfg.hidden_size // tcfg.num_attention_heads
    s_head_dim = scfg.hidden_size // scfg.num_heads
    problems = []
    if scfg.hidden_size > tcfg.hidden_size:
        problems.append(f"student hidden {scfg.hidden_size} > teacher {tcfg.hidden_size}")
    if scfg.ffn_size > tcfg.intermediate_size:
        problems.append(f"student ffn {scfg.ffn_size} > teacher {tcfg.intermediate_size}")
    if scfg.num_layers > tcfg.num_hidden_layers:
        problems.append(f"student layers {scfg.num_layers} > teacher {tcfg.num_hidden_layers}")
    if s_head_dim != t_head_dim or scfg.num_heads > tcfg.num_attention_heads:
        problems.append(f"student heads must have the teacher's head size {t_head_dim}: use --heads "
                        f"{scfg.hidden_size // t_head_dim}")
    if scfg.max_position > tcfg.max_position_embeddings:
        problems.append(f"student max_position {scfg.max_position} > teacher {tcfg.max_position_embeddings}")
    if problems:
        raise TeacherError("cannot initialise the student from the teacher: " + "; ".join(problems))
    h = _spread(tcfg.hidden_size, scfg.hidden_size)
    f = _spread(tcfg.intermediate_size, scfg.ffn_size)
    heads = _spread(tcfg.num_attention_heads, scfg.num_heads)
    a = torch.cat([torch.arange(i * t_head_dim, (i + 1) * t_head_dim) for i in heads.tolist()])
    layers = uniform_layers(tcfg.num_hidden_layers, scfg.num_layers)
    tsd = teacher.base_model.state_dict()
    emb = "embeddings."
    rows = kept_tokens if kept_tokens is not None else torch.arange(scfg.vocab_size)
    new = {
        "embeddings.word.weight": tsd[emb + "word_embeddings.weight"][rows][:, h],
        "embeddings.position.weight": tsd[emb + "position_embeddings.weight"][: scfg.max_position][:, h],
        "embeddings.segment.weight": tsd[emb + "token_type_embeddings.weight"][:, h],
        "embeddings.norm.weight": tsd[emb + "LayerNorm.weight"][h],
        "embeddings.norm.bias": tsd[emb + "LayerNorm.bias"][h],
    }
    for s_index, t_index in enumerate(layers):
        t, s = f"encoder.layer.{t_index}.", f"layers.{s_index}."
        for name in ("query", "key", "value"):
            new[s + f"attention.{name}.weight"] = tsd[t + f"attention.self.{name}.weight"][a][:, h]
            new[s + f"attention.{name}.bias"] = tsd[t + f"attention.self.{name}.bias"][a]
        new[s + "attention.output.weight"] = tsd[t + "attention.output.dense.weight"][h][:, a]
        new[s + "attention.output.bias"] = tsd[t + "attention.output.dense.bias"][h]
        new[s + "attention_norm.weight"] = tsd[t + "attention.output.LayerNorm.weight"][h]
        new[s + "attention_norm.bias"] = tsd[t + "attention.output.LayerNorm.bias"][h]
        new[s + "ffn_in.weight"] = tsd[t + "intermediate.dense.weight"][f][:, h]
        new[s + "ffn_in.bias"] = tsd[t + "intermediate.dense.bias"][f]
        new[s + "ffn_out.weight"] = tsd[t + "output.dense.weight"][h][:, f]
        new[s + "ffn_out.bias"] = tsd[t + "output.dense.bias"][h]
        new[s + "ffn_norm.weight"] = tsd[t + "output.LayerNorm.weight"][h]
        new[s + "ffn_norm.bias"] = tsd[t + "output.LayerNorm.bias"][h]
    missing, unexpected = student.load_state_dict(new, strict=False)
    assert not unexpected, unexpected
    return layers
